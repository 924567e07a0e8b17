"""The sandbox for user SQL (``Catalog.sql``, ``geoduck.sql``, ``geoduck sql``).

Defence in depth, after :func:`geoduck.compiler.bind_user_sql` has checked the statement:

- **Read-only files.** The sandbox's DuckDB connection sees the local catalog folders only
  through :class:`~geoduck.readonly_fs.CatalogFolders`, an fsspec file system that opens their part files for
  reading and refuses every write, under opaque names (``geoduckro://c0/part-….parquet``).
  External access is off and only those names are allowed, so ``COPY … TO``, ``EXPORT``,
  ``ATTACH`` and reading any other file are refused by DuckDB itself even if SQL got past the
  parser check, and no setting holds a local path. There is no temp directory (nothing to spill
  to, nowhere to write); the configuration is locked.
- **Bounded.** A query runs with a timeout, can be interrupted (Ctrl-C), and its connection
  has a memory limit and a thread count (:class:`SQLLimits`); a timeout, an interrupt or
  running out of memory is an :class:`~geoduck.errors.SQLError`.

Catalogs at URIs (``s3://`` …) are read through httpfs with their URI allowed as before: remote
catalogs are read-only for geoduck, but the sandbox cannot stop writes that the S3 credentials in
the environment allow, so give user SQL read-only credentials.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from . import engine, store
from .errors import ArgumentError, SQLError

log = logging.getLogger(__name__)

PROTOCOL = "geoduckro"
"""fsspec protocol under which the sandbox sees the catalog folders (read-only)."""

DEFAULT_TIMEOUT_S = 300.0
"""Seconds a user query may run by default (``timeout=None`` or CLI ``--timeout 0``: no limit)."""


def _default_memory_limit() -> str:
    """A quarter of the physical memory (DuckDB's own default is 80 %), at least 256 MiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 4 << 30
    return f"{max(total // 4, 256 << 20) >> 20}MiB"


DEFAULT_MEMORY_LIMIT = _default_memory_limit()
DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def _memory_bytes(value: str) -> int | None:
    text = value.strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :] or "b"
    try:
        amount = float(number)
    except ValueError:
        return None
    return int(amount * _UNITS[unit]) if unit in _UNITS and amount > 0 else None


@dataclass(frozen=True)
class SQLLimits:
    """Bounds of user SQL: ``timeout`` in seconds (None: none), ``memory_limit`` of the sandbox
    connection as DuckDB spells it (``"2GB"``, ``"512MiB"``), ``threads`` it may use."""

    timeout: float | None = DEFAULT_TIMEOUT_S
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    threads: int = DEFAULT_THREADS

    def __post_init__(self) -> None:
        t = self.timeout
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or t == float("inf")):
            raise ArgumentError(f"timeout={t!r} must be a positive number of seconds (or None: no timeout)")
        if not isinstance(self.memory_limit, str) or _memory_bytes(self.memory_limit) is None:
            raise ArgumentError(f"memory_limit={self.memory_limit!r} must be a size such as '2GB' or '512MiB'")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ArgumentError(f"threads={self.threads!r} must be a positive integer")


def limits(timeout: Any = DEFAULT_TIMEOUT_S, memory_limit: Any = None, threads: Any = None) -> SQLLimits:
    """:class:`SQLLimits` from user arguments (None memory/threads: the defaults)."""
    return SQLLimits(
        timeout,
        DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit,
        DEFAULT_THREADS if threads is None else threads,
    )


@dataclass(frozen=True)
class Sandbox:
    """A locked connection and the opaque names of its local catalog folders."""

    connection: duckdb.DuckDBPyConnection
    aliases: tuple[tuple[str, str], ...]
    """(folder as scans spell it, alias) pairs, the glob-escaped spelling first when it differs."""

    def scan_path(self, path: str) -> str:
        """``path`` (a part, or a folder's glob) as the sandbox reads it; other paths unchanged."""
        for folder, alias in self.aliases:
            if path.startswith(folder):
                return f"{PROTOCOL}://{alias}/{path[len(folder) :]}"
        return path


_sandboxes: dict[tuple, Sandbox] = {}
_lock = threading.Lock()
_MAX_SANDBOXES = 8


def sandbox(directories: tuple[str, ...], bounds: SQLLimits = SQLLimits()) -> Sandbox:
    """The (cached) sandbox reading only the catalogs at ``directories`` (local folders or URIs)."""
    local = sorted({os.path.realpath(d) for d in directories if "://" not in d})
    remote = sorted({d.rstrip("/") + "/" for d in directories if "://" in d})
    key = (os.getpid(), tuple(sorted(set(directories))), bounds.memory_limit, bounds.threads)
    with _lock:
        box = _sandboxes.get(key)
        if box is not None:
            return box
        if len(_sandboxes) >= _MAX_SANDBOXES:
            _sandboxes.pop(next(iter(_sandboxes))).connection.close()
        alias_of = {root: f"c{i}" for i, root in enumerate(local)}
        folders = {alias: root for root, alias in alias_of.items()}
        con = engine.connect(threads=bounds.threads)
        from .readonly_fs import CatalogFolders  # (fsspec: imported only when user SQL runs)

        con.register_filesystem(CatalogFolders(folders))
        for statement in (
            "SET python_enable_replacements = false",
            "SET allow_persistent_secrets = false",
            "SET temp_directory = ''",
            "SET secret_directory = ''",
            f"SET memory_limit = '{_memory_bytes(bounds.memory_limit)}B'",
        ):
            con.execute(statement)
        if remote:  # (after the secret settings: its S3 secret starts the secret manager)
            engine.load_httpfs(con)
        allowed = [f"{PROTOCOL}://{alias}/" for alias in folders] + remote
        con.execute("SET allowed_directories = $dirs", {"dirs": allowed})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        # every spelling of each folder that compiled scans use (plain and glob-escaped, given
        # and resolved), longest first so a folder inside another maps to its own alias
        spellings = {}
        for given in directories:
            if "://" in given:
                continue
            resolved = os.path.realpath(given)
            alias = alias_of[resolved]
            for spelling in (given, resolved):
                for variant in (spelling, glob.escape(spelling), store.duckdb_path(spelling)):
                    spellings[variant.rstrip("/") + "/"] = alias
        aliases = tuple(sorted(spellings.items(), key=lambda kv: -len(kv[0])))
        box = _sandboxes[key] = Sandbox(con, aliases)
        return box


def close_all() -> None:
    """Close every cached sandbox's connection (the next :func:`sandbox` call opens a new one)."""
    with _lock:
        for box in _sandboxes.values():
            box.connection.close()
        _sandboxes.clear()


POLL_S = 0.05
"""How often the caller's thread checks for the deadline (and lets Ctrl-C in)."""


def execute(box: Sandbox, sql: str, timeout: float | None) -> pa.Table:
    """Run ``sql`` on ``box`` and return its rows, within ``timeout`` seconds.

    The query runs in a worker thread while the calling thread waits, so Ctrl-C
    (``KeyboardInterrupt``) and the deadline both interrupt DuckDB at once; either is raised as
    :class:`SQLError`, as is any DuckDB error."""
    cur = engine.register_tables(box.connection.cursor())  # user tables joined to a catalog
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append(cur.execute(sql).to_arrow_table())
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=work, name="geoduck-user-sql", daemon=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    reason = None
    try:
        worker.start()
        log.info("user SQL running (timeout: %s)", "none" if timeout is None else f"{timeout:g} s")
        while worker.is_alive():
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if left <= 0:
                reason = f"timed out after {timeout:g} s (raise timeout=, CLI --timeout)"
                break
            worker.join(left)
    except KeyboardInterrupt:
        reason = "interrupted (Ctrl-C)"
    try:
        if reason is not None:
            cur.interrupt()
            worker.join(5.0)
            raise SQLError(f"query {reason}")
    finally:
        if not worker.is_alive():
            cur.close()
    result = outcome[0]
    if isinstance(result, duckdb.InterruptException):
        raise SQLError("query interrupted")
    if isinstance(result, duckdb.OutOfMemoryException):
        raise SQLError(
            f"query ran out of memory: {str(result).splitlines()[0]} (raise memory_limit=, CLI --memory-limit)"
        )
    if isinstance(result, duckdb.Error):  # (chained: a caller may re-run a read whose parts were replaced)
        raise SQLError(f"query failed: {str(result).splitlines()[0]}") from result
    if isinstance(result, BaseException):
        raise result
    return result
