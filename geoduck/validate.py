"""``geoduck validate``: check every part of a catalog against schema v1 and GeoParquet 1.1."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyproj
import shapely

from . import schema, store


@dataclass(frozen=True)
class Problem:
    """One finding: the part file, the row (None for part-level problems) and what is wrong."""

    part: str
    row: int | None
    message: str

    def __str__(self) -> str:
        where = self.part if self.row is None else f"{self.part} row {self.row}"
        return f"{where}: {self.message}"


def _check_geo(part: Path, meta: dict[bytes, bytes]) -> list[Problem]:
    out: list[Problem] = []
    raw = meta.get(b"geo")
    if raw is None:
        return [Problem(str(part), None, "no 'geo' metadata (not GeoParquet)")]
    try:
        geo = json.loads(raw)
    except ValueError as exc:
        return [Problem(str(part), None, f"'geo' metadata is not JSON: {exc}")]
    if geo.get("version") != schema.GEOPARQUET_VERSION:
        out.append(
            Problem(str(part), None, f"geo version {geo.get('version')!r}, expected {schema.GEOPARQUET_VERSION}")
        )
    column = geo.get("columns", {}).get(schema.GEOMETRY)
    if geo.get("primary_column") != schema.GEOMETRY or column is None:
        return [*out, Problem(str(part), None, "geo metadata does not describe the 'geometry' column")]
    if column.get("encoding") != "WKB":
        out.append(Problem(str(part), None, f"geometry encoding {column.get('encoding')!r}, expected WKB"))
    expected_cov = {k: [schema.BBOX, k] for k in schema.BBOX_KEYS}
    if column.get("covering", {}).get("bbox") != expected_cov:
        out.append(Problem(str(part), None, "geo metadata lacks the bbox covering of the 'bbox' column"))
    crs = column.get("crs")
    try:
        ok = crs is not None and pyproj.CRS.from_json_dict(crs).equals(pyproj.CRS.from_epsg(4326))
    except (pyproj.exceptions.CRSError, TypeError):
        ok = False
    if not ok:
        out.append(Problem(str(part), None, "geometry CRS is not EPSG:4326 PROJJSON"))
    return out


def _check_rows(part: Path, table: pa.Table) -> list[Problem]:
    out: list[Problem] = []
    name = str(part)
    missing = [f.name for f in schema.CORE_FIELDS if f.name not in table.column_names]
    if missing:
        return [Problem(name, None, f"missing columns {missing}")]
    version = table.column(schema.VERSION).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(version != schema.SCHEMA_VERSION)[:20]:
        out.append(Problem(name, int(row), f"schema_version {version[row]}, expected {schema.SCHEMA_VERSION}"))
    geoms = shapely.from_wkb(table.column(schema.GEOMETRY).to_numpy(zero_copy_only=False), on_invalid="ignore")
    bad = np.flatnonzero(shapely.is_missing(geoms))
    for row in bad[:20]:
        out.append(Problem(name, int(row), "geometry is not valid WKB"))
    bounds = shapely.bounds(geoms)
    bbox = table.column(schema.BBOX).combine_chunks()
    stored = np.column_stack([pc.struct_field(bbox, k).to_numpy(zero_copy_only=False) for k in schema.BBOX_KEYS])
    off = ~np.all(np.isclose(stored, bounds, rtol=0, atol=1e-9), axis=1)
    off[bad] = False
    for row in np.flatnonzero(off)[:20]:
        out.append(Problem(name, int(row), f"bbox {tuple(stored[row])} != geometry bounds {tuple(bounds[row])}"))
    start, end = table.column(schema.START), table.column(schema.END)
    half = pc.xor(pc.is_null(start), pc.is_null(end)).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(half)[:20]:
        out.append(Problem(name, int(row), "only one of start_datetime/end_datetime is null"))
    inverted = pc.fill_null(pc.greater(start, end), False).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(inverted)[:20]:
        out.append(Problem(name, int(row), "start_datetime > end_datetime"))
    return out


def validate(path: str | os.PathLike[str]) -> list[Problem]:
    """Every problem found in the catalog at ``path`` (empty list: valid).

    Checks: each part readable; required columns present with their types (see
    :func:`geoduck.schema.column_problems`); ``geo`` metadata 1.1.0 with the bbox covering and EPSG:4326 CRS;
    schema version (metadata and column); bbox equal to the geometry's bounds; closed intervals
    with start <= end and both-or-neither null; ids unique across the catalog.
    """
    root = store.require_catalog(path)
    problems: list[Problem] = []
    ids: Counter[str] = Counter()
    where: dict[str, tuple[str, int]] = {}
    for part in store.live_parts(root):
        try:
            pf = pq.ParquetFile(part)
            meta = pf.metadata.metadata or {}
            table = pf.read()
        except (OSError, pa.ArrowException) as exc:
            problems.append(Problem(str(part), None, f"unreadable: {exc}"))
            continue
        problems += _check_geo(part, meta)
        raw = meta.get(schema.KV_SCHEMA_VERSION)
        if raw is None or raw != str(schema.SCHEMA_VERSION).encode():
            problems.append(
                Problem(str(part), None, f"metadata schema_version {raw!r}, expected {schema.SCHEMA_VERSION}")
            )
        broken = schema.column_problems(table.schema)
        problems += [Problem(str(part), None, message) for message in broken]
        if broken:  # rows of missing or mistyped columns cannot be checked (nor queried)
            continue
        problems += _check_rows(part, table)
        for i, value in enumerate(table.column(schema.ID).to_pylist()):
            ids[value] += 1
            if ids[value] == 2:
                first_part, first_row = where[value]
                problems.append(Problem(str(part), i, f"duplicate id {value!r} (also {first_part} row {first_row})"))
            where.setdefault(value, (str(part), i))
    return problems
