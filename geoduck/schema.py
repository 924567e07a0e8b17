"""Catalog schema v1: the only module where catalog column names and types are defined.

One row per indexed item (a raster file; an xarray file × data variable; a vector file × layer).
Geometries are WKB footprints in EPSG:4326 (lon/lat); ``bbox`` is their GeoParquet 1.1 covering.
Intervals ``[start_datetime, end_datetime]`` are closed, in UTC at microsecond resolution; both
null means a static row that matches every time query.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import pyarrow as pa

from .errors import SchemaError

SCHEMA_VERSION = 1
"""The schema version this geoduck writes (column ``schema_version`` and Parquet metadata)."""

KV_SCHEMA_VERSION = b"geoduck:schema_version"
"""Parquet key-value metadata key holding the schema version of a part."""

GEOPARQUET_VERSION = "1.1.0"
CATALOG_CRS = "EPSG:4326"

# -- column names ---------------------------------------------------------------------------------
ID = "id"
FILEPATH = "filepath"
BACKEND = "backend"
GEOMETRY = "geometry"
BBOX = "bbox"
START = "start_datetime"
END = "end_datetime"
CRS = "crs"
NATIVE_BOUNDS = "native_bounds"
VERSION = "schema_version"
FILE_SIZE = "file_size"
FILE_MTIME = "file_mtime"
SCENE_ID = "scene_id"
"""Scene key of a band file (a file matched by a regex with a ``band`` group): the values of every
other regex group joined by ``|``; files with the same key are the bands of one scene. Only in
catalogs built with a ``band`` group; null for rows that are not band files."""
BAND = "band"
"""The regex group (and so the string column) naming which band of its scene a file holds."""

# -- columns of catalogs built from STAC items (see :mod:`geoduck.builders.stac`) ------------------
COLLECTION = "collection"
"""STAC collection id of the item a row comes from (null when the item names none)."""
COMMON_NAME = "common_name"
"""``eo:bands`` / ``bands`` common name of a one-band STAC asset (``red``, ``nir`` …): a second name
``load_raster(bands=[...])`` matches a band file by, after its ``band`` value."""
STAC_PROPERTIES = "stac_properties"
"""JSON object of the item properties that are not columns (nested or non-scalar values, and
scalars whose names clash with a catalog column); scalar properties are columns named as in STAC."""
STAC_KEY = "stac_key"
"""What tells an unchanged STAC item from an updated one on append: ``updated:<UTC time>`` from its
``updated`` property, else ``sha:<hash of its JSON>``."""
STAC_FIELDS: tuple[pa.Field, ...] = (
    pa.field(BAND, pa.string()),
    pa.field(COLLECTION, pa.string()),
    pa.field(COMMON_NAME, pa.string()),
)
"""The string columns every STAC-built part has (besides ``scene_id``, the item id)."""

BBOX_KEYS = ("xmin", "ymin", "xmax", "ymax")

TIMESTAMP = pa.timestamp("us", tz="UTC")
BOX = pa.struct([pa.field(k, pa.float64()) for k in BBOX_KEYS])

CORE_FIELDS: tuple[pa.Field, ...] = (
    pa.field(ID, pa.string(), nullable=False),
    pa.field(FILEPATH, pa.string(), nullable=False),
    pa.field(BACKEND, pa.string(), nullable=False),
    pa.field(GEOMETRY, pa.binary(), nullable=False),
    pa.field(BBOX, BOX, nullable=False),
    pa.field(START, TIMESTAMP),
    pa.field(END, TIMESTAMP),
    pa.field(CRS, pa.string()),
    pa.field(NATIVE_BOUNDS, BOX),
    pa.field(VERSION, pa.int32(), nullable=False),
)

BACKEND_FIELDS: Mapping[str, tuple[pa.Field, ...]] = {
    "raster": (
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("count", pa.int32()),
        pa.field("dtype", pa.string()),
        pa.field("nodata", pa.float64()),
        pa.field("res_x", pa.float64()),
        pa.field("res_y", pa.float64()),
        pa.field("transform", pa.list_(pa.float64())),
    ),
    "xarray": (
        pa.field("variable", pa.string()),
        pa.field("time_var", pa.string()),
        pa.field("n_timesteps", pa.int64()),
        pa.field("engine", pa.string()),
    ),
    "vector": (
        pa.field("layer", pa.string()),
        pa.field("n_features", pa.int64()),
    ),
}

SCENE_FIELD = pa.field(SCENE_ID, pa.string())

FILE_FIELDS: tuple[pa.Field, ...] = (
    pa.field(FILE_SIZE, pa.int64()),
    pa.field(FILE_MTIME, TIMESTAMP),
)

RESERVED_COLUMNS: frozenset[str] = frozenset(
    f.name for f in (*CORE_FIELDS, *FILE_FIELDS, SCENE_FIELD, *(f for fs in BACKEND_FIELDS.values() for f in fs))
)
"""Names a user-defined column (e.g. a filename regex group) may not take."""


def catalog_schema(backend: str, extra_columns: Sequence[str] = (), scenes: bool = False) -> pa.Schema:
    """The Arrow schema of a part: core, backend, extra (string), ``scene_id`` (with ``scenes``)
    then file columns, in that order."""
    if backend not in BACKEND_FIELDS:
        raise SchemaError(f"unknown backend {backend!r}; expected one of {tuple(BACKEND_FIELDS)}")
    return part_schema(BACKEND_FIELDS[backend], extra_columns, scenes)


def part_schema(
    backend_fields: Sequence[pa.Field], extra_columns: Sequence[str | pa.Field] = (), scenes: bool = False
) -> pa.Schema:
    """The Arrow schema of a part of a backend with columns ``backend_fields`` (see
    :attr:`geoduck.backends.Backend.fields`), in the order of :func:`catalog_schema`. An extra
    column given by name is a string; one given as a ``pa.Field`` keeps its type (STAC properties:
    ``eo:cloud_cover`` DOUBLE …). Parts whose extra columns differ are read together by name
    (``read_parquet(..., union_by_name=true)``): a column a part lacks is null there."""
    extra = tuple(c if isinstance(c, pa.Field) else pa.field(c, pa.string()) for c in extra_columns)
    fields = (*CORE_FIELDS, *backend_fields, *extra, *((SCENE_FIELD,) if scenes else ()), *FILE_FIELDS)
    return pa.schema(fields)


@cache
def _wgs84_projjson() -> dict[str, Any]:
    import pyproj  # (writers only: queries do not need it)

    return pyproj.CRS.from_user_input(CATALOG_CRS).to_json_dict()


def geo_metadata(geometry_types: Iterable[str], bbox: tuple[float, float, float, float] | None) -> dict[str, Any]:
    """The GeoParquet 1.1.0 ``geo`` metadata for a part, with the ``bbox`` covering declared."""
    column: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": sorted(set(geometry_types)),
        "crs": _wgs84_projjson(),
        "edges": "planar",
        "covering": {"bbox": {k: [BBOX, k] for k in BBOX_KEYS}},
    }
    if bbox is not None:
        column["bbox"] = [float(v) for v in bbox]
    return {"version": GEOPARQUET_VERSION, "primary_column": GEOMETRY, "columns": {GEOMETRY: column}}


def part_metadata(geometry_types: Iterable[str], bbox: tuple[float, float, float, float] | None) -> dict[bytes, bytes]:
    """Parquet key-value metadata of a part: ``geo`` plus the geoduck schema version."""
    return {
        b"geo": json.dumps(geo_metadata(geometry_types, bbox)).encode(),
        KV_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
    }


REQUIRED_COLUMNS: tuple[str, ...] = (ID, GEOMETRY, BBOX, START, END, VERSION)
"""Columns every part of the current schema version has (relations written with
``Catalog.to_parquet``, e.g. intersections, have ``left_filepath`` … instead of ``filepath``)."""


def _type_problem(name: str, typ: pa.DataType) -> str | None:
    """Why a column ``name`` of Arrow type ``typ`` cannot be the catalog column of that name."""
    t = pa.types
    if name in (ID, FILEPATH, BACKEND, CRS):
        ok, want = t.is_string(typ) or t.is_large_string(typ) or t.is_string_view(typ), "a string"
    elif name == GEOMETRY:
        ok, want = t.is_binary(typ) or t.is_large_binary(typ) or t.is_binary_view(typ), "WKB binary"
    elif name in (BBOX, NATIVE_BOUNDS):
        fields = {typ.field(i).name: typ.field(i).type for i in range(typ.num_fields)} if t.is_struct(typ) else {}
        ok = all(k in fields and t.is_floating(fields[k]) for k in BBOX_KEYS)
        want = "a struct<xmin, ymin, xmax, ymax: double>"
    elif name in (START, END, FILE_MTIME):
        ok, want = t.is_timestamp(typ) and typ.tz is not None, "a UTC timestamp (timestamp[us, tz=UTC])"
    elif name in (VERSION, FILE_SIZE):
        ok, want = t.is_integer(typ), "an integer"
    else:
        return None
    return None if ok else f"column {name!r} is {typ}, not {want}"


def column_problems(arrow_schema: pa.Schema) -> list[str]:
    """What makes a part's columns unusable: a required column missing (:data:`REQUIRED_COLUMNS`)
    or a catalog column of the wrong type (e.g. string timestamps, integer ids). Empty: fine."""
    names = set(arrow_schema.names)
    out = [f"lacks the required column {name!r}" for name in REQUIRED_COLUMNS if name not in names]
    for field in arrow_schema:
        problem = _type_problem(field.name, field.type)
        if problem is not None:
            out.append(problem)
    return out
