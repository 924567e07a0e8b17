"""Cold start: ``import geoduck`` and the CLI's ``--help``, ``query``, ``sql`` and ``info`` import
only what they use. Each runs in a fresh interpreter (``geoduck.cli.main`` called in-process
there) and the test reads that interpreter's ``sys.modules``; wall times are measured in
``benchmarks/bench_cli.py``, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

import geoduck
from geoduck.cli import _emit
from geoduck.testing import synthetic_catalog_table, write_synthetic_catalog

ROOT = Path(__file__).resolve().parents[1]
HEAVY = frozenset({"geopandas", "rasterio", "xarray", "torch", "pyogrio", "georeader"})
"""Never imported by ``import geoduck``, ``--help``, ``query``, ``sql`` or ``info``."""
ENGINE = frozenset({"pandas", "duckdb", "pyarrow", "sqlglot", "shapely", "pyproj", "numpy"})
"""Also not imported by ``import geoduck`` nor by ``--help``."""
TILES, DATES = 12, 20
CATALOG = {"start": "2021-03-01", "seed": 3}
BBOX = (-9.95, 35.05, -9.75, 35.2)
START, END = "2021-03-04", "2021-03-09"

_CHILD = """
import json, sys
args, out = json.loads(sys.argv[1]), sys.argv[2]
code = 0
if args is None:
    import geoduck
else:
    from geoduck.cli import main
    try:
        main(args, prog_name="geoduck")
    except SystemExit as exc:
        code = exc.code or 0
sys.stdout.flush()
with open(out, "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def _fresh(args: list[str] | None, tmp_path: Path) -> tuple[int, str, set[str]]:
    """(exit code, stdout, top-level packages imported) of ``geoduck <args>`` (``None``: only
    ``import geoduck``) in a fresh interpreter running this checkout."""
    out = tmp_path / "modules.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert out.is_file(), run.stderr
    report = json.loads(out.read_text())
    return report["code"], run.stdout, {m.split(".")[0] for m in report["modules"]}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_catalog(tmp_path_factory.mktemp("cold") / "cat", TILES, DATES, **CATALOG)


def _expected_ids() -> list[str]:
    """Brute force over the generated rows: footprints (boxes) meeting BBOX, days meeting START..END."""
    table = synthetic_catalog_table(TILES, DATES, **CATALOG)
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    hit = shapely.intersects(geoms, shapely.box(*BBOX))
    days = np.array([t.date().isoformat() for t in table.column("start_datetime").to_pylist()])
    hit &= (days >= START) & (days <= END)
    return sorted(np.array(table.column("id").to_pylist())[hit])


def _old_route(frame, fmt: str, tmp_path: Path) -> str:
    """What the CLI wrote before the cold-start work: ``_emit`` of the (Geo)DataFrame."""
    path = tmp_path / f"expected.{fmt}"
    _emit(frame, fmt, path)
    return path.read_text()


def test_import_geoduck_loads_no_dependency(tmp_path):
    code, _, modules = _fresh(None, tmp_path)
    assert code == 0
    assert not modules & (HEAVY | ENGINE)


@pytest.mark.parametrize("args", [["--help"], ["query", "--help"], ["sql", "--help"], ["info", "--help"]])
def test_help_loads_no_engine(tmp_path, args):
    code, out, modules = _fresh(args, tmp_path)
    assert code == 0
    assert "Usage: geoduck" in out
    if args == ["--help"]:
        assert all(name in out for name in ("query", "sql", "info", "build", "export"))
    assert not modules & (HEAVY | ENGINE)


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_query_cold(tmp_path, catalog, fmt):
    args = ["query", str(catalog), "--bbox", *map(str, BBOX), "--start", START, "--end", END, "--format", fmt]
    code, out, modules = _fresh(args, tmp_path)
    assert code == 0, out
    assert not modules & HEAVY
    assert {"duckdb", "pyarrow"} <= modules  # (it did run the query)
    if fmt == "csv":  # CSV text, --start/--end bounds and a lon/lat AOI need none of these
        assert not modules & {"pandas", "pyproj", "fsspec"}
    rel = geoduck.open_catalog(catalog).query(bbox=BBOX, start=START, end=END)
    assert out == _old_route(rel.to_geopandas(), fmt, tmp_path)  # byte for byte as before
    expected = _expected_ids()
    assert len(expected) == 8 * 6  # 8 (jittered) tiles meet the box × 6 days
    if fmt == "csv":
        lines = out.splitlines()
        header = lines[0].split(",")
        assert header[:4] == ["id", "filepath", "backend", "geometry"]
        assert not {"bbox", "native_bounds", "transform"} & set(header)
        assert sorted(line.split(",")[0] for line in lines[1:]) == expected
    else:
        assert out.endswith(f"({len(expected)} rows)\n")


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_sql_cold(tmp_path, catalog, fmt):
    statement = "SELECT id, tile, geometry, start_datetime FROM catalog WHERE tile = 'T000004' ORDER BY id"
    code, out, modules = _fresh(["sql", str(catalog), statement, "--format", fmt], tmp_path)
    assert code == 0, out
    assert not modules & HEAVY
    assert out == _old_route(geoduck.open_catalog(catalog).sql(statement), fmt, tmp_path)
    if fmt == "csv":
        rows = out.splitlines()[1:]
        assert len(rows) == DATES and all(',T000004,"POLYGON ((' in row for row in rows)


def test_info_cold(tmp_path, catalog):
    code, out, modules = _fresh(["info", str(catalog)], tmp_path)
    assert code == 0, out
    assert not modules & (HEAVY | {"pandas", "pyproj", "fsspec"})
    lines = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith("schema"))
    assert lines["rows"] == str(TILES * DATES)
    assert lines["backends"] == f"raster: {TILES * DATES}"
    assert out.splitlines()[-2] == "time extent    2021-03-01 00:00:00+00:00 .. 2021-03-20 23:59:59.999999+00:00"


def test_every_public_name_resolves():
    import importlib

    namespace: dict[str, object] = {}
    exec(f"from geoduck import {', '.join(geoduck.__all__)}", namespace)  # noqa: S102
    for name in geoduck.__all__:
        assert getattr(geoduck, name) is namespace[name]
    assert set(geoduck.__all__) <= set(dir(geoduck))
    # Submodules named like their function: the package attribute stays the function once the
    # submodule is imported, as with the former eager imports.
    for name in ("stitch", "validate"):
        module = importlib.import_module(f"geoduck.{name}")
        assert getattr(geoduck, name) is getattr(module, name)
        assert callable(getattr(geoduck, name)) and not isinstance(getattr(geoduck, name), type(module))
    assert geoduck.store.MAX_PART_ROWS > 0  # submodules by attribute
    assert geoduck.GeoduckError is importlib.import_module("geoduck.errors").GeoduckError
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        geoduck.not_a_name  # noqa: B018


def _mixed_table(rng: np.random.Generator, n: int):
    """Columns of every type the CLI's pandas-free CSV writer formats (with nulls, NaN, quotes,
    sub-second times), plus a geometry column."""
    import datetime as dt

    import pyarrow as pa

    base = dt.datetime(2021, 3, 1, tzinfo=dt.UTC)
    null = rng.random(n) < 0.2

    def maybe(values):
        return [None if k else v for v, k in zip(values, null, strict=True)]

    seconds = rng.integers(0, 86_400 * 30, n)
    micros = rng.choice([0, 0, 500_000, 1, 123_000], n)
    return pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "geometry": pa.array(shapely.to_wkb(shapely.points(rng.random((n, 2)) * 10)), pa.binary()),
            "text": maybe([rng.choice(["a,b", 'q"x', "new\nline", "", "é", " sp "]) for _ in range(n)]),
            "flag": maybe(rng.random(n) < 0.5),
            "count": pa.array(rng.integers(-5, 2**40, n), pa.int64()),
            "small": pa.array(maybe(rng.integers(0, 100, n).tolist()), pa.int16()),
            "value": pa.array(maybe(np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1e6, n)).tolist())),
            "day": pa.array(maybe([(base + dt.timedelta(days=int(d))).date() for d in rng.integers(0, 99, n)])),
            "when": pa.array(
                maybe([base + dt.timedelta(seconds=int(s), microseconds=int(m)) for s, m in zip(seconds, micros)]),
                pa.timestamp("us", tz="Etc/UTC"),  # as DuckDB returns TIMESTAMPTZ
            ),
            "whole_seconds": pa.array(
                [base + dt.timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", tz="UTC")
            ),
            "millis": pa.array(
                [base + dt.timedelta(milliseconds=int(s)) for s in seconds], pa.timestamp("ms", tz="UTC")
            ),
        }
    )


@pytest.mark.parametrize("seed", range(4))
def test_csv_without_pandas_is_byte_for_byte_the_pandas_text(tmp_path, seed, monkeypatch):
    """The CLI's CSV writer (no pandas: cold start) writes what pandas' to_csv wrote before, for
    every column type it handles, in batches of rows; other types still go through pandas."""
    import datetime as dt

    import geopandas as gpd
    import pyarrow as pa

    from geoduck import cli
    from geoduck.catalog import _arrow_to_frame
    from geoduck.cli import _emit_arrow

    monkeypatch.setattr(cli, "_CSV_BATCH_ROWS", 7)  # several batches (a column's format is the whole column's)

    table = _mixed_table(np.random.default_rng(seed), 300 if seed else 3)
    wkb = pa.field("geometry", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb"})
    table = table.set_column(1, wkb, table["geometry"])
    _emit_arrow(table, "csv", tmp_path / "new.csv")
    frame = _arrow_to_frame(table, require_geometry=True)
    assert isinstance(frame, gpd.GeoDataFrame)
    assert (tmp_path / "new.csv").read_text() == _old_route(frame, "csv", tmp_path)
    odd = table.append_column("f32", pa.array(np.linspace(0, 1, table.num_rows), pa.float32()))
    old_times = [dt.datetime(999, 12, 31, 23, 59, tzinfo=dt.UTC)] * table.num_rows  # years pandas pads
    ancient = table.append_column("t", pa.array(old_times, pa.timestamp("us", tz="UTC")))
    for other in (odd, ancient):  # through pandas: the same text as before
        plain = [c for c in other.column_names if c != "geometry"]
        assert cli._csv_text(other, plain[:-1], {}) is not None and cli._csv_text(other, plain, {}) is None
        _emit_arrow(other, "csv", tmp_path / "odd.csv")
        assert (tmp_path / "odd.csv").read_text() == _old_route(_arrow_to_frame(other), "csv", tmp_path)


_RUN = """
import atexit, sys
marker = sys.argv[1]
atexit.register(lambda: open(marker, "w").close())  # runs only on the interpreter's normal exit
sys.argv = ["geoduck", *sys.argv[2:]]
from geoduck.cli import run
run()
"""


def _console(tmp_path: Path, *args: str) -> tuple[int, str, str, bool]:
    """(exit code, stdout, stderr, whether the interpreter's normal exit ran) of the console
    script's entry point, ``geoduck.cli.run``, in a fresh interpreter."""
    marker = tmp_path / "normal-exit"
    marker.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(marker), *args], capture_output=True, text=True, timeout=300, env=env
    )
    return proc.returncode, proc.stdout, proc.stderr, marker.exists()


def test_console_script_ends_read_only_commands_fast_and_completely(tmp_path, catalog):
    """After query/sql/info the console script skips the interpreter's teardown, with all output
    written; failures and other commands exit normally."""
    from click.testing import CliRunner

    from geoduck.cli import main

    query = ["query", str(catalog), "--format", "csv"]  # every row: more than a pipe buffer
    code, out, err, normal = _console(tmp_path, *query)
    assert (code, err, normal) == (0, "", False)
    assert out == CliRunner().invoke(main, query).output and len(out.splitlines()) == TILES * DATES + 1
    sql = ["sql", str(catalog), "SELECT count(*) AS n FROM catalog", "--format", "csv"]
    assert _console(tmp_path, *sql) == (0, f"n\n{TILES * DATES}\n", "", False)
    assert _console(tmp_path, "info", str(catalog))[::3] == (0, False)
    code, out, err, normal = _console(tmp_path, "query", str(tmp_path / "missing"))
    assert (code, normal) == (1, True) and "does not exist" in err
    code, out, _, normal = _console(tmp_path, "--version")
    assert (code, normal) == (0, True) and "version" in out
