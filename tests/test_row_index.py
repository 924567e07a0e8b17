"""The loaders' numpy row index (loaders/sources.py ``RowIndex``) selects exactly the rows of
``Catalog.query`` (DuckDB SQL) for the same slice: random catalogs with lon/lat and UTM footprints,
antimeridian-crossing footprints and slices, boxes touching the slices' edges, random closed
intervals touching the query's ends, and static rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

import geoduck
from geoduck import schema, store
from geoduck.geo import footprint_wgs84, norm_crs, transformer
from geoduck.loaders.sources import RowIndex
from geoduck.testing import synthetic_catalog_table

DAY_US = 86_400_000_000
T0 = pd.Timestamp("2023-01-01", tz="UTC")


def _struct(b: np.ndarray) -> pa.StructArray:
    return pa.StructArray.from_arrays([pa.array(b[:, k]) for k in range(4)], names=list(schema.BBOX_KEYS))


def _random_rows(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray, list[str]]:
    """(native CRSs, native bounds (n, 4), kinds): lon/lat boxes on a 1° grid (so many touch the
    slices' edges), some across ±180°, and UTM boxes on a 10 km grid."""
    crs, bounds, kinds = [], [], []
    for _ in range(n):
        kind = rng.choice(["lonlat", "antimeridian", "utm"], p=[0.4, 0.25, 0.35])
        if kind == "lonlat":
            x0, y0 = rng.integers(-8, 6), rng.integers(30, 44)
            w, h = rng.integers(1, 4), rng.integers(1, 4)
            crs.append("EPSG:4326")
            bounds.append((x0, y0, x0 + w, y0 + h))
        elif kind == "antimeridian":
            x0, y0 = rng.integers(176, 181), rng.integers(-20, -10)
            crs.append("EPSG:4326")
            bounds.append((x0, y0, x0 + rng.integers(1, 5), y0 + rng.integers(1, 4)))
        else:
            x0, y0 = rng.integers(20, 80) * 10_000, rng.integers(330, 480) * 10_000
            crs.append("EPSG:32630")
            bounds.append((x0, y0, x0 + rng.integers(1, 12) * 10_000, y0 + rng.integers(1, 12) * 10_000))
        kinds.append(str(kind))
    return crs, np.asarray(bounds, dtype=float), kinds


def random_catalog_table(seed: int, n: int = 150) -> pa.Table:
    rng = np.random.default_rng(seed)
    table = synthetic_catalog_table(n, 1, prefix=f"rand{seed}")
    crs, native, _ = _random_rows(rng, n)
    geoms = [footprint_wgs84(tuple(b), norm_crs(c)) for c, b in zip(crs, native, strict=True)]
    start_day = rng.integers(0, 40, n)
    length = rng.integers(0, 10, n)
    static = rng.random(n) < 0.15
    starts = [None if s else T0 + pd.Timedelta(days=int(d)) for s, d in zip(static, start_day, strict=True)]
    ends = [
        None if s else T0 + pd.Timedelta(days=int(d + k)) - pd.Timedelta(microseconds=int(k > 0))
        for s, d, k in zip(static, start_day, length, strict=True)
    ]
    columns = {
        schema.GEOMETRY: pa.array(shapely.to_wkb(geoms), pa.binary()),
        schema.BBOX: _struct(shapely.bounds(np.asarray(geoms, dtype=object))),
        schema.NATIVE_BOUNDS: _struct(native),
        schema.CRS: pa.array(crs),
        schema.START: pa.array(starts, type=schema.TIMESTAMP),
        schema.END: pa.array(ends, type=schema.TIMESTAMP),
    }
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), values)
    return table


def random_slices(seed: int, n: int = 40) -> list[geoduck.GeoSlice]:
    rng = np.random.default_rng(seed + 1000)
    out = []
    for _ in range(n):
        kind = rng.choice(["lonlat", "antimeridian", "utm", "utm_edge"])
        day0 = int(rng.integers(0, 45))
        span = int(rng.integers(0, 8))
        times = (
            {}
            if rng.random() < 0.2
            else {"start": T0 + pd.Timedelta(days=day0), "end": T0 + pd.Timedelta(days=day0 + span)}
        )
        if kind == "lonlat":
            x0, y0 = int(rng.integers(-9, 7)), int(rng.integers(29, 45))
            sl = geoduck.GeoSlice((x0, y0, x0 + int(rng.integers(1, 3)), y0 + 1), "EPSG:4326", 0.25, **times)
        elif kind == "antimeridian":
            x0, y0 = int(rng.integers(175, 182)), int(rng.integers(-21, -9))
            sl = geoduck.GeoSlice((x0, y0, x0 + int(rng.integers(1, 4)), y0 + 2), "EPSG:4326", 0.5, **times)
        elif kind == "utm":
            x0, y0 = int(rng.integers(20, 80)) * 10_000, int(rng.integers(330, 480)) * 10_000
            sl = geoduck.GeoSlice((x0, y0, x0 + 50_000, y0 + 30_000), "EPSG:32630", 5_000, **times)
        else:  # a UTM slice whose edge is a lon/lat row edge (a meridian seen from zone 30)
            x, _ = transformer("EPSG:4326", "EPSG:32630").transform(float(rng.integers(-5, 1)), 40.0)
            y0 = int(rng.integers(400, 470)) * 10_000
            sl = geoduck.GeoSlice((x, y0, x + 40_000, y0 + 40_000), "EPSG:32630", 4_000, **times)
        out.append(sl)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_row_index_selects_exactly_the_rows_of_catalog_query(tmp_path, seed):
    table = random_catalog_table(seed)
    store.write_parts(table, tmp_path / "cat")
    cat = geoduck.open_catalog(tmp_path / "cat")
    index = RowIndex(table)
    paths = np.asarray(index.paths)
    nonempty = 0
    for sl in random_slices(seed):
        via_index = sorted(paths[index.select(sl)].tolist())
        rel = cat.query(bbox=sl.grid_bounds, crs=sl.crs, start=sl.start, end=sl.end)
        via_sql = sorted(rel.to_arrow().column(schema.FILEPATH).to_pylist())
        assert via_index == via_sql, sl
        nonempty += bool(via_sql)
    assert nonempty >= 10  # the slices do hit rows, not only empty space


def test_row_index_touching_edges_and_interval_ends_match_sql(tmp_path):
    """A row sharing only an edge (or a corner) with the slice, and rows whose interval ends exactly
    at the query's start or starts exactly at its end, are selected by both."""
    table = synthetic_catalog_table(4, 1, tile_deg=1.0, origin=(0.0, 40.0))  # 2×2 tiles of 1°
    store.write_parts(table, tmp_path / "cat")
    cat = geoduck.open_catalog(tmp_path / "cat")
    index = RowIndex(table)
    start = table.column(schema.START)[0].as_py()
    end = table.column(schema.END)[0].as_py()
    cases = [
        geoduck.GeoSlice((2.0, 40.0, 3.0, 41.0), "EPSG:4326", 0.5),  # touches the east edge of 2 tiles
        geoduck.GeoSlice((2.0, 42.0, 3.0, 43.0), "EPSG:4326", 0.5),  # touches one corner
        geoduck.GeoSlice((0.2, 40.2, 0.4, 40.4), "EPSG:4326", 0.1, start=end, end=end + pd.Timedelta(days=2)),
        geoduck.GeoSlice((0.2, 40.2, 0.4, 40.4), "EPSG:4326", 0.1, start=start - pd.Timedelta(days=2), end=start),
        geoduck.GeoSlice((0.2, 40.2, 0.4, 40.4), "EPSG:4326", 0.1, start=end + pd.Timedelta(microseconds=1)),
    ]
    counts = []
    for sl in cases:
        via_index = sorted(np.asarray(index.paths)[index.select(sl)].tolist())
        rel = cat.query(bbox=sl.grid_bounds, crs=sl.crs, start=sl.start, end=sl.end)
        assert via_index == sorted(rel.to_arrow().column(schema.FILEPATH).to_pylist())
        counts.append(len(via_index))
    assert counts == [2, 1, 1, 1, 0]


def chip_slices(seed: int, n: int = 120) -> list[geoduck.GeoSlice]:
    """Chips (2.56 km, 10 m pixels) as samplers make them, in UTM zones 30 and 29: the row index
    answers these without building the AOI (:func:`geoduck.geo.aoi_probe`). Many sit exactly on
    the 10 km grid of the UTM rows' edges (touching, straddling), or on the 1° lon/lat rows' edges."""
    rng = np.random.default_rng(seed + 2000)
    to_utm = transformer("EPSG:4326", "EPSG:32630")
    out = []
    for _ in range(n):
        kind = rng.choice(["grid", "edge", "corner", "meridian", "zone29"])
        if kind == "grid":  # anywhere over the UTM rows
            x0, y0 = rng.uniform(200_000, 800_000), rng.uniform(3_300_000, 4_800_000)
        elif kind == "edge":  # an edge on a row edge (touching from outside or inside)
            x0 = int(rng.integers(20, 80)) * 10_000 - float(rng.choice([0.0, 2_560.0]))
            y0 = rng.uniform(3_300_000, 4_800_000)
        elif kind == "corner":  # straddling a row corner
            x0 = int(rng.integers(20, 80)) * 10_000 - 1_280.0
            y0 = int(rng.integers(330, 480)) * 10_000 - 1_280.0
        elif kind == "meridian":  # an edge on a lon/lat row's meridian, seen from zone 30
            x0, _ = to_utm.transform(float(rng.integers(-5, 1)), 40.0)
            y0 = int(rng.integers(400, 470)) * 10_000 + rng.uniform(0, 5_000)
        else:
            x0, y0 = rng.uniform(700_000, 800_000), rng.uniform(4_300_000, 4_600_000)
        crs = "EPSG:32629" if kind == "zone29" else "EPSG:32630"
        day0 = int(rng.integers(0, 45))
        times = (
            {}
            if rng.random() < 0.3
            else {"start": T0 + pd.Timedelta(days=day0), "end": T0 + pd.Timedelta(days=day0 + 3)}
        )
        out.append(geoduck.GeoSlice((x0, y0, x0 + 2_560.0, y0 + 2_560.0), crs, 10.0, **times))
    return out


@pytest.mark.parametrize("seed", [4, 5])
def test_row_index_chips_select_exactly_the_rows_of_catalog_query(tmp_path, seed):
    """Chip-sized slices (the loaders' common case, answered by a point and a box of the AOI
    instead of the AOI itself where that is certain) select exactly the rows of the SQL query,
    on row edges and corners too."""
    from geoduck.geo import aoi_probe

    table = random_catalog_table(seed, n=400)
    store.write_parts(table, tmp_path / "cat")
    cat = geoduck.open_catalog(tmp_path / "cat")
    index = RowIndex(table)
    paths = np.asarray(index.paths)
    probed = nonempty = 0
    for sl in chip_slices(seed):
        via_index = sorted(paths[index.select(sl)].tolist())
        rel = cat.query(bbox=sl.grid_bounds, crs=sl.crs, start=sl.start, end=sl.end)
        via_sql = sorted(rel.to_arrow().column(schema.FILEPATH).to_pylist())
        assert via_index == via_sql, sl
        probed += aoi_probe(sl.grid_bounds, sl.crs) is not None
        nonempty += bool(via_sql)
    assert probed == len(chip_slices(seed))  # every chip went through the probe
    assert nonempty >= 30
