"""Crash safety, concurrent appends, compaction, temp cleanup, schema evolution, validate."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from rasterio.transform import Affine

import geoduck
from geoduck import maintenance as maint
from geoduck import schema, store
from geoduck.cli import main
from geoduck.errors import BuildError, SchemaError
from geoduck.testing import write_raster, write_synthetic_catalog


def _tiny_rasters(root: Path, n: int, prefix: str = "r") -> list[Path]:
    paths = []
    for i in range(n):
        x0 = 400000 + (i % 20) * 1000
        y0 = 4400000 + (i // 20) * 1000
        paths.append(
            write_raster(
                root / f"{prefix}_{i:04d}_2023{1 + i % 12:02d}15.tif",
                np.full((1, 8, 8), i, "uint16"),
                crs="EPSG:32630",
                transform=Affine(125, 0, x0, 0, -125, y0),
                tiled=False,
            )
        )
    return paths


BUILD_SCRIPT = textwrap.dedent("""
    import dataclasses, sys
    from geoduck.builders.common import FilenameParser, run_build
    from geoduck.builders.raster import BACKEND, read_raster_header
    src, out, part_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    run_build(src, out, backend=dataclasses.replace(BACKEND, read_header=read_raster_header, read_env=None),
              options=None, parser=FilenameParser(r"_(?P<date>\\d{8})\\.tif$"),
              workers=1, progress=False, part_rows=part_rows)
""")


def _run_build(src: Path, out: Path, part_rows: int) -> subprocess.Popen:
    env = dict(os.environ, GEODUCK_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, str(src), str(out), str(part_rows)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _assert_consistent(out: Path) -> int:
    """Every visible part is complete; geoduck and a plain glob read give the same rows."""
    parts = store.list_parts(out)
    for part in parts:
        pq.read_table(part)  # a half-written file would fail here
    if not parts:
        return 0
    cat = geoduck.open_catalog(out)
    ids = cat.to_arrow()["id"].to_pylist()
    assert len(ids) == len(set(ids))
    import duckdb

    plain = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/*.parquet')").fetchone()[0]
    assert plain == len(ids)
    return len(ids)


def test_build_killed_at_random_points_loses_nothing(tmp_path):
    src = tmp_path / "src"
    files = _tiny_rasters(src, 240)
    out = tmp_path / "cat"
    rng = random.Random(7)
    seen = 0
    for _ in range(4):
        proc = _run_build(src, out, part_rows=12)
        time.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rows = _assert_consistent(out)
        assert rows >= seen  # committed parts are never lost
        seen = rows
    final = _run_build(src, out, part_rows=12)
    assert final.wait(timeout=240) == 0, final.stderr.read().decode()
    assert _assert_consistent(out) == len(files)
    assert not list(out.glob(".part-*.tmp")) or all(
        time.time() - p.stat().st_mtime < store.ORPHAN_GRACE_S for p in out.glob(".part-*.tmp")
    )


def test_concurrent_appenders_disjoint_files(tmp_path):
    out = tmp_path / "cat"
    srcs = []
    for k in range(4):
        srcs.append(tmp_path / f"src{k}")
        _tiny_rasters(srcs[-1], 40, prefix=f"w{k}")
    procs = [_run_build(src, out, part_rows=7) for src in srcs]
    for proc in procs:
        assert proc.wait(timeout=240) == 0, proc.stderr.read().decode()
    assert _assert_consistent(out) == 160
    assert len(store.list_parts(out)) >= 4 * 6


def test_concurrent_appenders_same_files_index_each_once(tmp_path):
    src = tmp_path / "src"
    files = _tiny_rasters(src, 60)
    out = tmp_path / "cat"
    procs = [_run_build(src, out, part_rows=5) for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=240) == 0, proc.stderr.read().decode()
    assert _assert_consistent(out) == len(files)  # no duplicate ids, nothing lost
    paths = geoduck.open_catalog(out).to_arrow()["filepath"].to_pylist()
    assert sorted(paths) == sorted(str(p) for p in files)


def test_orphan_temps_cleaned_by_next_writer_but_not_live_ones(tmp_path, archive):
    out = tmp_path / "cat"
    geoduck.build_raster_catalog(archive[:3], out, progress=False)
    stale = out / ".part-stale.parquet.tmp"
    stale.write_bytes(b"half a parquet file")
    old = time.time() - 2 * store.ORPHAN_GRACE_S
    os.utime(stale, (old, old))
    live = out / ".part-live.parquet.tmp"
    with store.owned_temp(live) as fh:  # held by a "live writer" (this fd's lock)
        fh.write(b"writing...")
        os.utime(live, (old, old))
        geoduck.build_raster_catalog(archive[3:6], out, progress=False)
        assert not stale.exists()
        assert live.exists()
    assert len(geoduck.open_catalog(out)) == 6


def _ids(cat: geoduck.Catalog, **query) -> list[str]:
    return (
        sorted(cat.query(**query).to_arrow()["id"].to_pylist()) if query else sorted(cat.to_arrow()["id"].to_pylist())
    )


@pytest.mark.parametrize("part_rows, sizes", [(None, [3000]), (700, [700, 700, 700, 700, 200])])
def test_compaction_identical_results_and_atomic_for_readers(tmp_path, part_rows, sizes):
    """One Hilbert order over all rows, cut into parts of ``part_rows`` (default 50,000) and
    switched in by the last rename: concurrent readers always see every row exactly once."""
    root = write_synthetic_catalog(tmp_path / "c", 60, 50, part_rows=150, seed=2)
    assert len(store.list_parts(root)) == 20
    cat = geoduck.open_catalog(root)
    queries = [
        dict(bbox=(-9.7, 35.1, -9.4, 35.4), start="2020-01-05", end="2020-01-20"),
        dict(bbox=(-10.0, 35.0, -9.0, 36.0)),
        dict(start="2020-02-01", end="2020-02-03"),
    ]
    before = [_ids(cat, **q) for q in queries]
    full = _ids(cat)
    counts: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            counts.append(len(geoduck.open_catalog(root)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        report = geoduck.compact(root) if part_rows is None else geoduck.compact(root, part_rows=part_rows)
    finally:
        stop.set()
        thread.join()
    assert (report.parts_before, report.parts_after, report.rows) == (20, len(sizes), 3000)
    assert counts and set(counts) == {3000}  # never both sets, never neither
    after = geoduck.open_catalog(root)
    assert [_ids(after, **q) for q in queries] == before
    assert _ids(after) == full
    assert geoduck.validate(root) == []
    parts = store.live_parts(root)
    assert sorted(report.written) == sorted(str(p) for p in parts) == sorted(map(str, store.list_parts(root)))
    in_order = sorted(parts, key=lambda p: report.written.index(str(p)))
    assert [pq.read_metadata(p).num_rows for p in in_order] == sizes
    assert all(pq.ParquetFile(p).metadata.num_row_groups == 1 for p in parts)  # < ROW_GROUP_SIZE
    assert store.read_manifest(root)["replacements"] == []
    with pytest.raises(BuildError, match="part_rows"):
        geoduck.compact(root, part_rows=0)


def test_compaction_killed_between_renames_of_its_parts(tmp_path, monkeypatch):
    """Killed after some of its new parts are renamed into place: readers skip those (the old
    parts are still the live set), and the next compaction rolls back and completes."""
    root = write_synthetic_catalog(tmp_path / "c", 30, 20, part_rows=100)
    full = _ids(geoduck.open_catalog(root))
    old = set(store.list_parts(root))

    class Crash(BaseException):
        pass

    real_replace, renamed = os.replace, []

    def replace(src, dst):
        if Path(src).name.startswith(store.COMPACT_PREFIX):
            if renamed:
                raise Crash()
            renamed.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(maint.os, "replace", replace)
    with pytest.raises(Crash):
        maint.compact(root, part_rows=150)
    monkeypatch.undo()
    assert len(renamed) == 1 and Path(renamed[0]).exists()
    assert set(store.list_parts(root)) == old | {Path(renamed[0])}
    assert set(store.live_parts(root)) == old
    assert _ids(geoduck.open_catalog(root)) == full
    report = geoduck.compact(root, part_rows=150)
    assert report.parts_after == 4 and _ids(geoduck.open_catalog(root)) == full
    assert not Path(renamed[0]).exists() and not list(root.glob(".*.tmp"))


def test_query_whose_parts_a_compaction_replaced_meanwhile_runs_again(tmp_path, monkeypatch):
    """A relation compiled to explicit part names just before a compaction deletes those parts:
    the query compiles and runs again on the new parts instead of failing."""
    root = write_synthetic_catalog(tmp_path / "c", 30, 20, part_rows=100)
    query = dict(start="2020-01-03", end="2020-01-05")
    expected = _ids(geoduck.open_catalog(root), **query)
    rel = geoduck.open_catalog(root).query(**query)
    assert "/part-" in rel.sql_text  # pruned by time: the parts are named, not globbed
    real, compacted = geoduck.compiler.render, []

    def render(tree, **kw):
        if not compacted:  # the parts named in this tree are replaced before DuckDB reads them
            compacted.append(None)  # (compaction renders SQL too)
            compacted[0] = maint.compact(root)
        return real(tree, **kw)

    monkeypatch.setattr(geoduck.compiler, "render", render)
    assert sorted(rel.to_arrow()["id"].to_pylist()) == expected
    assert compacted and compacted[0].parts_after == 1
    assert len(rel) == len(expected)


@pytest.mark.parametrize("crash_at", ["write", "manifest", "switch", "delete"])
def test_compaction_killed_midway_loses_nothing(tmp_path, monkeypatch, crash_at):
    root = write_synthetic_catalog(tmp_path / "c", 30, 20, part_rows=100)
    full = _ids(geoduck.open_catalog(root))

    class Crash(BaseException):
        pass

    real_replace = os.replace
    if crash_at == "write":
        monkeypatch.setattr(store, "write_parquet", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    elif crash_at == "manifest":
        monkeypatch.setattr(store, "write_manifest", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    elif crash_at == "switch":

        def replace(src, dst):
            if str(src).endswith(".tmp") and Path(src).name.startswith(store.COMPACT_PREFIX):
                raise Crash()
            return real_replace(src, dst)

        monkeypatch.setattr(maint.os, "replace", replace)
    else:  # killed after the switch, before the old parts are deleted
        monkeypatch.setattr(maint, "recover", lambda root: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        maint.compact(root)
    monkeypatch.undo()
    # A reader right after the crash sees exactly the catalog's rows.
    assert _ids(geoduck.open_catalog(root)) == full
    # The next maintenance run recovers and completes.
    report = geoduck.compact(root)
    assert report.parts_after == 1
    assert _ids(geoduck.open_catalog(root)) == full
    assert len(store.list_parts(root)) == 1
    assert not list(root.glob(".*.tmp"))


def test_compaction_leaves_parts_appended_meanwhile(tmp_path, monkeypatch):
    root = write_synthetic_catalog(tmp_path / "c", 10, 10, part_rows=25)
    real = maint._write_sorted

    def write_sorted(parts, row_group_size, part_rows):
        inner = real(parts, row_group_size, part_rows)

        def write(new_temp):
            inner(new_temp)
            write_synthetic_catalog(root, 3, 2, prefix="late")  # an append during compaction

        return write

    monkeypatch.setattr(maint, "_write_sorted", write_sorted)
    report = geoduck.compact(root)
    assert report.rows == 100
    cat = geoduck.open_catalog(root)
    assert len(cat) == 106
    assert len(store.list_parts(root)) == 2


def test_compaction_lock_is_exclusive(tmp_path):
    root = write_synthetic_catalog(tmp_path / "c", 4, 4, part_rows=4)
    with maint.maintenance_lock(root), pytest.raises(BuildError, match="another compaction"):
        geoduck.compact(root)


def _write_v0_part(root: Path, n_tiles: int = 3) -> None:
    """A schema-v0 fixture: no native_bounds, no schema_version column, version 0 metadata."""
    table = write_synthetic_catalog.__globals__["synthetic_catalog_table"](n_tiles, 2, prefix="v0")
    table = table.drop_columns([schema.NATIVE_BOUNDS, schema.VERSION])
    t = [[0.1 / 256, 0.0, -10.0 + 0.1 * i, 0.0, -0.1 / 256, 35.1] for i in range(table.num_rows)]
    table = table.set_column(table.column_names.index("transform"), "transform", pa.array(t, pa.list_(pa.float64())))
    meta = schema.part_metadata(["Polygon"], None)
    meta[schema.KV_SCHEMA_VERSION] = b"0"
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), root / store.new_part_name())


def test_v0_parts_need_explicit_migration(tmp_path):
    root = tmp_path / "c"
    write_synthetic_catalog(root, 4, 2)
    _write_v0_part(root)
    with pytest.raises(SchemaError, match="schema_version 0, older than 1.*geoduck migrate"):
        geoduck.open_catalog(root)
    report = geoduck.migrate(root)
    assert report.rows == 6 and len(report.removed) == 1
    cat = geoduck.open_catalog(root)
    assert len(cat) == 14
    rows = cat.where("filepath LIKE '/v0/%'").to_arrow().to_pylist()
    assert {r["schema_version"] for r in rows} == {1}
    nb = rows[0]["native_bounds"]
    assert nb["xmax"] - nb["xmin"] == pytest.approx(0.1) and nb["ymax"] == pytest.approx(35.1)
    assert geoduck.validate(root) == []


def test_newer_schema_version_fails_naming_both(tmp_path):
    root = write_synthetic_catalog(tmp_path / "c", 2, 2)
    part = store.list_parts(root)[0]
    table = pq.read_table(part)
    meta = dict(table.schema.metadata)
    meta[schema.KV_SCHEMA_VERSION] = b"7"
    pq.write_table(table.replace_schema_metadata(meta), part)
    with pytest.raises(SchemaError, match="schema_version 7, newer than 1"):
        geoduck.open_catalog(root)


def test_validate_reports_problems_by_part_and_row(tmp_path):
    root = write_synthetic_catalog(tmp_path / "c", 5, 2)
    part = store.list_parts(root)[0]
    table = pq.read_table(part)
    rows = table.to_pylist()
    rows[1]["bbox"] = {"xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0}
    rows[2]["id"] = rows[0]["id"]
    rows[3]["start_datetime"], rows[3]["end_datetime"] = rows[3]["end_datetime"], rows[3]["start_datetime"]
    rows[3]["start_datetime"] = rows[3]["start_datetime"].replace(year=2021)
    bad = pa.Table.from_pylist(rows, schema=table.schema)
    geo = schema.geo_metadata(["Polygon"], None)
    del geo["columns"]["geometry"]["covering"]
    meta = dict(table.schema.metadata)
    meta[b"geo"] = __import__("json").dumps(geo).encode()
    pq.write_table(bad.replace_schema_metadata(meta), part)
    problems = [str(p) for p in geoduck.validate(root)]
    assert any("bbox covering" in p for p in problems)
    assert any(p.startswith(f"{part} row 1: bbox") for p in problems)
    assert any(p.startswith(f"{part} row 2: duplicate id") for p in problems)
    assert any(p.startswith(f"{part} row 3: start_datetime > end_datetime") for p in problems)
    result = CliRunner().invoke(main, ["validate", str(root)])
    assert result.exit_code == 1
    assert "problem(s) found" in result.output
    good = CliRunner().invoke(main, ["validate", str(write_synthetic_catalog(tmp_path / "g", 3, 3))])
    assert good.exit_code == 0 and "valid" in good.output
