"""User SQL runs on a locked DuckDB connection that can read only the catalogs' folders."""

from __future__ import annotations

import pytest

import geoduck
from geoduck import engine, sandbox
from geoduck.errors import SQLError


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '{tmp}/out.csv'",
        "ATTACH '{tmp}/x.db' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('{tmp}/other/*.parquet')",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
    ],
)
def test_sandbox_refuses_io_outside_catalog(statement, archive_catalog, tmp_path):
    # Straight to the connection: DuckDB itself refuses, whatever the SQL checks above it miss.
    cur = engine.sandboxed_cursor((archive_catalog.node.root,))
    with pytest.raises(Exception) as info:
        cur.execute(statement.format(tmp=tmp_path))
    assert type(info.value).__module__.startswith(("duckdb", "_duckdb"))
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "x.db").exists()


def test_sandbox_reads_its_catalog(archive_catalog):
    # only through the read-only file system's name for the folder (see geoduck.sandbox)
    box = sandbox.sandbox((archive_catalog.node.root,))
    cur = engine.sandboxed_cursor((archive_catalog.node.root,))
    parts = box.scan_path(f"{archive_catalog.node.root}/*.parquet")
    assert parts.startswith("geoduckro://")
    assert cur.execute(f"SELECT count(*) FROM read_parquet('{parts}')").fetchone()[0] == 48


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT * FROM catalog) TO '/tmp/leak.csv'",
        "ATTACH '/tmp/x.db'",
        "INSTALL httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM catalog; DROP TABLE catalog",
        "SELECT * FROM other_table",
    ],
)
def test_catalog_sql_refuses(statement, archive_catalog):
    with pytest.raises(SQLError):
        archive_catalog.sql(statement)


def test_catalog_sql_over_two_catalogs(archive_catalog, tmp_path):
    from geoduck.testing import write_synthetic_catalog

    other = geoduck.open_catalog(write_synthetic_catalog(tmp_path / "syn", 4, 3))
    out = geoduck.sql(
        "SELECT (SELECT count(*) FROM a) AS na, (SELECT count(*) FROM b) AS nb", a=archive_catalog, b=other
    )
    assert out.to_dict("records") == [{"na": 48, "nb": 12}]
