"""Raster builder: one catalog row per raster file (GeoTIFF/COG/JP2/VRT … anything GDAL opens).

The header (size, CRS, transform, dtype, nodata) is read with rasterio without touching pixels;
the footprint is the native bounds densified and reprojected to EPSG:4326 (see :mod:`geoduck.geo`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import rasterio
import rasterio.env
import shapely
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader

from .. import schema
from ..errors import CRSError, GeoduckError
from ..geo import (Footprinter, check_grid, check_lonlat_extent, crs_to_string, footprinter, norm_crs,
                   pixel_extent)
from .common import FilenameParser, file_stat, finish_build, run_build

if TYPE_CHECKING:
    from ..catalog import Catalog

RASTER_EXTENSIONS = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".nc4.tif")

_GDAL_ENV = {
    # Header reads must not list the directory (thousands of siblings) or probe sidecars remotely.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.jp2,.vrt",
}


@lru_cache(maxsize=256)
def _crs_info(wkt: str) -> tuple[str, Footprinter]:
    """The catalog ``crs`` text and the footprint maker of a raster CRS (by its WKT)."""
    crs = norm_crs(wkt)
    return crs_to_string(crs), footprinter(crs)


_BOUNDS = struct.Struct("<4d")


@lru_cache(maxsize=4096)
def _footprint_wkb(wkt: str, packed_bounds: bytes) -> tuple[bytes, tuple[float, float, float, float]]:
    """WKB and bbox of the EPSG:4326 footprint of native bounds (packed as 4 doubles: an exact key)
    in the CRS with this WKT. The tiles of an archive repeat their bounds on every date, so this is
    worked out once per tile (and process)."""
    _, footprint_of = _crs_info(wkt)
    footprint = footprint_of(_BOUNDS.unpack(packed_bounds))
    return shapely.to_wkb(footprint), footprint.bounds


def _gdal_env() -> rasterio.Env:
    return rasterio.Env(**_GDAL_ENV)


# rasterio.open sets up and tears down a nested GDAL Env on every call (~150 µs a file). Inside an
# Env already entered, a local file needs no session (credentials): the unwrapped function opens
# it the same way without that cost. URIs and /vsi paths keep rasterio.open.
_open_in_env = getattr(rasterio.open, "__wrapped__", rasterio.open)


def _open(path: str) -> DatasetReader:
    if "://" in path or path.startswith("/vsi") or not rasterio.env.hasenv():
        return rasterio.open(path)
    return _open_in_env(path)


def _box(xmin: float, ymin: float, xmax: float, ymax: float) -> dict[str, float]:
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def read_raster_header(path: str, _options: Any = None) -> list[dict[str, Any]]:
    """The catalog row (without id/time/regex columns) of one raster file."""
    with _gdal_env():
        return _read_header(path)


def _read_header(path: str, _options: Any = None) -> list[dict[str, Any]]:
    """:func:`read_raster_header` inside an already entered :func:`_gdal_env` (one per chunk)."""
    size, mtime = file_stat(path)
    try:
        src = _open(path)
    except RasterioIOError as exc:
        raise GeoduckError(f"not a readable raster: {str(exc).splitlines()[0]}") from None
    with src:
        src_crs = src.crs
        if src_crs is None:
            raise CRSError("raster has no CRS; assign one (e.g. `rio edit-info --crs EPSG:32630`)")
        t = src.transform
        if t.is_identity and not src.gcps[0]:
            raise GeoduckError("raster has no geotransform (pixel grid is not georeferenced)")
        width, height = src.width, src.height
        if width <= 0 or height <= 0:
            raise GeoduckError(f"raster has empty dimensions {width}x{height}")
        check_grid(t[:6], width, height)
        crs_wkt = src_crs.to_wkt()
        crs_text, _ = _crs_info(crs_wkt)
        # Envelope of the four corners (correct for rotated transforms too).
        corners = ((0, 0), (width, 0), (0, height), (width, height))
        xs = [c * t.a + r * t.b + t.c for c, r in corners]
        ys = [c * t.d + r * t.e + t.f for c, r in corners]
        bounds = (min(xs), min(ys), max(xs), max(ys))
        if src_crs.is_geographic:
            check_lonlat_extent(bounds, tolerance=pixel_extent(t[:6]))
        wkb, bbox = _footprint_wkb(crs_wkt, _BOUNDS.pack(*bounds))
        nodata = src.nodata
        res_x, res_y = src.res
        row = {
            schema.GEOMETRY: wkb,
            schema.BBOX: _box(*bbox),
            schema.CRS: crs_text,
            schema.NATIVE_BOUNDS: _box(*bounds),
            "width": width,
            "height": height,
            "count": src.count,
            "dtype": src.dtypes[0],
            "nodata": None if nodata is None else float(nodata),
            "res_x": abs(res_x),
            "res_y": abs(res_y),
            "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            schema.FILE_SIZE: size,
            schema.FILE_MTIME: mtime,
        }
    return [row]


def build_raster_catalog(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    filename_regex: str | None = None,
    date_format: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    client: Any = None,
) -> Catalog:
    """Index raster files into the catalog at ``out_dir`` (created or appended to).

    Args:
        paths: a list of paths, a glob pattern, or a directory (searched recursively for
            ``.tif/.tiff/.jp2/.vrt/.img``).
        out_dir: catalog directory; new rows go to new part files, existing parts are untouched.
        filename_regex: regex searched in each file's base name. A ``date`` group, or ``start`` and
            ``stop`` groups, give the time interval (see :mod:`geoduck.intervals`); every other named
            group becomes a string column. Without it rows are static.
        date_format: strptime format of the date groups; default: common forms parsed robustly.
        workers: header-reading processes (default: all cores; 1 = in this process).
        progress: show a tqdm progress bar.
        client: a ``dask.distributed.Client``: the files are cut into tasks run on its cluster,
            each writing its own parts (``out_dir`` must be writable by every worker); default:
            local processes (``workers``).

    Returns:
        The catalog at ``out_dir``; ``catalog.build_report`` tells what was indexed, skipped
        unchanged, changed since indexed, and which files failed and why.
    """
    report = run_build(
        paths, out_dir, backend="raster", extensions=RASTER_EXTENSIONS, read_fn=_read_header,
        read_env=_gdal_env, options=None, parser=FilenameParser(filename_regex, date_format), sub_key=None,
        workers=workers, progress=progress, client=client,
    )
    return finish_build(out_dir, paths, report)
