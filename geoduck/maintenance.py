"""Catalog maintenance: compaction and schema migration, atomic from a reader's point of view.

Both replace a set of old parts by new parts (compaction: parts of at most
:data:`geoduck.store.MAX_PART_ROWS` rows, cut from one Hilbert-sorted stream; migration: one per part):

1. the new parts are written under hidden temp names (``.compact-….tmp``) and flushed;
2. the manifest (``_geoduck_manifest.json``) records ``{"replaces": [old parts], "by": [new parts]}``;
3. the new parts are renamed into place; the last rename is **the switch**: from then on geoduck
   readers skip the old parts (:func:`geoduck.store.live_names`), before it they skip the new
   ones already renamed;
4. the old parts are deleted and the manifest entry dropped.

Killed at any point, nothing is lost or duplicated for geoduck readers, and the next maintenance
run (or :func:`recover`) finishes step 4 or rolls back steps 1–2. Plain ``read_parquet('dir/*.parquet')``
readers see the old rows twice only between steps 3 and 4 (milliseconds, or until the next
maintenance run after a crash): run maintenance while no plain-SQL reader is active, or read the
manifest. Appends are never blocked: they add new parts, which a running compaction leaves alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import compiler, schema, store
from .catalog import execute, fetch_one, fetch_reader
from .errors import BuildError
from .expr import Scan

log = logging.getLogger(__name__)

LOCK_NAME = ".geoduck-maintenance.lock"


@dataclass(frozen=True)
class MaintenanceReport:
    """What a compaction or migration did."""

    parts_before: int
    parts_after: int
    rows: int
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@contextlib.contextmanager
def maintenance_lock(root: Path) -> Iterator[None]:
    """Exclusive, non-blocking lock for compaction/migration of one catalog."""
    fd = os.open(root / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BuildError(f"another compaction or migration is running on {root}; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def recover(root: Path) -> None:
    """Finish or roll back replacements left by a killed maintenance run (call under the lock)."""
    manifest = store.read_manifest(root)
    entries = manifest.get("replacements", [])
    for entry in entries:
        if all((root / name).exists() for name in entry["by"]):  # switched: finish
            for name in entry["replaces"]:
                (root / name).unlink(missing_ok=True)
        else:  # never switched: roll back
            for name in entry["by"]:
                (root / name).unlink(missing_ok=True)
    for tmp in root.glob(f"{store.COMPACT_PREFIX}*.tmp"):
        tmp.unlink(missing_ok=True)
    if entries:
        store.write_manifest(root, {"generation": manifest.get("generation", 0) + 1, "replacements": []})
    store.clean_orphans(root)
    store.refresh_index(root)  # drops the parts deleted, adds any the index lacks


def replace_parts(root: Path, old: list[Path], write: Callable[[Callable[[], Path]], None]) -> list[Path]:
    """Replace the parts ``old`` by the parts ``write(new_temp)`` writes, each to a fresh temp
    path that ``new_temp()`` hands out (see module doc); returns the new parts in order."""
    bad = [p.name for p in old if not store.is_part_name(p.name)]
    if bad:
        raise BuildError(
            f"part {root / bad[0]} has a name the manifest cannot record (control "
            "characters or a backslash): rename it to part-<anything>.parquet"
        )
    temps: list[tuple[Path, str]] = []

    def new_temp() -> Path:
        name = store.new_part_name()
        temps.append((root / f"{store.COMPACT_PREFIX}{name}.tmp", name))
        return temps[-1][0]

    try:
        write(new_temp)
        manifest = store.read_manifest(root)
        entry = {"replaces": [p.name for p in old], "by": [name for _, name in temps]}
        store.write_manifest(
            root,
            {
                "generation": manifest.get("generation", 0) + 1,
                "replacements": [*manifest.get("replacements", []), entry],
            },
        )
        for tmp, name in temps:  # the last rename is the switch
            os.replace(tmp, root / name)
        store._fsync_dir(root)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    recover(root)  # delete the old parts, drop the entry
    return [root / name for _, name in temps]


_GEOPARQUET_TYPES = {
    "POINT": "Point",
    "LINESTRING": "LineString",
    "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint",
    "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon",
    "GEOMETRYCOLLECTION": "GeometryCollection",
}


def _write_sorted(parts: list[Path], row_group_size: int, part_rows: int) -> Callable[[Callable[[], Path]], None]:
    """A writer streaming exactly the rows of ``parts``, Hilbert-sorted by DuckDB (which spills
    to disk when needed), into new parts of ``part_rows`` rows (the last: the rest) with row
    groups of ``row_group_size`` rows; memory holds one part's rows at a time."""
    node = Scan(str(parts[0].parent), files=tuple(str(p) for p in parts))

    def write(new_temp: Callable[[], Path]) -> None:
        # Reads go through the one execution path (its QueryError policy; the maintenance lock
        # keeps other compactions from replacing these parts meanwhile).
        n, types = execute(node, lambda: compiler.summary(node), fetch_one)
        names = [_GEOPARQUET_TYPES.get(str(t).upper(), "GeometryCollection") for t in types] if n else []
        reader = execute(node, lambda: compiler.sorted_rows(node), fetch_reader(min(part_rows, 100_000)))
        out_schema = _plain_schema(reader.schema)
        pending: list[pa.Table] = []
        rows = 0

        def flush(table: pa.Table) -> None:
            with store.owned_temp(new_temp()) as fh:
                store.write_parquet(table, fh, row_group_size=row_group_size, geometry_type_names=names)

        for batch in reader:
            pending.append(pa.Table.from_batches([batch]).cast(out_schema))
            rows += batch.num_rows
            while rows >= part_rows:
                table = pa.concat_tables(pending)
                flush(table.slice(0, part_rows))
                pending, rows = [table.slice(part_rows)], rows - part_rows
        if rows:
            flush(pa.concat_tables(pending))

    return write


def _plain_schema(arrow_schema: pa.Schema) -> pa.Schema:
    """Geometry as plain WKB binary (DuckDB marks it as a GeoArrow extension type)."""
    fields = [pa.field(f.name, pa.binary(), f.nullable) if f.name == schema.GEOMETRY else f for f in arrow_schema]
    return pa.schema(fields)


def compact(
    path: str | os.PathLike[str], *, row_group_size: int = store.ROW_GROUP_SIZE, part_rows: int = store.MAX_PART_ROWS
) -> MaintenanceReport:
    """Rewrite all live parts of the catalog at ``path`` as few: all rows Hilbert-sorted together,
    cut into parts of ``part_rows`` rows (the last: the rest), so each covers a compact region.

    Atomic for geoduck readers (old set or new set, never both or neither), loses nothing if
    killed, leaves parts appended meanwhile alone. Query results are identical before and after.
    """
    if not isinstance(part_rows, int) or part_rows < 1:
        raise BuildError(f"part_rows={part_rows!r} must be a positive integer")
    root = store.require_catalog(path)
    with store.storage_errors(root), maintenance_lock(root):  # a failed write leaves the old parts
        recover(root)
        parts = store.live_parts(root)
        if len(parts) < 2:
            return MaintenanceReport(len(parts), len(parts), 0)
        store.check_schema_versions(root)
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        new = replace_parts(root, parts, _write_sorted(parts, row_group_size, part_rows))
        log.info("compacted %d parts (%d rows) into %d", len(parts), rows, len(new))
        return MaintenanceReport(
            len(parts), len(store.live_parts(root)), rows, tuple(str(p) for p in new), tuple(str(p) for p in parts)
        )


# -- schema migration -----------------------------------------------------------------------------


def migrate_v0_to_v1(table: pa.Table) -> pa.Table:
    """Schema v0 → v1: add ``native_bounds`` (from the raster transform and size where known, else
    null) and the ``schema_version`` column. v0 is the pre-release layout without both."""
    n = table.num_rows
    bounds = pa.nulls(n, schema.BOX)
    if {"transform", "width", "height"} <= set(table.column_names):
        rows: list[dict[str, Any] | None] = []
        for t, w, h in zip(
            table.column("transform").to_pylist(),
            table.column("width").to_pylist(),
            table.column("height").to_pylist(),
            strict=True,
        ):
            if t is None or w is None or h is None:
                rows.append(None)
                continue
            xs = [t[0] * c + t[1] * r + t[2] for c, r in ((0, 0), (w, 0), (0, h), (w, h))]
            ys = [t[3] * c + t[4] * r + t[5] for c, r in ((0, 0), (w, 0), (0, h), (w, h))]
            rows.append({"xmin": min(xs), "ymin": min(ys), "xmax": max(xs), "ymax": max(ys)})
        bounds = pa.array(rows, type=schema.BOX)
    if schema.NATIVE_BOUNDS not in table.column_names:
        table = table.append_column(pa.field(schema.NATIVE_BOUNDS, schema.BOX), bounds)
    if schema.VERSION not in table.column_names:
        table = table.append_column(pa.field(schema.VERSION, pa.int32(), nullable=False), pa.array([1] * n, pa.int32()))
    return table


MIGRATIONS: dict[int, Callable[[pa.Table], pa.Table]] = {0: migrate_v0_to_v1}
"""``version → function`` turning a part table of that version into the next version."""


def _migrated(table: pa.Table, version: int) -> pa.Table:
    while version < schema.SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise BuildError(f"no migration from schema_version {version}; rebuild the catalog")
        table = MIGRATIONS[version](table)
        version += 1
    # Column order of the current schema (backend/extra columns keep their order after the core).
    order = [f.name for f in schema.CORE_FIELDS if f.name in table.column_names]
    order += [c for c in table.column_names if c not in order]
    table = table.select(order)
    fields = [f.with_nullable(False) if f.name == schema.VERSION else f for f in table.schema]
    return table.cast(pa.schema(fields))


def migrate(path: str | os.PathLike[str]) -> MaintenanceReport:
    """Rewrite every part of an older schema version as a current one (atomically, per part)."""
    root = Path(path)
    if not root.is_dir() or not store.list_parts(root):
        store.require_catalog(root)
    with maintenance_lock(root):
        recover(root)
        versions: dict[Path, int] = {}
        for part in store.live_parts(root):
            md = pq.read_metadata(part)
            known = schema.KV_SCHEMA_VERSION in (md.metadata or {}) or schema.VERSION in md.schema.names
            versions[part] = store.part_schema_version(part, md) if known else 0  # other writers: the column
        newer = {p: v for p, v in versions.items() if v > schema.SCHEMA_VERSION}
        if newer:
            part, v = next(iter(newer.items()))
            raise BuildError(f"{part} has schema_version {v}, newer than {schema.SCHEMA_VERSION}: upgrade geoduck")
        old = [p for p, v in versions.items() if v < schema.SCHEMA_VERSION]
        written: list[str] = []
        rows = 0
        for part in old:
            table = _migrated(pq.read_table(part), versions[part])
            table = table.replace_schema_metadata(None)
            rows += table.num_rows

            def write(new_temp: Callable[[], Path], table: pa.Table = table) -> None:
                with store.owned_temp(new_temp()) as fh:
                    store.write_parquet(store.sort_rows(table), fh)

            written.extend(str(p) for p in replace_parts(root, [part], write))
        return MaintenanceReport(
            len(versions), len(store.live_parts(root)), rows, tuple(written), tuple(str(p) for p in old)
        )
