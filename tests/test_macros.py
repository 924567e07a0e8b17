"""sql/geoduck.sql: the macros DuckDB CLI users load give the same answers as the Python API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import geoduck
from geoduck import compiler
from geoduck.engine import macros_path, spatial_extension_path
from geoduck.testing import write_synthetic_catalog

DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


def run_cli(sql: str) -> list[list[str]]:
    """Run statements in the DuckDB CLI binary with spatial + geoduck macros; CSV rows back."""
    script = f"LOAD '{spatial_extension_path()}';\n.read {macros_path()}\n.mode csv\n.headers off\n{sql}\n"
    out = subprocess.run([str(DUCKDB_CLI)], input=script, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Error" not in out.stderr, out.stderr
    return [line.split(",") for line in out.stdout.strip().splitlines() if line]


def test_generated_macro_section_is_current():
    text = macros_path().read_text()
    assert compiler.intersect_macro_sql() in text, (
        "sql/geoduck.sql is stale: run "
        ".venv/bin/python -c 'from geoduck.compiler import update_macro_file; update_macro_file()'"
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("macros")
    a = write_synthetic_catalog(root / "a", 36, 20, tile_deg=0.1)
    b = write_synthetic_catalog(
        root / "b", 25, 8, tile_deg=0.13, seed=3, step_days=3, length_days=3, origin=(-9.95, 35.05)
    )
    s = write_synthetic_catalog(root / "static", 4, 1, tile_deg=0.3, static=True, origin=(-9.9, 35.1), prefix="dem")
    return a, b, s


@pytest.mark.skipif(not DUCKDB_CLI.exists(), reason="duckdb-cli not installed")
def test_cli_query_macro_matches_python(pair):
    a, _, _ = pair
    bbox, t0, t1 = (-9.83, 35.12, -9.61, 35.31), "2020-01-05", "2020-01-09"
    expected = set(geoduck.open_catalog(a).query(bbox=bbox, start=t0, end=t1).to_arrow()["id"].to_pylist())
    rows = run_cli(
        f"SELECT id FROM geoduck_query('{a}/*.parquet', {', '.join(map(str, bbox))}, "
        f"TIMESTAMPTZ '{t0}', TIMESTAMPTZ '{t1} 23:59:59.999999');"
    )
    assert {r[0] for r in rows} == expected
    assert 20 < len(expected) < 200


@pytest.mark.skipif(not DUCKDB_CLI.exists(), reason="duckdb-cli not installed")
@pytest.mark.parametrize("spatial_only", [False, True])
def test_cli_intersect_macro_matches_python(pair, spatial_only):
    a, b, s = pair
    right = geoduck.open_catalog(b).union(geoduck.open_catalog(s)).to_parquet(Path(b).parent / f"bs{spatial_only}")
    left = geoduck.open_catalog(a)
    py = (
        left.intersect(right, spatial_only=spatial_only)
        .sql("SELECT left_id, right_id, start_datetime, end_datetime FROM catalog")
        .to_numpy()
        .tolist()
    )
    expected = {(lid, rid) for lid, rid, *_ in py}
    assert len(expected) == len(py) > 100
    flag = "true" if spatial_only else "false"
    for params in ("", ", cell := 0.05, bucket_us := 3600000000"):  # any tuning: same pairs
        rows = run_cli(
            f"SELECT left_id, right_id FROM geoduck_intersect('{a}/*.parquet', "
            f"'{right.node.root}/*.parquet', spatial_only := {flag}{params});"
        )
        assert len(rows) == len(expected)
        assert {(r[0], r[1]) for r in rows} == expected


@pytest.mark.skipif(not DUCKDB_CLI.exists(), reason="duckdb-cli not installed")
def test_join_params_macro_matches_python_plan(pair):
    from geoduck.catalog import join_plan

    a, b, _ = pair
    plan = join_plan(geoduck.open_catalog(a).node, geoduck.open_catalog(b).node, False)
    ((cell, bucket),) = run_cli(f"SELECT * FROM geoduck_join_params('{a}/*.parquet', '{b}/*.parquet');")
    assert float(cell) == pytest.approx(plan.cell, rel=1e-5)
    assert int(bucket) == plan.bucket_us == 3 * 86_400_000_000
