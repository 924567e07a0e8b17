"""`geoduck duckdb`: a database file of live views over catalogs, read through the duckdb CLI and
SQLAlchemy (duckdb-engine), read-only; appends appear without regenerating it; an unfinished
compaction is never counted twice (a plain glob is)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest
import shapely
from click.testing import CliRunner

import geoduck
from geoduck import engine, store
from geoduck.cli import main
from geoduck.database import write_duckdb
from geoduck.errors import ArgumentError
from geoduck.testing import synthetic_catalog_table

DUCKDB_CLI = Path(sys.executable).with_name("duckdb")


def _catalog(root: Path, n_tiles: int = 6, n_dates: int = 10, start: str = "2023-01-20") -> Path:
    table = synthetic_catalog_table(n_tiles, n_dates, start=start, step_days=17, prefix=root.name + start)
    store.write_parts(table, root, max_rows=25)
    return root


def _cli_all(db: Path, *sql: str) -> list[list[dict]]:
    """Rows of each statement, run in one duckdb CLI process on ``db`` opened read-only (spatial
    loaded offline, as a user would)."""
    if not DUCKDB_CLI.is_file():
        pytest.skip("duckdb CLI (duckdb-cli) not installed in the venv")
    ext = engine.spatial_extension_path()
    assert ext is not None
    script = f"LOAD '{ext}';\nSET TimeZone = 'UTC';\n.mode json\n" + "".join(f"{q};\n" for q in sql)
    out = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", str(db)], input=script, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and not out.stderr, out.stderr
    results, text, at = [], out.stdout, 0
    decoder = json.JSONDecoder()
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        value, at = decoder.raw_decode(text, at)
        results.append(value)
    assert len(results) == len(sql), out.stdout
    return results


def _cli(db: Path, sql: str) -> list[dict]:
    return _cli_all(db, sql)[0]


def _months(root: Path) -> dict[str | None, int]:
    starts = geoduck.open_catalog(root).to_arrow().column("start_datetime").to_pylist()
    return dict(Counter(None if t is None else t.strftime("%Y-%m-01") for t in starts))


def test_views_through_the_duckdb_cli(tmp_path):
    a, b = _catalog(tmp_path / "s2"), _catalog(tmp_path / "l8-archive", 4, 5, "2022-11-03")
    db = tmp_path / "bi.duckdb"
    result = CliRunner().invoke(main, ["duckdb", str(a), str(b), "-o", str(db)])
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob(".*.tmp"))
    views = {r["view_name"] for r in _cli(db, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    assert views == {f"{n}{s}" for n in ("s2", "l8_archive") for s in ("", "_footprints", "_monthly", "_backends")}
    for name, root in (("s2", a), ("l8_archive", b)):
        cat = geoduck.open_catalog(root)
        count, monthly_rows, backends, rows = _cli_all(
            db,
            f"SELECT count(*) AS n FROM {name}",
            f"SELECT month::VARCHAR AS month, n FROM {name}_monthly",
            f"SELECT backend, n FROM {name}_backends",
            f"SELECT id, ST_AsText(geometry) AS wkt, typeof(geometry) AS t FROM {name}_footprints",
        )
        assert count == [{"n": len(cat)}]
        assert {r["month"]: r["n"] for r in monthly_rows} == _months(root)
        assert backends == [{"backend": "raster", "n": len(cat)}]
        want = dict(zip(cat.to_arrow().column("id").to_pylist(), cat.to_geopandas().geometry, strict=True))
        assert len(rows) == len(want) and {r["t"] for r in rows} == {"GEOMETRY"}
        assert all(shapely.equals(shapely.from_wkt(r["wkt"]), want[r["id"]]) for r in rows)
    # geoduck's macros are in the file: the bbox + time query macro over a live view's folder
    box = geoduck.open_catalog(a).query(bbox=(-10, 35, -9.85, 35.15), start="2023-03-01", end="2023-05-31")
    got = _cli(
        db,
        f"SELECT count(*) AS n FROM geoduck_query('{a}/*.parquet', -10, 35, -9.85, 35.15, "
        "TIMESTAMPTZ '2023-03-01', TIMESTAMPTZ '2023-05-31 23:59:59.999999')",
    )
    assert got == [{"n": len(box)}] and len(box)


def test_new_parts_appear_without_regenerating(tmp_path):
    root = _catalog(tmp_path / "cat")
    db = write_duckdb([root], tmp_path / "cat.duckdb")
    before = len(geoduck.open_catalog(root))
    assert _cli(db, "SELECT count(*) AS n FROM cat") == [{"n": before}]
    store.write_parts(synthetic_catalog_table(3, 4, start="2024-07-01", prefix="more"), root)
    count, monthly = _cli_all(db, "SELECT count(*) AS n FROM cat", "SELECT month::VARCHAR AS month, n FROM cat_monthly")
    assert count == [{"n": before + 12}]
    assert {r["month"]: r["n"] for r in monthly} == _months(root)


def _pending_compaction(root: Path, tmp_path: Path, renamed: int) -> tuple[list[str], list[str]]:
    """A compaction of every part of ``root`` stopped after renaming ``renamed`` of its new parts
    into place (the old parts still there), as the manifest records it."""
    old = store.part_names(root)
    rows = geoduck.open_catalog(root).to_arrow()
    stage = tmp_path / "stage"
    new = [p.name for p in store.write_parts(store.sort_rows(rows), stage, max_rows=20)]
    store.write_manifest(root, {"generation": 1, "replacements": [{"replaces": old, "by": new}]})
    for name in new[:renamed]:
        os.replace(stage / name, root / name)
    shutil.rmtree(stage)
    return old, new


@pytest.mark.parametrize("renamed", ["some", "all"])
def test_views_never_double_count_an_unfinished_compaction(tmp_path, renamed):
    root = _catalog(tmp_path / "cat")
    n = len(geoduck.open_catalog(root))
    db = write_duckdb([root], tmp_path / "cat.duckdb")
    old, new = _pending_compaction(root, tmp_path, 1 if renamed == "some" else 99)
    assert len(new) > 1
    glob, count, live_rows, id_rows = _cli_all(
        db,
        f"SELECT count(*) AS n FROM read_parquet('{root}/*.parquet')",
        "SELECT count(*) AS n FROM cat",
        f"SELECT name FROM geoduck_live_parts('{root}/*.parquet', '{root}/_geoduck_manifest.jso[n]')",
        "SELECT id FROM cat",
    )
    assert glob[0]["n"] > n  # a plain glob counts the renamed new parts and the old ones
    assert count == [{"n": n}]
    live = {r["name"] for r in live_rows}
    assert live == {Path(p).name for p in store.live_parts(root)} == set(old if renamed == "some" else new)
    ids = [r["id"] for r in id_rows]
    assert len(ids) == len(set(ids)) == n


def test_sqlalchemy_duckdb_engine_read_only(tmp_path):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("duckdb_engine")
    root = _catalog(tmp_path / "cat")
    db = write_duckdb([root], tmp_path / "cat.duckdb")
    eng = sqlalchemy.create_engine(
        f"duckdb:///{db}",
        connect_args={"read_only": True, "config": {"autoinstall_known_extensions": False}},
    )
    cat = geoduck.open_catalog(root)
    with eng.connect() as con:
        con.exec_driver_sql(f"LOAD '{engine.spatial_extension_path()}'")
        assert con.exec_driver_sql("SELECT count(*) FROM cat").scalar() == len(cat)
        names = set(sqlalchemy.inspect(con).get_view_names())
        assert {"cat", "cat_footprints", "cat_monthly", "cat_backends"} <= names
        monthly = dict(con.exec_driver_sql("SELECT month::VARCHAR, n FROM cat_monthly").fetchall())
        assert monthly == _months(root)
        area = con.exec_driver_sql("SELECT sum(ST_Area(geometry)) FROM cat_footprints").scalar()
        assert area == pytest.approx(float(pc.sum(shapely.area(cat.to_geopandas().geometry.to_numpy())).as_py()))
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only"):
            con.exec_driver_sql("CREATE TABLE t AS SELECT 1")
    eng.dispose()


def test_duckdb_command_errors(tmp_path):
    root = _catalog(tmp_path / "cat")
    with pytest.raises(ArgumentError, match="distinct names"):
        write_duckdb([root, root], tmp_path / "x.duckdb")
    with pytest.raises(ArgumentError, match="not SQL identifiers"):
        write_duckdb([root], tmp_path / "x.duckdb", names=["bad name"])
    result = CliRunner().invoke(main, ["duckdb", str(tmp_path / "missing"), "-o", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not (tmp_path / "x.duckdb").exists()
