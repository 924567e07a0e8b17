"""The part index (issue #16.1): ``_geoduck_index.pqi`` holds every part's extents, written with
every append and compaction, rebuilt from the footers when missing or stale, invisible to plain
readers, and a query reads neither the footers of the parts it prunes nor the parts themselves."""

from __future__ import annotations

import os
import posixpath
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from s3_server import moto_s3

import geoduck
from geoduck import maintenance, storage, store
from geoduck.intervals import query_interval
from geoduck.testing import synthetic_catalog_table, write_synthetic_catalog

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    dict(bbox=(-9.9, 35.0, -9.5, 35.4), start="2020-01-03", end="2020-01-06"),
    dict(bbox=(-9.45, 35.2, -9.05, 35.5), start="2020-01-01", end="2020-01-02"),
    dict(bbox=(-20.0, 0.0, -19.0, 1.0)),  # nothing there
    dict(start="2020-01-10", end="2020-01-11"),
]


def footer_index(root: Path) -> dict[str, store.IndexEntry]:
    """The index rebuilt from scratch: every committed part's footer."""
    return {p.name: store.index_entry(p) for p in store.list_parts(root)}


def assert_consistent(root: Path) -> None:
    index = store.read_index(root)
    assert index is not None
    live = {p.name for p in store.live_parts(root)}
    assert live <= set(index)  # every live part indexed …
    want = footer_index(root)
    assert {name: index[name] for name in want} == want  # … with its footer's figures


def oracle(root: Path, q: dict) -> list[str]:
    """Brute force: every live part read whole with pyarrow, rows filtered with shapely."""
    rows = pa.concat_tables(pq.read_table(p) for p in store.live_parts(root)).to_pylist()
    t0, t1 = query_interval(q.get("start"), q.get("end"))
    aoi = shapely.box(*q["bbox"]) if "bbox" in q else None
    return sorted(
        r["id"]
        for r in rows
        if (aoi is None or shapely.from_wkb(r["geometry"]).intersects(aoi))
        and (t1 is None or r["start_datetime"] <= t1)
        and (t0 is None or r["end_datetime"] >= t0)
    )


def answers(root: Path) -> list[list[str]]:
    cat = geoduck.open_catalog(root)
    return [sorted(cat.query(**q).to_arrow()["id"].to_pylist()) for q in QUERIES]


@pytest.fixture
def cat(tmp_path):
    return write_synthetic_catalog(tmp_path / "cat", 30, 12, part_rows=40)  # 9 × 40-row appends


def test_index_matches_the_footers_after_appends_and_compaction(cat):
    assert len(store.list_parts(cat)) == 9
    assert_consistent(cat)
    store.write_part(synthetic_catalog_table(5, 2, start="2021-01-01"), cat)
    assert_consistent(cat)
    before = set(store.read_index(cat) or {})
    report = maintenance.compact(cat, part_rows=100)
    assert_consistent(cat)
    index = store.read_index(cat) or {}
    assert set(index) == {p.name for p in store.list_parts(cat)}  # the old parts' entries dropped
    assert not set(index) & before
    assert sum(e.rows for e in index.values()) == report.rows == 30 * 12 + 10


def test_index_is_invisible_to_plain_readers(cat):
    assert (cat / store.INDEX).is_file()
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{store.part_glob(cat)}')").fetchone()[0]
    assert n == 30 * 12
    gpd = pytest.importorskip("geopandas")
    assert len(gpd.read_parquet(cat)) == 30 * 12
    assert pq.ParquetDataset(cat).read().num_rows == 30 * 12


def test_answers_are_the_same_with_a_missing_stale_or_damaged_index(cat):
    want = [oracle(cat, q) for q in QUERIES]
    assert all(want[:2]) and not want[2]
    assert answers(cat) == want
    (cat / store.INDEX).unlink()  # missing: footers read, index rebuilt
    assert answers(cat) == want
    assert_consistent(cat)
    # stale: a part written by a plain writer (no index update)
    table = store.sort_rows(synthetic_catalog_table(40, 3, start="2020-01-02", origin=(-9.8, 35.1), prefix="x"))
    with open(cat / store.new_part_name(), "wb") as fh:
        store.write_parquet(table, fh)
    assert len(store.list_parts(cat)) - 1 == len(store.read_index(cat) or {})
    want = [oracle(cat, q) for q in QUERIES]
    assert answers(cat) == want
    assert_consistent(cat)  # rewritten by the reader
    (cat / store.INDEX).write_bytes(b"PAR1 damaged")
    assert store.read_index(cat) is None
    assert answers(cat) == want
    assert_consistent(cat)


def test_a_read_only_catalog_reads_footers_and_answers_the_same(cat, monkeypatch):
    want = [oracle(cat, q) for q in QUERIES]
    (cat / store.INDEX).unlink()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store, "owned_temp", refuse)
    assert answers(cat) == want
    assert not (cat / store.INDEX).exists()


def test_pruned_parts_are_never_opened(cat):
    """The parts a query prunes are overwritten with junk after the catalog is opened: neither
    geoduck (no footer, no stat) nor DuckDB may touch them for the answer to come out right."""
    q = QUERIES[0]
    want = oracle(cat, q)
    catalog = geoduck.open_catalog(cat)
    index = store.read_index(cat) or {}
    x0, y0, x1, y1 = q["bbox"]
    t0, t1 = (int(t.value // 1000) for t in query_interval(q["start"], q["end"]))
    pruned = [
        name
        for name, e in index.items()
        if e.extent.xmin > x1
        or e.extent.xmax < x0
        or e.extent.ymin > y1
        or e.extent.ymax < y0
        or e.extent.tmin > t1
        or e.extent.tmax < t0
    ]
    assert 0 < len(pruned) < len(index) - 1
    for name in pruned:
        (cat / name).write_bytes(b"not parquet at all")
    assert sorted(catalog.query(**q).to_arrow()["id"].to_pylist()) == want
    bound = storage.bind(catalog.query(**q).node)
    assert not any(name in geoduck.compiler.to_sql(bound) for name in pruned)


APPENDER = """
import sys, time
from geoduck import store
from geoduck.testing import synthetic_catalog_table
root, first = sys.argv[1], int(sys.argv[2])
for i in range(first, first + 1000):
    month, x = 1 + i % 12, -10 + (i % 9) * 0.7
    t = synthetic_catalog_table(7, 1, start=f"2020-{month:02d}-01", origin=(x, 35.0), prefix=f"a{i}")
    store.write_part(t, root)
    print(i, flush=True)
"""


def test_index_is_consistent_after_appenders_are_killed(tmp_path):
    root = tmp_path / "cat"
    store.write_part(synthetic_catalog_table(7, 1), root)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = np.random.default_rng(5)
    for k in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(root), str(1000 * k)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # the interpreter is up and one part is written
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    n_rows = sum(pq.read_metadata(p).num_rows for p in store.list_parts(root))
    q = dict(bbox=(-10.0, 35.0, -8.0, 35.3), start="2020-03-01", end="2020-05-31")
    want = oracle(root, q)
    cat = geoduck.open_catalog(root)
    assert len(cat) == n_rows
    assert sorted(cat.query(**q).to_arrow()["id"].to_pylist()) == want and want
    assert_consistent(root)
    maintenance.compact(root)  # recovery (clean-up) leaves it consistent too
    assert_consistent(root)
    assert sorted(geoduck.open_catalog(root).query(**q).to_arrow()["id"].to_pylist()) == want


@pytest.fixture
def s3():
    """A moto S3 server on 127.0.0.1 with the AWS variables pointing at it."""
    with moto_s3("idx") as fs:
        yield fs


def test_remote_catalog_prunes_parts_by_its_index(cat, s3):
    from geoduck import remote

    for part in store.list_parts(cat):
        s3.put_file(str(part), f"idx/cat/{part.name}")
    uri = "s3://idx/cat"
    want = [oracle(cat, q) for q in QUERIES]
    remote_cat = geoduck.open_catalog(uri)
    q = QUERIES[0]
    unpruned = geoduck.compiler.to_sql(remote_cat.query(**q).node)  # no index: the glob, every part
    assert "*.parquet" in unpruned and "/part-" not in unpruned
    assert [sorted(remote_cat.query(**q).to_arrow()["id"].to_pylist()) for q in QUERIES] == want
    s3.put_file(str(cat / store.INDEX), f"idx/cat/{store.INDEX}")
    assert remote.read_index(uri) == store.read_index(cat)
    sql = geoduck.compiler.to_sql(remote_cat.query(**q).node)
    named = sql.count("/part-")
    assert 1 <= named < len(store.list_parts(cat))  # pruned by the index, no footer read
    assert [sorted(remote_cat.query(**q).to_arrow()["id"].to_pylist()) for q in QUERIES] == want
    # a part the index lacks: nothing pruned, same answers
    extra = store.write_part(synthetic_catalog_table(3, 2, start="2020-01-04", prefix="late"), cat)
    s3.put_file(str(extra), f"idx/cat/{extra.name}")
    want = [oracle(cat, q) for q in QUERIES]
    assert "/part-" not in geoduck.compiler.to_sql(remote_cat.query(**q).node)
    assert [sorted(remote_cat.query(**q).to_arrow()["id"].to_pylist()) for q in QUERIES] == want


@pytest.fixture
def s3_warm():
    """A moto S3 server with a bucket of its own (moto's buckets outlive a server in the process)."""
    with moto_s3("warm") as fs:
        yield fs


def test_remote_warm_queries_list_once_and_reread_what_changed(cat, s3_warm, monkeypatch):
    """A query of an unchanged S3 catalog costs one LIST to prune (the manifest and the part index
    read before are not read again while the listing shows the same bytes, by MD5); a changed
    manifest or index is read again, and answers stay exact throughout."""
    import json

    from geoduck import remote

    s3 = s3_warm
    for path in [*store.list_parts(cat), cat / store.INDEX]:
        s3.put_file(str(path), f"warm/cat/{path.name}")
    uri = "s3://warm/cat"
    gets: list[str] = []
    lists: list[str] = []
    real_get, real_list = remote._get, remote._detailed_listing
    monkeypatch.setattr(remote, "_get", lambda fs, u: gets.append(posixpath.basename(u)) or real_get(fs, u))
    monkeypatch.setattr(remote, "_detailed_listing", lambda r: lists.append(r) or real_list(r))

    def query(q) -> list[str]:
        gets.clear()
        lists.clear()
        return sorted(geoduck.open_catalog(uri).query(**q).to_arrow()["id"].to_pylist())

    want = [oracle(cat, q) for q in QUERIES]
    assert query(QUERIES[0]) == want[0]
    assert store.MANIFEST in gets  # (a 404: this catalog has none) and the index, once
    for q, w in zip(QUERIES, want, strict=True):  # warm: nothing read again
        assert query(q) == w
        assert gets == [] and len(lists) == 2  # open_catalog's listing and the query's
    manifest = {"generation": 1, "replacements": []}
    s3.pipe_file(f"warm/cat/{store.MANIFEST}", json.dumps(manifest).encode())
    assert query(QUERIES[0]) == want[0] and gets.count(store.MANIFEST) == 1  # appeared: read
    assert query(QUERIES[0]) == want[0] and gets == []
    s3.pipe_file(f"warm/cat/{store.MANIFEST}", json.dumps({**manifest, "generation": 2}).encode())
    assert query(QUERIES[0]) == want[0] and gets.count(store.MANIFEST) == 1  # changed: read again
    extra = store.write_part(synthetic_catalog_table(3, 2, start="2020-01-04", prefix="late"), cat)
    s3.put_file(str(extra), f"warm/cat/{extra.name}")
    s3.put_file(str(cat / store.INDEX), f"warm/cat/{store.INDEX}")  # the index now lists it too
    want = [oracle(cat, q) for q in QUERIES]
    assert query(QUERIES[0]) == want[0] and gets == [store.INDEX]  # the new index, read once
    assert [query(q) for q in QUERIES] == want and gets == []
    s3.rm_file(f"warm/cat/{store.MANIFEST}")
    assert query(QUERIES[1]) == want[1] and gets == [store.MANIFEST]  # gone: read (404), then known
    s3.rm_file(f"warm/cat/{store.INDEX}")
    assert query(QUERIES[1]) == want[1] and gets == [store.INDEX] * 2  # gone: a 404 (open, query)
    assert "/part-" not in geoduck.compiler.to_sql(geoduck.open_catalog(uri).query(**QUERIES[1]).node)


def test_http_catalog_lists_through_fsspec_and_answers_as_the_local_one(cat, tmp_path):
    """A catalog on a plain HTTP server with directory listings (python -m http.server, in its own
    process): parts listed through fsspec (no MD5s there: the manifest and index are read on every
    query), the same rows as the local catalog."""
    pytest.importorskip("aiohttp")
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(cat.parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(server.stdout.readline().split(" port ")[1].split()[0])  # "Serving HTTP on … port N …"
        remote_cat = geoduck.open_catalog(f"http://127.0.0.1:{port}/{cat.name}")
        assert len(remote_cat) == len(geoduck.open_catalog(cat))
        for q in QUERIES:
            assert sorted(remote_cat.query(**q).to_arrow()["id"].to_pylist()) == oracle(cat, q)
    finally:
        server.kill()
        server.wait()


def test_a_reused_listing_sees_every_part_added_or_removed_later(cat):
    """The listing of a folder last changed over 2 s before is reused while its mtime stays; any
    part added or removed after that changes the mtime, so the next query lists again."""
    old = time.time() - 10
    os.utime(cat, (old, old))  # as if the last part had been written 10 s ago
    q = dict(start="2020-01-01", end="2021-12-31")
    rel = geoduck.open_catalog(cat).query(**q)
    assert len(rel) == 360
    assert store._LISTED[os.fspath(cat)][1] == store.part_names(cat)  # kept for reuse
    store.write_part(synthetic_catalog_table(4, 1, start="2021-06-01", prefix="new"), cat)
    assert len(rel) == 364
    os.utime(cat, (old + 1, old + 1))
    assert len(rel) == 364
    report = maintenance.compact(cat)
    assert report.parts_after < report.parts_before
    assert len(rel) == 364 and sorted(rel.to_arrow()["id"].to_pylist()) == oracle(cat, q)
