"""Raster builder: one catalog row per raster file (GeoTIFF/COG/JP2/VRT … anything GDAL opens).

The header (size, CRS, transform, dtype, nodata) is read by :mod:`geoduck.header` (the loader's
reader too: sidecars count the same for both) without touching pixels; the footprint is the native
bounds densified and reprojected to EPSG:4326 (see :mod:`geoduck.geo`), or for a rotated/sheared
grid the parallelogram of its corners, densified and reprojected.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import shapely
from pyproj.exceptions import ProjError

from .. import schema
from ..backends import Backend
from ..errors import CRSError
from ..geo import check_grid, check_lonlat_extent, crs_key, footprinter, norm_crs, pixel_extent
from ..header import RasterHeader, gdal_env, open_dataset, wrapped_gdal_errors
from .common import FILENAME_OPTIONS, FilenameParser, Regex, build_catalog, file_stat

if TYPE_CHECKING:
    from ..catalog import Catalog

RASTER_EXTENSIONS = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".grd", ".nc4.tif")
"""Files a directory or glob is searched for (sidecars such as ``.aux.xml``, ``.tfw``, ``.hdr``,
``.gri`` are not rows: GDAL reads them with their raster, see :mod:`geoduck.header`)."""


_BOUNDS = struct.Struct("<4d")
_CORNERS = struct.Struct("<8d")


@lru_cache(maxsize=4096)
def _footprint_wkb(wkt: str, packed_bounds: bytes) -> tuple[bytes, tuple[float, float, float, float]]:
    """WKB and bbox of the EPSG:4326 footprint of native bounds (packed as 4 doubles: an exact key)
    in the CRS with this WKT. The tiles of an archive repeat their bounds on every date, so this is
    worked out once per tile (and process)."""
    footprint_of = footprinter(wkt)
    footprint = footprint_of(_BOUNDS.unpack(packed_bounds))
    return shapely.to_wkb(footprint), footprint.bounds


@lru_cache(maxsize=1024)
def _quad_footprint_wkb(wkt: str, packed_corners: bytes) -> tuple[bytes, tuple[float, float, float, float]]:
    """As :func:`_footprint_wkb` for a rotated/sheared grid: the parallelogram of its four corners
    (8 doubles), densified and reprojected, not the envelope of the corners."""
    footprint_of = footprinter(wkt)
    c = _CORNERS.unpack(packed_corners)
    footprint = footprint_of.quad(tuple(zip(c[0::2], c[1::2], strict=True)))
    return shapely.to_wkb(footprint), footprint.bounds


def _box(xmin: float, ymin: float, xmax: float, ymax: float) -> dict[str, float]:
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def header_row(hdr: RasterHeader) -> dict[str, Any]:
    """The raster columns of the catalog row of a :class:`RasterHeader` (footprint included)."""
    crs_text = crs_key(hdr.crs_wkt)
    check_grid(tuple(hdr.transform)[:6], hdr.width, hdr.height)
    bounds = hdr.bounds
    if norm_crs(hdr.crs_wkt).is_geographic:
        check_lonlat_extent(bounds, tolerance=pixel_extent(tuple(hdr.transform)[:6]))
    try:
        if hdr.rotated:
            corners = [v for xy in hdr.corners for v in xy]
            wkb, bbox = _quad_footprint_wkb(hdr.crs_wkt, _CORNERS.pack(*corners))
        else:
            wkb, bbox = _footprint_wkb(hdr.crs_wkt, _BOUNDS.pack(*bounds))
    except CRSError as exc:
        raise CRSError(f"{exc} ({hdr.path})") from None
    except ProjError as exc:
        raise CRSError(f"footprint cannot be reprojected to EPSG:4326 ({hdr.path}): {exc}") from None
    res_x, res_y = hdr.res
    t = hdr.transform
    return {
        schema.GEOMETRY: wkb,
        schema.BBOX: _box(*bbox),
        schema.CRS: crs_text,
        schema.NATIVE_BOUNDS: _box(*bounds),
        "width": hdr.width,
        "height": hdr.height,
        "count": hdr.count,
        "dtype": hdr.dtypes[0],
        "nodata": hdr.nodata[0],
        "res_x": res_x,
        "res_y": res_y,
        "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
    }


def read_raster_header(path: str, _options: Any = None) -> list[dict[str, Any]]:
    """The catalog row (without id/time/regex columns) of one raster file (a build calls it inside
    :func:`~geoduck.header.gdal_env`, entered once per chunk; alone, :func:`~geoduck.header.open_dataset` enters it)."""
    size, mtime = file_stat(path)
    with open_dataset(path) as src, wrapped_gdal_errors(path, "reading the header of"):
        hdr = RasterHeader.of(src, path, masks=False)
    row = header_row(hdr)
    row[schema.FILE_SIZE] = size
    row[schema.FILE_MTIME] = mtime
    return [row]


def build_raster_catalog(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    filename_regex: Regex | None = None,
    date_format: str | None = None,
    regex_verbose: bool = False,
    exact_times: bool = False,
    workers: int | None = None,
    progress: bool = True,
    client: Any = None,
) -> Catalog:
    """Index raster files into the catalog at ``out_dir`` (created or appended to).

    Args:
        paths: a list of paths, a glob pattern, or a directory (searched recursively for
            ``.tif/.tiff/.jp2/.vrt/.img/.grd``).
        out_dir: catalog directory; new rows go to new part files, existing parts are untouched.
        filename_regex: a regex (string or compiled ``re.Pattern``) searched in each file's base
            name, or, if the pattern contains ``/``, in its path relative to the scanned folder
            (see :class:`~geoduck.builders.common.FilenameParser`). A ``date`` group, or ``start``
            and ``stop`` groups, give the time interval (see :mod:`geoduck.intervals`); a ``band``
            group marks band files (files agreeing on every other group form one scene, keyed by
            the ``scene_id`` column); every other named group becomes a string column. Files it
            does not match are skipped (``build_report.skipped``). Without it rows are static.
        date_format: strptime format of the date groups; default: common forms parsed robustly.
        regex_verbose: compile ``filename_regex`` with ``re.VERBOSE``.
        exact_times: keep time values with a time of day as instants (default: the period of
            their least significant field, e.g. that second).
        workers: header-reading processes (default: all cores; 1 = in this process).
        progress: show a tqdm progress bar.
        client: a ``dask.distributed.Client``: the files are cut into tasks run on its cluster,
            each writing its own parts (``out_dir`` must be writable by every worker); default:
            local processes (``workers``).

    Returns:
        The catalog at ``out_dir``; ``catalog.build_report`` tells what was indexed, skipped
        unchanged, changed since indexed, and which files failed and why.
    """
    return build_catalog(
        BACKEND,
        paths,
        out_dir,
        options=None,
        parser=FilenameParser(filename_regex, date_format, regex_verbose, exact_times),
        workers=workers,
        progress=progress,
        client=client,
    )


BACKEND = Backend(
    name="raster",
    extensions=RASTER_EXTENSIONS,
    fields=schema.BACKEND_FIELDS["raster"],
    read_header=read_raster_header,
    read_env=gdal_env,
    build=build_raster_catalog,
    loader="geoduck.loaders.raster:load_raster",
    cli_options=FILENAME_OPTIONS,
    cli_help="""Index raster PATHS (files, globs or directories) into the catalog OUT.

    A --regex with '/' is searched in paths relative to the scanned folder, else in file names;
    a (?P<band>…) group makes files that agree on every other group the bands of one scene.""",
)
"""The raster backend (registered in :mod:`geoduck.backends`)."""
