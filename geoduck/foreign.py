"""Adopt a foreign footprint table as a catalog: :func:`import_table` (CLI ``geoduck import``).

The source (a GeoDataFrame, or a GeoParquet / GeoPackage / FlatGeobuf / Shapefile / GeoJSON file
read with pyogrio, or a CSV with a WKT column) has one footprint per row. ``columns`` maps catalog
columns onto its columns (``{"id": "scene", "datetime": "acquired"}``); a source column with the
catalog column's own name needs no entry. Footprints in any CRS are reprojected to EPSG:4326
(densified, split at ±180°: :func:`geoduck.geo.geometry_to_wgs84`); the other source columns are
kept as extra columns with their types. Rows are appended through the store's normal path
(atomic Hilbert-sorted parts, under the append lock); rows whose id the catalog already holds are
skipped, so importing again adds only new rows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from . import schema, store
from .errors import ArgumentError, CRSError, SourceError
from .geo import crs_key, geometry_to_wgs84, norm_crs
from .intervals import interval_from_strings
from .report import BuildReport

if TYPE_CHECKING:
    import geopandas as gpd

    from .catalog import Catalog

log = logging.getLogger(__name__)

DATETIME = "datetime"
"""Mapping key of a single time column: each row is the period of its value (an instant for
timestamps, the whole day for a date)."""

CORE_KEYS = (
    schema.ID,
    schema.FILEPATH,
    schema.BACKEND,
    schema.GEOMETRY,
    DATETIME,
    schema.START,
    schema.END,
    schema.CRS,
    schema.NATIVE_BOUNDS,
)
GRID_FIELDS: dict[str, pa.Field] = {
    f.name: f
    for f in (
        *(f for fields in schema.BACKEND_FIELDS.values() for f in fields),
        schema.SCENE_FIELD,
        *schema.FILE_FIELDS,
    )
}
"""Native columns a source may carry (raster grid, xarray, vector, scene and file columns)."""

MAPPABLE = (*CORE_KEYS, *GRID_FIELDS)
RECOMPUTED = (schema.BBOX, schema.VERSION)
"""Source columns of these names are ignored: geoduck computes them."""


def _read_source(source: object, layer: str | int | None, crs: object, wkt: str) -> gpd.GeoDataFrame:
    """The source as a GeoDataFrame (CSV: the ``wkt`` column parsed, in ``crs``)."""
    import geopandas as gpd

    if isinstance(source, gpd.GeoDataFrame):
        frame = source
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise SourceError(f"import_table: {path} does not exist")
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                raw = pd.read_csv(path)
                if wkt not in raw.columns:
                    raise ArgumentError(
                        f"import_table: the CSV {path} has no WKT column {wkt!r}: map it with "
                        f"columns={{'geometry': '<column>'}} (columns: {list(raw.columns)})"
                    )
                geoms = shapely.from_wkt(raw.pop(wkt).to_numpy(), on_invalid="raise")
                frame = gpd.GeoDataFrame(raw, geometry=gpd.GeoSeries(geoms), crs=None)
            elif suffix in (".parquet", ".geoparquet"):
                frame = gpd.read_parquet(path)
            else:
                import pyogrio

                frame = pyogrio.read_dataframe(path, layer=layer)
        except (OSError, ValueError, shapely.errors.GEOSException) as exc:
            if isinstance(exc, ArgumentError):
                raise
            raise SourceError(f"import_table: cannot read {path}: {exc}") from None
    else:
        raise ArgumentError(f"import_table: source must be a GeoDataFrame or a path, got {type(source).__name__}")
    if crs is not None:
        frame = frame.set_crs(norm_crs(crs).to_wkt(), allow_override=True)
    if frame.crs is None:
        raise CRSError(f"import_table: {_name(source)} has no CRS: pass crs= (e.g. 'EPSG:4326' for lon/lat)")
    return frame


def _name(source: object) -> str:
    return str(source) if isinstance(source, str | os.PathLike) else "the GeoDataFrame"


def _mapping(frame: gpd.GeoDataFrame, columns: Mapping[str, str] | None, source: object) -> dict[str, str]:
    """Catalog column → source column: the given ``columns`` over same-named source columns."""
    given = dict(columns or {})
    unknown = sorted(set(given) - set(MAPPABLE))
    if unknown:
        raise ArgumentError(f"import_table: columns= maps unknown catalog columns {unknown}; known: {list(MAPPABLE)}")
    missing = {k: v for k, v in given.items() if v not in frame.columns}
    if missing:
        raise ArgumentError(
            f"import_table: columns= names source columns that {_name(source)} lacks: {missing} "
            f"(its columns: {[str(c) for c in frame.columns]})"
        )
    out = {k: k for k in MAPPABLE if k in frame.columns and k not in given and k not in given.values()}
    out[schema.GEOMETRY] = frame.geometry.name
    out.update(given)
    if DATETIME in out and (schema.START in out or schema.END in out):
        if DATETIME in given:
            out.pop(schema.START, None)
            out.pop(schema.END, None)
        else:
            out.pop(DATETIME)
    return out


def _ids(frame: gpd.GeoDataFrame, mapping: dict[str, str], source: object) -> pa.Array:
    if schema.ID not in mapping:
        raise ArgumentError(
            f"import_table: no id column in {_name(source)}: map one with columns={{'id': '<column>'}} "
            f"(its columns: {[str(c) for c in frame.columns]})"
        )
    values = frame[mapping[schema.ID]]
    if values.isna().any():
        raise ArgumentError(f"import_table: id column {mapping[schema.ID]!r} has nulls; every row needs an id")
    ids = pa.array([str(v) for v in values], pa.string())
    counts = pc.value_counts(ids)
    dup = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).to_pylist()
    if dup:
        raise ArgumentError(f"import_table: id column {mapping[schema.ID]!r} repeats ids, e.g. {dup[:5]}")
    return ids


def _footprints(frame: gpd.GeoDataFrame, ids: pa.Array) -> tuple[list[bytes], pa.Array, pa.Array]:
    """(WKB lon/lat footprints, their bboxes, the native bounds) of every row."""
    src = norm_crs(frame.crs.to_wkt(), argument="source CRS")
    wkb: list[bytes] = []
    boxes: list[dict[str, float]] = []
    native: list[dict[str, float]] = []
    for i, geom in enumerate(frame.geometry.to_numpy()):
        if geom is None or geom.is_empty:
            raise ArgumentError(f"import_table: row with id {ids[i].as_py()!r} has no geometry")
        try:
            out = geometry_to_wgs84(geom, src)
        except (ValueError, shapely.errors.GEOSException) as exc:
            raise ArgumentError(f"import_table: row with id {ids[i].as_py()!r}: {exc}") from None
        wkb.append(shapely.to_wkb(out))
        boxes.append(dict(zip(schema.BBOX_KEYS, map(float, out.bounds), strict=True)))
        native.append(dict(zip(schema.BBOX_KEYS, map(float, geom.bounds), strict=True)))
    return wkb, pa.array(boxes, schema.BOX), pa.array(native, schema.BOX)


def _instants(values: pd.Series, what: str, *, end: bool) -> pa.Array:
    """UTC µs timestamps of a time column; text and dates stand for their period (start, or its
    end with ``end``), datetimes for themselves; naive values are UTC."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        ts = pd.to_datetime(values)
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        return pa.array(ts.dt.as_unit("us"), schema.TIMESTAMP)
    out: list[pd.Timestamp | None] = []
    for value in values.to_numpy(dtype=object):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
            out.append(None)
            continue
        if isinstance(value, pd.Timestamp | np.datetime64) or hasattr(value, "hour"):
            t = pd.Timestamp(value)
            out.append(t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC"))
            continue
        try:
            period = interval_from_strings(date=str(value))
        except ArgumentError as exc:
            raise ArgumentError(f"import_table: {what} {value!r}: {exc}") from None
        out.append(period.end if end else period.start)
    return pa.array(out, schema.TIMESTAMP)


def _interval(
    frame: gpd.GeoDataFrame, mapping: dict[str, str], static: bool, source: object
) -> tuple[pa.Array, pa.Array]:
    n = len(frame)
    if DATETIME in mapping:
        column = frame[mapping[DATETIME]]
        start = _instants(column, f"{mapping[DATETIME]!r} value", end=False)
        end = _instants(column, f"{mapping[DATETIME]!r} value", end=True)
    elif schema.START in mapping or schema.END in mapping:
        if schema.START not in mapping or schema.END not in mapping:
            have, lack = (schema.START, schema.END) if schema.START in mapping else (schema.END, schema.START)
            raise ArgumentError(f"import_table: {have!r} is mapped but {lack!r} is not: map both, or 'datetime'")
        start = _instants(frame[mapping[schema.START]], f"{mapping[schema.START]!r} value", end=False)
        end = _instants(frame[mapping[schema.END]], f"{mapping[schema.END]!r} value", end=True)
    elif static:
        null = pa.nulls(n, schema.TIMESTAMP)
        return null, null
    else:
        raise ArgumentError(
            f"import_table: no time column in {_name(source)}: map 'datetime' (one time per row) or "
            "'start_datetime' and 'end_datetime' in columns=, or pass static=True for rows valid at all times"
        )
    half = pc.xor(pc.is_null(start), pc.is_null(end))
    inverted = pc.fill_null(pc.greater(start, end), False)
    for mask, why in ((half, "only one end of its interval"), (inverted, "a start after its end")):
        if pc.any(mask).as_py():
            first = int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])
            raise ArgumentError(f"import_table: source row {first} has {why}")
    return start, end


def _cast(frame: gpd.GeoDataFrame, column: str, field: pa.Field) -> pa.Array:
    values = frame[column]
    try:
        if pa.types.is_list(field.type):
            seq = [
                None if v is None else [float(x) for x in (v.split(",") if isinstance(v, str) else v)] for v in values
            ]
            return pa.array(seq, field.type)
        if pa.types.is_timestamp(field.type):
            return _instants(values, f"{column!r} value", end=False)
        # NaN is a value for nodata (float rasters), a missing value elsewhere
        return pa.array(values.to_numpy(dtype=object), from_pandas=field.name != "nodata").cast(field.type)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ArgumentError(
            f"import_table: source column {column!r} cannot be {field.name} ({field.type}): {exc}"
        ) from None


def to_catalog_table(
    source: object,
    *,
    columns: Mapping[str, str] | None = None,
    layer: str | int | None = None,
    crs: object = None,
    backend: str = "raster",
    static: bool = False,
) -> pa.Table:
    """The rows :func:`import_table` appends, as a schema-v1 Arrow table (see there)."""
    wkt = (columns or {}).get(schema.GEOMETRY, "WKT")
    frame = _read_source(source, layer, crs, wkt)
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".csv":
        columns = {k: v for k, v in (columns or {}).items() if k != schema.GEOMETRY}
    frame = frame.reset_index(drop=True)
    mapping = _mapping(frame, columns, source)
    ids = _ids(frame, mapping, source)
    wkb, bbox, native = _footprints(frame, ids)
    start, end = _interval(frame, mapping, static, source)
    n = len(frame)
    arrays: dict[str, pa.Array] = {schema.ID: ids}
    if schema.FILEPATH in mapping:
        paths = frame[mapping[schema.FILEPATH]]
        if paths.isna().any():
            raise ArgumentError(f"import_table: filepath column {mapping[schema.FILEPATH]!r} has nulls")
        arrays[schema.FILEPATH] = pa.array([str(p) for p in paths], pa.string())
    if schema.BACKEND in mapping:
        arrays[schema.BACKEND] = _cast(frame, mapping[schema.BACKEND], pa.field(schema.BACKEND, pa.string()))
    else:
        arrays[schema.BACKEND] = pa.array([backend] * n, pa.string())
    arrays[schema.GEOMETRY] = pa.array(wkb, pa.binary())
    arrays[schema.BBOX] = bbox
    arrays[schema.START], arrays[schema.END] = start, end
    if schema.CRS in mapping:
        arrays[schema.CRS] = _cast(frame, mapping[schema.CRS], pa.field(schema.CRS, pa.string()))
    else:
        arrays[schema.CRS] = pa.array([crs_key(frame.crs.to_wkt())] * n, pa.string())
    arrays[schema.NATIVE_BOUNDS] = native
    if schema.NATIVE_BOUNDS in mapping:
        arrays[schema.NATIVE_BOUNDS] = _cast(frame, mapping[schema.NATIVE_BOUNDS], pa.field("nb", schema.BOX))
    arrays[schema.VERSION] = pa.array([schema.SCHEMA_VERSION] * n, pa.int32())
    fields = [f for f in schema.CORE_FIELDS if f.name in arrays]
    for name, field in GRID_FIELDS.items():
        if name in mapping:
            arrays[name] = _cast(frame, mapping[name], field)
            fields.append(field)
    used = set(mapping.values()) | {frame.geometry.name}
    taken = {name.lower() for name in (*schema.RESERVED_COLUMNS, DATETIME)}
    for column in frame.columns:
        if column in used or column in RECOMPUTED:
            continue
        name = str(column)
        if name.lower() in taken:
            raise ArgumentError(
                f"import_table: source column {name!r} collides with a catalog column (names are "
                f"case-insensitive in SQL): map it with columns={{'{name.lower()}': {name!r}}} if it is "
                "that column, or rename it in the source"
            )
        taken.add(name.lower())
        try:
            arrays[name] = pa.array(frame[column].to_numpy(dtype=object), from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise ArgumentError(f"import_table: source column {name!r} cannot be stored: {exc}") from None
        fields.append(pa.field(name, arrays[name].type))
    return pa.table([arrays[f.name] for f in fields], schema=pa.schema(fields))


def _existing_ids(out: Path) -> set[str]:
    def read(part: Path) -> list[str]:
        return pq.read_table(part, columns=[schema.ID]).column(0).to_pylist()

    return {i for ids in store.each_part(out, read).values() for i in ids}


def import_table(
    source: object,
    out_dir: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    layer: str | int | None = None,
    crs: object = None,
    backend: str = "raster",
    static: bool = False,
) -> Catalog:
    """Append the rows of a foreign footprint table to the catalog at ``out_dir``.

    ``source``: a GeoDataFrame or a path (GeoParquet ``.parquet``; a CSV whose geometry is WKT, in
    the column ``columns["geometry"]`` or ``WKT``; anything pyogrio reads: GeoPackage, FlatGeobuf,
    Shapefile, GeoJSON, with ``layer``). ``columns``: catalog column → source column, for ``id``
    (required), ``filepath``, ``backend``, ``geometry``, ``datetime`` (one time per row) or
    ``start_datetime`` + ``end_datetime``, ``crs``, ``native_bounds`` and native columns (``width``,
    ``height``, ``count``, ``dtype``, ``nodata``, ``res_x``, ``res_y``, ``transform``, ``variable``,
    ``layer``, ``scene_id`` …); same-named source columns are mapped without an entry. Times:
    datetimes are instants, dates and date texts their whole period (``2023-06-15``: that day),
    naive values UTC. ``crs`` overrides the source's CRS (a CSV has none: give it). ``backend``:
    the backend of every row when no column is mapped to it. ``static=True``: rows without
    time. Other source columns are kept with their types. Rows whose id the catalog already holds
    are skipped (``build_report.unchanged``). Raises :class:`~geoduck.errors.ArgumentError` naming
    a missing or bad mapping.
    """
    from .catalog import open_catalog

    table = to_catalog_table(source, columns=columns, layer=layer, crs=crs, backend=backend, static=static)
    out = Path(store.local_path(out_dir))
    with store.storage_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    before = table.num_rows
    with store.append_lock(out):
        done = _existing_ids(out)
        if done:
            keep = pc.invert(pc.is_in(table.column(schema.ID), value_set=pa.array(sorted(done), pa.string())))
            table = table.filter(keep)
        if table.num_rows:
            written = store.write_parts(table, out)
    unchanged = before - table.num_rows
    report = BuildReport(
        indexed=table.num_rows,
        files_indexed=table.num_rows,
        unchanged=int(unchanged),
        parts=tuple(str(p) for p in written),
    )
    log.info("import_table: %d rows imported into %s, %d already there", table.num_rows, out, unchanged)
    if not written and not store.list_parts(out):
        raise ArgumentError(f"import_table: {_name(source)} has no rows")
    return open_catalog(out, build_report=report)


def parse_column_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``("id=scene", "datetime=acquired")`` (CLI ``--column``) as a mapping."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ArgumentError(f"--column {item!r} must be CATALOG_COLUMN=SOURCE_COLUMN, e.g. id=scene_name")
        out[key.strip()] = value.strip()
    return out
