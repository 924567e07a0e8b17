"""The catalog store: a directory of GeoParquet 1.1 part files, append-only.

- Each part is written whole under a hidden temporary name (``.part-….parquet.tmp``, which
  ``*.parquet`` globs never match), flushed to disk, then moved into place with an atomic rename:
  a reader sees a part entirely or not at all. Existing parts are never rewritten.
- Rows within a part are sorted by the Hilbert key of their bbox centre, and written in row groups of
  ``ROW_GROUP_SIZE`` rows so the ``bbox`` column statistics prune row groups.
- ``read_parquet('<dir>/*.parquet')`` gives exactly the catalog's rows.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import errno
import fcntl
import glob as globmod
import json
import logging
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from . import schema
from .errors import ArgumentError, CatalogNotFoundError, SchemaError, StorageError
from .geo import hilbert_key
from .intervals import epoch_us

ROW_GROUP_SIZE = 20_000
"""Rows per Parquet row group (benchmarks/bench_query.py shapes at 10^6 rows: 20,000 beat 10,000,
5,000 and 50,000 on parts of 10^5-10^6 rows, and 5,000 was within noise of it on parts of 20,000 or
50,000 rows — a query pays per row group of every part it opens, and per row of those it reads)."""

UNIQUE_COLUMNS = (schema.ID, schema.FILEPATH, schema.FILE_MTIME)
"""Columns whose values (almost) never repeat: written plain, since a dictionary of unique values
only adds a decoding step to every query that returns them."""


def parquet_options(arrow_schema: pa.Schema) -> dict:
    """pyarrow writer options of every part with ``arrow_schema``: Snappy (read by every Parquet
    tool) and dictionary encoding for the flat columns that repeat (tile, crs, dtype, geometry …).

    Measured (benchmarks/bench_query.py shapes, 10^6 rows, DuckDB 1.5.5): rows to Arrow ~27 %
    faster and counts ~30 % faster than zstd with dictionaries everywhere, for 1.8× the bytes
    (about 25 MiB per 10^6 rows); LZ4 was a little faster still but older readers lack LZ4_RAW.
    """
    flat = [f.name for f in arrow_schema if f.name not in UNIQUE_COLUMNS and not pa.types.is_nested(f.type)]
    return {"compression": "snappy", "write_statistics": True, "use_dictionary": flat}


MAX_PART_ROWS = 50_000
"""Most rows in one part where many rows are written at once (compaction, ``Catalog.to_parquet``,
synthetic catalogs; builds write parts of this size too). Those rows are Hilbert-sorted together
and cut into consecutive runs, so each part covers a compact region and a query skips whole parts
by their footer extents. DuckDB 1.5.5 pays ~0.5 ms for every part a query opens and ~0.07 ms for
every row group in it, read or not (benchmarks/bench_query.py, 10^7 rows: cutting parts of 10^6
rows into parts of 50,000 took DuckDB's share of a query from 18 to 7 ms)."""

PART_SUFFIX = ".parquet"
PART_GLOB = f"*{PART_SUFFIX}"
TMP_PREFIX = ".part-"
TMP_SUFFIX = ".parquet.tmp"

T = TypeVar("T")

log = logging.getLogger(__name__)

_TYPE_SCAN_ROWS = 1_000
"""Geometries parsed at a time to find a part's geometry types."""

_GEOM_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def part_glob(path: str | os.PathLike[str]) -> str:
    """The glob that reads every part of the catalog at ``path`` (glob characters ``*?[`` in the
    directory's own path are escaped, so ``cat*`` never also reads ``cat_old``). A directory with a
    backslash in its path has no such glob (DuckDB splits globs at backslashes): read its parts by
    name (:func:`duckdb_path`)."""
    return str(Path(globmod.escape(str(Path(path)))) / PART_GLOB)


def duckdb_path(path: str) -> str:
    """``path`` (one local file or directory) spelled so that DuckDB's ``read_parquet``, which globs
    every name it is given, reads exactly it: unchanged without glob characters ``*?[`` (DuckDB
    then opens the name as it is, backslashes included); else with them escaped (``[*]``) and each
    backslash, at which DuckDB's glob splits a path as at ``/``, matched by ``?``."""
    if not globmod.has_magic(path):
        return path
    return globmod.escape(path).replace("\\", "?")


def part_names(path: str | os.PathLike[str]) -> list[str]:
    """File names of a catalog's committed parts, oldest first (names start with a UTC timestamp)."""
    try:
        with os.scandir(path) as entries:  # (a plain directory scan: several times faster than glob)
            return sorted(e.name for e in entries if e.name.endswith(PART_SUFFIX) and not e.name.startswith("."))
    except OSError:  # missing, or not a directory: no parts
        return []


def list_parts(path: str | os.PathLike[str]) -> list[Path]:
    """The committed part files of a catalog, oldest first."""
    root = Path(path)
    return [root / name for name in part_names(root)]


def require_catalog(path: str | os.PathLike[str]) -> Path:
    """Check ``path`` is a catalog directory with at least one part; returns it resolved."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CatalogNotFoundError(
            f"catalog {str(path)!r} does not exist; build one first (geoduck.build_raster_catalog)"
        )
    if not list_parts(root):
        raise CatalogNotFoundError(f"catalog {str(path)!r} holds no *.parquet parts")
    return root.resolve()


def new_part_name(tag: str = "") -> str:
    """``part-<UTC timestamp>-<12 hex>.parquet``; the hex digits start with ``tag`` (≤ 6 hex digits,
    e.g. a build's token), the rest are random."""
    if len(tag) > 6 or any(c not in "0123456789abcdef" for c in tag):
        raise ArgumentError(f"part name tag {tag!r} must be at most 6 lowercase hex digits")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"part-{stamp}-{tag}{uuid.uuid4().hex[: 12 - len(tag)]}.parquet"


def part_tag(name: str, length: int = 6) -> str:
    """The first ``length`` hex digits of a part name's random field (where its tag, if any, is)."""
    stem = name[: -len(".parquet")] if name.endswith(".parquet") else name
    return stem.rsplit("-", 1)[-1][:length]


def local_path(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """``file://`` URIs (``file:///abs/path``, ``file://localhost/abs/path``) as local paths; anything
    else unchanged."""
    text = os.fspath(path)
    if not text.lower().startswith("file:"):
        return path
    parsed = urllib.parse.urlparse(text)
    if parsed.netloc not in ("", "localhost"):
        raise CatalogNotFoundError(
            f"{text!r}: file:// URIs on another host ({parsed.netloc!r}) are not "
            "supported; mount the share and give its local path"
        )
    from urllib.request import url2pathname  # (10 ms of imports: file:// catalogs only)

    return url2pathname(parsed.path)


def sort_rows(table: pa.Table) -> pa.Table:
    """``table``'s rows in :data:`geoduck.compiler.PART_ORDER_SQL` order (Hilbert key of the bbox centre, then start
    time with static rows first, then id), computed in numpy/Arrow: for a 50,000-row part ~4x
    faster than a DuckDB ``ORDER BY`` round trip, ~50x for an append of a few rows."""
    import pyarrow.compute as pc  # (not imported by queries)

    if table.num_rows <= 1:
        return table
    bbox = table.column(schema.BBOX).combine_chunks()
    cx = (pc.struct_field(bbox, "xmin").to_numpy() + pc.struct_field(bbox, "xmax").to_numpy()) / 2
    cy = (pc.struct_field(bbox, "ymin").to_numpy() + pc.struct_field(bbox, "ymax").to_numpy()) / 2
    key = hilbert_key(cx, cy)
    start = table.column(schema.START).cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()
    order = np.lexsort((start, key))
    k, t = key[order], start[order]
    if schema.ID in table.column_names and ((k[1:] == k[:-1]) & (t[1:] == t[:-1])).any():  # ties: by id
        keys = pa.table({"key": key, "start": start, "id": table.column(schema.ID)})
        return table.take(
            pc.sort_indices(keys, sort_keys=[("key", "ascending"), ("start", "ascending"), ("id", "ascending")])
        )
    return table.take(pa.array(order))


def geometry_types(table: pa.Table) -> list[str]:
    """The distinct GeoParquet geometry type names of the WKB ``geometry`` column."""
    column = table.column(schema.GEOMETRY)
    ids: set[int] = set()
    for start in range(0, len(column), _TYPE_SCAN_ROWS):  # bounded memory: a slice parsed at a time
        geoms = shapely.from_wkb(column.slice(start, _TYPE_SCAN_ROWS).to_numpy(zero_copy_only=False))
        ids.update(int(i) for i in np.unique(shapely.get_type_id(geoms)))
    return [_GEOM_TYPE_NAMES[i] for i in sorted(ids) if i in _GEOM_TYPE_NAMES]


def _total_bbox(table: pa.Table) -> tuple[float, float, float, float] | None:
    import pyarrow.compute as pc  # (not imported by queries)

    if table.num_rows == 0:
        return None
    bbox = table.column(schema.BBOX).combine_chunks()
    return (
        pc.min(pc.struct_field(bbox, "xmin")).as_py(),
        pc.min(pc.struct_field(bbox, "ymin")).as_py(),
        pc.max(pc.struct_field(bbox, "xmax")).as_py(),
        pc.max(pc.struct_field(bbox, "ymax")).as_py(),
    )


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


_STORAGE_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another folder",
    errno.EFBIG: "the file size limit is exceeded: raise it (ulimit -f) or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "no permission to write there: fix its permissions or choose another folder",
    errno.EPERM: "no permission to write there: fix its permissions or choose another folder",
}


@contextlib.contextmanager
def storage_errors(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing the catalog ``folder`` (disk full, read-only file
    system, no permission …) into one :class:`StorageError` naming the folder, the cause and the fix."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        code = exc.errno
        if code is None:  # pyarrow's I/O errors carry the errno only in their text
            code = next((c for c in _STORAGE_HINTS if f"errno {c}]" in str(exc).lower()), None)
        cause = os.strerror(code) if code is not None else str(exc).splitlines()[0]
        where = f" ({exc.filename})" if exc.filename and os.fspath(exc.filename) != os.fspath(folder) else ""
        hint = (
            _STORAGE_HINTS.get(code, "check the folder and the disk")
            if code is not None
            else "check the folder and the disk"
        )
        raise StorageError(f"cannot write catalog folder {os.fspath(folder)}{where}: {cause}; {hint}") from None


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """Write one output file (not a part) atomically: yields a hidden, not yet created, temporary
    path beside ``target`` for the writer to create; when the block ends normally it is renamed over
    ``target``, else removed, so ``target`` is never seen half-written. ``keep_suffix`` ends the
    temporary name with ``target``'s suffix (for writers that pick a format by it). An ``OSError``
    becomes a :class:`StorageError` naming ``target``."""
    target = Path(target)
    end = target.suffix if keep_suffix else ""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{end}")
    try:
        yield tmp
        os.replace(tmp, target)
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_part(
    table: pa.Table,
    out_dir: str | os.PathLike[str],
    *,
    row_group_size: int = ROW_GROUP_SIZE,
    sort: bool = True,
    tag: str = "",
) -> Path:
    """Write ``table`` (a schema-v1 table) as one new part of the catalog at ``out_dir``.

    The part is sorted (Hilbert of bbox centre), carries ``geo`` 1.1.0 metadata with the bbox
    covering and the schema version, and appears atomically. ``tag`` marks its name (see
    :func:`new_part_name`). Returns the part's path.
    """
    if table.num_rows == 0:
        raise ArgumentError("refusing to write an empty part")
    root = Path(out_dir)
    with storage_errors(root):
        root.mkdir(parents=True, exist_ok=True)
        clean_orphans(root)
        if sort:
            table = sort_rows(table)
        name = new_part_name(tag)
        tmp = root / f"{TMP_PREFIX}{name[len('part-') : -len('.parquet')]}{TMP_SUFFIX}"
        final = root / name
        try:
            with owned_temp(tmp) as fh:
                write_parquet(table, fh, row_group_size=row_group_size)
                entry = index_entry(tmp)
                os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(root)
    refresh_index(root, {name: entry})  # (a failure here leaves a stale index, which readers detect)
    return final


def write_parts(
    table: pa.Table, out_dir: str | os.PathLike[str], *, max_rows: int = MAX_PART_ROWS, tag: str = ""
) -> list[Path]:
    """Write ``table`` as new parts of at most ``max_rows`` rows: its rows are sorted together
    (Hilbert of bbox centre) and cut in that order, so each part covers a compact region. Each
    part appears atomically on its own (see :data:`MAX_PART_ROWS`)."""
    if table.num_rows == 0:
        raise ArgumentError("refusing to write an empty part")
    if max_rows < 1:
        raise ArgumentError(f"max_rows={max_rows} must be positive")
    table = sort_rows(table)
    return [
        write_part(table.slice(offset, max_rows), out_dir, sort=False, tag=tag)
        for offset in range(0, table.num_rows, max_rows)
    ]


def write_parquet(
    table: pa.Table, fh: BinaryIO, *, row_group_size: int = ROW_GROUP_SIZE, geometry_type_names: list[str] | None = None
) -> None:
    """Write ``table``'s rows, in their order, as a part's Parquet file to ``fh`` (then flushed and
    fsynced): ``geo`` metadata with the rows' bbox and ``geometry_type_names`` (computed from the
    WKB when not given), the schema version, :func:`parquet_options`."""
    types = geometry_types(table) if geometry_type_names is None else geometry_type_names
    meta = dict(table.schema.metadata or {})
    meta.update(schema.part_metadata(types, _total_bbox(table)))
    table = table.replace_schema_metadata(meta)
    pq.write_table(table, fh, row_group_size=row_group_size, **parquet_options(table.schema))
    fh.flush()
    os.fsync(fh.fileno())


@contextlib.contextmanager
def owned_temp(path: Path) -> Iterator[BinaryIO]:
    """Create ``path`` exclusively and hold an exclusive ``flock`` on it until closed, so
    :func:`clean_orphans` can tell a live writer's temp file from a crashed one's."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with os.fdopen(fd, "wb") as fh:
        yield fh


COMPACT_PREFIX = ".compact-"
"""Temp files of compaction/migration (cleaned only under the maintenance lock)."""

ORPHAN_GRACE_S = 60.0
"""Temp files younger than this are never removed (their writer may not hold its lock yet)."""


def clean_orphans(path: str | os.PathLike[str], *, grace_s: float = ORPHAN_GRACE_S) -> list[Path]:
    """Remove temp files of writers that died (unlocked, older than ``grace_s``); returns them."""
    removed: list[Path] = []
    now = time.time()
    for tmp in Path(path).glob(".*.tmp"):
        if tmp.name.startswith(COMPACT_PREFIX):  # owned by a maintenance run: see compact.recover
            continue
        try:
            if now - tmp.stat().st_mtime < grace_s:
                continue
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            os.close(fd)
            continue
        try:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        finally:
            os.close(fd)
    return removed


APPEND_LOCK = ".geoduck-append.lock"


@contextlib.contextmanager
def append_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Exclusive (blocking) lock held while a builder checks for and writes one part, so
    concurrent builders over overlapping files never index a file twice."""
    fd = os.open(Path(path) / APPEND_LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class CommittedPaths:
    """The ``filepath`` values of a catalog's parts, re-read incrementally (only new parts).

    Safe against a concurrent compaction: a part deleted before it could be read had its rows
    copied into parts that exist by then (the switch precedes deletion), so the parts are listed
    again until one pass reads every part it lists."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._root = Path(path)
        self._seen: set[str] = set()
        self.paths: set[str] = set()

    def refresh(self) -> set[str]:
        def read(part: Path) -> list[str]:
            return pq.read_table(part, columns=[schema.FILEPATH]).column(0).to_pylist()

        for name, paths in each_part(self._root, read, skip=self._seen, live=False).items():
            self.paths.update(paths)
            self._seen.add(name)
        return self.paths

    def mark_written(self, part: Path, paths: Iterable[str]) -> None:
        self._seen.add(part.name)
        self.paths.update(paths)


VANISHED_RETRIES = 50
"""Times a reader of part files lists a catalog's parts again because a part it listed was
deleted before it read it (a compaction replaced it meanwhile). Each listing after the first
follows a completed compaction, so this many in a row means compactions never stop."""


def each_part(
    path: str | os.PathLike[str], read: Callable[[Path], T], *, skip: Iterable[str] = (), live: bool = True
) -> dict[str, T]:
    """``{part name: read(part)}`` for the parts of one consistent listing (:func:`live_parts` if
    ``live``, else every committed part), names in ``skip`` excepted.

    A part deleted before ``read`` opened it (``FileNotFoundError``: a compaction replaced it) makes
    it list the parts again and read the ones not read yet; parts no longer listed are dropped.
    Raises :class:`SchemaError` after :data:`VANISHED_RETRIES` listings."""
    root = Path(path)
    skipped = set(skip)
    done: dict[str, T] = {}
    for _ in range(VANISHED_RETRIES):
        names = [Path(p).name for p in live_part_paths(root)] if live else part_names(root)
        vanished = False
        for name in names:
            if name in skipped or name in done:
                continue
            try:
                done[name] = read(root / name)
            except FileNotFoundError:
                vanished = True
        if not vanished:
            return {name: done[name] for name in names if name in done}
    raise SchemaError(
        f"parts of {root} kept disappearing while being read (a compaction or "
        "migration replacing them without pause?): try again"
    )


# -- the manifest: atomic replacement of parts (compaction, migration) ---------------------------
MANIFEST = "_geoduck_manifest.json"
"""Catalog manifest (not matched by ``*.parquet``): pending replacements of parts by others."""


MAX_PART_NAME_BYTES = 255
"""Longest part file name (UTF-8 bytes; the limit of common Linux file systems)."""

_PART_NAME = re.compile(r"[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*\.parquet")
"""A plain part file name as :func:`part_names` lists it: no directory, no leading dot (not
hidden, not ``.``/``..``), no control characters or NUL, ending in ``.parquet``."""


def is_part_name(name: object) -> bool:
    """Whether ``name`` is a plain part file name (see ``_PART_NAME``), at most
    :data:`MAX_PART_NAME_BYTES` long."""
    return (
        isinstance(name, str)
        and _PART_NAME.fullmatch(name) is not None
        and len(name.encode("utf-8", "surrogatepass")) <= MAX_PART_NAME_BYTES
    )


def check_manifest(manifest: object, where: str, root: str | os.PathLike[str] | None = None) -> dict:
    """Return ``manifest`` if it is a well-formed manifest whose names are all plain part file
    names of the catalog, else raise :class:`SchemaError` naming ``where`` and the bad entry.

    With a local ``root``, each name must also resolve (symlinks followed) to a file directly
    inside ``root``: maintenance deletes the files a manifest names, so a name reaching outside
    the catalog (absolute, ``..``, a symlink leading out, NUL, over-long) is refused before
    anything is deleted."""
    fix = f"it was not written by geoduck: remove or repair {where}"
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("generation", 0), int)
        or not isinstance(manifest.get("replacements", []), list)
    ):
        raise SchemaError(
            f'catalog manifest {where} is malformed (expected {{"generation": int, "replacements": [...]}}); {fix}'
        )
    real_root = os.path.realpath(root) if root is not None else None
    for entry in manifest.get("replacements", []):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"replaces", "by"}
            or not all(isinstance(entry[k], list) for k in ("replaces", "by"))
        ):
            raise SchemaError(
                f"catalog manifest {where} has a malformed replacement {entry!r} "
                f'(expected {{"replaces": [names], "by": [names]}}); {fix}'
            )
        for name in (*entry["replaces"], *entry["by"]):
            if not is_part_name(name):
                shown = name[:80] + "…" if isinstance(name, str) and len(name) > 80 else name
                raise SchemaError(
                    f"catalog manifest {where} names {shown!r}, which is not a part file "
                    f"name of this catalog (part-….parquet, no directory); {fix}"
                )
            if real_root is not None:
                target = os.path.realpath(os.path.join(real_root, name))
                if os.path.dirname(target) != real_root:
                    raise SchemaError(
                        f"catalog manifest {where} names {name!r}, which resolves to "
                        f"{target} outside the catalog (a symlink?); {fix}"
                    )
    return manifest


def read_manifest(path: str | os.PathLike[str]) -> dict:
    """The manifest (``{"generation": int, "replacements": [{"replaces": [...], "by": [...]}]}``),
    checked by :func:`check_manifest` (raises :class:`SchemaError` when it is unreadable or names
    anything but this catalog's part files)."""
    target = Path(path) / MANIFEST
    try:
        manifest = json.loads(target.read_text())
    except FileNotFoundError:
        return {"generation": 0, "replacements": []}
    except (OSError, ValueError) as exc:
        raise SchemaError(f"catalog manifest {target} is unreadable: {exc}") from None
    return check_manifest(manifest, str(target), path)


def write_manifest(path: str | os.PathLike[str], manifest: dict) -> None:
    """Replace the manifest atomically (temp file + rename)."""
    root = Path(path)
    tmp = root / f".manifest-{uuid.uuid4().hex[:12]}.tmp"
    with owned_temp(tmp) as fh:
        fh.write(json.dumps(manifest, indent=1).encode())
        fh.flush()
        os.fsync(fh.fileno())
        os.replace(tmp, root / MANIFEST)
    _fsync_dir(root)


def live_parts(path: str | os.PathLike[str]) -> list[Path]:
    """The parts a geoduck reader sees: committed parts as judged by the manifest (see
    :func:`live_listing`)."""
    return [Path(p) for p in live_part_paths(path)]


def live_part_paths(path: str | os.PathLike[str]) -> list[str]:
    """:func:`live_parts` as path strings (the per-query form: no ``Path`` objects)."""
    return live_listing(os.fspath(path))[0]


def live_listing(path: str | os.PathLike[str]) -> tuple[list[str], bool]:
    """(the live parts' paths, whether a replacement is pending in the manifest).

    Consistent while a compaction renames and deletes parts: the manifest is read before the
    directory is listed, and each pending replacement is judged *after* the listing — switched
    (all its new parts exist) gives its new parts, else its old parts, whichever of them the
    listing caught. So a part listed here is live at the time of listing, and every live part
    is listed; a part deleted later makes the read fail (and run again, see
    :func:`generation`)."""
    root = os.fspath(path)
    manifest = read_manifest(root)
    names, paths = _listed(root)
    live, pending = live_names(names, manifest, lambda name: os.path.exists(os.path.join(root, name)))
    seen = _LISTINGS.get()
    if seen is not None:  # see recorded_listings
        _, listed = seen.setdefault(root, (int(manifest.get("generation", 0)), set()))
        listed.update(names, live)
    if not pending:
        return list(paths), False
    return [os.path.join(root, name) for name in live], pending


def folder_stamp(path: str | os.PathLike[str]) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime ns) of every file of a catalog folder but hidden (temporary) ones — the
    parts, the manifest that may hide replaced parts, the index — sorted by name; ``(("", -1,
    -1),)`` for a missing folder. It changes whenever a part is added, removed or replaced (for
    caches of a catalog's rows, e.g. the loaders' row index)."""
    out = []
    try:
        with os.scandir(path) as it:
            for e in it:
                if not e.name.startswith("."):
                    st = e.stat()
                    out.append((e.name, st.st_size, st.st_mtime_ns))
    except FileNotFoundError:
        return (("", -1, -1),)
    return tuple(sorted(out))


LISTING_SETTLED_NS = 2_000_000_000
"""A directory listing is reused while the directory's mtime is unchanged, if it was listed this
long after that mtime: an entry added or removed after the listing changes the mtime (which a
file system may round down by up to its timestamp granularity, well under this)."""

_LISTED: dict[str, tuple[tuple[int, int, int], list[str], list[str]]] = {}


def _listed(root: str) -> tuple[list[str], list[str]]:
    """(:func:`part_names` of ``root``, their paths), reused while the directory is unchanged
    (see :data:`LISTING_SETTLED_NS`): one ``stat`` instead of listing 2,000 parts per query."""
    try:
        st = os.stat(root)
    except OSError:
        return [], []
    key = (st.st_dev, st.st_ino, st.st_mtime_ns)
    cached = _LISTED.get(root)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    now = time.time_ns()  # (before listing: any change after the listing is stamped later)
    names = part_names(root)
    prefix = os.path.join(root, "")
    paths = [prefix + name for name in names]
    if now - st.st_mtime_ns > LISTING_SETTLED_NS:
        if len(_LISTED) > 256:
            _LISTED.clear()
        _LISTED[root] = (key, names, paths)
    return names, paths


def live_names(names: Iterable[str], manifest: dict, exists: Callable[[str], bool]) -> tuple[list[str], bool]:
    """(the live part names, whether a replacement is pending) of a catalog whose listing gave
    ``names`` (oldest first), ``manifest`` read *before* that listing, ``exists`` telling whether
    a part exists now (after the listing). The one rule of every storage (local and remote):

    each pending replacement gives its new parts once switched (all of them exist), else its old
    parts; so neither the new parts of an unfinished compaction (or one that crashed) nor the old
    parts of a switched one are read, and no row is counted twice."""
    names = list(names)
    entries = manifest.get("replacements", [])
    if not entries:
        return names, False
    drop: set[str] = set()
    add: set[str] = set()
    for entry in entries:
        switched = all(exists(name) for name in entry["by"])
        drop.update(entry["replaces"], entry["by"])
        add.update(entry["by"] if switched else entry["replaces"])
    return sorted({name for name in names if name not in drop} | add), True


Listings = dict[str, tuple[int, set[str]]]
"""``root → (manifest generation, part names)`` of the listings a read made (the first
generation seen, every name listed)."""

_LISTINGS: contextvars.ContextVar[Listings | None] = contextvars.ContextVar("geoduck_listings", default=None)


@contextlib.contextmanager
def recorded_listings() -> Iterator[Listings]:
    """Record what every :func:`live_listing` in this context (thread) saw, for a reader that must
    tell afterwards whether the parts it read were replaced meanwhile (see :func:`generation`)."""
    token = _LISTINGS.set({})
    try:
        yield _LISTINGS.get()  # type: ignore[misc]
    finally:
        _LISTINGS.reset(token)


def generation(path: str | os.PathLike[str]) -> int:
    """The manifest's generation: it changes when a compaction or migration starts replacing
    parts (before its first rename) and when it has finished (after deleting the old parts). A
    read that saw the same generation before it listed the parts and after its last row read no
    part set mixed by a replacement."""
    return int(read_manifest(path).get("generation", 0))


def table_from_rows(rows: Iterable[dict], arrow_schema: pa.Schema) -> pa.Table:
    """Build a part table from row dicts (missing keys are null)."""
    rows = list(rows)
    columns = {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in arrow_schema}
    return pa.Table.from_pydict(columns, schema=arrow_schema)


def read_schema_versions(path: str | os.PathLike[str]) -> dict[Path, int]:
    """The ``geoduck:schema_version`` of every live part (from the Parquet key-value metadata),
    read from one consistent listing (see :func:`each_part`)."""
    return {part: version for part, (version, _) in _read_footers(path).items()}


def _read_footers(path: str | os.PathLike[str]) -> dict[Path, tuple[int, pa.Schema]]:
    """(schema version, Arrow schema) of every live part, from its footer, read from one
    consistent listing (:func:`each_part`: a part replaced meanwhile makes it list again).

    A part whose part-index entry has its size and a schema already read from another footer
    is taken from the index (opening 2,000 parts: one footer per distinct schema, not 2,000)."""
    index = read_index(path) or {}
    schemas: dict[str, pa.Schema] = {}  # schema text (as in the index) → Arrow schema

    def footer(part: Path) -> tuple[int, pa.Schema]:
        entry = index.get(part.name)
        if entry is not None and entry.schema_version is not None and entry.extent.schema in schemas:
            if os.stat(part).st_size == entry.bytes:
                return entry.schema_version, schemas[entry.extent.schema]
        try:
            md = pq.read_metadata(part)
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowInvalid) as exc:
            raise SchemaError(f"catalog part {part} is not a readable Parquet file: {exc}") from None
        arrow_schema = md.schema.to_arrow_schema()
        schemas.setdefault(str(arrow_schema.remove_metadata()), arrow_schema)
        return part_schema_version(part, md), arrow_schema

    root = Path(path)
    return {root / name: v for name, v in each_part(root, footer).items()}


def part_schema_version(part: Path, md: pq.FileMetaData) -> int:
    """A part's schema version: its ``geoduck:schema_version`` key-value metadata when present
    (geoduck's own parts, older versions included), else the value of its ``schema_version``
    column (the contract for parts written by other tools: one value in the whole part)."""
    if schema.KV_SCHEMA_VERSION in (md.metadata or {}):
        return _schema_version(part, md.metadata or {})
    return _column_schema_version(part, md)


def _column_schema_version(part: Path, md: pq.FileMetaData) -> int:
    """The one value of a part's ``schema_version`` column: from the row-group statistics, else
    read from the column."""
    arrow_schema = md.schema.to_arrow_schema()
    fix = f"write the column (int32, e.g. {schema.SCHEMA_VERSION} in every row) or move the part out of {part.parent}"
    if schema.VERSION not in arrow_schema.names:
        raise SchemaError(
            f"catalog part {part} has neither a {schema.VERSION!r} column nor "
            f"{schema.KV_SCHEMA_VERSION.decode()} metadata: {fix}"
        )
    if not pa.types.is_integer(arrow_schema.field(schema.VERSION).type):
        typ = arrow_schema.field(schema.VERSION).type
        raise SchemaError(f"catalog part {part} column {schema.VERSION!r} is {typ}, not an integer: {fix}")
    values: set[int] = set()
    j = [md.schema.column(k).path for k in range(md.num_columns)].index(schema.VERSION)  # Parquet leaf index
    for g in range(md.num_row_groups):
        stats = md.row_group(g).column(j).statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            values = set(pq.read_table(part, columns=[schema.VERSION]).column(0).unique().to_pylist())
            break
        values.update((int(stats.min), int(stats.max)))
    if len(values) != 1 or None in values:
        shown = sorted(values, key=str)
        raise SchemaError(
            f"catalog part {part} has schema_version values {shown}, not one integer for the whole part: {fix}"
        )
    return int(values.pop())


def _schema_version(part: Path, meta: dict[bytes, bytes]) -> int:
    """The integer ``geoduck:schema_version`` of a part's key-value metadata."""
    key = schema.KV_SCHEMA_VERSION.decode()
    raw = meta.get(schema.KV_SCHEMA_VERSION)
    if raw is None:
        raise SchemaError(f"catalog part {part} has no {key} metadata: it was not written by geoduck")
    text = raw.decode("utf-8", "replace").strip()
    if not (text.isascii() and text.isdigit()):
        raise SchemaError(
            f"catalog part {part} has {key} {text!r}, not a non-negative integer: the part is "
            f"damaged or not written by geoduck; move it out of {part.parent}"
        )
    return int(text)


def check_schema_versions(path: str | os.PathLike[str]) -> None:
    """Raise :class:`SchemaError` if any part has a schema version this geoduck cannot read, or
    (at the current version) lacks a required column or has one of the wrong type."""
    for part, (version, arrow_schema) in _read_footers(path).items():
        if version > schema.SCHEMA_VERSION:
            raise SchemaError(
                f"catalog part {part} has schema_version {version}, newer than {schema.SCHEMA_VERSION} "
                "that this geoduck reads: upgrade geoduck"
            )
        if version < schema.SCHEMA_VERSION:
            raise SchemaError(
                f"catalog part {part} has schema_version {version}, older than {schema.SCHEMA_VERSION}: "
                f"migrate it with `geoduck migrate {Path(path)}` (geoduck.migrate)"
            )
        problems = schema.column_problems(arrow_schema)
        if problems:
            raise SchemaError(
                f"catalog part {part} {problems[0]}"
                + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")
                + f": it is damaged or not written by geoduck; move it out of {part.parent} "
                "or rebuild the catalog"
            )


def indexed_files(path: str | os.PathLike[str]) -> dict[str, tuple[int | None, int | None]]:
    """``filepath → (file_size, file_mtime in µs since epoch)`` of every indexed row (of one
    consistent listing of the parts, see :func:`each_part`)."""

    def read(part: Path) -> dict[str, tuple[int | None, int | None]]:
        t = pq.read_table(part, columns=[schema.FILEPATH, schema.FILE_SIZE, schema.FILE_MTIME])
        paths = t.column(schema.FILEPATH).to_pylist()
        sizes = t.column(schema.FILE_SIZE).to_pylist()
        mtimes = t.column(schema.FILE_MTIME).cast(pa.int64()).to_pylist()
        return dict(zip(paths, zip(sizes, mtimes, strict=True), strict=True))

    out: dict[str, tuple[int | None, int | None]] = {}
    for files in each_part(path, read).values():
        out.update(files)
    return out


def part_columns(path: str | os.PathLike[str]) -> list[str]:
    """Union of the column names of all parts, in first-seen order."""
    names: dict[str, None] = {}
    for columns in each_part(path, lambda part: pq.read_schema(part).names).values():
        names.update(dict.fromkeys(columns))
    return list(names)


# -- part extents (for skipping whole parts at query time) ---------------------------------------


class PartExtent(NamedTuple):
    """What a part's footer statistics say about all its rows (None: unknown)."""

    xmin: float | None
    """Least ``bbox.xmin`` (likewise ``ymin``); ``xmax``/``ymax``: greatest ``bbox.xmax``/``ymax``."""
    ymin: float | None
    xmax: float | None
    ymax: float | None
    tmin: int | None
    """Least start, µs since the epoch; None also when the part has static (NULL) starts."""
    tmax: int | None
    """Greatest end, µs since the epoch; None also when the part has static (NULL) ends."""
    schema: str
    """The part's Arrow schema (names and types) as text."""


_EXTENTS: dict[tuple[str, int, int], PartExtent] = {}
_EXTENTS_MAX = 65_536


def part_extent(path: str | os.PathLike[str]) -> PartExtent:
    """The :class:`PartExtent` of one part, read from its footer once per (path, size, mtime)."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns)
    cached = _EXTENTS.get(key)
    if cached is not None:
        return cached
    extent = extent_of(pq.read_metadata(path))
    if len(_EXTENTS) >= _EXTENTS_MAX:
        _EXTENTS.clear()
    _EXTENTS[key] = extent
    return extent


def extent_of(md: pq.FileMetaData, groups: Sequence[int] | None = None) -> PartExtent:
    """The :class:`PartExtent` of a part whose footer is ``md`` (from its column statistics), or
    of its row groups ``groups`` only."""
    index = {}
    if md.num_row_groups:
        first = md.row_group(0)
        index = {first.column(j).path_in_schema: j for j in range(md.num_columns)}
    columns = {
        "xmin": f"{schema.BBOX}.xmin",
        "ymin": f"{schema.BBOX}.ymin",
        "xmax": f"{schema.BBOX}.xmax",
        "ymax": f"{schema.BBOX}.ymax",
        "tmin": schema.START,
        "tmax": schema.END,
    }
    bounds: dict[str, Any] = {}  # float bbox fields, int (µs) time fields, None: unknown
    for name, column in columns.items():
        j = index.get(column)
        is_time, low = name[0] == "t", name[1:] == "min"
        value: float | int | None = None
        known = j is not None
        for g in (range(md.num_row_groups) if groups is None else groups) if known else ():
            stats = md.row_group(g).column(j).statistics
            if stats is None or (is_time and (stats.null_count is None or stats.null_count > 0)):
                known = False  # no statistics, or static rows (which match every interval)
                break
            if not stats.has_min_max:
                if stats.null_count == md.row_group(g).num_rows:
                    continue  # an all-null bbox chunk: its rows match no spatial filter
                known = False
                break
            v = epoch_us(stats.min if low else stats.max) if is_time else float(stats.min if low else stats.max)
            if v is None:
                known = False
                break
            value = v if value is None else (min(value, v) if low else max(value, v))
        bounds[name] = value if known else None
    return PartExtent(**bounds, schema=str(md.schema.to_arrow_schema().remove_metadata()))


# -- the part index: every part's extents in one small file ---------------------------------------

INDEX = "_geoduck_index.pqi"
"""The catalog's part index: a Parquet file (not matched by ``*.parquet``, and skipped by readers
of the folder such as pyarrow datasets and geopandas, which ignore names starting with ``_``) of
one row per part file: ``name`` → extents (:class:`PartExtent`), ``rows``, ``bytes``, ``row_groups``,
``schema_version``.

It is a cache of the parts' footers, never the truth: a reader takes the live parts from the
manifest and the listing (:func:`live_listing`) and only their extents from the index; a live part
the index lacks (an older writer, a crash between a part's rename and the index update, a deleted
index) has its footer read (:func:`indexed_extents`), and the index is rewritten. Parts are
immutable under unique names, so an entry never goes wrong, at most unused."""

INDEX_VERSION = b"1"
_KV_INDEX_VERSION = b"geoduck:index_version"

INDEX_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("xmin", pa.float64()),
        pa.field("ymin", pa.float64()),
        pa.field("xmax", pa.float64()),
        pa.field("ymax", pa.float64()),
        pa.field("tmin", pa.int64()),
        pa.field("tmax", pa.int64()),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("row_groups", pa.int64(), nullable=False),
        pa.field("schema_version", pa.int64()),
        pa.field("schema", pa.string(), nullable=False),
    ]
)


class IndexEntry(NamedTuple):
    """One part in the index: its footer extents and size."""

    extent: PartExtent
    rows: int
    bytes: int
    row_groups: int
    schema_version: int | None
    """The part's schema version (:func:`part_schema_version`; None: missing or not one integer)."""


PartIndex = dict[str, IndexEntry]
"""``part name → IndexEntry``."""


def index_entry(path: str | os.PathLike[str]) -> IndexEntry:
    """A part's :class:`IndexEntry`, read from its footer."""
    md = pq.read_metadata(path)
    try:
        version: int | None = part_schema_version(Path(path), md)
    except SchemaError:
        version = None
    return IndexEntry(extent_of(md), md.num_rows, os.path.getsize(path), md.num_row_groups, version)


def index_table(index: PartIndex) -> pa.Table:
    """The part index as the Arrow table stored in :data:`INDEX` (names sorted)."""
    names = sorted(index)
    entries = [index[n] for n in names]
    cols: dict[str, list] = {"name": names}
    for i, field in enumerate(PartExtent._fields[:6]):
        cols[field] = [e.extent[i] for e in entries]
    cols["rows"] = [e.rows for e in entries]
    cols["bytes"] = [e.bytes for e in entries]
    cols["row_groups"] = [e.row_groups for e in entries]
    cols["schema_version"] = [e.schema_version for e in entries]
    cols["schema"] = [e.extent.schema for e in entries]
    return pa.table(cols, schema=INDEX_SCHEMA.with_metadata({_KV_INDEX_VERSION: INDEX_VERSION}))


def parse_index(table: pa.Table) -> PartIndex:
    """The :class:`PartIndex` held by an index table (raises ``ValueError`` when it is not one)."""
    meta = table.schema.metadata or {}
    if meta.get(_KV_INDEX_VERSION) != INDEX_VERSION or not set(INDEX_SCHEMA.names) <= set(table.column_names):
        raise SchemaError(f"not a geoduck part index of version {INDEX_VERSION.decode()}")
    cols = {name: table.column(name).to_pylist() for name in INDEX_SCHEMA.names}
    schemas: dict[str, str] = {}  # one string object per schema: the compiler compares them by hash
    out: PartIndex = {}
    for i, name in enumerate(cols["name"]):
        text = schemas.setdefault(cols["schema"][i], cols["schema"][i])
        extent = PartExtent(
            cols["xmin"][i], cols["ymin"][i], cols["xmax"][i], cols["ymax"][i], cols["tmin"][i], cols["tmax"][i], text
        )
        out[name] = IndexEntry(
            extent, cols["rows"][i], cols["bytes"][i], cols["row_groups"][i], cols["schema_version"][i]
        )
    return out


_INDEXES: dict[str, tuple[tuple[int, int, int], PartIndex]] = {}


def read_index(path: str | os.PathLike[str]) -> PartIndex | None:
    """The part index of the local catalog at ``path``, or None when it is missing or unreadable
    (then it is rebuilt, see :func:`indexed_extents`). Parsed once per (size, mtime, inode)."""
    target = os.path.join(os.fspath(path), INDEX)
    try:
        st = os.stat(target)
    except OSError:
        return None
    key = (st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _INDEXES.get(target)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        index = parse_index(pq.ParquetFile(target).read())  # (read_table would import pyarrow.dataset, pandas)
    except (OSError, ValueError, pa.ArrowException) as exc:
        log.warning("ignoring the unreadable part index %s (%s); it is rebuilt at the next write", target, exc)
        return None
    if len(_INDEXES) > 64:
        _INDEXES.clear()
    _INDEXES[target] = (key, index)
    return index


def update_index(
    path: str | os.PathLike[str], known: PartIndex | None = None, *, blocking: bool = True
) -> PartIndex | None:
    """Rewrite the part index of the local catalog at ``path`` atomically (temp file + rename)
    with an entry for every committed part file now listed, plus the entries ``known`` (parts
    about to be renamed into place); entries of the current index are reused, the other parts'
    footers read. Serialized by a ``flock`` on the folder (``blocking=False``: return None when it is held, or when
    the folder is not writable). Returns the index written."""
    root = os.fspath(path)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # the lock: the folder itself (no lock file)
    except OSError:
        if blocking:
            raise
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError:
            return None
        old = read_index(root) or {}
        index: PartIndex = dict(known or {})
        for name in part_names(root):
            if name in index:
                continue
            entry = old.get(name)
            if entry is None:
                try:
                    entry = index_entry(os.path.join(root, name))
                except FileNotFoundError:
                    continue  # deleted since listed (a compaction finished)
                except (OSError, pa.ArrowException) as exc:
                    log.warning("part %s is unreadable (%s): left out of the part index", name, exc)
                    continue
            index[name] = entry
        tmp = os.path.join(root, f".index-{uuid.uuid4().hex[:12]}.tmp")
        try:
            with owned_temp(Path(tmp)) as fh:  # (no fsync: a torn index is ignored and rebuilt)
                pq.write_table(index_table(index), fh, compression="snappy")
                fh.flush()
                os.replace(tmp, os.path.join(root, INDEX))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return index
    finally:
        os.close(fd)


def refresh_index(path: str | os.PathLike[str], known: PartIndex | None = None) -> None:
    """:func:`update_index` after parts were committed or deleted, where failing must not fail
    the write: an index left stale (disk full …) is detected and rewritten by the next reader."""
    try:
        update_index(path, known)
    except (OSError, pa.ArrowException) as exc:
        log.warning("could not update the part index of %s (%s); readers rebuild it", path, exc)


def indexed_extents(root: str, names: Sequence[str]) -> tuple[PartExtent, ...]:
    """The extents of the parts ``names`` of the local catalog ``root``: from the part index,
    else from the part's footer (then the index, missing or stale, is rewritten when the folder
    is writable and no other writer holds it)."""
    index = read_index(root)
    if index is not None:
        try:
            return tuple(index[name].extent for name in names)
        except KeyError:
            pass
    index = dict(index or {})
    missing = {name: index_entry(os.path.join(root, name)) for name in names if name not in index}
    index.update(missing)
    log.info("part index of %s missing or stale (%d parts not in it): rewriting it", root, len(missing))
    try:
        update_index(root, missing, blocking=False)
    except OSError as exc:  # a read-only catalog: the footers are read each time
        log.debug("cannot rewrite the part index of %s: %s", root, exc)
    return tuple(index[name].extent for name in names)
