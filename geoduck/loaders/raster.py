"""Raster loader: catalog rows → one GeoTensor mosaic exactly on a GeoSlice's grid.

Each source is read only where it overlaps the slice: a plain windowed read when the source grid is
the slice's grid (same CRS and resolution, whole-pixel offset), else through a ``WarpedVRT`` onto the
slice grid (GDAL reads just the source blocks it needs). Invalid pixels (nodata, outside the source,
masked) never overwrite valid ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import rasterio
from georeader.geotensor import GeoTensor
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from sqlglot import exp

from .. import compile as sqlc
from .. import engine, schema
from ..catalog import Catalog
from ..errors import ArgumentError, NoDataError
from ..geo import norm_crs
from ..slices import GeoSlice

MergeMethod = Literal["first", "last"]
MERGE_METHODS: tuple[str, ...] = ("first", "last")


@dataclass(frozen=True)
class Source:
    """One catalog row to read for a slice."""

    filepath: str
    start: object


def resampling_of(value: str | Resampling) -> Resampling:
    """``"bilinear"`` or ``Resampling.bilinear`` → ``Resampling``; clear error otherwise."""
    if isinstance(value, Resampling):
        return value
    try:
        return Resampling[str(value)]
    except KeyError:
        names = ", ".join(r.name for r in Resampling)
        raise ArgumentError(f"resampling={value!r} is not one of: {names}") from None


def sources_for(catalog: Catalog, slice: GeoSlice, *, newest_first: bool = False) -> list[Source]:
    """Rows of ``catalog`` under ``slice`` (space and time), ordered by start time (static first)."""
    rel = catalog.query(bbox=slice.grid_bounds, crs=slice.crs, start=slice.start, end=slice.end)
    select = sqlc.aggregate(rel.node, sqlc.col(schema.FILEPATH), sqlc.col(schema.START)).order_by(
        exp.Ordered(this=sqlc.col(schema.START), desc=newest_first, nulls_first=not newest_first),
        exp.Ordered(this=sqlc.col(schema.FILEPATH), desc=newest_first),
    )
    rows = engine.cursor().execute(select.sql(dialect=sqlc.DIALECT)).fetchall()
    return [Source(path, start) for path, start in rows]


def _aligned_window(src: rasterio.DatasetReader, slice: GeoSlice) -> Window | None:
    """The source window equal to the slice grid, if the grids coincide (else None)."""
    t = src.transform
    rx, ry = slice.resolution
    if t.b != 0 or t.d != 0 or not math.isclose(t.a, rx, rel_tol=1e-9) or not math.isclose(-t.e, ry, rel_tol=1e-9):
        return None
    if norm_crs(src.crs) != norm_crs(slice.crs):
        return None
    col = (slice.bounds[0] - t.c) / rx
    row = (t.f - slice.bounds[3]) / ry
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return Window(round(col), round(row), slice.width, slice.height)


def read_source(path: str, slice: GeoSlice, bands: Sequence[int], resampling: Resampling
                ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(values (b, h, w), valid mask (b, h, w), source nodata) of one file on the slice grid."""
    h, w = slice.shape
    with rasterio.open(path) as src:
        if max(bands) > src.count:
            raise ArgumentError(f"bands={list(bands)}: {path} has only {src.count} band(s)")
        window = _aligned_window(src, slice)
        if window is not None:
            values = np.zeros((len(bands), h, w), dtype=src.dtypes[0])
            valid = np.zeros((len(bands), h, w), dtype=bool)
            inter = window.intersection(Window(0, 0, src.width, src.height)) if _overlaps(window, src) else None
            if inter is not None:
                r0, c0 = int(inter.row_off - window.row_off), int(inter.col_off - window.col_off)
                sl = np.s_[:, r0:r0 + int(inter.height), c0:c0 + int(inter.width)]
                values[sl] = src.read(list(bands), window=inter)
                valid[sl] = src.read_masks(list(bands), window=inter) > 0
            return values, valid, src.nodata
        opts = dict(crs=slice.crs, transform=slice.transform, width=w, height=h, resampling=resampling)
        if src.nodata is None:
            opts["add_alpha"] = True
        with WarpedVRT(src, **opts) as vrt:
            values = vrt.read(list(bands))
            if src.nodata is None:  # the added alpha (last band) is the only validity mask
                valid = np.broadcast_to(vrt.read(vrt.count) > 0, values.shape).copy()
            else:
                valid = vrt.read_masks(list(bands)) > 0
        return values, valid, src.nodata


def _overlaps(window: Window, src: rasterio.DatasetReader) -> bool:
    return (window.col_off < src.width and window.row_off < src.height
            and window.col_off + window.width > 0 and window.row_off + window.height > 0)


def load_raster(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    bands: Sequence[int] | None = None,
    resampling: str | Resampling = "bilinear",
    merge: MergeMethod = "first",
) -> GeoTensor:
    """Mosaic the catalog's rasters under ``slice`` onto its grid.

    Args:
        catalog: a catalog (or a query of one) of raster rows.
        slice: the output grid, CRS and time interval.
        bands: 1-based band indexes (default: all bands of the first source).
        resampling: GDAL resampling name or ``rasterio.enums.Resampling``, used when reprojecting.
        merge: ``"first"``: the earliest acquisition (by ``start_datetime``, static rows first) wins
            each pixel; ``"last"``: the latest wins. Invalid pixels never win.

    Returns:
        GeoTensor (bands, height, width) with ``slice.transform`` and ``slice.crs``; pixels no source
        covers hold ``fill_value_default`` (the first source's nodata, else 0).
    """
    if merge not in MERGE_METHODS:
        raise ArgumentError(f"merge={merge!r} is not one of {MERGE_METHODS}")
    method = resampling_of(resampling)
    sources = sources_for(catalog, slice, newest_first=(merge == "last"))
    if not sources:
        raise NoDataError(f"no catalog row intersects the slice bounds={slice.bounds} crs={slice.crs} "
                          f"interval=[{slice.start}, {slice.end}]")
    with rasterio.open(sources[0].filepath) as first:
        count = first.count
    bands = list(range(1, count + 1)) if bands is None else [int(b) for b in bands]
    if not bands or min(bands) < 1 or max(bands) > count:
        raise ArgumentError(f"bands={bands!r} must be 1-based band indexes in 1..{count} "
                            f"({sources[0].filepath} has {count} band(s))")

    out: np.ndarray | None = None
    filled: np.ndarray | None = None
    fill_value: float = 0
    for source in sources:
        values, valid, nodata = read_source(source.filepath, slice, bands, method)
        if out is None:
            fill_value = 0 if nodata is None else nodata
            out = np.full(values.shape, fill_value, dtype=values.dtype)
            filled = np.zeros(values.shape, dtype=bool)
        take = valid & ~filled
        out[take] = values[take]
        filled |= take
        if filled.all():
            break
    assert out is not None
    fill = fill_value.item() if isinstance(fill_value, np.generic) else fill_value
    return GeoTensor(out, transform=slice.transform, crs=rasterio.crs.CRS.from_user_input(slice.crs),
                     fill_value_default=fill)
