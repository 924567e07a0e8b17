"""Issue #13 point 2: one execution path. The reads of samplers, loaders (raster row selection,
vector, xarray), the join planner and maintenance run through ``geoduck.catalog.execute``: they
survive a compaction between compiling their SQL and running it, and raise ``QueryError``
otherwise (parts replaced on every attempt, a broken part, a part deleted under a compaction)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import geoduck
from geoduck import catalog, compiler, maintenance, samplers, schema, store
from geoduck.errors import QueryError
from geoduck.loaders import sources, vector
from geoduck.loaders import xarray as xarray_loader
from geoduck.testing import synthetic_catalog_table

SLICE = geoduck.GeoSlice((-9.95, 35.05, -9.65, 35.35), "EPSG:4326", 0.01, start="2020-01-02", end="2020-01-05")
BACKENDS = ("raster", "vector", "xarray")


def _table() -> pa.Table:
    """360 rows (36 tiles × 10 days), backends cycling raster/vector/xarray, every backend's columns."""
    t = synthetic_catalog_table(36, 10, tile_deg=0.1)
    n = t.num_rows
    kinds = pa.array(np.array(BACKENDS)[np.arange(n) % 3])
    t = t.set_column(t.schema.get_field_index(schema.BACKEND), schema.BACKEND, kinds)
    for name, value in (("layer", "fields"), ("variable", "t2m"), ("time_var", "time"), ("engine", "netcdf4")):
        t = t.append_column(name, pa.array([value] * n))
    return t


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, pa.Table]:
    """The catalog of :func:`_table` in 6 parts (appends of 60 rows)."""
    root, table = tmp_path / "cat", _table()
    for offset in range(0, table.num_rows, 60):
        store.write_parts(table.slice(offset, 60), root)
    return root, table


def _under_slice(table: pa.Table, backend: str | None = None) -> pd.DataFrame:
    """Brute-force oracle: rows whose bbox (the footprints are boxes) and closed interval meet SLICE."""
    df = table.select([schema.FILEPATH, schema.BACKEND, schema.START, schema.END]).to_pandas()
    b = table[schema.BBOX].combine_chunks()
    x0, y0, x1, y1 = (b.field(k).to_numpy() for k in schema.BBOX_KEYS)
    sx0, sy0, sx1, sy1 = SLICE.grid_bounds
    keep = (x0 <= sx1) & (x1 >= sx0) & (y0 <= sy1) & (y1 >= sy0)
    keep &= (df[schema.START] <= SLICE.end).to_numpy() & (df[schema.END] >= SLICE.start).to_numpy()
    if backend is not None:
        keep &= (df[schema.BACKEND] == backend).to_numpy()
    return df[keep]


# -- the six read paths, each as a comparable value ------------------------------------------------


def _sampler_rows(cat: geoduck.Catalog) -> list[str]:
    return samplers._fetch(cat)[schema.ID].to_pylist()


def _raster_rows_indexed(cat: geoduck.Catalog) -> list[tuple]:
    sources.clear_cache()
    return [(s.filepath, s.start) for s in sources.sources_for(cat, SLICE)]


def _raster_rows_queried(cat: geoduck.Catalog) -> list[tuple]:
    sources.clear_cache()
    old = sources.INDEX_MAX_ROWS
    sources.INDEX_MAX_ROWS = 0  # the SQL query path (catalogs too large for the row index)
    try:
        return [(s.filepath, s.start) for s in sources.sources_for(cat, SLICE)]
    finally:
        sources.INDEX_MAX_ROWS = old


def _xarray_rows(cat: geoduck.Catalog) -> list[tuple]:
    return [(i.filepath, i.variable) for i in xarray_loader.items_for(cat, SLICE)]


def _vector_rows(cat: geoduck.Catalog) -> list[str]:
    return [s.filepath for s in vector.sources_for(cat, SLICE)]


def _join_plan(cat: geoduck.Catalog) -> object:
    return catalog.join_plan(cat.node, cat.query(start="2020-01-04").node, False)


PATHS: dict[str, tuple[Callable[[geoduck.Catalog], object], str]] = {
    # name: (the read, a text only its SQL contains)
    "samplers": (_sampler_rows, "AS native_crs"),
    "raster rows (index)": (_raster_rows_indexed, '"dtype", "nodata", "count"'),
    "raster rows (query)": (_raster_rows_queried, '"dtype", "nodata", "count"'),
    "xarray": (_xarray_rows, 'SELECT DISTINCT "filepath", "variable"'),
    "vector": (_vector_rows, 'SELECT "filepath", "layer", "crs"'),
    "join planner": (_join_plan, "APPROX_QUANTILE"),
}


def _switch(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compaction stopped right after its switch: old and new parts both on disk (a glob read
    sees every row twice), the manifest says which are live."""
    real_recover = maintenance.recover
    monkeypatch.setattr(maintenance, "recover", lambda root: None)
    live = store.live_parts(root)
    maintenance.replace_parts(root, live, maintenance._write_sorted(live, 20_000, 70))
    monkeypatch.setattr(maintenance, "recover", real_recover)


def _compact(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole compaction: the old parts are gone (a read listing them fails)."""
    maintenance.compact(root, part_rows=70)


EVENTS = {"switch": _switch, "compact": _compact}


def _between_compile_and_run(
    monkeypatch: pytest.MonkeyPatch, marker: str, event: Callable[[], None], *, every: bool = False
) -> list[int]:
    """Run ``event`` after the SQL containing ``marker`` is compiled, before DuckDB runs it (once,
    or on every such compile); returns a list counting those compiles."""
    real_render, seen, busy = compiler.render, [], []

    def render(tree, **kw):
        sql = real_render(tree, **kw)
        if marker in sql and not busy:
            seen.append(1)
            if every or len(seen) == 1:
                busy.append(1)
                try:
                    event()
                finally:
                    busy.clear()
        return sql

    monkeypatch.setattr(compiler, "render", render)
    return seen


def test_quiet_reads_match_a_brute_force_oracle(mixed):
    root, table = mixed
    cat = geoduck.open_catalog(root)
    assert sorted(_sampler_rows(cat)) == sorted(table[schema.ID].to_pylist())
    assert _sampler_rows(cat) == sorted(_sampler_rows(cat))
    raster = _under_slice(table, "raster")
    expected = sorted(zip(raster[schema.FILEPATH], raster[schema.START], strict=True))
    assert len(expected) > 10
    assert sorted(_raster_rows_indexed(cat)) == expected
    assert sorted(_raster_rows_queried(cat)) == expected
    assert _xarray_rows(cat) == sorted((p, "t2m") for p in _under_slice(table, "xarray")[schema.FILEPATH])
    vec = _under_slice(table, "vector").sort_values([schema.START, schema.FILEPATH])
    assert _vector_rows(cat) == list(vec[schema.FILEPATH]) and len(vec) > 3
    plan = _join_plan(cat)
    assert plan.distinct is False and plan.cell == pytest.approx(0.13)


@pytest.mark.parametrize("event", sorted(EVENTS))
@pytest.mark.parametrize("path", list(PATHS))
def test_read_path_survives_a_compaction_under_it(mixed, monkeypatch, path, event):
    """The compaction lands between compile and run: the read notices and runs again, exact."""
    root, _ = mixed
    read, marker = PATHS[path]
    cat = geoduck.open_catalog(root)
    expected = read(cat)
    seen = _between_compile_and_run(monkeypatch, marker, lambda: EVENTS[event](root, monkeypatch))
    got = read(geoduck.open_catalog(root))
    assert len(seen) >= 2  # compiled and run again after the compaction
    assert got == expected
    if event == "switch":  # what the first, glob-reading compile would have counted
        plain = duckdb.sql(f"SELECT count(*) FROM read_parquet('{store.part_glob(root)}')").fetchone()[0]
        assert plain == 2 * 360


@pytest.mark.parametrize("path", list(PATHS))
def test_read_path_raises_query_error_when_parts_keep_being_replaced(mixed, monkeypatch, path):
    root, _ = mixed
    read, marker = PATHS[path]
    cat = geoduck.open_catalog(root)
    read(cat)  # columns cached: the replacements hit the read itself
    monkeypatch.setattr(catalog, "READ_ATTEMPTS", 3)
    seen = _between_compile_and_run(monkeypatch, marker, lambda: _compact(root, monkeypatch), every=True)
    with pytest.raises(QueryError, match=r"kept being replaced during 3 reads"):
        read(geoduck.open_catalog(root))
    assert len(seen) == 3


@pytest.mark.parametrize("path", list(PATHS))
def test_read_path_raises_query_error_on_a_broken_part(mixed, path):
    root, _ = mixed
    read, _ = PATHS[path]
    cat = geoduck.open_catalog(root)
    read(cat)
    part = store.live_parts(root)[0]
    part.write_bytes(b"PAR1" + b"\0" * (part.stat().st_size - 8) + b"PAR1")  # same size, no footer
    with pytest.raises(QueryError, match=rf"query over .*{root.name}.* failed: "):
        read(cat)


def test_compaction_raises_query_error_when_a_part_vanishes_and_keeps_the_rest(mixed, monkeypatch):
    """Maintenance reads through the same path: a part deleted by hand under a compaction is a
    QueryError naming the catalog; no new part is kept, and the next compaction keeps every
    remaining row."""
    root, table = mixed
    parts = store.live_parts(root)
    victim = parts[2]
    lost = pq.ParquetFile(victim).metadata.num_rows
    seen = _between_compile_and_run(monkeypatch, "ST_GEOMETRYTYPE", lambda: victim.unlink())
    with pytest.raises(QueryError, match=str(root)):
        geoduck.compact(root, part_rows=70)
    assert seen
    assert sorted(store.live_parts(root)) == sorted(p for p in parts if p != victim)
    assert not [p for p in root.iterdir() if p.name.startswith(".compact")]
    monkeypatch.undo()
    report = geoduck.compact(root, part_rows=70)
    assert report.rows == table.num_rows - lost
    assert len(geoduck.open_catalog(root)) == table.num_rows - lost
