"""``Catalog.explain()`` and ``geoduck query --explain`` (issue #16.4): exact figures on a catalog
whose layout the test controls — 4 parts, one tile each (far apart), 30 daily rows in row groups
of 10 rows (days 0-9, 10-19, 20-29)."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

import geoduck
from geoduck import store
from geoduck.cli import main
from geoduck.explain import Explain
from geoduck.testing import synthetic_catalog_table

ORIGINS = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain") / "cat"
    for i, origin in enumerate(ORIGINS):
        table = synthetic_catalog_table(1, 30, origin=origin, tile_deg=0.5, prefix=f"p{i}")
        store.write_part(table, root, row_group_size=10)
    return geoduck.open_catalog(root)


def test_figures_of_a_query_pruning_parts_and_row_groups(cat):
    rel = cat.query(bbox=(0.1, 0.1, 0.2, 0.2), start="2020-01-13", end="2020-01-16")  # days 12-15, part 0
    ex = rel.explain()
    assert isinstance(ex, Explain)
    assert (ex.parts_total, ex.parts_pruned, ex.parts_opened) == (4, 3, 1)
    assert (ex.row_groups_total, ex.row_groups_read) == (12, 1)  # only days 10-19 of part 0
    assert (ex.rows_scanned, ex.rows_returned) == (10, 4)
    assert ex.rows_returned == len(rel)
    assert 0 < ex.bytes_read <= sum(p.stat().st_size for p in store.list_parts(cat.node.root))
    for stage in ("bind_ms", "compile_ms", "execute_ms", "fetch_ms"):
        assert 0 < getattr(ex, stage) < 60_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.parts_total = 0  # type: ignore[misc]
    text = str(ex)
    assert "4 in catalog, 3 pruned by geoduck, 1 opened" in text
    assert "12 total, 1 read" in text and "10 scanned, 4 returned" in text


def test_figures_of_a_time_only_query_and_of_a_full_scan(cat):
    ex = cat.query(start="2020-01-21", end="2020-01-22").explain()  # days 20-21 of every tile
    assert (ex.parts_total, ex.parts_pruned, ex.parts_opened) == (4, 0, 4)
    assert (ex.row_groups_total, ex.row_groups_read, ex.rows_scanned, ex.rows_returned) == (12, 4, 40, 8)
    full = cat.explain()
    assert (full.parts_total, full.parts_pruned, full.parts_opened) == (4, 0, 4)
    assert (full.row_groups_total, full.row_groups_read, full.rows_scanned, full.rows_returned) == (12, 12, 120, 120)


def test_scans_under_a_join_have_unknown_row_groups(cat):
    ex = cat.query(bbox=(0.0, 0.0, 1.0, 1.0)).intersect(cat.query(start="2020-01-01", end="2020-01-05")).explain()
    assert ex.row_groups_read is None and ex.rows_scanned is None
    assert ex.row_groups_total == 24 and ex.parts_total == 8
    assert ex.rows_returned == 5  # part 0's days 0-4 meet themselves
    assert "? read" in str(ex)


def test_cli_query_explain(cat):
    result = CliRunner().invoke(
        main,
        [
            "query",
            str(cat.node.root),
            "--bbox",
            *"0.1 0.1 0.2 0.2".split(),
            "--start",
            "2020-01-13",
            "--end",
            "2020-01-16",
        ]
        + ["--explain"],
    )
    assert result.exit_code == 0, result.output
    assert "4 in catalog, 3 pruned by geoduck, 1 opened" in result.output
    assert "10 scanned, 4 returned" in result.output
