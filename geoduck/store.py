"""The catalog store: a directory of GeoParquet 1.1 part files, append-only.

- Each part is written whole under a hidden temporary name (``.part-….parquet.tmp``, which
  ``*.parquet`` globs never match), flushed to disk, then moved into place with an atomic rename:
  a reader sees a part entirely or not at all. Existing parts are never rewritten.
- Rows within a part are sorted by the Hilbert key of their bbox centre, and written in row groups of
  ``ROW_GROUP_SIZE`` rows so the ``bbox`` column statistics prune row groups.
- ``read_parquet('<dir>/*.parquet')`` gives exactly the catalog's rows.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from . import schema
from .errors import CatalogNotFoundError, SchemaError
from .geo import hilbert_key

ROW_GROUP_SIZE = 10_000
"""Rows per Parquet row group (measured in benchmarks/bench_query.py)."""

PART_GLOB = "*.parquet"
TMP_PREFIX = ".part-"
TMP_SUFFIX = ".parquet.tmp"

_GEOM_TYPE_NAMES = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint",
                    5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def part_glob(path: str | os.PathLike[str]) -> str:
    """The glob that reads every part of the catalog at ``path``."""
    return str(Path(path) / PART_GLOB)


def list_parts(path: str | os.PathLike[str]) -> list[Path]:
    """The committed part files of a catalog, oldest first (names start with a UTC timestamp)."""
    root = Path(path)
    return sorted(p for p in root.glob(PART_GLOB) if not p.name.startswith("."))


def require_catalog(path: str | os.PathLike[str]) -> Path:
    """Check ``path`` is a catalog directory with at least one part; returns it resolved."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CatalogNotFoundError(
            f"catalog {str(path)!r} does not exist; build one first (geoduck.build_raster_catalog)")
    if not list_parts(root):
        raise CatalogNotFoundError(f"catalog {str(path)!r} holds no *.parquet parts")
    return root.resolve()


def _new_part_name() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"


def sort_rows(table: pa.Table) -> pa.Table:
    """Sort rows by the Hilbert key of the bbox centre, then by start time."""
    if table.num_rows <= 1:
        return table
    bbox = table.column(schema.BBOX).combine_chunks()
    cx = (pc.struct_field(bbox, "xmin").to_numpy() + pc.struct_field(bbox, "xmax").to_numpy()) / 2
    cy = (pc.struct_field(bbox, "ymin").to_numpy() + pc.struct_field(bbox, "ymax").to_numpy()) / 2
    key = hilbert_key(cx, cy)
    start = table.column(schema.START).cast(pa.int64()).fill_null(np.iinfo(np.int64).min)
    order = np.lexsort((start.to_numpy(), key))
    return table.take(pa.array(order))


def geometry_types(table: pa.Table) -> list[str]:
    """The distinct GeoParquet geometry type names of the WKB ``geometry`` column."""
    geoms = shapely.from_wkb(table.column(schema.GEOMETRY).to_numpy(zero_copy_only=False))
    ids = np.unique(shapely.get_type_id(geoms))
    return [_GEOM_TYPE_NAMES[int(i)] for i in ids if int(i) in _GEOM_TYPE_NAMES]


def _total_bbox(table: pa.Table) -> tuple[float, float, float, float] | None:
    if table.num_rows == 0:
        return None
    bbox = table.column(schema.BBOX).combine_chunks()
    return (pc.min(pc.struct_field(bbox, "xmin")).as_py(), pc.min(pc.struct_field(bbox, "ymin")).as_py(),
            pc.max(pc.struct_field(bbox, "xmax")).as_py(), pc.max(pc.struct_field(bbox, "ymax")).as_py())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_part(table: pa.Table, out_dir: str | os.PathLike[str], *,
               row_group_size: int = ROW_GROUP_SIZE, sort: bool = True) -> Path:
    """Write ``table`` (a schema-v1 table) as one new part of the catalog at ``out_dir``.

    The part is sorted (Hilbert of bbox centre), carries ``geo`` 1.1.0 metadata with the bbox
    covering and the schema version, and appears atomically. Returns the part's path.
    """
    if table.num_rows == 0:
        raise ValueError("refusing to write an empty part")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if sort:
        table = sort_rows(table)
    meta = dict(table.schema.metadata or {})
    meta.update(schema.part_metadata(geometry_types(table), _total_bbox(table)))
    table = table.replace_schema_metadata(meta)
    name = _new_part_name()
    tmp = root / f"{TMP_PREFIX}{name[len('part-'):-len('.parquet')]}{TMP_SUFFIX}"
    final = root / name
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, row_group_size=row_group_size, compression="zstd",
                           write_statistics=True, use_dictionary=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(root)
    return final


def table_from_rows(rows: Iterable[dict], arrow_schema: pa.Schema) -> pa.Table:
    """Build a part table from row dicts (missing keys are null)."""
    rows = list(rows)
    columns = {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in arrow_schema}
    return pa.Table.from_pydict(columns, schema=arrow_schema)


def read_schema_versions(path: str | os.PathLike[str]) -> dict[Path, int]:
    """The ``geoduck:schema_version`` of every part (from the Parquet key-value metadata)."""
    out: dict[Path, int] = {}
    for part in list_parts(path):
        try:
            meta = pq.read_metadata(part).metadata or {}
        except (OSError, pa.ArrowInvalid) as exc:
            raise SchemaError(f"catalog part {part} is not a readable Parquet file: {exc}") from None
        raw = meta.get(schema.KV_SCHEMA_VERSION)
        if raw is None:
            raise SchemaError(f"catalog part {part} has no {schema.KV_SCHEMA_VERSION.decode()} "
                              "metadata: it was not written by geoduck")
        out[part] = int(raw)
    return out


def check_schema_versions(path: str | os.PathLike[str]) -> None:
    """Raise :class:`SchemaError` if any part has a schema version this geoduck cannot read."""
    for part, version in read_schema_versions(path).items():
        if version > schema.SCHEMA_VERSION:
            raise SchemaError(
                f"catalog part {part} has schema_version {version}, newer than {schema.SCHEMA_VERSION} "
                "that this geoduck reads: upgrade geoduck")
        if version < schema.SCHEMA_VERSION:
            raise SchemaError(
                f"catalog part {part} has schema_version {version}, older than {schema.SCHEMA_VERSION}: "
                "no migration is known for it; rebuild the catalog")


def indexed_files(path: str | os.PathLike[str]) -> dict[str, tuple[int | None, int | None]]:
    """``filepath → (file_size, file_mtime in µs since epoch)`` of every indexed row."""
    out: dict[str, tuple[int | None, int | None]] = {}
    for part in list_parts(path):
        cols = [schema.FILEPATH, schema.FILE_SIZE, schema.FILE_MTIME]
        t = pq.read_table(part, columns=cols)
        paths = t.column(schema.FILEPATH).to_pylist()
        sizes = t.column(schema.FILE_SIZE).to_pylist()
        mtimes = t.column(schema.FILE_MTIME).cast(pa.int64()).to_pylist()
        out.update(zip(paths, zip(sizes, mtimes, strict=True), strict=True))
    return out


def part_columns(path: str | os.PathLike[str]) -> list[str]:
    """Union of the column names of all parts, in first-seen order."""
    names: dict[str, None] = {}
    for part in list_parts(path):
        names.update(dict.fromkeys(pq.read_schema(part).names))
    return list(names)
