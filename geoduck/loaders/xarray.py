"""xarray loader: catalog rows → one ``xr.Dataset`` on a GeoSlice's grid, CRS and time interval.

For each file under the slice (space and time), each requested variable is read only around the
slice: its time steps inside the slice interval and the cells within the slice bounds reprojected
to the file's CRS plus a margin of ``MARGIN_CELLS`` cells. Longitudes are wrapped into the frame
of that window first, so 0..360 grids, regional 350..370 grids and windows across ±180° read the
right cells. The cells are then reprojected onto the slice grid with ``rasterio.warp.reproject``.
x/y in a length unit other than the CRS's (e.g. ``km``) are converted first. Curvilinear grids (2-D
lon/lat coordinates) are warped with GDAL's geolocation arrays instead (:func:`_read_curvilinear`).
Time steps are kept when their cell (CF time/climatology bounds, else the label) overlaps the slice
interval; a variable without a time dimension whose row has an interval (from its file name) gets
one step labelled with the interval start.

Merging, per variable, time step and pixel (one rule for mosaics and duplicates): the value comes
from the **first file by filepath** (ascending) that has a valid value there; later files only fill
pixels still missing. So a timestamp present in several files is resolved pixel by pixel, nodata
aware, and files of consecutive periods concatenate along ``time`` (sorted, each timestamp once).

Values are CF-decoded by xarray (``_FillValue``/``missing_value`` masked, ``scale_factor``/
``add_offset`` applied) and returned as floats: float32 for data that fits it (float32, 8/16-bit
integers), else float64. Missing pixels are NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyproj
import rasterio.crs
import rasterio.warp
import xarray as xr
from rasterio.enums import Resampling
from rasterio.transform import Affine

from .. import schema
from ..catalog import Catalog
from ..cf import Grid, centres, curvilinear_grid_corners, grid_of, open_dataset, time_cells
from ..errors import ArgumentError, FootprintError, NoDataError, UnsupportedError, VariableError
from ..geo import WGS84, norm_crs, rasterio_crs, transformer, wrap_longitudes
from ..intervals import query_interval
from ..slices import GeoSlice
from .raster import resampling_of

MARGIN_CELLS = 3
"""Source cells read beyond the reprojected slice bounds (resampling kernels reach 2–3 cells)."""

GRID_MAPPING = "spatial_ref"
"""Name of the CRS coordinate of loaded datasets (rioxarray's default)."""

_REGULAR_RTOL = 1e-6

slice_ = slice  # the builtin (``slice`` names GeoSlice arguments below)


@dataclass(frozen=True)
class Item:
    """One catalog row to read: a variable of a file."""

    filepath: str
    variable: str
    time_var: str | None
    engine: str
    crs: str
    start: pd.Timestamp | None = None
    """The row's interval start: the time label of a variable without a time dimension whose
    file name gave the interval (``filename_regex``)."""


def items_for(catalog: Catalog, slice: GeoSlice, variables: Sequence[str] | None = None) -> list[Item]:
    """xarray rows of ``catalog`` under ``slice`` (space and time), ordered by filepath, variable."""
    columns = catalog.columns
    if "variable" not in columns:
        raise ArgumentError(
            "the catalog has no xarray rows (no 'variable' column); build it with geoduck.build_xarray_catalog"
        )
    rel = catalog.query(bbox=slice.grid_bounds, crs=slice.crs, start=slice.start, end=slice.end)
    names = (schema.FILEPATH, "variable", "time_var", "engine", schema.CRS, schema.START, schema.BACKEND)
    table = rel.fetch(*names, order_by=(schema.FILEPATH, "variable"), distinct=True)
    wanted = None if variables is None else set(variables)
    return [
        Item(path, var, time_var, eng, crs, query_interval(start)[0])
        for path, var, time_var, eng, crs, start, backend in zip(*(table[n].to_pylist() for n in names), strict=True)
        if backend == "xarray" and (wanted is None or var in wanted)
    ]


# -- reading one variable of one file -----------------------------------------------------------


def _regular_step(values: np.ndarray, dim: Hashable, path: str) -> float:
    """The constant cell size (positive) of a 1-D coordinate; raises when irregular."""
    if values.size < 2:
        raise FootprintError(f"{path}: coordinate {dim!r} has a single value; the cell size is unknown")
    d = np.diff(values)
    step = abs((values[-1] - values[0]) / (values.size - 1))
    if not np.allclose(np.abs(d), step, rtol=_REGULAR_RTOL, atol=0):
        raise UnsupportedError(
            f"{path}: coordinate {dim!r} is not regularly spaced; load_xarray needs "
            "regular grids (regrid the file first)"
        )
    return float(step)


def _lon_windows(left: float, right: float) -> list[tuple[float, float]]:
    """Longitude ranges of a window from ``transform_bounds`` (``left > right`` crosses ±180°)."""
    return [(left, right)] if left <= right else [(left, 180.0), (-180.0, right)]


def _read_block(var: xr.DataArray, y_dim: Hashable, x_dim: Hashable, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``var[..., rows, cols]`` read as contiguous slices (one per stretch of consecutive columns,
    e.g. two where a 0..360 grid wraps), in the order given."""
    r0 = int(rows.min())
    sub = var.isel({y_dim: slice(r0, int(rows.max()) + 1)})
    pieces = []
    for seg in np.split(cols, np.flatnonzero(np.abs(np.diff(cols)) != 1) + 1):
        c0 = int(seg.min())
        block = sub.isel({x_dim: slice(c0, int(seg.max()) + 1)}).values
        pieces.append(block[..., rows - r0, :][..., seg - c0])
    return np.concatenate(pieces, axis=-1)


def _runs(order: np.ndarray, coords: np.ndarray, step: float) -> list[np.ndarray]:
    """Split ``order`` (indexes sorted by ``coords``) where the spacing is not ``step``."""
    if order.size == 0:
        return []
    gaps = ~np.isclose(np.diff(coords[order]), step, rtol=_REGULAR_RTOL, atol=0)
    return np.split(order, np.flatnonzero(gaps) + 1)


@dataclass
class Planes:
    """A variable of one file on the slice grid: ``values`` (time?, *other dims, h, w), NaN = missing."""

    values: np.ndarray
    times: pd.DatetimeIndex | None
    dims: tuple[str, ...]
    """Non-spatial, non-time dims, in order."""
    coords: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def read_item(ds: xr.Dataset, item: Item, slice: GeoSlice, resampling: Resampling) -> Planes:
    """``item``'s variable of the open file ``ds`` on the slice grid: the time steps whose cells
    (CF time bounds when present, else the labels) overlap the slice interval."""
    where = f"{item.filepath}: variable {item.variable!r}"
    var = ds[item.variable]
    grid = grid_of(ds, item.variable)
    if grid is None:
        raise VariableError(f"{where} has no x/y dimensions")
    x_dim, y_dim = grid.x_dim, grid.y_dim
    times = None
    if item.time_var is not None and item.time_var in var.dims:
        cells = time_cells(ds, item.time_var, where=where)
        keep = cells.overlapping(slice.start, slice.end)
        var = var.isel({item.time_var: keep})
        times = cells.labels[keep]
    elif item.start is not None:  # dated by its file name: one step labelled with the interval start
        var = var.expand_dims({"__time__": 1})
        times = pd.DatetimeIndex([item.start])
    time_dim = item.time_var if item.time_var in var.dims else "__time__"
    lead = [d for d in var.dims if d not in (x_dim, y_dim)]
    var = var.transpose(*lead, y_dim, x_dim)
    other = tuple(str(d) for d in lead if d != time_dim)
    dtype = np.promote_types(var.dtype, np.float32)
    h, w = slice.shape
    out = np.full((*var.shape[:-2], h, w), np.nan, dtype=dtype)
    coords = {d: ds[d].values for d in other if d in ds.coords}
    planes = Planes(out, times, other, coords, {k: v for k, v in var.attrs.items() if k != "grid_mapping"})
    if out.size == 0:
        return planes

    if grid.curvilinear:
        _read_curvilinear(ds, var, grid, slice, resampling, out.reshape(-1, h, w), where)
        return planes
    src_crs = norm_crs(item.crs)
    xs, ys = centres(ds, x_dim, src_crs, "X"), centres(ds, y_dim, src_crs, "Y")  # in CRS units
    dx, dy = _regular_step(xs, x_dim, item.filepath), _regular_step(ys, y_dim, item.filepath)
    left, bottom, right, top = rasterio.warp.transform_bounds(
        rasterio_crs(slice.crs),
        rasterio_crs(src_crs),
        *slice.grid_bounds,
        densify_pts=21,
    )
    my = MARGIN_CELLS * dy
    rows = np.flatnonzero((ys >= bottom - my) & (ys <= top + my))
    rows = rows[np.argsort(-ys[rows])]  # north-up
    if rows.size == 0:
        return planes
    mx = MARGIN_CELLS * dx
    windows = _lon_windows(left, right) if src_crs.is_geographic else [(left, right)]
    flat = out.reshape(-1, h, w)
    for lo, hi in windows:
        start = lo - mx
        xw = wrap_longitudes(xs, start) if src_crs.is_geographic else xs
        cols = np.flatnonzero((xw >= start) & (xw <= hi + mx))
        for run in _runs(cols[np.argsort(xw[cols], kind="stable")], xw, dx):
            block = _read_block(var, y_dim, x_dim, rows, run)
            src = np.ascontiguousarray(block.reshape(-1, rows.size, run.size), dtype=dtype)
            dst = np.full_like(flat, np.nan)
            transform = Affine(dx, 0.0, xw[run[0]] - dx / 2, 0.0, -dy, ys[rows[0]] + dy / 2)
            rasterio.warp.reproject(
                src,
                dst,
                src_transform=transform,
                src_crs=src_crs.to_wkt(),
                src_nodata=np.nan,
                dst_transform=slice.transform,
                dst_crs=slice.crs,
                dst_nodata=np.nan,
                resampling=resampling,
            )
            _fill(flat, dst)
    return planes


def _read_curvilinear(
    ds: xr.Dataset, var: xr.DataArray, grid: Grid, slice: GeoSlice, resampling: Resampling, flat: np.ndarray, where: str
) -> None:
    """Warp a curvilinear variable (``var``: lead dims, y, x) onto the slice grid into ``flat``.

    The cell corners (CF vertex bounds, else estimated) are projected to the slice CRS; the cells
    whose corner box meets the slice, plus ``MARGIN_CELLS`` cells, are read as one block and warped
    with GDAL's geolocation-array transformer (corner ``(j, i)`` locates the top-left corner of cell
    ``(j, i)``: GDAL's default convention). Longitudes of a lon/lat slice are unwrapped around its
    centre, so blocks across ±180° stay continuous.
    """
    clon, clat = curvilinear_grid_corners(ds, grid)
    dst_crs = norm_crs(slice.crs)
    gx, gy = clon, clat
    if not dst_crs.equals(WGS84, ignore_axis_order=True):
        gx, gy = transformer(WGS84, dst_crs).transform(clon, clat, errcheck=False)
    if dst_crs.is_geographic:
        mid = (slice.grid_bounds[0] + slice.grid_bounds[2]) / 2
        gx = wrap_longitudes(gx, mid - 180.0)
    gx, gy = np.asarray(gx, dtype=float), np.asarray(gy, dtype=float)
    left, bottom, right, top = slice.grid_bounds
    quad = [
        (gx[:-1, :-1], gy[:-1, :-1]),
        (gx[1:, :-1], gy[1:, :-1]),
        (gx[:-1, 1:], gy[:-1, 1:]),
        (gx[1:, 1:], gy[1:, 1:]),
    ]
    with np.errstate(invalid="ignore"):
        cxmin, cxmax = np.fmin.reduce([q[0] for q in quad]), np.fmax.reduce([q[0] for q in quad])
        cymin, cymax = np.fmin.reduce([q[1] for q in quad]), np.fmax.reduce([q[1] for q in quad])
        hit = (cxmax >= left) & (cxmin <= right) & (cymax >= bottom) & (cymin <= top)
    rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
    if rows.size == 0:
        return
    ny, nx = hit.shape
    r0, r1 = max(int(rows[0]) - MARGIN_CELLS, 0), min(int(rows[-1]) + MARGIN_CELLS + 1, ny)
    c0, c1 = max(int(cols[0]) - MARGIN_CELLS, 0), min(int(cols[-1]) + MARGIN_CELLS + 1, nx)
    geoloc = np.stack([gx[r0:r1, c0:c1], gy[r0:r1, c0:c1]])
    if not np.isfinite(geoloc).all():
        raise UnsupportedError(
            f"{where}: some cells of its curvilinear grid do not project to the slice CRS "
            f"{slice.crs}; load it onto a slice in EPSG:4326 or a CRS covering them"
        )
    block = var.isel({grid.y_dim: slice_(r0, r1), grid.x_dim: slice_(c0, c1)}).values
    src = np.ascontiguousarray(block.reshape(-1, r1 - r0, c1 - c0), dtype=flat.dtype)
    dst = np.full_like(flat, np.nan)
    rio_crs = rasterio_crs(dst_crs)
    rasterio.warp.reproject(
        src,
        dst,
        src_geoloc_array=geoloc,
        src_crs=rio_crs,
        src_nodata=np.nan,
        dst_transform=slice.transform,
        dst_crs=rio_crs,
        dst_nodata=np.nan,
        resampling=resampling,
    )
    _fill(flat, dst)


# -- merging ------------------------------------------------------------------------------------


def _fill(out: np.ndarray, values: np.ndarray) -> None:
    """Write ``values`` into ``out`` where ``out`` is NaN (first valid value wins)."""
    take = np.isnan(out) & ~np.isnan(values)
    out[take] = values[take]


def _merge(name: str, parts: list[tuple[Item, Planes]]) -> xr.DataArray:
    """Mosaic/concatenate one variable's planes from several files (module doc's rule)."""
    first = parts[0][1]
    timed = [p.times is not None for _, p in parts]
    if any(timed) and not all(timed):
        static = next(i.filepath for i, p in parts if p.times is None)
        raise VariableError(
            f"variable {name!r} is static in {static} but has a time dimension in other files; load them separately"
        )
    shapes = {p.values.shape[1 if p.times is not None else 0 :] for _, p in parts}
    if len(shapes) != 1:
        raise VariableError(
            f"variable {name!r} has different non-spatial dimension sizes across files "
            f"({sorted(shapes)}); load them separately"
        )
    dtype = np.result_type(*(p.values.dtype for _, p in parts))
    spatial_dims_out = (*first.dims, "y", "x")
    if first.times is None:
        out = np.full(first.values.shape, np.nan, dtype=dtype)
        for _, p in parts:
            _fill(out, p.values)
        return xr.DataArray(out, dims=spatial_dims_out, attrs=first.attrs)
    all_times = first.times
    for _, p in parts[1:]:
        all_times = all_times.union(p.times)
    all_times = all_times.unique().sort_values()
    out = np.full((len(all_times), *first.values.shape[1:]), np.nan, dtype=dtype)
    for _, p in parts:
        for k, ti in enumerate(all_times.get_indexer(p.times)):
            _fill(out[ti], p.values[k])
    return xr.DataArray(
        out,
        dims=("time", *spatial_dims_out),
        coords={"time": all_times.tz_convert(None).as_unit("ns").values},
        attrs=first.attrs,
    )


def write_crs(ds: xr.Dataset, crs: pyproj.CRS, transform: Affine) -> xr.Dataset:
    """Record ``crs`` as ``ds.rio.write_crs`` does: a scalar ``spatial_ref`` coordinate with the CF
    grid-mapping attributes, ``crs_wkt`` and ``spatial_ref`` (WKT) and the GDAL ``GeoTransform``;
    every data variable's ``encoding["grid_mapping"]`` names it."""
    try:
        attrs = crs.to_cf()
    except (KeyError, ValueError):  # a CRS without a CF equivalent keeps only its WKT
        attrs = {}
    wkt = crs.to_wkt()
    attrs.update(spatial_ref=wkt, crs_wkt=wkt, GeoTransform=" ".join(str(v) for v in transform.to_gdal()))
    ds = ds.assign_coords({GRID_MAPPING: xr.Variable((), 0, attrs)})
    for name in ds.data_vars:
        ds[name].encoding["grid_mapping"] = GRID_MAPPING
    return ds


def _xy_attrs(crs: pyproj.CRS) -> tuple[dict[str, Any], dict[str, Any]]:
    """CF attributes of the x and y coordinates of ``crs``."""
    if crs.is_geographic:
        return (
            {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
            {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
        )
    unit = crs.axis_info[0].unit_name if crs.axis_info else "metre"
    return (
        {"standard_name": "projection_x_coordinate", "units": unit, "axis": "X"},
        {"standard_name": "projection_y_coordinate", "units": unit, "axis": "Y"},
    )


def load_xarray(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    variables: Sequence[str] | None = None,
    resampling: str | Resampling = "bilinear",
) -> xr.Dataset:
    """Load the catalog's cube variables under ``slice`` onto its grid (see the module doc).

    Args:
        catalog: a catalog (or a query of one) with xarray rows; other backends' rows are ignored.
        slice: the output grid, CRS and closed time interval (None ends: unbounded).
        variables: variable names to load (default: every variable under the slice).
        resampling: GDAL resampling name or ``rasterio.enums.Resampling`` (``"nearest"`` keeps
            source values exactly).

    Returns:
        A Dataset with dims ``(time, [other dims,] y, x)`` (static variables: no ``time``): ``x``/``y``
        are the pixel centres of ``slice.transform`` in ``slice.crs`` units, ``time`` the sorted,
        unique UTC timestamps (naive datetime64) inside the interval, and the CRS is recorded the
        rioxarray way (``spatial_ref`` coordinate). Missing pixels are NaN.
    """
    method = resampling_of(resampling)
    if isinstance(variables, str):
        variables = [variables]
    items = items_for(catalog, slice, variables)
    if not items:
        what = "" if variables is None else f" with variables={list(variables)}"
        raise NoDataError(
            f"no xarray row{what} intersects the slice bounds={slice.bounds} "
            f"crs={slice.crs} interval=[{slice.start}, {slice.end}]"
        )
    by_file: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        by_file.setdefault((item.filepath, item.engine), []).append(item)
    parts: dict[str, list[tuple[Item, Planes]]] = {}
    for (path, eng), file_items in by_file.items():  # filepath order: the merge rule
        with open_dataset(path, eng) as ds:
            for item in file_items:
                parts.setdefault(item.variable, []).append((item, read_item(ds, item, slice, method)))

    h, w = slice.shape
    t = slice.transform
    crs = norm_crs(slice.crs)
    x_attrs, y_attrs = _xy_attrs(crs)
    coords: dict[str, Any] = {
        "x": ("x", t.c + (np.arange(w) + 0.5) * t.a, x_attrs),
        "y": ("y", t.f + (np.arange(h) + 0.5) * t.e, y_attrs),
    }
    data = {}
    for name in sorted(parts):
        da = _merge(name, parts[name])
        for dim, values in parts[name][0][1].coords.items():
            coords.setdefault(dim, values)
        data[name] = da
    ds = xr.Dataset(data, coords=coords)
    if "time" in ds.coords:
        ds["time"].attrs.update(standard_name="time", axis="T")
    return write_crs(ds, crs, t)
