"""Bind, then compile (issue #13, point 1): each catalog a relation reads is listed once, by
:func:`geoduck.storage.bind`, and compiling the bound tree does no I/O at all."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import shapely

import geoduck
from geoduck import compiler, remote, storage, store
from geoduck.expr import Scan
from geoduck.intervals import query_interval
from geoduck.testing import write_synthetic_catalog

QUERY = dict(bbox=(-9.9, 35.0, -9.5, 35.4), start="2020-01-03", end="2020-01-06")


@pytest.fixture(scope="module")
def cats(tmp_path_factory):
    root = tmp_path_factory.mktemp("bind")
    a = write_synthetic_catalog(root / "a", 30, 12, part_rows=40)  # many small parts: pruning applies
    b = write_synthetic_catalog(root / "b", 20, 6, tile_deg=0.13, seed=3, part_rows=60)
    return geoduck.open_catalog(a), geoduck.open_catalog(b)


class Counter:
    """Counts calls of the storage functions binding may use."""

    def __init__(self, monkeypatch):
        self.calls: dict[str, int] = {}
        for module, name in (
            (store, "live_listing"),
            (store, "part_extent"),
            (store, "index_entry"),
            (store, "read_index"),
            (store, "read_manifest"),
            (store, "part_names"),
            (remote, "live_listing"),
        ):
            real = getattr(module, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                self.calls[_name] = self.calls.get(_name, 0) + 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, name, counted)


def forbid_io(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("compiling did I/O")

    for module, name in (
        (store, "live_listing"),
        (store, "part_extent"),
        (store, "read_manifest"),
        (store, "part_names"),
        (store, "list_parts"),
        (remote, "live_listing"),
        (remote, "list_files"),
    ):
        monkeypatch.setattr(module, name, refuse)


def relations(a: geoduck.Catalog, b: geoduck.Catalog) -> dict[str, tuple[geoduck.Catalog, set[str]]]:
    """Relations and the catalog roots each reads."""
    ra, rb = a.node.root, b.node.root
    return {
        "scan": (a, {ra}),
        "query": (a.query(**QUERY), {ra}),
        "where_over_query": (a.query(**QUERY).where("tile <> 'x'"), {ra}),
        "intersect": (a.intersect(b), {ra, rb}),
        "self_intersect": (a.intersect(a.query(**QUERY)), {ra}),
        "difference": (a.query(**QUERY).difference(b), {ra, rb}),
        "union_intersect": (a.union(b).intersect(b, spatial_only=True), {ra, rb}),
    }


def test_binding_lists_each_catalog_once_and_compiling_does_no_io(cats, monkeypatch):
    a, b = cats
    for name, (rel, roots) in relations(a, b).items():
        expected_sql = rel.sql_text
        with monkeypatch.context() as m:
            counter = Counter(m)
            bound = storage.bind(rel.node)
            assert counter.calls.get("live_listing") == len(roots), (name, counter.calls)
            assert storage.is_bound(bound) and not storage.is_bound(rel.node)
            assert storage.bind(bound) is bound  # a bound tree binds to itself …
            assert counter.calls.get("live_listing") == len(roots)  # … without listing again
        with monkeypatch.context() as m:
            forbid_io(m)
            assert compiler.render(compiler.visit(bound), pretty=True) == expected_sql, name
            assert compiler.to_sql(bound) == expected_sql  # entry points take bound trees as they are
        with monkeypatch.context() as m:  # sql_text binds once
            counter = Counter(m)
            assert rel.sql_text == expected_sql
            assert counter.calls.get("live_listing") == len(roots), (name, counter.calls)


def test_an_unbound_scan_does_not_compile():
    with pytest.raises(TypeError, match="not bound"):
        compiler.visit(Scan("/nowhere"))


def test_extents_are_read_at_binding_only_where_a_filter_may_skip_parts(cats, monkeypatch):
    a, _ = cats
    n_parts = len(store.live_parts(a.node.root))
    assert n_parts > 5
    with monkeypatch.context() as m:
        counter = Counter(m)
        storage.bind(a.node)
        storage.bind(a.with_interval_padding(before="1D").query(**QUERY).node)  # filter over a pad: no
        assert "part_extent" not in counter.calls and "read_index" not in counter.calls
        bound = storage.bind(a.query(**QUERY).node)
        assert counter.calls["read_index"] == 1  # the extents come from the part index …
        assert "part_extent" not in counter.calls and "index_entry" not in counter.calls  # … no footer
    sql = compiler.to_sql(bound)
    named = sql.count("/part-")
    assert 1 <= named < n_parts  # pruned by the bound extents
    # the pruned, bound SQL gives what a brute-force filter over every part gives
    full = pq.ParquetDataset([str(p) for p in store.live_parts(a.node.root)]).read().to_pylist()
    t0, t1 = query_interval(QUERY["start"], QUERY["end"])
    aoi = shapely.box(*QUERY["bbox"])
    want = sorted(
        r["id"]
        for r in full
        if shapely.from_wkb(r["geometry"]).intersects(aoi) and r["start_datetime"] <= t1 and r["end_datetime"] >= t0
    )
    got = sorted(a.query(**QUERY).to_arrow()["id"].to_pylist())
    assert got == want and len(want) > 0


def test_one_listing_for_a_catalog_read_twice_in_user_sql(cats, monkeypatch):
    a, b = cats
    want = len(a) * len(b)
    with monkeypatch.context() as m:
        counter = Counter(m)
        out = geoduck.sql("SELECT count(*) AS n FROM x, y", x=a, y=b)
        # bound once per run (the read may run again only if a compaction raced it)
        assert counter.calls["live_listing"] == 2
    assert int(out["n"][0]) == want


def test_live_names_hides_the_new_parts_of_an_unfinished_replacement():
    old, new = ["part-1-a.parquet", "part-2-b.parquet"], ["part-3-c.parquet", "part-4-d.parquet"]
    manifest = {"generation": 1, "replacements": [{"replaces": old, "by": new}]}
    listed = [*old, new[0], "part-5-e.parquet"]  # half renamed, plus an append
    assert store.live_names(listed, manifest, set(listed).__contains__) == ([*old, "part-5-e.parquet"], True)
    listed = [*old, *new, "part-5-e.parquet"]  # switched, old ones not deleted yet
    assert store.live_names(listed, manifest, set(listed).__contains__) == ([*new, "part-5-e.parquet"], True)
    assert store.live_names(old, {"generation": 2, "replacements": []}, bool) == (old, False)
