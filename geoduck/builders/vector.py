"""Vector builder: one catalog row per vector file × layer (GeoJSON, GeoPackage, Shapefile,
FlatGeobuf, GeoParquet).

Only metadata is read: layer names, feature counts, extents and CRSs come from ``pyogrio.read_info``
(OGR formats) or from the Parquet footer and its ``geo`` metadata (GeoParquet, read with pyarrow so
no GDAL Parquet driver is needed). The footprint is the layer's extent densified and reprojected to
EPSG:4326 (see :mod:`geoduck.geo`). Empty layers (0 features or no extent) and layers without
geometry are skipped and reported in the build report with the reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pyogrio
import pyproj
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from .. import schema
from ..backends import Backend, CliOption
from ..errors import ArgumentError, CRSError, EmptyLayerError, SourceError
from ..geo import Bounds, crs_to_string, footprint_wgs84, norm_crs
from ..geoparquet import DEFAULT_CRS, geoparquet_crs, geoparquet_metadata, is_parquet
from ..header import crs_problem
from .common import FILENAME_OPTIONS, SKIPPED, FilenameParser, Regex, build_catalog, file_stat

if TYPE_CHECKING:
    from ..catalog import Catalog

VECTOR_EXTENSIONS = (".geojson", ".json", ".gpkg", ".parquet", ".geoparquet", ".shp", ".fgb")

GEOJSON_CRS = DEFAULT_CRS
"""CRS of a GeoJSON layer that declares none (RFC 7946: lon/lat WGS 84)."""

_GEOJSON_DRIVERS = frozenset({"GeoJSON", "GeoJSONSeq"})

# A one-point (or axis-parallel line) extent is widened by this much on each side of its zero-size
# axes, so the footprint stays a polygon: ~1 cm in degrees or metres.
_PAD_GEOGRAPHIC = 1e-7
_PAD_PROJECTED = 1e-2


def _box(xmin: float, ymin: float, xmax: float, ymax: float) -> dict[str, float]:
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def _footprint_bounds(bounds: Bounds, crs: pyproj.CRS) -> Bounds:
    """``bounds`` with zero-size axes widened a little (see ``_PAD_*``)."""
    xmin, ymin, xmax, ymax = bounds
    pad = _PAD_GEOGRAPHIC if crs.is_geographic else _PAD_PROJECTED
    if xmax - xmin <= 0:
        xmin, xmax = xmin - pad, xmax + pad
    if ymax - ymin <= 0:
        ymin, ymax = ymin - pad, ymax + pad
    return xmin, ymin, xmax, ymax


def _row(
    name: str, layer: str, n_features: int | None, bounds: Any, crs_input: Any, size: int | None, mtime: int | None
) -> dict[str, Any]:
    """The catalog row of one layer; raises :class:`EmptyLayerError` / :class:`CRSError`."""
    if n_features == 0:
        raise EmptyLayerError(f"layer {layer!r} of {name} is empty (0 features); skipped")
    if bounds is None or len(bounds) < 4 or not all(math.isfinite(float(v)) for v in bounds):
        raise EmptyLayerError(f"layer {layer!r} of {name} has no extent (no non-empty geometry); skipped")
    if crs_input is None:
        raise CRSError(
            f"layer {layer!r} of {name} has no CRS; assign one (e.g. geopandas "
            "`gdf.set_crs('EPSG:32630')` before writing, `ogr2ogr -a_srs EPSG:32630 …`, or a .prj "
            "next to a shapefile)"
        )
    crs = norm_crs(crs_input, argument=f"CRS of layer {layer!r} of {name}")
    problem = crs_problem(crs.to_wkt())
    if problem is not None:
        raise CRSError(f"layer {layer!r} of {name}: {problem}")
    native: Bounds = (float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3]))
    footprint = footprint_wgs84(_footprint_bounds(native, crs), crs)
    return {
        schema.GEOMETRY: shapely.to_wkb(footprint),
        schema.BBOX: _box(*footprint.bounds),
        schema.CRS: crs_to_string(crs),
        schema.NATIVE_BOUNDS: _box(*native),
        "layer": layer,
        "n_features": int(n_features) if n_features is not None and n_features >= 0 else None,
        schema.FILE_SIZE: size,
        schema.FILE_MTIME: mtime,
    }


# -- OGR formats ----------------------------------------------------------------------------------


def _ogr_rows(path: str, layer: str | None, size: int | None, mtime: int | None) -> list[dict[str, Any]]:
    name = os.path.basename(path)
    try:
        layers = pyogrio.list_layers(path)
    except (DataSourceError, DataLayerError) as exc:
        raise SourceError(f"not a readable vector file: {str(exc).splitlines()[0]}") from None
    names = [str(n) for n, _ in layers]
    if layer is not None:
        if layer not in names:
            raise ArgumentError(f"{name} has no layer {layer!r} (its layers: {names})")
        layers = [(n, g) for n, g in layers if n == layer]
    rows: list[dict[str, Any]] = []
    for lname, geom_type in layers:
        lname = str(lname)
        if geom_type is None:
            rows.append({SKIPPED: f"layer {lname!r} of {name} has no geometry column; skipped"})
            continue
        info = pyogrio.read_info(path, layer=lname, force_feature_count=True, force_total_bounds=True)
        crs = info["crs"]
        if crs is None and info["driver"] in _GEOJSON_DRIVERS:
            crs = GEOJSON_CRS
        try:
            rows.append(_row(name, lname, info["features"], info["total_bounds"], crs, size, mtime))
        except EmptyLayerError as exc:
            rows.append({SKIPPED: str(exc)})
    return rows


# -- GeoParquet -----------------------------------------------------------------------------------


def _parquet_bounds(path: str, meta: pq.FileMetaData, geo: dict[str, Any]) -> Any:
    """Extent of the primary geometry column: the ``bbox`` metadata, else the covering column's
    row-group statistics, else (last resort) computed from the geometries."""
    col = geo["columns"][geo["primary_column"]]
    bbox = col.get("bbox")
    if bbox:
        return (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else tuple(bbox)
    covering = col.get("covering", {}).get("bbox")
    if covering:
        stats = _covering_stats(meta, covering)
        if stats is not None:
            return stats
    if col.get("encoding", "WKB").upper() != "WKB":
        import geopandas as gpd

        return tuple(gpd.read_parquet(path, columns=[geo["primary_column"]]).total_bounds)
    column = pq.read_table(path, columns=[geo["primary_column"]]).column(0)
    return tuple(shapely.total_bounds(shapely.from_wkb(column.to_numpy(zero_copy_only=False))))


def _covering_stats(meta: pq.FileMetaData, covering: dict[str, list[str]]) -> Bounds | None:
    """(min xmin, min ymin, max xmax, max ymax) from row-group statistics of the covering columns."""
    paths = {k: ".".join(v) for k, v in covering.items()}
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    if not all(p in index for p in paths.values()):
        return None
    out: dict[str, float] = {}
    for key, reducer, attr in (("xmin", min, "min"), ("ymin", min, "min"), ("xmax", max, "max"), ("ymax", max, "max")):
        values = []
        for rg in range(meta.num_row_groups):
            st = meta.row_group(rg).column(index[paths[key]]).statistics
            if st is None or not st.has_min_max:
                return None
            values.append(float(getattr(st, attr)))
        if not values:
            return None
        out[key] = reducer(values)
    return out["xmin"], out["ymin"], out["xmax"], out["ymax"]


def _parquet_rows(path: str, layer: str | None, size: int | None, mtime: int | None) -> list[dict[str, Any]]:
    name = os.path.basename(path)
    lname = Path(path).stem  # the layer name GDAL's Parquet driver gives
    if layer is not None and layer != lname:
        raise ArgumentError(f"{name} has no layer {layer!r} (its layers: {[lname]})")
    meta, geo = geoparquet_metadata(path)
    crs = geoparquet_crs(geo["columns"][geo["primary_column"]])
    if meta.num_rows == 0:
        return [{SKIPPED: f"layer {lname!r} of {name} is empty (0 features); skipped"}]
    try:
        return [_row(name, lname, meta.num_rows, _parquet_bounds(path, meta, geo), crs, size, mtime)]
    except EmptyLayerError as exc:
        return [{SKIPPED: str(exc)}]


# -- the builder ----------------------------------------------------------------------------------


def read_vector_header(path: str, layer: str | None = None) -> list[dict[str, Any]]:
    """The catalog rows (without id/time/regex columns) of one vector file: one per layer (only
    ``layer`` when given). Skipped layers come back as ``{SKIPPED: reason}``; a file with no
    indexable layer raises :class:`GeoduckError` with the reasons."""
    size, mtime = file_stat(path)
    rows = _parquet_rows(path, layer, size, mtime) if is_parquet(path) else _ogr_rows(path, layer, size, mtime)
    if not rows:
        raise EmptyLayerError(f"{os.path.basename(path)} has no layers")
    if all(SKIPPED in r for r in rows):
        raise EmptyLayerError("; ".join(r[SKIPPED] for r in rows))
    return rows


def build_vector_catalog(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    filename_regex: Regex | None = None,
    date_format: str | None = None,
    regex_verbose: bool = False,
    exact_times: bool = False,
    layer: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    client: Any = None,
) -> Catalog:
    """Index vector label files into the catalog at ``out_dir`` (created or appended to).

    One row per file × layer, with columns ``layer`` (layer name; the file stem for single-layer
    formats) and ``n_features``. The footprint is the layer's extent in its CRS, densified and
    reprojected to EPSG:4326. A layer without a CRS is an error naming the file, except GeoJSON,
    which is lon/lat (OGC:CRS84) by RFC 7946; GeoParquet without a ``crs`` key is OGC:CRS84 too.
    Empty layers (0 features, or no extent) and tables without geometry are skipped and reported
    in ``catalog.build_report.errors`` (the file's other layers are still indexed).

    Args:
        paths: a list of paths, a glob pattern, or a directory (searched recursively for
            ``.geojson/.json/.gpkg/.parquet/.geoparquet/.shp/.fgb``).
        out_dir: catalog directory; new rows go to new part files, existing parts are untouched.
        filename_regex: regex (string or compiled ``re.Pattern``) searched in each file's base
            name, or in its path relative to the scanned folder if the pattern contains ``/``. A
            ``date`` group, or ``start`` and ``stop`` groups, give the time interval; every other
            named group becomes a string column. Files it does not match are skipped. Without it
            rows are static (they match every time query).
        date_format: strptime format of the date groups; default: common forms parsed robustly.
        regex_verbose: compile ``filename_regex`` with ``re.VERBOSE``.
        exact_times: keep time values with a time of day as instants.
        layer: index only this layer (by name) of each file; a file without it is reported.
            Default: every layer.
        workers: header-reading processes (default: all cores; 1 = in this process).
        progress: show a tqdm progress bar.
        client: a ``dask.distributed.Client``: the files are cut into tasks run on its cluster,
            each writing its own parts (``out_dir`` must be writable by every worker); default:
            local processes (``workers``).

    Returns:
        The catalog at ``out_dir``; ``catalog.build_report`` tells what was indexed and skipped.
    """
    return build_catalog(
        BACKEND,
        paths,
        out_dir,
        options=layer,
        parser=FilenameParser(filename_regex, date_format, regex_verbose, exact_times),
        workers=workers,
        progress=progress,
        client=client,
    )


BACKEND = Backend(
    name="vector",
    extensions=VECTOR_EXTENSIONS,
    fields=schema.BACKEND_FIELDS["vector"],
    read_header=read_vector_header,
    sub_key="layer",
    build=build_vector_catalog,
    loader="geoduck.loaders.vector:load_vector",
    cli_options=(
        *FILENAME_OPTIONS,
        CliOption(("--layer",), "layer", "Index only this layer of each file (default: every layer)."),
    ),
    cli_help="Index vector label PATHS (GeoJSON, GPKG, GeoParquet, Shapefile, FlatGeobuf) into catalog OUT.",
)
"""The vector backend (registered in :mod:`geoduck.backends`)."""
