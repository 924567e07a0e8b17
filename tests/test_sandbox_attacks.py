"""Regression corpus of DuckDB sandbox bypasses, and the bounds of user SQL (issue #12, Security 2-4).

Every attack runs twice: through ``Catalog.sql`` (the parser check refuses it with SQLError) and
straight on the sandbox connection, as if the parser check had been bypassed (DuckDB or the
read-only catalog file system refuses it, or it returns nothing secret). Either way nothing is
written anywhere and the catalog keeps its rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

import geoduck
from geoduck import compiler, sandbox, store
from geoduck.cli import main
from geoduck.errors import ArgumentError, SQLError
from geoduck.testing import write_synthetic_catalog

N_ROWS = 12

# {cat}: the catalog folder as given; {alias}: the same folder as the sandbox names it.
ATTACKS = {
    # quoted / upper-case function names
    "quoted_read_csv": "SELECT * FROM \"read_csv\"('/etc/passwd')",
    "upper_read_csv_auto": "SELECT * FROM READ_CSV_AUTO('/etc/passwd')",
    "quoted_read_text": "SELECT * FROM \"READ_TEXT\"('/etc/hostname')",
    "read_blob_home": "SELECT * FROM read_blob('~/.bashrc')",
    "read_blob_manifest": "SELECT * FROM read_blob('{cat}/_geoduck_manifest.json')",
    "read_parquet_escape": "SELECT * FROM read_parquet('{alias}/../../etc/passwd')",
    "read_parquet_catalog_path": "SELECT count(*) FROM read_parquet('{cat}/*.parquet')",
    "st_read": "SELECT * FROM st_read('/etc/passwd')",
    "scalar_subquery_read_text": "SELECT (SELECT content FROM read_text('/etc/hostname'))",
    "union_read_csv": "SELECT 1 AS x UNION ALL BY NAME FROM read_csv('/etc/passwd')",
    "in_read_text": "SELECT 1 WHERE 'x' IN (FROM read_text('/etc/hostname'))",
    "lateral_read_csv": "SELECT * FROM (SELECT '/etc/passwd' AS p) t, LATERAL read_csv(t.p)",
    "query_table_function": "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
    "parquet_metadata": "SELECT * FROM parquet_metadata('{cat}/*.parquet')",
    # replacement scans (file names and Python variables as tables)
    "replacement_scan_string": "SELECT * FROM '/etc/passwd'",
    "replacement_scan_identifier": 'SELECT * FROM "/etc/hosts.csv"',
    "replacement_scan_home": "SELECT * FROM '~/.bash_history.csv'",
    "replacement_scan_catalog": "SELECT count(*) FROM '{cat}/*.parquet'",
    "replacement_scan_cte_out_of_scope": 'SELECT * FROM (WITH "/etc/hosts.csv" AS (SELECT 1 AS a) '
    'SELECT a FROM "/etc/hosts.csv") t, "/etc/hosts.csv"',
    "replacement_scan_cte_forward": 'WITH a AS (SELECT * FROM "/etc/hosts.csv"), "/etc/hosts.csv" AS (SELECT 1) '
    "SELECT * FROM a",
    "replacement_scan_python_variable": "SELECT * FROM secret_frame",
    # sniffing, listing
    "sniff_csv": "SELECT * FROM sniff_csv('/etc/passwd')",
    "glob_root": "SELECT * FROM glob('/*')",
    "glob_home": "SELECT * FROM glob('~/*')",
    "glob_catalog": "SELECT * FROM glob('{cat}/*')",
    # settings, secrets, paths
    "current_setting_secret_dir": "SELECT current_setting('secret_directory')",
    "current_setting_quoted": "SELECT \"CURRENT_SETTING\"('allowed_directories')",
    "current_setting_temp_dir": "SELECT current_setting('temp_directory')",
    "duckdb_settings": "SELECT * FROM duckdb_settings()",
    "getvariable": "SELECT getvariable('x')",
    # writes
    "copy_into_catalog": "COPY (SELECT 1 AS x) TO '{cat}/dup.parquet' (FORMAT parquet)",
    "copy_into_catalog_alias": "COPY (SELECT 1 AS x) TO '{alias}/dup.parquet' (FORMAT parquet)",
    "copy_catalog_rows_twice": "COPY (SELECT * FROM read_parquet('{alias}/*.parquet')) "
    "TO '{alias}/part-dup.parquet' (FORMAT parquet)",
    "copy_to_tmp": "COPY (SELECT 42 AS x) TO '{tmp}/leak.csv'",
    "copy_from": "COPY x FROM '/etc/passwd'",
    "export_database": "EXPORT DATABASE '{cat}/export'",
    "export_database_alias": "EXPORT DATABASE '{alias}/export'",
    "attach_in_catalog": "ATTACH '{cat}/x.db' AS x",
    "attach_alias": "ATTACH '{alias}/x.db' AS x",
    "attach_memory_then_write": "ATTACH ':memory:' AS m",
    "install": "INSTALL httpfs",
    "force_install": "FORCE INSTALL spatial FROM 'http://127.0.0.1:9/'",
    "load": "LOAD httpfs",
    "set_external_access": "SET enable_external_access = true",
    "set_allowed_directories": "SET allowed_directories = ['/']",
    "reset_lock": "RESET lock_configuration",
    "set_memory_limit": "SET memory_limit = '1000GB'",
    "set_threads": "SET GLOBAL threads = 64",
    "set_temp_directory": "SET temp_directory = '{cat}'",
    "set_variable": "SET VARIABLE x = 1",
    "pragma": "PRAGMA enable_profiling",
    "create_table": "CREATE TABLE t AS SELECT 1",
    "create_secret": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "two_statements": "SELECT 1; COPY (SELECT 1) TO '{tmp}/leak.csv'",
    "profiling_output": "SET profiling_output = '{tmp}/profile.json'",
    "log_query_path": "PRAGMA log_query_path = '{tmp}/queries.log'",
    "enable_logging": "CALL enable_logging(storage = 'file', storage_path = '{tmp}/logs')",
}


HARMLESS_IN_SANDBOX = {
    "current_setting_secret_dir",
    "current_setting_quoted",
    "current_setting_temp_dir",
    "duckdb_settings",
    "getvariable",
    "set_variable",
    "create_table",
    "attach_memory_then_write",
    "pragma",
}
"""Attacks the connection itself runs (the parser refuses them) without reaching a file, a local
path or a secret: settings (checked for paths), in-memory tables and variables, profiling."""

PARSER_ONLY = {"enable_logging"}
"""Attacks only the parser stops: DuckDB 1.5.5's ``CALL enable_logging(storage='file', …)``
passes a locked configuration; with external access off it writes nothing but breaks every
later query on that connection (and aborts the process when it closes)."""


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> geoduck.Catalog:
    # glob characters in the folder name: scans spell it escaped, the sandbox must map both
    root = write_synthetic_catalog(tmp_path_factory.mktemp("sandbox") / "cat[1]", 4, 3)
    return geoduck.open_catalog(root)


def _files(*folders: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for f in folders for p in Path(f).rglob("*")}


def _paths_that_must_not_leak(cat: geoduck.Catalog) -> list[str]:
    return [
        cat.node.root,
        os.path.realpath(cat.node.root),
        os.getcwd(),
        os.path.expanduser("~"),
        sys.prefix,
        tempfile.gettempdir(),
    ]


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_catalog_sql_refuses_attack(cat, tmp_path, name):
    before = _files(Path(cat.node.root), tmp_path)
    box = sandbox.sandbox((cat.node.root,))
    attack = ATTACKS[name].format(cat=cat.node.root, alias=box.scan_path(cat.node.root + "/").rstrip("/"), tmp=tmp_path)
    with pytest.raises(SQLError):
        cat.sql(attack)
    assert _files(Path(cat.node.root), tmp_path) == before
    assert len(cat) == N_ROWS


@pytest.mark.parametrize("name", sorted(set(ATTACKS) - PARSER_ONLY))
def test_sandbox_connection_holds_without_parser(cat, tmp_path, name):
    """Straight on the sandbox connection, as if the parser check were bypassed."""
    secret_frame = pd.DataFrame({"secret": ["s3cr3t"]})  # noqa: F841 (a replacement-scan target)
    before = _files(Path(cat.node.root), tmp_path)
    box = sandbox.sandbox((cat.node.root,))
    attack = ATTACKS[name].format(cat=cat.node.root, alias=box.scan_path(cat.node.root + "/").rstrip("/"), tmp=tmp_path)
    cur = box.connection.cursor()
    try:
        rows = cur.execute(attack).fetchall()
        refused = False
    except duckdb.Error:
        rows, refused = [], True
    finally:
        cur.close()
    text = repr(rows)
    assert "s3cr3t" not in text and "root:" not in text
    for path in _paths_that_must_not_leak(cat):
        assert path not in text, f"{name} revealed {path}"
    assert refused or name in HARMLESS_IN_SANDBOX
    assert _files(Path(cat.node.root), tmp_path) == before
    assert len(cat) == N_ROWS
    assert cat.sql("SELECT count(*) AS n FROM catalog")["n"].tolist() == [N_ROWS]  # still usable


def test_sandbox_reads_catalog_only_through_read_only_names(cat):
    box = sandbox.sandbox((cat.node.root,))
    glob_ = box.scan_path(store.part_glob(cat.node.root))
    assert glob_.startswith(f"{sandbox.PROTOCOL}://c") and cat.node.root not in glob_
    cur = box.connection.cursor()
    assert cur.execute(f"SELECT count(*) FROM read_parquet('{glob_}')").fetchone() == (N_ROWS,)
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        cur.execute(f"SELECT count(*) FROM read_parquet('{store.part_glob(cat.node.root)}')")


def test_current_setting_reveals_no_local_path(cat):
    cur = sandbox.sandbox((cat.node.root,)).connection.cursor()
    settings = cur.execute("SELECT name, value FROM duckdb_settings()").fetchall()
    assert len(settings) > 100
    for path in _paths_that_must_not_leak(cat):
        leaks = [(n, v) for n, v in settings if path in str(v)]
        assert not leaks, f"settings reveal {path}: {leaks}"
    assert cur.execute("SELECT current_setting('temp_directory')").fetchone() == ("",)


def test_symlinked_part_outside_catalog_is_not_readable(tmp_path):
    root = write_synthetic_catalog(tmp_path / "c", 2, 1)
    outside = write_synthetic_catalog(tmp_path / "other", 3, 1)
    (root / "part-zz-link.parquet").symlink_to(store.list_parts(outside)[0])
    from geoduck.readonly_fs import CatalogFolders

    folders = CatalogFolders({"c0": str(root)})
    assert [Path(n).name for n in folders.ls("c0", detail=False)] == store.part_names(root)[:-1]
    with pytest.raises(PermissionError):
        folders.open("c0/part-zz-link.parquet", "rb")
    with pytest.raises(PermissionError):
        folders.open(f"c0/{store.part_names(root)[0]}", "wb")
    with pytest.raises(PermissionError):
        folders.rm(f"c0/{store.part_names(root)[0]}")
    assert len(store.part_names(root)) == 2


# -- bounds: timeout, interrupt, memory, threads ---------------------------------------------------

SLOW = (
    "SELECT count(*) FROM catalog a, catalog b, catalog c, catalog d, catalog e, catalog f, catalog g "
    "WHERE hash(a.id || b.id || c.id || d.id || e.id || f.id || g.id) % 7 = 0"
)
"""12^7 ≈ 3.6·10^7 hashed rows: minutes on 2 cores."""


def test_timeout_stops_a_cpu_bound_query(cat):
    t0 = time.monotonic()
    with pytest.raises(SQLError, match="timed out after 0.5 s"):
        cat.sql(SLOW, timeout=0.5)
    assert time.monotonic() - t0 < 3.0
    assert cat.sql("SELECT count(*) AS n FROM catalog")["n"].tolist() == [N_ROWS]


def test_cli_timeout(cat):
    result = CliRunner().invoke(main, ["sql", cat.node.root, SLOW, "--timeout", "0.5"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: query timed out after 0.5 s (raise timeout=, CLI --timeout)"]


def test_memory_limit_and_threads_bound_the_connection(cat):
    box = sandbox.sandbox((cat.node.root,), sandbox.limits(memory_limit="64MiB", threads=1))
    cur = box.connection.cursor()
    assert cur.execute("SELECT current_setting('threads')").fetchone() == (1,)
    assert cur.execute("SELECT current_setting('memory_limit')").fetchone() == ("64.0 MiB",)
    big = (
        "SELECT length(string_agg(repeat(a.filepath, 4000), '')) AS n "
        "FROM catalog a, catalog b, catalog c"
    )  # 1,728 strings of ~0.2 MB ≈ 350 MB
    with pytest.raises(SQLError, match="out of memory.*memory_limit"):
        cat.sql(big, memory_limit="64MiB", threads=1)
    width = len(cat.sql("SELECT filepath FROM catalog LIMIT 1")["filepath"][0])
    assert cat.sql(big, memory_limit="2GB")["n"].tolist() == [N_ROWS**3 * 4000 * width]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": "10"},
        {"timeout": float("nan")},
        {"memory_limit": "lots"},
        {"memory_limit": "1GB'; SET x=1; --"},
        {"memory_limit": 10},
        {"threads": 0},
        {"threads": 1.5},
    ],
)
def test_bad_limits_are_refused(cat, kwargs):
    with pytest.raises(ArgumentError):
        cat.sql("SELECT 1", **kwargs)


def test_ctrl_c_stops_the_cli_within_a_second(cat):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(geoduck.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from geoduck.cli import main; main()", "-v", "sql", cat.node.root, SLOW],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = ""
        while "user SQL running" not in line:  # logged once DuckDB is executing the query
            line = proc.stderr.readline()
            assert line, "the CLI ended before running the query"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        error = proc.stderr.readline()
        answered = time.monotonic() - t0
        rest = proc.communicate(timeout=30)[1]
        exited = time.monotonic() - t0
    finally:
        proc.kill()
    assert error == "Error: query interrupted (Ctrl-C)\n" and rest == ""
    assert proc.returncode == 1
    assert answered < 1.0
    # The interpreter's own shutdown (geopandas, rasterio … unloaded) comes on top: ~0.1 s on an
    # idle machine, more on a loaded one.
    assert exited < 10.0


# -- nesting ---------------------------------------------------------------------------------------


def _nested_subqueries(depth: int) -> str:
    return "SELECT count(*) AS n FROM " + "(SELECT * FROM " * depth + "catalog" + ") t" * depth


@pytest.mark.parametrize(
    "predicate",
    [
        "(" * 3000 + "tile = 'T000001'" + ")" * 3000,
        "NOT " * 3000 + "tile = 'T000001'",
        "CASE WHEN " * 500 + "true" + " THEN true END" * 500,
        "tile IN " + "[" * 2000 + "'x'" + "]" * 2000,
    ],
)
def test_deep_where_is_a_clear_error(cat, predicate):
    with pytest.raises(SQLError, match="nest"):
        cat.where(predicate)


@pytest.mark.parametrize(
    "statement",
    [
        _nested_subqueries(500),
        "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM catalog",
        "SELECT " + "NOT " * 3000 + "true FROM catalog",
    ],
)
def test_deep_sql_is_a_clear_error(cat, statement):
    with pytest.raises(SQLError, match="nest"):
        cat.sql(statement)


def test_deep_input_in_the_cli_is_one_error_line(cat):
    for args in (
        ["sql", cat.node.root, _nested_subqueries(500)],
        ["query", cat.node.root, "--where", "(" * 3000 + "tile = 'T000001'" + ")" * 3000],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "nest" in lines[0]


def test_nesting_within_the_limit_still_works(cat):
    depth = compiler.MAX_NESTING // 2
    n = len(cat.where("(" * depth + "tile = 'T000001'" + ")" * depth))
    assert n == len(cat.where("tile = 'T000001'")) == 3
    assert cat.sql(_nested_subqueries(depth))["n"].tolist() == [N_ROWS]
