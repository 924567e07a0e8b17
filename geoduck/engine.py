"""DuckDB connections with the spatial extension loaded offline, and geoduck's SQL macros.

Loading order for the spatial extension: an extension DuckDB already has installed
(``LOAD spatial``), else the binary shipped by the ``duckdb-extension-spatial`` pip package
(``LOAD '<path>'``), else ``INSTALL spatial`` (needs the network; skipped when the environment
variable ``GEODUCK_OFFLINE=1``). The connection's time zone is UTC.

Catalogs at URIs (``s3://``, ``gs://``, ``https://`` …) need the ``httpfs`` extension, loaded the
same way (``duckdb-extension-httpfs`` pip package) when such a catalog is first compiled. S3
credentials and endpoint come from the standard AWS environment variables (see :func:`s3_secret_sql`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa

from .errors import ExtensionError, InstallError

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
    raise InstallError("geoduck.sql not found next to the geoduck package (broken install?)")


@cache
def httpfs_extension_path() -> Path | None:
    """Path of the httpfs extension binary shipped by ``duckdb-extension-httpfs``, if it fits."""
    try:
        import duckdb_extension_httpfs
    except ImportError:
        return None
    root = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    candidate = root / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    return candidate if candidate.is_file() else None


def load_httpfs(con: duckdb.DuckDBPyConnection) -> str:
    """Load the httpfs extension into ``con`` (and an S3 secret from the environment, if any);
    returns how it was loaded. Raises :class:`ExtensionError` saying what to install."""
    attempts: list[str] = []
    how = None
    try:
        con.execute("LOAD httpfs")
        how = "installed"
    except duckdb.Error as exc:
        attempts.append(f"LOAD httpfs: {str(exc).splitlines()[0]}")
    path = httpfs_extension_path()
    if how is None and path is not None:
        try:
            con.execute(f"LOAD '{path.as_posix()}'")
            how = "package"
        except duckdb.Error as exc:
            attempts.append(f"LOAD '{path}': {str(exc).splitlines()[0]}")
    elif how is None:
        attempts.append(f"duckdb-extension-httpfs=={duckdb.__version__} is not installed")
    if how is None and os.environ.get("GEODUCK_OFFLINE", "") not in ("1", "true", "yes"):
        try:
            con.execute("INSTALL httpfs")
            con.execute("LOAD httpfs")
            how = "downloaded"
        except duckdb.Error as exc:
            attempts.append(f"INSTALL httpfs: {str(exc).splitlines()[0]}")
    if how is None:
        raise ExtensionError(
            "reading a catalog at a URI (s3://, gs://, https://) needs DuckDB's httpfs extension, which "
            f"could not be loaded: run `INSTALL httpfs` once in DuckDB {duckdb.__version__} with network "
            f"access, or `pip install duckdb-extension-httpfs=={duckdb.__version__}`. Tried: " + "; ".join(attempts)
        )
    secret = s3_secret_sql()
    if secret is not None:
        con.execute(secret)
    return how


def s3_secret_sql() -> str | None:
    """``CREATE SECRET`` for S3 from the standard AWS environment variables:
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (an S3-compatible
    server such as MinIO: path-style URLs, TLS as its scheme says), the ones botocore/s3fs read.
    None when none of them is set (DuckDB's defaults apply)."""
    env = os.environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not (endpoint or key):
        return None
    options = ["TYPE s3"]
    values = {
        "KEY_ID": key,
        "SECRET": secret,
        "SESSION_TOKEN": env.get("AWS_SESSION_TOKEN"),
        "REGION": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
    }
    if endpoint:
        scheme, _, host = endpoint.rstrip("/").rpartition("://")
        values["ENDPOINT"] = host or endpoint
        options += ["URL_STYLE 'path'", f"USE_SSL {'false' if scheme == 'http' else 'true'}"]
    options += [f"{name} {_sql_string(value)}" for name, value in values.items() if value]
    return f"CREATE OR REPLACE SECRET geoduck_s3 ({', '.join(options)})"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    load_spatial(con)
    con.execute("SET TimeZone = 'UTC'")
    # Parts are immutable: keep their footers (row-group statistics) in memory instead of
    # re-reading and re-parsing every part's footer on every query (benchmarks/bench_query.py).
    con.execute("SET parquet_metadata_cache = true")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(macros_path().read_text())
    return con


_shared: dict[int, duckdb.DuckDBPyConnection] = {}
_lock = threading.Lock()
_httpfs: dict[int, str | None] = {}
"""Per process: the S3 secret SQL applied when httpfs was loaded into the shared connection (the
key is present once httpfs is loaded, on first use of a URI catalog)."""


def shared_connection() -> duckdb.DuckDBPyConnection:
    """A per-process connection (re-created after ``fork``); use ``.cursor()`` per thread."""
    pid = os.getpid()
    with _lock:
        con = _shared.get(pid)
        if con is None:
            _shared.clear()
            con = _shared[pid] = connect()
        return con


def close_connections() -> None:
    """Close this process's shared connection and the sandboxes' connections (DuckDB then removes
    its temporary files); the next use opens new ones."""
    import sys

    with _lock:
        for con in _shared.values():
            con.close()
        _shared.clear()
        _httpfs.clear()
    sandbox = sys.modules.get(f"{__package__}.sandbox")
    if sandbox is not None:
        sandbox.close_all()


def use_httpfs() -> None:
    """Make sure the shared connection can read URIs: loads httpfs once per process, and applies
    the S3 secret again when the AWS environment variables changed since."""
    pid = os.getpid()
    secret = s3_secret_sql()
    if pid in _httpfs and _httpfs[pid] == secret:
        return
    con = shared_connection()
    with _lock:
        if pid not in _httpfs:
            load_httpfs(con)
            con.execute(f"SET GLOBAL force_download = {str(WHOLE_REMOTE_PARTS).lower()}")  # see WHOLE_REMOTE_PARTS
        elif secret is not None and _httpfs[pid] != secret:
            con.execute(secret)
        elif secret is None:
            con.execute("DROP SECRET IF EXISTS geoduck_s3")
        _httpfs.clear()
        _httpfs[pid] = secret


WHOLE_REMOTE_PARTS = True
"""Remote parts are fetched whole, one GET each (httpfs ``force_download``), instead of a HEAD, a
footer GET and a GET per column chunk of each row group read (12 requests for a 50,000-row part
with one row group read, benchmarks/bench_remote_query.py): geoduck's parts are small (at most
:data:`geoduck.store.MAX_PART_ROWS` rows, 1-2 MB) and the part index already skipped the parts a
query cannot match. Reads of footers only (:func:`geoduck.remote.open_root`) turn it off."""


_TABLES: contextvars.ContextVar[Mapping[str, pa.Table]] = contextvars.ContextVar("geoduck_tables", default={})


@contextlib.contextmanager
def registered(tables: Mapping[str, pa.Table]) -> Iterator[None]:
    """Within the block, every :func:`cursor` made (in this thread or context) has ``tables``
    registered under their names (Arrow tables, zero copy; user tables joined to a catalog)."""
    token = _TABLES.set({**_TABLES.get(), **tables}) if tables else None
    try:
        yield
    finally:
        if token is not None:
            _TABLES.reset(token)


def register_tables(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Register on ``con`` (a cursor) the tables of the enclosing :func:`registered` block."""
    for name, table in _TABLES.get().items():
        con.register(name, table)
    return con


def cursor() -> duckdb.DuckDBPyConnection:
    """A new cursor on the shared connection: safe to use from the calling thread (with the
    tables of an enclosing :func:`registered` block)."""
    return register_tables(shared_connection().cursor())


ARROW_BATCH_ROWS = 10_000
"""Rows per Arrow batch of fetched results."""


def fetch_arrow(sql: str) -> pa.Table:
    """Run ``sql`` and return its whole result as an Arrow table, streamed from DuckDB batch by
    batch: ~1 ms (12 %) faster on a 500-row query than ``execute(…).to_arrow_table()``, which
    materializes the result inside DuckDB first (measured with benchmarks/bench_query.py's
    queries at 10^6 rows)."""
    return cursor().execute(sql).to_arrow_reader(ARROW_BATCH_ROWS).read_all()


def sandboxed_cursor(directories: tuple[str, ...]) -> duckdb.DuckDBPyConnection:
    """A cursor on the locked, read-only connection for user SQL over the catalogs at
    ``directories`` (see :mod:`geoduck.sandbox`; scans name the folders through
    :meth:`geoduck.sandbox.Sandbox.scan_path`)."""
    from . import sandbox

    return sandbox.sandbox(tuple(directories)).connection.cursor()
