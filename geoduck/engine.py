"""DuckDB connections with the spatial extension loaded offline, and geoduck's SQL macros.

Loading order for the spatial extension: an extension DuckDB already has installed
(``LOAD spatial``), else the binary shipped by the ``duckdb-extension-spatial`` pip package
(``LOAD '<path>'``), else ``INSTALL spatial`` (needs the network; skipped when the environment
variable ``GEODUCK_OFFLINE=1``). The connection's time zone is UTC.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from functools import cache
from pathlib import Path

import duckdb

from .errors import ExtensionError

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def spatial_extension_path() -> Path | None:
    """Path of the spatial extension binary shipped by ``duckdb-extension-spatial``, if it fits."""
    try:
        import duckdb_extension_spatial
    except ImportError:
        return None
    root = Path(duckdb_extension_spatial.__file__).parent / "extensions"
    candidate = root / f"v{duckdb.__version__}" / "spatial.duckdb_extension"
    return candidate if candidate.is_file() else None


@cache
def macros_path() -> Path:
    """``geoduck.sql``: packaged inside the wheel, or the repository's top-level ``sql/`` folder."""
    for candidate in (_PACKAGE_DIR / "sql" / "geoduck.sql", _PACKAGE_DIR.parent / "sql" / "geoduck.sql"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("geoduck.sql not found next to the geoduck package (broken install?)")


def load_spatial(con: duckdb.DuckDBPyConnection) -> str:
    """Load the spatial extension into ``con``; returns how it was loaded."""
    attempts: list[str] = []
    try:
        con.execute("LOAD spatial")
        return "installed"
    except duckdb.Error as exc:
        attempts.append(f"LOAD spatial: {str(exc).splitlines()[0]}")
    path = spatial_extension_path()
    if path is not None:
        try:
            con.execute(f"LOAD '{path.as_posix()}'")
            return "package"
        except duckdb.Error as exc:
            attempts.append(f"LOAD '{path}': {str(exc).splitlines()[0]}")
    else:
        attempts.append(f"duckdb-extension-spatial=={duckdb.__version__} is not installed")
    if os.environ.get("GEODUCK_OFFLINE", "") not in ("1", "true", "yes"):
        try:
            con.execute("INSTALL spatial")
            con.execute("LOAD spatial")
            return "downloaded"
        except duckdb.Error as exc:
            attempts.append(f"INSTALL spatial: {str(exc).splitlines()[0]}")
    raise ExtensionError(
        "could not load the DuckDB spatial extension; install the binary matching DuckDB "
        f"{duckdb.__version__} with `pip install duckdb-extension-spatial=={duckdb.__version__}`. "
        "Tried: " + "; ".join(attempts)
    )


def connect(*, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with spatial and the geoduck macros loaded, TimeZone UTC."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    load_spatial(con)
    con.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(macros_path().read_text())
    return con


_shared: dict[int, duckdb.DuckDBPyConnection] = {}
_lock = threading.Lock()


def shared_connection() -> duckdb.DuckDBPyConnection:
    """A per-process connection (re-created after ``fork``); use ``.cursor()`` per thread."""
    pid = os.getpid()
    with _lock:
        con = _shared.get(pid)
        if con is None:
            _shared.clear()
            con = _shared[pid] = connect()
        return con


def cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on the shared connection: safe to use from the calling thread."""
    return shared_connection().cursor()


_sandboxes: dict[tuple[int, tuple[str, ...]], duckdb.DuckDBPyConnection] = {}
_MAX_SANDBOXES = 8


def sandboxed_cursor(directories: tuple[str, ...]) -> duckdb.DuckDBPyConnection:
    """A cursor on a locked connection that can read only files under ``directories``.

    For user SQL: ``enable_external_access = false`` with ``allowed_directories`` set, then
    ``lock_configuration``, so ``COPY … TO``, ``ATTACH``, ``INSTALL``/``LOAD`` and reading files
    outside the catalogs are refused by DuckDB itself. Connections are cached per directory set.
    """
    # each directory as itself and as spelled in a glob (store.part_glob escapes ``*?[``)
    dirs = {v.rstrip("/") + "/" for d in directories for v in (d, glob.escape(d))}
    key = (os.getpid(), tuple(sorted(dirs)))
    with _lock:
        con = _sandboxes.get(key)
        if con is None:
            if len(_sandboxes) >= _MAX_SANDBOXES:
                _sandboxes.pop(next(iter(_sandboxes))).close()
            con = connect()
            con.execute("SET allowed_directories = $dirs", {"dirs": list(key[1])})
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            _sandboxes[key] = con
        return con.cursor()
