"""Georeferenced outputs: Cloud-Optimized GeoTIFFs (:func:`save_cog`) of anything a loader returns,
GeoTensors as xarray (:func:`to_xarray`) and raster masks as polygons (:func:`polygons_from_mask`).

xarray, rioxarray and geopandas are imported only by the functions that need them; rioxarray is
never required (the CRS is written the way ``rio.write_crs`` writes it, so ``.rio`` reads it when
installed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.transform import Affine

from .errors import ArgumentError, CRSError

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

GRID_MAPPING = "spatial_ref"
"""Name of the scalar coordinate holding the CRS of xarray outputs (as rioxarray names it)."""


def save_cog(
    tensor: Any,
    path: str | os.PathLike[str],
    *,
    descriptions: Sequence[str] | None = None,
    compress: str = "deflate",
    blocksize: int = 256,
) -> Path:
    """Write a georeferenced raster as a Cloud-Optimized GeoTIFF (GDAL COG driver).

    Accepts what the loaders return:

    * a GeoTensor ((bands, h, w) or (h, w)) from ``load_raster``, ``stitch`` or
      ``load_vector(task="semantic_segmentation")``; its ``fill_value_default`` (NaN allowed for
      floats, None for none) becomes the file's nodata;
    * an ``xr.DataArray`` with ``y``/``x`` as its last dims (``load_raster_timeseries``,
      :func:`to_xarray`) or an ``xr.Dataset`` (``load_xarray``): every plane before ``y``/``x``
      becomes a band (a Dataset's variables in order), named ``"<var>/<coord>/…"`` from the
      variable and coordinate values (e.g. ``"2023-06-15/B04"``); CRS from the ``spatial_ref``
      coordinate (or a ``crs`` attribute), transform from its ``GeoTransform`` or the regular
      ``x``/``y`` pixel-centre coordinates; nodata from ``_FillValue`` (NaN for floats);
    * :class:`~geoduck.loaders.vector.VectorLabels` with instance masks: one uint8 band per
      instance (1 inside), named ``"<i>: class <label>"``.

    Boolean arrays are written as uint8. ``descriptions`` (one per band) overrides the names.
    Returns ``path``.
    """
    values, transform, crs, nodata, names = _raster_parts(tensor)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3:
        raise ArgumentError(f"save_cog writes (bands, h, w) or (h, w) arrays, got shape {values.shape}")
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if descriptions is not None and len(descriptions) != values.shape[0]:
        raise ArgumentError(f"descriptions has {len(descriptions)} names for {values.shape[0]} band(s)")
    out = Path(path)
    with rasterio.open(
        out,
        "w",
        driver="COG",
        width=values.shape[-1],
        height=values.shape[-2],
        count=values.shape[0],
        dtype=values.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        compress=compress,
        blocksize=blocksize,
    ) as dst:
        dst.write(values)
        for i, name in enumerate(descriptions if descriptions is not None else names, start=1):
            if name:
                dst.set_band_description(i, str(name))
    return out


def _raster_parts(obj: Any) -> tuple[np.ndarray, Affine, Any, float | None, list[str]]:
    """(values, transform, crs, nodata, band names) of a loader's result."""
    kind = type(obj).__name__
    if kind in ("DataArray", "Dataset") and type(obj).__module__.startswith("xarray"):
        return _xarray_parts(obj)
    if kind == "VectorLabels":
        if obj.masks is None:
            raise ArgumentError(
                "save_cog: these VectorLabels hold boxes only (task='object_detection'); load with "
                "task='instance_segmentation' (masks) or 'semantic_segmentation' (a GeoTensor) to write a raster"
            )
        names = [f"{i}: class {int(label)}" for i, label in enumerate(obj.labels)]
        return np.asarray(obj.masks, dtype=np.uint8), obj.transform, obj.crs, None, names
    for attr in ("transform", "crs"):
        if getattr(obj, attr, None) is None:
            raise ArgumentError(
                f"save_cog needs a georeferenced raster with .{attr} (a GeoTensor, an xarray object "
                f"with a spatial_ref, or VectorLabels), got {kind}"
            )
    return np.asarray(obj), obj.transform, obj.crs, getattr(obj, "fill_value_default", None), []


def _xarray_parts(obj: Any) -> tuple[np.ndarray, Affine, Any, float | None, list[str]]:
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        arrays = [(str(name), obj[name]) for name in obj.data_vars if {"y", "x"} <= set(obj[name].dims)]
        if not arrays:
            raise ArgumentError("save_cog: the Dataset has no variable with y and x dimensions")
    else:
        arrays = [(str(obj.name) if obj.name is not None else "", obj)]
    planes: list[np.ndarray] = []
    names: list[str] = []
    nodata: float | None = None
    for name, da in arrays:
        if da.dims[-2:] != ("y", "x"):
            da = da.transpose(..., "y", "x")
        lead = da.dims[:-2]
        stack = np.asarray(da.values).reshape(-1, da.sizes["y"], da.sizes["x"])
        if not lead:
            names.append(name)
        else:
            prefix = [name] if isinstance(obj, xr.Dataset) else []
            grids = np.meshgrid(*(np.arange(da.sizes[d]) for d in lead), indexing="ij")
            for pos in np.stack(grids, -1).reshape(-1, len(lead)):
                names.append("/".join([*prefix, *(_label(da, d, int(i)) for d, i in zip(lead, pos, strict=True))]))
        planes.append(stack)
        fill = da.attrs.get("_FillValue", da.encoding.get("_FillValue"))
        if fill is not None and nodata is None:
            nodata = float(fill)
    values = np.concatenate(planes) if len(planes) > 1 else planes[0]
    if nodata is None and values.dtype.kind == "f":
        nodata = math.nan
    transform, crs = _xarray_georef(obj, arrays[0][1])
    return values, transform, crs, nodata, names


def _label(da: Any, dim: Any, i: int) -> str:
    if dim not in da.coords:
        return f"{dim}={i}"
    value = da.coords[dim].values[i]
    if isinstance(value, np.datetime64):
        text = np.datetime_as_string(value, unit="s")
        return text[:-9] if text.endswith("T00:00:00") else text
    return str(value.item() if isinstance(value, np.generic) else value)


def _xarray_georef(obj: Any, da: Any) -> tuple[Affine, Any]:
    ref = obj.coords.get(GRID_MAPPING)
    attrs = dict(ref.attrs) if ref is not None else {}
    crs = attrs.get("crs_wkt") or attrs.get("spatial_ref") or obj.attrs.get("crs") or da.attrs.get("crs")
    if crs is None:
        raise CRSError(
            "save_cog: the xarray object has no CRS (no spatial_ref coordinate with crs_wkt, no crs "
            "attribute); write one, e.g. with geoduck.to_xarray or rioxarray's rio.write_crs"
        )
    gt = attrs.get("GeoTransform")
    if gt:
        return Affine.from_gdal(*(float(v) for v in str(gt).split())), crs
    x, y = np.asarray(da.coords["x"].values, float), np.asarray(da.coords["y"].values, float)
    if x.size < 2 or y.size < 2:
        raise ArgumentError("save_cog: x/y coordinates of fewer than 2 pixels give no pixel size; add a GeoTransform")
    dx, dy = (x[-1] - x[0]) / (x.size - 1), (y[-1] - y[0]) / (y.size - 1)
    if not (np.allclose(np.diff(x), dx, rtol=1e-6) and np.allclose(np.diff(y), dy, rtol=1e-6)):
        raise ArgumentError("save_cog: the x/y coordinates are not regularly spaced; add a GeoTransform")
    return Affine(dx, 0.0, x[0] - dx / 2, 0.0, dy, y[0] - dy / 2), crs


def to_xarray(tensor: Any, *, band: Sequence[object] | None = None, name: str | None = None) -> xr.DataArray:
    """A GeoTensor ((bands, h, w) or (h, w), north-up) as an ``xr.DataArray`` with CRS written.

    Dims ``("band", "y", "x")`` (or ``("y", "x")``); coords ``band`` (``band`` if given, else
    1-based indexes), ``y``/``x`` (pixel centres in the tensor's CRS units) and ``spatial_ref``
    (CF grid mapping, ``crs_wkt``/``spatial_ref`` WKT and the GDAL ``GeoTransform``, as
    rioxarray's ``rio.write_crs``/``rio.write_transform`` write them, so ``da.rio.crs`` and
    ``da.rio.transform()`` work when rioxarray is installed; it is not needed). attrs
    ``_FillValue`` = the tensor's ``fill_value_default`` (when set). :func:`save_cog` writes it
    back unchanged.
    """
    import xarray as xr

    from .geo import norm_crs
    from .loaders.xarray import write_crs

    t, crs = getattr(tensor, "transform", None), getattr(tensor, "crs", None)
    if t is None or crs is None:
        raise ArgumentError(f"to_xarray needs a GeoTensor (values, transform, crs), got {type(tensor).__name__}")
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise ArgumentError(f"to_xarray needs a north-up transform (no rotation), got {tuple(t)[:6]}")
    values = np.asarray(tensor)
    if values.ndim not in (2, 3):
        raise ArgumentError(f"to_xarray takes (bands, h, w) or (h, w) tensors, got shape {values.shape}")
    h, w = values.shape[-2:]
    coords: dict[str, Any] = {"y": t.f + (np.arange(h) + 0.5) * t.e, "x": t.c + (np.arange(w) + 0.5) * t.a}
    dims: tuple[str, ...] = ("y", "x")
    if values.ndim == 3:
        labels = list(band) if band is not None else list(range(1, values.shape[0] + 1))
        if len(labels) != values.shape[0]:
            raise ArgumentError(f"band has {len(labels)} labels for {values.shape[0]} band(s)")
        coords["band"] = labels
        dims = ("band", "y", "x")
    attrs = {}
    fill = getattr(tensor, "fill_value_default", None)
    if fill is not None:
        attrs["_FillValue"] = fill
    key = name or "data"
    ds = xr.Dataset({key: xr.DataArray(values, dims=dims, coords=coords, attrs=attrs)})
    da = write_crs(ds, norm_crs(crs), t)[key]
    return da if name is not None else da.rename(None)


def polygons_from_mask(
    mask: Any,
    *,
    transform: Affine | None = None,
    crs: Any = None,
    connectivity: int = 4,
    simplify: float | None = None,
    nodata: float | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of a raster mask or label image (``rasterio.features.shapes``) as a GeoDataFrame.

    Args:
        mask: a 2-D array (or a (1, h, w) one), or a GeoTensor (transform and CRS taken from
            it). Boolean: one polygon per connected True region. Otherwise: one polygon per
            connected region of equal value, except pixels equal to ``nodata`` (default: a
            GeoTensor's ``fill_value_default``) and NaN.
        transform, crs: georeferencing of a plain array (required then; override a GeoTensor's).
        connectivity: 4 or 8 (pixels joined through edges, or edges and corners).
        simplify: tolerance in CRS units for ``shapely.simplify`` (topology preserved); None keeps
            the exact pixel outlines.

    Returns:
        GeoDataFrame with columns ``value`` (the region's pixel value; True for a boolean mask)
        and ``geometry`` (Polygons in ``crs``; holes kept), in rasterio's scan order.
    """
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    transform = transform if transform is not None else getattr(mask, "transform", None)
    crs = crs if crs is not None else getattr(mask, "crs", None)
    if transform is None:
        raise ArgumentError("polygons_from_mask needs transform= for a plain array (or pass a GeoTensor)")
    if connectivity not in (4, 8):
        raise ArgumentError(f"connectivity={connectivity!r} must be 4 or 8")
    if nodata is None:
        nodata = getattr(mask, "fill_value_default", None)
    values = np.asarray(mask)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise ArgumentError(f"polygons_from_mask takes a 2-D mask (or one band), got shape {values.shape}")
    if values.dtype == bool:
        keep = values
        codes, uniques = values.astype(np.uint8), np.array([False, True])
    else:
        keep = np.ones(values.shape, bool)
        if values.dtype.kind in "fc":
            keep &= ~np.isnan(values)
        if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
            keep &= values != nodata
        # shapes() takes few dtypes: label the distinct values 0..n-1 (exact for any dtype)
        uniques, inverse = np.unique(np.where(keep, values, values[keep][0] if keep.any() else 0), return_inverse=True)
        codes = inverse.reshape(values.shape).astype(np.int32)
    geoms, vals = [], []
    for geom, code in shapes(codes, mask=keep, transform=transform, connectivity=connectivity):
        geoms.append(shape(geom))
        v = uniques[int(code)]
        vals.append(v.item() if isinstance(v, np.generic) else v)
    series = gpd.GeoSeries(geoms, crs=crs)
    if simplify is not None:
        series = series.simplify(simplify, preserve_topology=True)
    return gpd.GeoDataFrame({"value": vals}, geometry=series, crs=crs)
