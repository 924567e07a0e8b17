"""``geoduck validate``: check every part of a catalog against schema v1 and GeoParquet 1.x.

Parts may come from any writer (geoduck, geopandas, pyarrow, DuckDB ``COPY`` …): the columns are
the contract (:data:`geoduck.schema.REQUIRED_COLUMNS`, with the ``schema_version`` column), the
``geoduck:schema_version`` key-value entry is optional. Each finding names the part (and row)
and the fix; warnings (e.g. no bbox covering declared) do not make a catalog invalid.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyproj
import shapely

from . import schema, store

GEO_VERSIONS = ("1.0.0", "1.1.0")
"""GeoParquet ``geo`` metadata versions a part may declare (geoduck writes 1.1.0)."""

ROWS_SHOWN = 20
"""Row-level findings of one kind listed per part."""

_FIX_COLUMNS = "add it as documented in the README's schema table, or adopt the table with `geoduck import`"
_FIX_GEO = (
    "write the part with geopandas `to_parquet(write_covering_bbox=True, schema_version='1.1.0')` "
    "or adopt the table with `geoduck import`"
)


@dataclass(frozen=True)
class Problem:
    """One finding: the part file, the row (None for part-level findings), what is wrong, how
    to fix it, and its severity (an ``"error"`` makes the catalog invalid, a ``"warning"`` not)."""

    part: str
    row: int | None
    message: str
    fix: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.part if self.row is None else f"{self.part} row {self.row}"
        text = f"{where}: {self.message}"
        if self.severity == "warning":
            text = f"{where}: warning: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


def _is_lonlat(crs: object) -> bool:
    """Whether a ``geo`` column CRS (PROJJSON; absent means OGC:CRS84) is lon/lat WGS 84."""
    try:
        value = pyproj.CRS.from_json_dict(crs) if isinstance(crs, dict) else pyproj.CRS.from_user_input(crs)
        return bool(value.equals(pyproj.CRS.from_epsg(4326), ignore_axis_order=True))
    except (pyproj.exceptions.CRSError, TypeError, ValueError):
        return False


def _check_geo(part: str, meta: dict[bytes, bytes]) -> list[Problem]:
    raw = meta.get(b"geo")
    if raw is None:
        return [Problem(part, None, "no 'geo' metadata (not GeoParquet)", _FIX_GEO)]
    try:
        geo = json.loads(raw)
    except ValueError as exc:
        return [Problem(part, None, f"'geo' metadata is not JSON: {exc}", _FIX_GEO)]
    if not isinstance(geo, dict):
        return [Problem(part, None, "'geo' metadata is not a JSON object", _FIX_GEO)]
    out: list[Problem] = []
    version = geo.get("version")
    if version not in GEO_VERSIONS:
        out.append(Problem(part, None, f"geo version {version!r}, expected one of {GEO_VERSIONS}", _FIX_GEO))
    columns = geo.get("columns")
    column = columns.get(schema.GEOMETRY) if isinstance(columns, dict) else None
    if geo.get("primary_column") != schema.GEOMETRY or not isinstance(column, dict):
        return [*out, Problem(part, None, "geo metadata does not describe the 'geometry' column", _FIX_GEO)]
    if column.get("encoding") != "WKB":
        out.append(
            Problem(
                part, None, f"geometry encoding {column.get('encoding')!r}, expected WKB", "write geometries as WKB"
            )
        )
    expected_cov = {k: [schema.BBOX, k] for k in schema.BBOX_KEYS}
    covering = column.get("covering", {}).get("bbox") if isinstance(column.get("covering"), dict) else None
    if covering is None:
        out.append(
            Problem(
                part,
                None,
                "geo metadata lacks the bbox covering of the 'bbox' column (geopandas/GDAL cannot prune by bbox)",
                _FIX_GEO,
                "warning",
            )
        )
    elif covering != expected_cov:
        out.append(Problem(part, None, f"geo bbox covering {covering!r} is not the 'bbox' column", _FIX_GEO))
    if "crs" in column and not _is_lonlat(column["crs"]):  # absent: OGC:CRS84 by the GeoParquet spec
        out.append(
            Problem(
                part,
                None,
                "geometry CRS is not EPSG:4326 (lon/lat WGS 84)",
                "reproject the footprints to EPSG:4326 (`geoduck import` does)",
            )
        )
    return out


def _check_version(part: str, meta: dict[bytes, bytes], table: pa.Table) -> list[Problem]:
    """The ``schema_version`` column (the contract) and, when present, the key-value entry."""
    out: list[Problem] = []
    values = sorted(v for v in pc.unique(table.column(schema.VERSION)).to_pylist() if v is not None)
    if table.column(schema.VERSION).null_count:
        out.append(Problem(part, None, "schema_version has nulls", f"write {schema.SCHEMA_VERSION} in every row"))
    for value in values:
        if value != schema.SCHEMA_VERSION:
            fix = "upgrade geoduck" if value > schema.SCHEMA_VERSION else "run `geoduck migrate`"
            if value < 0 or value == 0 and schema.KV_SCHEMA_VERSION not in meta:
                fix = f"write {schema.SCHEMA_VERSION} (the version of the documented schema)"
            out.append(
                Problem(part, None, f"unknown schema_version {value} (this geoduck reads {schema.SCHEMA_VERSION})", fix)
            )
    raw = meta.get(schema.KV_SCHEMA_VERSION)
    if raw is not None and [raw.decode("utf-8", "replace").strip()] != [str(v) for v in values]:
        out.append(
            Problem(
                part,
                None,
                f"metadata {schema.KV_SCHEMA_VERSION.decode()} {raw!r} disagrees with the "
                f"schema_version column {values}",
                "drop the key-value entry (it is optional) or make it equal to the column",
            )
        )
    return out


def _rows(part: str, rows: np.ndarray, message: str, fix: str) -> list[Problem]:
    return [Problem(part, int(row), message, fix) for row in rows[:ROWS_SHOWN]]


def _check_rows(part: str, table: pa.Table) -> list[Problem]:
    out: list[Problem] = []
    geoms = shapely.from_wkb(table.column(schema.GEOMETRY).to_numpy(zero_copy_only=False), on_invalid="ignore")
    bad = np.flatnonzero(shapely.is_missing(geoms))
    out += _rows(part, bad, "geometry is not valid WKB", "write the footprint as WKB (shapely.to_wkb)")
    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        outside = (bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    out += _rows(
        part,
        np.flatnonzero(outside),
        "geometry lies outside lon/lat bounds (not EPSG:4326)",
        "reproject the footprint to EPSG:4326 (`geoduck import` does, splitting at ±180°)",
    )
    bbox = table.column(schema.BBOX).combine_chunks()
    stored = np.column_stack([pc.struct_field(bbox, k).to_numpy(zero_copy_only=False) for k in schema.BBOX_KEYS])
    off = ~np.all(np.isclose(stored, bounds, rtol=0, atol=1e-9), axis=1)
    off[bad] = False
    for row in np.flatnonzero(off)[:ROWS_SHOWN]:
        out.append(
            Problem(
                part,
                int(row),
                f"bbox {tuple(stored[row])} != geometry bounds {tuple(bounds[row])}",
                "recompute bbox as the geometry's bounds",
            )
        )
    start, end = table.column(schema.START), table.column(schema.END)
    half = pc.xor(pc.is_null(start), pc.is_null(end)).to_numpy(zero_copy_only=False)
    out += _rows(
        part,
        np.flatnonzero(half),
        "only one of start_datetime/end_datetime is null",
        "set both (an instant: start = end) or neither (a static row)",
    )
    inverted = pc.fill_null(pc.greater(start, end), False).to_numpy(zero_copy_only=False)
    out += _rows(part, np.flatnonzero(inverted), "start_datetime > end_datetime", "swap or correct the interval")
    return out


def _check_part(part: Path) -> tuple[list[Problem], pa.Table | None]:
    """Findings of one part, and its table when its columns allow row checks."""
    name = str(part)
    try:
        pf = pq.ParquetFile(part)
        meta = pf.metadata.metadata or {}
        table = pf.read()
    except (OSError, pa.ArrowException) as exc:
        return [Problem(name, None, f"unreadable: {exc}", "remove or rewrite the file")], None
    problems = _check_geo(name, meta)
    raw = meta.get(schema.KV_SCHEMA_VERSION)
    if raw is not None and not raw.decode("utf-8", "replace").strip().isdigit():
        problems.append(
            Problem(
                name,
                None,
                f"metadata {schema.KV_SCHEMA_VERSION.decode()} {raw.decode('utf-8', 'replace')!r} is not an integer",
                "drop the key-value entry (the schema_version column is the contract)",
            )
        )
    broken = schema.column_problems(table.schema)
    problems += [Problem(name, None, message, _FIX_COLUMNS) for message in broken]
    optional = [f.name for f in schema.CORE_FIELDS if f.name not in table.column_names]
    optional = [c for c in optional if c not in schema.REQUIRED_COLUMNS]
    if optional:
        problems.append(
            Problem(
                name,
                None,
                f"lacks the columns {optional} (queries work; loaders need filepath, backend, crs)",
                _FIX_COLUMNS,
                "warning",
            )
        )
    if broken:  # rows of missing or mistyped columns cannot be checked (nor queried)
        return problems, None
    problems += _check_version(name, meta, table)
    problems += _check_rows(name, table)
    return problems, table


def validate(path: str | os.PathLike[str]) -> list[Problem]:
    """Every finding in the catalog at ``path``; no :attr:`Problem.severity` ``"error"``: valid.

    Checks: each part readable; required columns present with their types (see
    :func:`geoduck.schema.column_problems`); ``geo`` metadata 1.0.0/1.1.0 describing a WKB
    ``geometry`` in EPSG:4326 (a missing bbox covering is a warning); the ``schema_version``
    column known (and equal to the optional key-value entry); geometries within lon/lat; bbox
    equal to the geometry's bounds; closed intervals with start <= end and both-or-neither null;
    ids unique across the catalog.
    """
    root = store.require_catalog(path)
    problems: list[Problem] = []
    ids: Counter[str] = Counter()
    where: dict[str, tuple[str, int]] = {}
    for part in store.live_parts(root):
        found, table = _check_part(part)
        problems += found
        if table is None:
            continue
        for i, value in enumerate(table.column(schema.ID).to_pylist()):
            ids[value] += 1
            if ids[value] == 2:
                first_part, first_row = where[value]
                problems.append(
                    Problem(
                        str(part),
                        i,
                        f"duplicate id {value!r} (also {first_part} row {first_row})",
                        "give every row a unique id",
                    )
                )
            where.setdefault(value, (str(part), i))
    return problems


def errors(problems: list[Problem]) -> list[Problem]:
    """The findings that make a catalog invalid (severity ``"error"``)."""
    return [p for p in problems if p.severity == "error"]
