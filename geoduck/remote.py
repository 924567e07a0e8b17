"""Catalogs at URIs: ``s3://``, ``gs://``, ``https://`` … (``file://`` URIs are local paths, see
:func:`geoduck.store.local_path`).

Rows are read by DuckDB through its httpfs extension (:func:`geoduck.engine.use_httpfs`). Parts
are listed with fsspec when it and the protocol's package (``s3fs``, ``gcsfs``, ``aiohttp`` …) are
installed, else with DuckDB's ``glob`` (object stores only: DuckDB cannot list a plain HTTP server).
Remote catalogs are read-only here: builds, compaction and migration write local directories.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import logging
import os
import posixpath
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from . import compiler, engine, schema, store
from .errors import CatalogNotFoundError, SchemaError, StorageError
from .store import MANIFEST, PART_GLOB

if TYPE_CHECKING:
    from .storage import Listing

HTTP_SCHEMES = frozenset({"http", "https"})

log = logging.getLogger(__name__)


def is_uri(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://…`` locations other than ``file://``."""
    text = os.fspath(path)
    return "://" in text and not text.lower().startswith("file:")


def scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


def join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def _filesystem(uri: str) -> Any | None:
    """The fsspec filesystem of ``uri``, or None when fsspec or the protocol's package is missing."""
    try:
        import fsspec

        return fsspec.core.url_to_fs(uri)[0]
    except (ImportError, ValueError):
        return None


def _get(fs: Any, uri: str) -> bytes:
    """The whole object at ``uri`` in one GET (s3fs would first HEAD it for its size)."""
    kwargs = {"max_concurrency": 1} if hasattr(fs, "max_concurrency") else {}
    return fs.cat_file(uri, **kwargs)


def list_files(root: str, pattern: str) -> list[str]:
    """URIs of the files directly in ``root`` matching the glob ``pattern``, sorted."""
    entries = _detailed_listing(root)
    if entries is not None:
        return sorted(join(root, name) for name in entries if fnmatch.fnmatchcase(name, pattern))
    if scheme(root) in HTTP_SCHEMES:
        raise CatalogNotFoundError(
            f"cannot list the parts of {root!r}: DuckDB cannot list an HTTP server; install fsspec and "
            "aiohttp (`pip install fsspec aiohttp`) for a server with directory listings, or use an "
            "object-store URI (s3://, gs://)"
        )
    engine.use_httpfs()
    target = join(root, pattern)
    try:
        rows = engine.cursor().execute(compiler.GLOB_FILES_SQL, [target]).fetchall()
    except duckdb.Error as exc:
        raise CatalogNotFoundError(f"cannot list catalog {root!r}: {str(exc).splitlines()[0]}") from None
    return sorted(r[0] for r in rows)


def list_parts(root: str) -> list[str]:
    """Committed part files of the catalog at ``root``, oldest first (names start with a timestamp)."""
    return [join(root, name) for name in _part_names(posixpath.basename(p) for p in list_files(root, PART_GLOB))]


def _content_md5(info: dict) -> str | None:
    """The MD5 (hex) of an object's bytes as a detailed fsspec listing states it: S3's ETag of a
    single-part upload, GCS's ``md5Hash``; None when the listing does not state it (multipart
    ETags, HTTP listings)."""
    etag = info.get("ETag") or info.get("etag")
    if isinstance(etag, str):
        text = etag.strip('"').lower()
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
            return text
    md5 = info.get("md5Hash")
    if isinstance(md5, str):
        try:
            return base64.b64decode(md5).hex()
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class _Known:
    """The content of a small catalog file (manifest, part index) read earlier in this process,
    with the MD5 of the bytes it was parsed from (None: the file did not exist)."""

    md5: str | None
    value: Any


_KNOWN: dict[str, _Known] = {}
"""URI → what :func:`read_manifest` / :func:`read_index` last read there, when a listing right
after the read confirmed those bytes (or the absence) by MD5 (:func:`live_listing`)."""
_TAGS: dict[str, dict[str, str | None]] = {}
"""Root → ``name → content MD5`` of the catalog's files in its latest detailed listing."""
_KNOWN_LOCK = threading.Lock()


def _detailed_listing(root: str) -> dict[str, dict] | None:
    """``name → fsspec info`` of the files directly in ``root`` (one LIST per 1,000 objects),
    or None without fsspec (the caller then lists with DuckDB)."""
    fs = _filesystem(root)
    if fs is None:
        return None
    try:
        fs.invalidate_cache(root)  # fsspec caches listings: a reader must see parts as they are now
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        return {}
    except Exception as exc:  # noqa: BLE001 - auth, network: reported with the location
        raise CatalogNotFoundError(f"cannot list catalog {root!r}: {type(exc).__name__}: {exc}") from None
    out = {}
    for info in entries:
        name = posixpath.basename(str(info.get("name", "")).rstrip("/"))
        if name and info.get("type", "file") == "file":
            out[name] = info
    with _KNOWN_LOCK:
        if len(_TAGS) > 256:
            _TAGS.clear()
        _TAGS[root] = {name: _content_md5(info) for name, info in out.items()}
    return out


def _still_known(uri: str, md5: str | None, listed: bool) -> _Known | None:
    """What was read at ``uri`` earlier, if the latest listing shows the same bytes there (the
    same MD5), or shows no file where none was."""
    known = _KNOWN.get(uri)
    if known is None:
        return None
    if known.md5 is None:
        return known if not listed else None
    return known if listed and md5 == known.md5 else None


def _remember(uri: str, data: bytes | None, value: Any, listed_md5: str | None, listed: bool) -> None:
    """Keep what was read at ``uri`` (``data``: its bytes, None when missing) if the listing made
    right after the read shows exactly it."""
    if data is None:
        ok = not listed
        md5 = None
    else:
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        ok = listed and md5 == listed_md5
    with _KNOWN_LOCK:
        if ok:
            if len(_KNOWN) > 256:
                _KNOWN.clear()
            _KNOWN[uri] = _Known(md5, value)
        else:
            _KNOWN.pop(uri, None)


def read_manifest(root: str) -> dict:
    """The catalog manifest (see :func:`geoduck.store.read_manifest`); empty when there is none."""
    return _read_manifest(root)[0]


def _read_manifest(root: str) -> tuple[dict, bytes | None]:
    """(the manifest, its bytes; None when there is none or it was read through DuckDB)."""
    empty: dict = {"generation": 0, "replacements": []}
    uri = join(root, MANIFEST)
    fs = _filesystem(root)
    if fs is None and not list_files(root, MANIFEST[:-1] + "[" + MANIFEST[-1] + "]"):  # a glob: never fails
        return empty, None
    data = None
    try:
        if fs is not None:
            fs.invalidate_cache(root)  # (a listing cached by fsspec may say it does not exist)
            try:
                data = _get(fs, uri)  # one GET (a missing manifest: one 404)
            except FileNotFoundError:
                return empty, None
            text = data.decode()
        else:
            row = engine.cursor().execute(compiler.READ_TEXT_SQL, [uri]).fetchone()
            if row is None:
                raise StorageError("read_text returned no rows")  # reported below as SchemaError
            text = row[0]
        manifest = json.loads(text)
    except (OSError, ValueError, duckdb.Error) as exc:
        raise SchemaError(f"catalog manifest {uri} is unreadable: {exc}") from None
    return store.check_manifest(manifest, uri), data


def live_listing(root: str) -> tuple[list[str], bool]:
    """(the live parts' URIs, whether a replacement is pending): the manifest is read before the
    parts are listed and judged by the same rule as local catalogs
    (:func:`geoduck.store.live_names`), so the new parts of an unfinished (or crashed) compaction
    stay hidden until all of them are in place, and the parts they replace after that.

    Where the listing states each object's MD5 (S3, GCS through fsspec), a manifest read by an
    earlier call is not read again while the listing shows the same bytes (or still none): it was
    read before this listing and has not changed since, which is all the rule needs. A warm
    query of an unchanged catalog then costs one LIST here, not a GET and a LIST."""
    uri = join(root, MANIFEST)
    if uri in _KNOWN:
        entries = _detailed_listing(root)
        if entries is not None:
            known = _still_known(uri, _content_md5(entries.get(MANIFEST, {})), MANIFEST in entries)
            if known is not None:
                return _judge(root, _part_names(entries), known.value)
    manifest, data = _read_manifest(root)
    entries = _detailed_listing(root)
    if entries is None:  # no fsspec: DuckDB's glob
        return _judge(root, [posixpath.basename(p) for p in list_parts(root)], manifest)
    _remember(uri, data, manifest, _content_md5(entries.get(MANIFEST, {})), MANIFEST in entries)
    return _judge(root, _part_names(entries), manifest)


def _part_names(names: Iterable[str]) -> list[str]:
    """The part files among file ``names``, sorted (oldest first: names start with a timestamp)."""
    return sorted(n for n in names if fnmatch.fnmatchcase(n, PART_GLOB) and not n.startswith("."))


def _judge(root: str, names: list[str], manifest: dict) -> tuple[list[str], bool]:
    listed = set(names)
    live, pending = store.live_names(names, manifest, listed.__contains__)
    return [join(root, name) for name in live], pending


def live_parts(root: str) -> list[str]:
    """The parts a reader sees (see :func:`live_listing`)."""
    return live_listing(root)[0]


def read_index(root: str) -> store.PartIndex | None:
    """The catalog's part index (:data:`geoduck.store.INDEX`, one GET), or None when it is
    missing or unreadable. Not read again while the catalog's latest listing
    (:func:`live_listing`) shows the bytes read before (same MD5)."""
    uri = join(root, store.INDEX)
    tags = _TAGS.get(root)
    if tags is not None and store.INDEX in tags:  # (stale only if it changed since: it only prunes)
        known = _KNOWN.get(uri)
        if known is not None and known.md5 is not None and known.md5 == tags[store.INDEX]:
            return known.value
    fs = _filesystem(root)
    try:
        if fs is not None:
            fs.invalidate_cache(root)  # (a listing cached by fsspec may say it does not exist)
            data = _get(fs, uri)
        else:
            row = engine.cursor().execute(compiler.READ_BLOB_SQL, [uri]).fetchone()
            if row is None:
                return None
            data = row[0]
        index = store.parse_index(pq.ParquetFile(pa.BufferReader(data)).read())
        if tags is not None and index is not None:
            _remember(uri, data, index, tags.get(store.INDEX), store.INDEX in tags)
        return index
    except FileNotFoundError:
        return None
    except (OSError, ValueError, duckdb.Error, pa.ArrowException) as exc:
        log.warning("ignoring the part index %s: %s", uri, exc)
        return None
    except Exception as exc:  # noqa: BLE001 - auth, network: parts are then read unpruned
        log.warning("cannot read the part index %s: %s: %s", uri, type(exc).__name__, exc)
        return None


class RemoteStorage:
    """Catalogs at URIs (:class:`geoduck.storage.Storage`): parts listed with fsspec or DuckDB's
    ``glob``, read by DuckDB's httpfs (loaded here, when a scan is bound); part extents from the
    catalog's part index (one GET), never from the parts' footers."""

    def listing(self, root: str) -> Listing:
        """The live parts, listed (see :func:`live_listing`: the manifest read first, one GET,
        then one LIST per 1,000 parts; an unchanged manifest is not read again); without a
        pending replacement, where DuckDB can glob (not plain HTTP), also the part glob (read
        when no part is skipped)."""
        from .storage import Listing

        engine.use_httpfs()
        paths, pending = live_listing(root)
        glob = join(root, PART_GLOB) if not pending and scheme(root) not in HTTP_SCHEMES else None
        return Listing(root, tuple(paths), pending, glob)

    def extents(self, paths: Sequence[str]) -> tuple[store.PartExtent, ...] | None:
        """From the part index when it holds every part of ``paths``, else None (no part is
        skipped: reading each footer would cost a request per part)."""
        roots = {posixpath.dirname(p) for p in paths}
        if len(roots) != 1:
            return None
        index = read_index(roots.pop())
        if index is None:
            return None
        try:
            return tuple(index[posixpath.basename(p)].extent for p in paths)
        except KeyError:
            log.info("the part index of %s lacks parts: reading all parts", posixpath.dirname(paths[0]))
            return None


def open_root(location: str) -> str:
    """Check the catalog at the URI ``location`` (it has parts, of a readable schema version) and
    return its root as spelled for scans (no trailing slash).

    Raises :class:`CatalogNotFoundError`, :class:`SchemaError`, or :class:`ExtensionError` when
    DuckDB's httpfs extension is missing.
    """
    root = location.rstrip("/")
    engine.use_httpfs()  # fails early, with the fix, when httpfs is missing
    parts = live_parts(root)
    if not parts:
        raise CatalogNotFoundError(f"catalog {location!r} holds no *.parquet parts (or does not exist)")
    index = read_index(root)  # the versions of every part in one GET, when the index has them all
    if index is not None and all(posixpath.basename(p) in index for p in parts):
        versions = {p: index[posixpath.basename(p)].schema_version for p in parts}
    else:
        versions = _footer_versions(location, parts)
    missing = [p for p in parts if versions.get(p) is None]
    if missing:  # parts written by other tools: the schema_version column is the contract
        versions.update(_column_versions(location, missing))
    for part in parts:
        version = versions[part]
        if version != schema.SCHEMA_VERSION:
            raise SchemaError(
                f"catalog part {part} has schema_version {version}; this geoduck reads "
                f"{schema.SCHEMA_VERSION} (migrate a local copy with `geoduck migrate`)"
            )
    return root


def _footer_versions(location: str, parts: list[str]) -> dict[str, int | None]:
    """``part → geoduck:schema_version`` read from every part's footer (a request or two each)."""
    try:
        con = engine.cursor()
        con.execute("SET force_download = false")  # footers only: ranged reads (see engine.WHOLE_REMOTE_PARTS)
        rows = con.execute(
            compiler.FOOTER_KV_SQL,
            [parts, schema.KV_SCHEMA_VERSION.decode()],
        ).fetchall()
    except duckdb.Error as exc:
        raise SchemaError(f"cannot read the part footers of {location!r}: {str(exc).splitlines()[0]}") from None
    out: dict[str, int | None] = {}
    for name, value in rows:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()):
            raise SchemaError(
                f"catalog part {name} has {schema.KV_SCHEMA_VERSION.decode()} {text!r}, not a non-negative "
                "integer: the part is damaged or not written by geoduck; remove it from the catalog"
            )
        out[name] = int(text)
    return out


def _column_versions(location: str, parts: list[str]) -> dict[str, int]:
    """``part → the one value of its schema_version column`` for parts without geoduck's
    key-value entry (written by other tools), as :func:`geoduck.store.part_schema_version` reads
    local parts: from the row-group statistics in the footers (a request or two each), else from
    the column itself. Raises :class:`SchemaError` naming the part when the column is missing,
    not an integer, or holds other than one value."""
    fix = f"write the column (int32, e.g. {schema.SCHEMA_VERSION} in every row) or remove the part"
    try:
        con = engine.cursor()
        con.execute("SET force_download = false")  # footers only: ranged reads
        rows = con.execute(
            "SELECT file_name, type, coalesce(stats_min_value, stats_min), coalesce(stats_max_value, stats_max), "
            "stats_null_count FROM parquet_metadata(?) WHERE path_in_schema = ?",
            [parts, schema.VERSION],
        ).fetchall()
    except duckdb.Error as exc:
        raise SchemaError(f"cannot read the part footers of {location!r}: {str(exc).splitlines()[0]}") from None
    found: dict[str, list[tuple[str, str | None, str | None, int | None]]] = {}
    for name, physical, lo, hi, nulls in rows:
        found.setdefault(name, []).append((physical, lo, hi, nulls))
    out: dict[str, int] = {}
    for part in parts:
        groups = found.get(part)
        if not groups:
            raise SchemaError(
                f"catalog part {part} has neither a {schema.VERSION!r} column nor "
                f"{schema.KV_SCHEMA_VERSION.decode()} metadata: {fix}"
            )
        if groups[0][0] not in ("INT32", "INT64"):
            raise SchemaError(f"catalog part {part} column {schema.VERSION!r} is {groups[0][0]}, not an integer: {fix}")
        values: set[int | None] = set()
        if all(lo is not None and hi is not None and not nulls for _, lo, hi, nulls in groups):
            for _, lo, hi, _ in groups:
                values.update((int(str(lo)), int(str(hi))))
        else:  # no statistics (or nulls): read the column
            try:
                got = con.execute(f"SELECT DISTINCT {schema.VERSION} FROM read_parquet(?)", [part]).fetchall()
            except duckdb.Error as exc:
                raise SchemaError(f"cannot read catalog part {part}: {str(exc).splitlines()[0]}") from None
            values = {r[0] for r in got}
        if len(values) != 1 or None in values:
            shown = sorted(values, key=str)
            raise SchemaError(
                f"catalog part {part} has schema_version values {shown}, not one integer for the whole part: {fix}"
            )
        (value,) = values
        out[part] = int(value)  # type: ignore[arg-type]
    return out
