"""The relational engine (``intersect``, ``difference``, ``union``, ``with_interval_padding``, ``where``,
results of derived relations, ``sql``) against brute force.

Brute force = shapely ``intersects`` over the footprints of ``to_geopandas()`` of both inputs (touching
counts) and the closed-interval rule in plain Python (a static row overlaps everything). Inputs are
synthetic tile × date catalogs of several tile sizes, overlaps, jitters and cadences, plus seeded random
catalogs that mix grid-aligned squares (exact touching edges and corners), rotated polygons, rows
bigger than 64 join cells (the range-join 'B' class), antimeridian MultiPolygons, static rows, long
intervals (the 'C' class), instants, months and pre-1970 dates.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
import shapely.affinity
from shapely.geometry import MultiPolygon, box
from shapely.geometry.base import BaseGeometry

import geoduck
from geoduck import engine, schema, store
from geoduck.errors import ArgumentError, SQLError
from geoduck.geo import footprint_wgs84
from geoduck.testing import synthetic_catalog_table, write_synthetic_catalog

UTC = "UTC"
DAY = pd.Timedelta(days=1)
US = pd.Timedelta(microseconds=1)
NOT_PREFIXED = {schema.GEOMETRY, schema.VERSION}


# -- building inputs -------------------------------------------------------------------------------


def custom_table(
    prefix: str,
    geoms: list[BaseGeometry],
    intervals: list[tuple[pd.Timestamp | None, pd.Timestamp | None]],
    extra: dict[str, str] | None = None,
    tiles: list[str] | None = None,
) -> pa.Table:
    """A schema-v1 table with the given footprints and intervals (ids ``<prefix>0000`` …)."""
    n = len(geoms)
    table = synthetic_catalog_table(n, 1, extra=extra)
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    bbox = pa.StructArray.from_arrays([pa.array(bounds[:, i]) for i in range(4)], names=list(schema.BBOX_KEYS))
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    columns = {
        schema.ID: pa.array(ids),
        schema.FILEPATH: pa.array([f"/custom/{i}.tif" for i in ids]),
        schema.GEOMETRY: pa.array(shapely.to_wkb(np.asarray(geoms, dtype=object)), pa.binary()),
        schema.BBOX: bbox,
        schema.NATIVE_BOUNDS: bbox,
        schema.START: pa.array([s for s, _ in intervals], schema.TIMESTAMP),
        schema.END: pa.array([e for _, e in intervals], schema.TIMESTAMP),
    }
    if tiles is not None:
        columns["tile"] = pa.array(tiles)
    for name, array in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(name), array)
    return table


def write_catalog(path: Path, table: pa.Table, part_rows: int | None = None) -> geoduck.Catalog:
    step = part_rows or table.num_rows
    for offset in range(0, table.num_rows, step):
        store.write_part(table.slice(offset, step), path)
    return geoduck.open_catalog(path)


def day_interval(day: str | pd.Timestamp, days: int = 1) -> tuple[pd.Timestamp, pd.Timestamp]:
    d = pd.Timestamp(day, tz=UTC) if not isinstance(day, pd.Timestamp) else day
    return d, d + days * DAY - US


def random_interval(rng: np.random.Generator) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    base = pd.Timestamp("2020-01-01", tz=UTC) if rng.random() < 0.85 else pd.Timestamp("1969-11-15", tz=UTC)
    day = base + int(rng.integers(0, 40)) * DAY
    k = rng.random()
    if k < 0.1:
        return None, None  # static
    if k < 0.45:
        return day_interval(day)
    if k < 0.58:
        return day_interval(day, int(rng.integers(2, 8)))
    if k < 0.66:  # a calendar month
        first = day.replace(day=1)
        return first, first + pd.offsets.MonthBegin(1) - US
    if k < 0.76:  # an instant
        t = day + pd.Timedelta(seconds=int(rng.integers(0, 86400)))
        return t, t
    if k < 0.9:  # arbitrary µs bounds
        t0 = day + pd.Timedelta(microseconds=int(rng.integers(0, 86_400_000_000)))
        return t0, t0 + pd.Timedelta(microseconds=int(rng.integers(0, 3 * 86_400_000_000)))
    return day - 150 * DAY, day + int(rng.integers(100, 400)) * DAY  # long-lived ('C')


def random_geometry(rng: np.random.Generator) -> BaseGeometry:
    k = rng.random()
    if k < 0.45:  # grid-aligned squares: exact shared edges and corners
        gx, gy = rng.integers(0, 16, 2)
        m = int(rng.integers(1, 3))
        x0, y0 = -10.0 + gx * 0.125, 35.0 + gy * 0.125
        return box(x0, y0, x0 + m * 0.125, y0 + m * 0.125)
    if k < 0.75:  # rotated rectangles and triangles: bboxes overlap more often than footprints
        cx, cy = rng.uniform(-10, -8), rng.uniform(35, 37)
        w, h = rng.uniform(0.03, 0.3, 2)
        if rng.random() < 0.5:
            return shapely.affinity.rotate(box(cx - w, cy - h, cx + w, cy + h), rng.uniform(0, 90))
        return shapely.Polygon([(cx, cy), (cx + w, cy + rng.uniform(-h, h)), (cx + rng.uniform(-w, w), cy + h)])
    if k < 0.83:  # big: spans far more than 64 join cells ('B')
        cx, cy = rng.uniform(-10, -8), rng.uniform(35, 37)
        s = rng.uniform(2.5, 4.0)
        if rng.random() < 0.5:
            return box(cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
        return shapely.Polygon([(cx - s, cy - s), (cx + s, cy - s), (cx - s, cy + s)])
    if k < 0.9:  # across the antimeridian: a MultiPolygon whose bbox is the whole width of the map
        if rng.random() < 0.5:
            x0 = rng.uniform(80_000, 150_000)
            y0 = rng.uniform(1_050_000, 1_150_000)
            return footprint_wgs84((x0, y0, x0 + 150_000, y0 + 100_000), pyproj.CRS(32601))
        x0, y0 = rng.uniform(179.0, 179.8), rng.uniform(9.5, 10.5)
        return footprint_wgs84((x0, y0, x0 + rng.uniform(0.3, 1.5), y0 + 0.5), pyproj.CRS(4326))
    x0, y0 = rng.choice([rng.uniform(179.2, 179.9), rng.uniform(-179.9, -179.3)]), rng.uniform(9.6, 10.8)
    return box(x0, y0, x0 + 0.1, y0 + 0.1)  # small, next to the antimeridian


def random_table(seed: int, n: int, prefix: str) -> pa.Table:
    rng = np.random.default_rng(seed)
    geoms = [random_geometry(rng) for _ in range(n)]
    intervals = [random_interval(rng) for _ in range(n)]
    return custom_table(prefix, geoms, intervals, tiles=[f"t{int(rng.integers(0, 5))}" for _ in range(n)])


SYNTHETIC = {  # name -> (left kwargs, right kwargs) of write_synthetic_catalog
    "grid_daily_x_3day": (
        dict(n_tiles=16, n_dates=12, tile_deg=0.125),
        dict(n_tiles=9, n_dates=20, tile_deg=0.25, origin=(-10.0625, 35.0625), step_days=3, length_days=2),
    ),
    "jitter_overlap": (
        dict(n_tiles=30, n_dates=8, tile_deg=0.1, overlap=0.03, seed=1),
        dict(n_tiles=12, n_dates=10, tile_deg=0.17, seed=2, step_days=2, length_days=5, start="2019-12-28"),
    ),
    "static_x_dated": (
        dict(n_tiles=25, n_dates=1, tile_deg=0.09, seed=3, static=True),
        dict(n_tiles=10, n_dates=15, tile_deg=0.2, seed=4, start="2020-01-03"),
    ),
    "static_x_static": (
        dict(n_tiles=20, n_dates=2, tile_deg=0.1, overlap=0.01, static=True, seed=5),
        dict(n_tiles=16, n_dates=1, tile_deg=0.15, static=True, seed=6),
    ),
    "weekly_x_monthly_long": (
        dict(n_tiles=12, n_dates=20, tile_deg=0.3, step_days=7, length_days=7, start="1969-11-01"),
        dict(n_tiles=20, n_dates=4, tile_deg=0.2, overlap=0.05, step_days=31, length_days=90, start="1969-10-15"),
    ),
}
RANDOM = {"random_0": (11, 12), "random_1": (21, 22), "random_2": (31, 32)}
SCENARIOS = [*SYNTHETIC, *RANDOM]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("relations")


@cache
def _scenario(root: Path, name: str) -> tuple[geoduck.Catalog, geoduck.Catalog]:
    if name in SYNTHETIC:
        lkw, rkw = SYNTHETIC[name]
        a = write_synthetic_catalog(root / name / "a", part_rows=70, **lkw)
        b = write_synthetic_catalog(root / name / "b", **rkw)
        return geoduck.open_catalog(a), geoduck.open_catalog(b)
    ls, rs = RANDOM[name]
    a = write_catalog(root / name / "a", random_table(ls, 160, "L"), part_rows=60)
    b = write_catalog(root / name / "b", random_table(rs, 140, "R"))
    return a, b


SPATIAL_ONLY_SCENARIOS = ["jitter_overlap", "static_x_dated", *RANDOM]  # (each join costs ~0.5 s to compile)


@pytest.fixture(scope="module", params=SCENARIOS)
def pair(request, root) -> tuple[geoduck.Catalog, geoduck.Catalog]:
    return _scenario(root, request.param)


# -- brute force ----------------------------------------------------------------------------------


def frame(cat: geoduck.Catalog) -> gpd.GeoDataFrame:
    return cat.to_geopandas().reset_index(drop=True)


def micros(s: pd.Series) -> np.ndarray:
    return np.array([0 if pd.isna(t) else pd.Timestamp(t).value // 1000 for t in s], dtype=np.int64)


def brute_matrix(left: gpd.GeoDataFrame, right: gpd.GeoDataFrame, spatial_only: bool = False) -> np.ndarray:
    """(len(left), len(right)) booleans: footprints intersect and (unless spatial_only) intervals overlap."""
    hit = shapely.intersects(np.asarray(left.geometry)[:, None], np.asarray(right.geometry)[None, :])
    if spatial_only:
        return hit
    ls, le = micros(left[schema.START]), micros(left[schema.END])
    rs, re_ = micros(right[schema.START]), micros(right[schema.END])
    lstatic, rstatic = left[schema.START].isna().values, right[schema.START].isna().values
    overlap = (ls[:, None] <= re_[None, :]) & (le[:, None] >= rs[None, :])
    return hit & (overlap | lstatic[:, None] | rstatic[None, :])


def brute_pairs(left: gpd.GeoDataFrame, right: gpd.GeoDataFrame, spatial_only: bool = False) -> set[tuple[str, str]]:
    i, j = np.nonzero(brute_matrix(left, right, spatial_only))
    return set(zip(left["id"].values[i], right["id"].values[j], strict=True))


def pairs_of(table: pa.Table) -> list[tuple[str, str]]:
    return list(zip(table.column("left_id").to_pylist(), table.column("right_id").to_pylist(), strict=True))


def ts(value) -> pd.Timestamp | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert(UTC)


def check_intersect_rows(out: pa.Table, left: pa.Table, right: pa.Table, spatial_only: bool) -> None:
    """Every output row: id, geometry (= shapely intersection), bbox, interval, prefixed columns."""
    lrows = {r["id"]: r for r in left.to_pylist()}
    rrows = {r["id"]: r for r in right.to_pylist()}
    rows = out.to_pylist()
    got = shapely.from_wkb([r["geometry"] for r in rows])
    lg = shapely.from_wkb([lrows[r["left_id"]]["geometry"] for r in rows])
    rg = shapely.from_wkb([rrows[r["right_id"]]["geometry"] for r in rows])
    expected = shapely.intersection(lg, rg)
    for row, g, e in zip(rows, got, expected, strict=True):
        lid, rid = row["left_id"], row["right_id"]
        lrow, rrow = lrows[lid], rrows[rid]
        context = f"pair {lid}|{rid}"
        assert row["id"] == f"{lid}|{rid}", context
        assert not g.is_empty, context
        if e.area > 0:
            assert g.area == pytest.approx(e.area, rel=1e-9), context
            assert g.symmetric_difference(e).area <= 1e-9 * e.area, context
        else:  # touching: a shared edge or corner
            assert g.area == 0, context
            assert shapely.hausdorff_distance(g, e) < 1e-9, context
        assert tuple(row["bbox"][k] for k in schema.BBOX_KEYS) == g.bounds, context
        s = [t for t in (lrow[schema.START], rrow[schema.START]) if t is not None]
        f = [t for t in (lrow[schema.END], rrow[schema.END]) if t is not None]
        start, end = (max(s), min(f)) if s else (None, None)
        if spatial_only and s and start > end:  # disjoint intervals: their hull
            start, end = min(s), max(f)
        assert (row[schema.START], row[schema.END]) == (start, end), context
        assert row[schema.VERSION] == schema.SCHEMA_VERSION
        for side, src in (("left_", lrow), ("right_", rrow)):
            for name, value in src.items():
                if name not in NOT_PREFIXED:
                    assert row[side + name] == value, (context, side + name)


# -- intersect ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, spatial_only", [*((n, False) for n in SCENARIOS), *((n, True) for n in SPATIAL_ONLY_SCENARIOS)]
)
def test_intersect_matches_brute_force(root, name, spatial_only):
    a, b = _scenario(root, name)
    rel = a.intersect(b, spatial_only=spatial_only)
    out = rel.to_arrow()
    got = pairs_of(out)
    expected = brute_pairs(frame(a), frame(b), spatial_only)
    assert len(got) == len(set(got)), [p for p, n in Counter(got).items() if n > 1][:5]
    assert set(got) - expected == set()
    assert expected - set(got) == set()
    assert len(expected) > 0
    left_cols, right_cols = a.columns, b.columns
    assert out.column_names[:6] == ["id", "geometry", "bbox", "start_datetime", "end_datetime", "schema_version"]
    assert out.column_names[6:] == (
        [f"left_{c}" for c in left_cols if c not in NOT_PREFIXED]
        + [f"right_{c}" for c in right_cols if c not in NOT_PREFIXED]
    )
    check_intersect_rows(out, a.to_arrow(), b.to_arrow(), spatial_only)


def _classes(cat: geoduck.Catalog, plan) -> Counter:
    """The join class of every row ('T', 'C', 'B') as the intersect plan assigns it."""
    f = frame(cat)
    bb = pd.DataFrame(list(f["bbox"]))
    nx = np.floor(bb["xmax"] / plan.cell) - np.floor(bb["xmin"] / plan.cell) + 1
    ny = np.floor(bb["ymax"] / plan.cell) - np.floor(bb["ymin"] / plan.cell) + 1
    s, e = micros(f[schema.START]), micros(f[schema.END])
    nt = np.floor(e / plan.bucket_us) - np.floor(s / plan.bucket_us) + 1
    static = f[schema.START].isna().values
    cls = np.where(nx * ny > plan.max_cells, "B", np.where(~static & (nt <= plan.max_buckets), "T", "C"))
    return Counter(cls)


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_scenarios_exercise_every_join_class(root, name):
    a, b = _scenario(root, name)
    plan = a.intersect(b).node.plan
    for cat in (a, b):
        classes = _classes(cat, plan)
        assert classes["B"] >= 3 and classes["C"] >= 10 and classes["T"] >= 50, classes
        f = frame(cat)
        assert (f.geom_type == "MultiPolygon").sum() >= 2
        assert (micros(f[schema.END])[f[schema.START].notna().values] < 0).sum() >= 5  # pre-1970
        long = (f[schema.END] - f[schema.START]) > plan.max_buckets * pd.Timedelta(microseconds=plan.bucket_us)
        assert long.sum() >= 3


def test_difference_matches_brute_force(pair):
    a, b = pair
    fa, fb = frame(a), frame(b)
    modes = (False, True) if any(a.node.root.endswith(f"/{n}/a") for n in SPATIAL_ONLY_SCENARIOS) else (False,)
    diffs = {spatial_only: a.difference(b, spatial_only=spatial_only).to_arrow() for spatial_only in modes}
    for spatial_only, diff in diffs.items():
        partnered = brute_matrix(fa, fb, spatial_only).any(axis=1)
        expected = set(fa["id"][~partnered])
        got = diff.column("id").to_pylist()
        assert len(got) == len(set(got))
        assert set(got) == expected, spatial_only
    # the rows themselves, unchanged
    diff = diffs[False]
    by_id = {r["id"]: r for r in a.to_arrow().to_pylist()}
    assert diff.column_names == a.columns
    assert all(r == by_id[r["id"]] for r in diff.to_pylist())


def test_self_intersect_and_empty_sides(root):
    a, b = _scenario(root, "random_0")
    fa = frame(a)
    got = pairs_of(a.intersect(a).to_arrow())
    assert len(got) == len(set(got))
    assert set(got) == brute_pairs(fa, fa)
    assert {(i, i) for i in fa["id"]} <= set(got)
    empty = a.query(bbox=(100, -60, 101, -59))
    assert len(empty) == 0
    assert empty.intersect(b).to_arrow().num_rows == 0
    assert b.intersect(empty, spatial_only=True).to_arrow().num_rows == 0
    assert set(b.difference(empty).to_arrow().column("id").to_pylist()) == set(frame(b)["id"])
    assert empty.difference(b).to_arrow().num_rows == 0


def test_intersect_of_filtered_and_chained_relations(root):
    a, b = _scenario(root, "random_1")
    fa, fb = frame(a), frame(b)
    aq = a.query(bbox=(-10, 35, -9, 36), start="2020-01-05", end="2020-01-25")
    faq = frame(aq)
    assert 0 < len(faq) < len(fa)
    assert set(pairs_of(aq.intersect(b).to_arrow())) == brute_pairs(faq, fb)
    # an intersect result intersected again: pairs of (pair, row)
    ab = a.intersect(b)
    fab = frame(ab)
    c = _scenario(root, "random_2")[1]
    fc = frame(c)
    out = ab.intersect(c).to_arrow()
    got = pairs_of(out)
    assert len(got) == len(set(got))
    assert set(got) == brute_pairs(fab, fc)
    assert "left_left_id" in out.column_names and "left_right_tile" in out.column_names
    # on the right too, and as the left of a difference: nested WITH tables of the same names
    assert set(pairs_of(c.intersect(ab).to_arrow())) == brute_pairs(fc, fab)
    hit = {left for left, _ in brute_pairs(fab, fc)}
    assert set(ab.difference(c).to_arrow().column("id").to_pylist()) == set(fab["id"]) - hit
    assert 0 < len(hit) < len(fab)


def test_back_to_back_daily_rows_do_not_pair(tmp_path):
    square = box(0, 0, 1, 1)
    days = [day_interval(f"2023-06-{d}") for d in (14, 15, 16)]
    a = write_catalog(tmp_path / "a", custom_table("A", [square], [days[1]]))
    b = write_catalog(tmp_path / "b", custom_table("B", [square] * 3, days))
    assert days[0][1] == pd.Timestamp("2023-06-14T23:59:59.999999", tz=UTC)
    assert pairs_of(a.intersect(b).to_arrow()) == [("A0000", "B0001")]
    assert set(a.difference(b.where("id <> 'B0001'")).to_arrow().column("id").to_pylist()) == {"A0000"}
    assert len(a.intersect(b, spatial_only=True)) == 3
    # a one-µs overlap pairs
    c = write_catalog(tmp_path / "c", custom_table("C", [square], [(days[0][1], days[0][1])]))
    assert pairs_of(c.intersect(b).to_arrow()) == [("C0000", "B0000")]


def test_daily_x_monthly(tmp_path):
    """Daily rows pair with the calendar month that holds them, month ends included."""
    square = box(10, 10, 11, 11)
    dates = pd.date_range("2023-01-30", "2023-03-02", freq="D", tz=UTC)
    daily = write_catalog(
        tmp_path / "daily", custom_table("D", [square] * len(dates), [day_interval(d) for d in dates])
    )
    months = [pd.Timestamp(f"2023-{m:02d}-01", tz=UTC) for m in (1, 2, 3)]
    monthly = write_catalog(
        tmp_path / "monthly", custom_table("M", [square] * 3, [(m, m + pd.offsets.MonthBegin(1) - US) for m in months])
    )
    out = daily.intersect(monthly).to_arrow()
    got = pairs_of(out)
    assert len(got) == len(dates) == len(set(got))
    month_of = {f"D{i:04d}": f"M{d.month - 1:04d}" for i, d in enumerate(dates)}
    assert dict(got) == month_of
    assert set(got) == brute_pairs(frame(daily), frame(monthly))
    by_pair = {
        p: (s, e)
        for p, s, e in zip(
            got, out.column("start_datetime").to_pylist(), out.column("end_datetime").to_pylist(), strict=True
        )
    }
    for i, d in enumerate(dates):  # the interval is the day's
        assert by_pair[(f"D{i:04d}", month_of[f"D{i:04d}"])] == day_interval(d)


def test_static_intervals_in_intersect(tmp_path):
    square = box(0, 0, 1, 1)
    dated = day_interval("2023-06-15")
    a = write_catalog(tmp_path / "a", custom_table("A", [square, square], [(None, None), dated]))
    b = write_catalog(tmp_path / "b", custom_table("B", [box(0.5, 0.5, 2, 2)] * 2, [(None, None), dated]))
    out = {
        (r["left_id"], r["right_id"]): (r["start_datetime"], r["end_datetime"])
        for r in a.intersect(b).to_arrow().select(["left_id", "right_id", "start_datetime", "end_datetime"]).to_pylist()
    }
    assert out == {
        ("A0000", "B0000"): (None, None),  # both static: static
        ("A0000", "B0001"): dated,
        ("A0001", "B0000"): dated,  # static side: the other's
        ("A0001", "B0001"): dated,
    }
    g = next(iter(a.intersect(b)))["geometry"]
    assert g.equals(box(0.5, 0.5, 1, 1))


def test_spatial_only_disjoint_intervals_give_their_hull(tmp_path):
    square = box(0, 0, 1, 1)
    a = write_catalog(tmp_path / "a", custom_table("A", [square], [day_interval("2023-01-01")]))
    b = write_catalog(tmp_path / "b", custom_table("B", [square], [day_interval("2023-03-01", 2)]))
    assert len(a.intersect(b)) == 0
    (row,) = a.intersect(b, spatial_only=True).to_arrow().select(["start_datetime", "end_datetime"]).to_pylist()
    assert (row["start_datetime"], row["end_datetime"]) == (
        pd.Timestamp("2023-01-01", tz=UTC),
        pd.Timestamp("2023-03-03", tz=UTC) - US,
    )


def test_touching_footprints_pair(tmp_path):
    a = write_catalog(tmp_path / "a", custom_table("A", [box(0, 0, 1, 1)], [(None, None)]))
    b = write_catalog(
        tmp_path / "b",
        custom_table("B", [box(1, 0, 2, 1), box(1, 1, 2, 2), box(1.0 + 1e-12, 0, 2, 1)], [(None, None)] * 3),
    )
    out = a.intersect(b).to_arrow()
    assert sorted(pairs_of(out)) == [("A0000", "B0000"), ("A0000", "B0001")]
    geoms = dict(
        zip(out.column("right_id").to_pylist(), shapely.from_wkb(out.column("geometry").to_pylist()), strict=True)
    )
    assert geoms["B0000"].equals(shapely.LineString([(1, 0), (1, 1)]))
    assert geoms["B0001"].equals(shapely.Point(1, 1))
    assert {r["right_id"]: r["bbox"] for r in out.select(["right_id", "bbox"]).to_pylist()}["B0001"] == {
        "xmin": 1.0,
        "ymin": 1.0,
        "xmax": 1.0,
        "ymax": 1.0,
    }


def test_antimeridian_multipolygons_pair_across_180(tmp_path):
    am = footprint_wgs84((100_000, 1_100_000, 260_000, 1_200_000), pyproj.CRS(32601))
    assert isinstance(am, MultiPolygon) and am.bounds[0] == -180 and am.bounds[2] == 180
    a = write_catalog(tmp_path / "a", custom_table("A", [am], [(None, None)]))
    east, west, middle = box(179.6, 10.2, 179.7, 10.3), box(-179.7, 10.2, -179.6, 10.3), box(0, 10.2, 0.1, 10.3)
    b = write_catalog(tmp_path / "b", custom_table("B", [east, west, middle], [day_interval("2023-01-01")] * 3))
    out = a.intersect(b).to_arrow()
    assert sorted(pairs_of(out)) == [("A0000", "B0000"), ("A0000", "B0001")]
    for r, g in zip(out.to_pylist(), shapely.from_wkb(out.column("geometry").to_pylist()), strict=True):
        assert g.equals({"B0000": east, "B0001": west}[r["right_id"]])
    assert set(a.difference(b).to_arrow().column("id").to_pylist()) == set()
    assert set(b.difference(a).to_arrow().column("id").to_pylist()) == {"B0002"}


# -- the intersect plan ---------------------------------------------------------------------------


def _plan_operators(node: dict, out: list[dict]) -> list[dict]:
    out.append(node)
    for child in node.get("children", []):
        _plan_operators(child, out)
    return out


def test_intersect_plan_is_keyed_hash_joins(root):
    a, b = _scenario(root, "grid_daily_x_3day")
    rel = a.intersect(b)
    text = rel.plan()
    assert text.count("HASH_JOIN") >= 3
    squashed = re.sub(r"[\s│]+", " ", text)
    for key in ("tb = tb", "cx = cx", "cy = cy"):
        assert key in squashed, key
    for bad in ("NESTED_LOO", "CROSS_PRODUCT", "BLOCKWISE_NL", "POSITIONAL_SCAN"):
        assert bad not in text, bad
    # the same in the full (untruncated) JSON plan: every join is a hash join on keys, or the range
    # join of the rare 'B' rows on bbox inequalities
    raw = engine.cursor().execute("EXPLAIN (FORMAT JSON) " + rel.sql_text).fetchall()[0][-1]
    ops = [op for tree in json.loads(raw) for op in _plan_operators(tree, [])]
    names = Counter(op["name"] for op in ops)
    assert not {"NESTED_LOOP_JOIN", "CROSS_PRODUCT", "BLOCKWISE_NL_JOIN"} & set(names), names
    joins = [op for op in ops if "JOIN" in op["name"]]
    keyed = []
    for op in joins:
        cond = op["extra_info"]["Conditions"]
        cond = [cond] if isinstance(cond, str) else cond
        if op["name"] == "HASH_JOIN":
            keyed.append(cond)
        else:
            assert op["name"] in ("PIECEWISE_MERGE_JOIN", "IE_JOIN"), op["name"]
            assert set(cond) == {"x0 <= x1", "x1 >= x0", "y0 <= y1", "y1 >= y0"}
    assert any({"tb = tb", "cx = cx", "cy = cy"} <= set(c) for c in keyed)
    assert sum({"cx = cx", "cy = cy"} <= set(c) for c in keyed) >= 3


def test_intersect_plan_range_joins_see_only_big_rows(root):
    """EXPLAIN ANALYZE: no join reads anywhere near |a|·|b| rows (tile × date case)."""
    a, b = _scenario(root, "grid_daily_x_3day")
    na, nb = len(a), len(b)
    analyzed = a.intersect(b).plan(analyze=True)
    counts = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) [Rr]ows", analyzed)]
    assert counts and max(counts) < na * nb / 10, (max(counts), na * nb)


# -- union ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trio(root) -> tuple[geoduck.Catalog, geoduck.Catalog, geoduck.Catalog]:
    alpha = custom_table(
        "a", [box(i, 0, i + 1, 1) for i in range(6)], [day_interval("2023-01-01")] * 6, extra={"sensor": "S2"}
    )
    beta = custom_table(
        "b", [box(i + 0.5, 0, i + 1.5, 1) for i in range(4)], [(None, None)] * 4, extra={"orbit": "asc"}
    )
    gamma = custom_table("c", [box(0, 0, 3, 3)] * 2, [day_interval("2023-01-01", 5)] * 2)
    return (
        write_catalog(root / "union" / "alpha", alpha),
        write_catalog(root / "union" / "beta", beta),
        write_catalog(root / "union" / "gamma", gamma),
    )


def test_union_all_by_name_with_source(trio):
    alpha, beta, _ = trio
    assert (alpha.name, beta.name) == ("alpha", "beta")
    u = alpha.union(beta)
    assert u.name == "alpha+beta"
    out = u.to_arrow()
    assert out.num_rows == len(u) == len(alpha) + len(beta)
    rows = {r["id"]: r for r in out.to_pylist()}
    assert len(rows) == out.num_rows
    assert Counter(r["source"] for r in rows.values()) == {"alpha": 6, "beta": 4}
    assert set(out.column_names) == set(alpha.columns) | set(beta.columns) | {"source"}
    for r in rows.values():
        if r["source"] == "alpha":
            assert (r["sensor"], r["orbit"]) == ("S2", None) and r["id"].startswith("a")
        else:
            assert (r["sensor"], r["orbit"]) == (None, "asc") and r["id"].startswith("b")
            assert r["start_datetime"] is None
    # every input row, unchanged
    for cat in (alpha, beta):
        for r in cat.to_arrow().to_pylist():
            assert {k: rows[r["id"]][k] for k in r} == r
    gdf = u.to_geopandas()
    assert isinstance(gdf, gpd.GeoDataFrame) and len(gdf) == 10 and gdf.crs == "EPSG:4326"


def test_union_named_nested_and_dedupe(trio):
    alpha, beta, gamma = trio
    u = alpha.named("x").union(beta)
    assert Counter(u.to_arrow().column("source").to_pylist()) == {"x": 6, "beta": 4}
    with pytest.raises(ArgumentError):
        alpha.named("")
    nested = alpha.union(beta).union(gamma)
    assert Counter(nested.to_arrow().column("source").to_pylist()) == {"alpha": 6, "beta": 4, "gamma": 2}
    right_nested = gamma.union(alpha.union(beta.named("b2")))
    assert Counter(right_nested.to_arrow().column("source").to_pylist()) == {"alpha": 6, "b2": 4, "gamma": 2}
    # duplicates without dedupe, one row per id with it (the left relation's row first)
    sub = alpha.where("id IN ('a0001', 'a0003')")
    assert len(alpha.union(sub)) == 8
    deduped = alpha.union(sub.named("dup"), dedupe=True)
    d = deduped.to_arrow()
    assert d.num_rows == 6 and set(d.column("source").to_pylist()) == {"alpha"}
    # a filter on a deduplicated union sees its output (it runs after the dedupe, not before)
    assert deduped.where("source = 'dup'").to_arrow().num_rows == 0
    assert deduped.query(start="2023-01-01").where("source = 'alpha'").to_arrow().num_rows == 6
    padded = sub.with_interval_padding(after=dt.timedelta(days=2)).named("padded")
    d = padded.union(alpha, dedupe=True).to_arrow()
    assert d.num_rows == 6
    by_id = {r["id"]: r for r in d.to_pylist()}
    assert {i for i, r in by_id.items() if r["source"] == "padded"} == {"a0001", "a0003"}
    assert by_id["a0001"]["end_datetime"] == day_interval("2023-01-01")[1] + 2 * DAY
    assert by_id["a0002"]["end_datetime"] == day_interval("2023-01-01")[1]


def test_union_composes(trio):
    alpha, beta, gamma = trio
    u = alpha.union(beta)
    assert set(u.where("source = 'beta' AND orbit = 'asc'").to_arrow().column("id").to_pylist()) == {
        f"b{i:04d}" for i in range(4)
    }
    assert set(u.query(bbox=(0.2, 0.2, 0.4, 0.4)).to_arrow().column("id").to_pylist()) == {"a0000"}
    got = pairs_of(u.intersect(gamma).to_arrow())
    assert len(got) == len(set(got)) and set(got) == brute_pairs(frame(u), frame(gamma))
    assert "left_source" in u.intersect(gamma).columns


# -- interval padding -----------------------------------------------------------------------------


def test_padding_widens_intervals(root):
    a, _ = _scenario(root, "random_0")
    before, after = dt.timedelta(days=3), dt.timedelta(hours=5, microseconds=7)
    padded = a.with_interval_padding(before=before, after=after)
    assert padded.columns == a.columns
    base = {r["id"]: r for r in a.to_arrow().to_pylist()}
    rows = padded.to_arrow().to_pylist()
    assert len(rows) == len(base)
    statics = 0
    for r in rows:
        o = base[r["id"]]
        if o["start_datetime"] is None:
            statics += 1
            assert r["start_datetime"] is None and r["end_datetime"] is None
        else:
            assert r["start_datetime"] == o["start_datetime"] - before
            assert r["end_datetime"] == o["end_datetime"] + after
        assert {k: v for k, v in r.items() if "datetime" not in k} == {
            k: v for k, v in o.items() if "datetime" not in k
        }
    assert statics > 0
    # only one side, and strings/pandas timedeltas
    assert (
        next(iter(a.with_interval_padding(after="2D").where("start_datetime IS NOT NULL")))["start_datetime"]
        is not None
    )
    # a where over padded rows sees the padded intervals
    some = next(r for r in rows if r["start_datetime"] is not None)
    lit = some["start_datetime"].isoformat()
    same_start = padded.where(f"start_datetime = TIMESTAMPTZ '{lit}'").to_arrow().column("id").to_pylist()
    assert same_start.count(some["id"]) == 1
    # padding then query uses the padded intervals
    first = min((r for r in rows if r["start_datetime"] is not None), key=lambda r: r["start_datetime"])
    hit = padded.query(start=first["start_datetime"], end=first["start_datetime"])
    assert first["id"] in set(hit.to_arrow().column("id").to_pylist())


def test_padded_intersect_pairs_rows_three_days_apart(tmp_path):
    square = box(0, 0, 1, 1)
    sar = write_catalog(tmp_path / "sar", custom_table("S", [square], [day_interval("2023-06-15")]))
    offsets = [-4, -3, -1, 0, 2, 3, 4]
    opt = write_catalog(
        tmp_path / "opt",
        custom_table(
            "O", [square] * len(offsets), [day_interval(pd.Timestamp("2023-06-15", tz=UTC) + k * DAY) for k in offsets]
        ),
    )
    three = dt.timedelta(days=3)
    ids = lambda rel: {r for _, r in pairs_of(rel.to_arrow())}  # noqa: E731
    name = {f"O{i:04d}": k for i, k in enumerate(offsets)}
    assert {name[i] for i in ids(sar.intersect(opt))} == {0}
    padded = sar.with_interval_padding(before=three, after=three)
    assert {name[i] for i in ids(padded.intersect(opt))} == {-3, -1, 0, 2, 3}
    assert {name[i] for i in ids(sar.with_interval_padding(after=three).intersect(opt))} == {0, 2, 3}
    assert {name[r] for r in set(opt.difference(padded).to_arrow().column("id").to_pylist())} == {-4, 4}
    # the output interval is the overlap of the padded interval with the other
    out = {
        name[r["right_id"]]: (r["start_datetime"], r["end_datetime"])
        for r in padded.intersect(opt).to_arrow().to_pylist()
    }
    assert out[-3] == day_interval(pd.Timestamp("2023-06-12", tz=UTC))
    assert out[3] == day_interval(pd.Timestamp("2023-06-18", tz=UTC))


def test_padded_intersect_matches_brute_force(root):
    a, b = _scenario(root, "random_2")
    padded = a.with_interval_padding(before=dt.timedelta(days=3), after=dt.timedelta(days=1))
    got = pairs_of(padded.intersect(b).to_arrow())
    assert len(got) == len(set(got))
    assert set(got) == brute_pairs(frame(padded), frame(b))
    assert set(got) > brute_pairs(frame(a), frame(b))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"before": dt.timedelta(days=-1)},
        {"after": dt.timedelta(microseconds=-1)},
        {"before": "three days"},
        {"after": pd.NaT},
        {"before": object()},
        {"after": "-2D"},
        {"before": "5ns"},
    ],
)
def test_bad_padding(root, kwargs):
    a, _ = _scenario(root, "random_0")
    with pytest.raises(ArgumentError):
        a.with_interval_padding(**kwargs)


@pytest.mark.parametrize("value", [3, 3.0, np.int64(3), "3", " 3 ", "2.5", "1e3", np.timedelta64(3), True])
def test_padding_refuses_bare_numbers(root, value):
    """A bare number has no unit (pandas would read it as nanoseconds): refused, naming the fix."""
    a, _ = _scenario(root, "random_0")
    with pytest.raises(ArgumentError, match=r"before=.* has no unit: .*timedelta\(days=3\).*'3D'"):
        a.with_interval_padding(before=value)
    with pytest.raises(ValueError, match="after="):
        a.with_interval_padding(after=value)


def test_padding_units_agree(root):
    """Every accepted spelling of three days pads by exactly three days."""
    a, _ = _scenario(root, "random_0")
    base = {r["id"]: r["start_datetime"] for r in a.to_arrow().to_pylist() if r["start_datetime"] is not None}
    for value in ("3D", "3 days", "72h", dt.timedelta(days=3), pd.Timedelta(days=3), np.timedelta64(3, "D")):
        got = {
            r["id"]: r["start_datetime"]
            for r in a.with_interval_padding(before=value).to_arrow().to_pylist()
            if r["start_datetime"] is not None
        }
        assert got == {k: v - dt.timedelta(days=3) for k, v in base.items()}, value


# -- where ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "predicate, mask",
    [
        ("tile = 't1'", lambda f: f["tile"] == "t1"),
        (
            "tile IN ('t0', 't3') AND start_datetime IS NOT NULL",
            lambda f: f["tile"].isin(["t0", "t3"]) & f[schema.START].notna(),
        ),
        (
            "start_datetime >= TIMESTAMPTZ '2020-01-10' OR start_datetime IS NULL",
            lambda f: f[schema.START].isna() | (f[schema.START] >= pd.Timestamp("2020-01-10", tz=UTC)),
        ),
        (
            "bbox.xmin > -9.5 AND bbox.ymax < 36.2",
            lambda f: f["bbox"].map(lambda b: b["xmin"] > -9.5 and b["ymax"] < 36.2),
        ),
        ("id LIKE 'L00_5'", lambda f: f["id"].str.fullmatch("L00.5")),
        ("NOT (tile <> 't2')", lambda f: f["tile"] == "t2"),
        ("ST_Area(geometry) > 0.05", lambda f: pd.Series(shapely.area(np.asarray(f.geometry)) > 0.05)),
    ],
)
def test_where_matches_pandas(root, predicate, mask):
    a, _ = _scenario(root, "random_0")
    f = frame(a)
    expected = set(f["id"][mask(f).astype(bool)])
    got = a.where(predicate).to_arrow().column("id").to_pylist()
    assert set(got) == expected and len(got) == len(expected)
    assert 0 < len(expected) < len(f)


def test_where_composes_with_query_and_intersect(root):
    a, b = _scenario(root, "random_1")
    fa, fb = frame(a), frame(b)
    q = dict(bbox=(-10, 35, -9, 36.5), start="2020-01-03", end="2020-01-20")
    one = set(a.query(**q).where("tile <> 't0'").to_arrow().column("id").to_pylist())
    two = set(a.where("tile <> 't0'").query(**q).to_arrow().column("id").to_pylist())
    fq = frame(a.query(**q))
    assert one == two == set(fq["id"][fq["tile"] != "t0"]) and one
    ix = a.intersect(b).where("left_tile = right_tile")
    tiles = {**dict(zip(fa["id"], fa["tile"], strict=True)), **dict(zip(fb["id"], fb["tile"], strict=True))}
    expected = {p for p in brute_pairs(fa, fb) if tiles[p[0]] == tiles[p[1]]}
    assert set(pairs_of(ix.to_arrow())) == expected and expected
    # filtered inputs
    via_inputs = a.where("tile = 't1'").intersect(b.where("tile = 't2'"))
    expected = {(i, j) for i, j in brute_pairs(fa, fb) if tiles[i] == "t1" and tiles[j] == "t2"}
    assert set(pairs_of(via_inputs.to_arrow())) == expected and expected


@pytest.mark.parametrize(
    "predicate, needle",
    [
        ("cloud_cover < 20", "cloud_cover"),
        ("t.tile = 'x'", "'t'"),
        ("tile = 'a'; DROP TABLE x", ";"),
        ("tile = 'a' /* hidden */; DROP TABLE x", ";"),
        ("tile = 'a' -- */ ; DROP TABLE x", "comment"),
        ("tile = 'a' /* ; DROP TABLE x */", "comment"),
        ("id IN (SELECT id FROM other)", "SELECT"),
        ("EXISTS (SELECT 1)", "SELECT"),
        ("DROP TABLE catalog", "DROP"),
        ("tile = 'a' OR CREATE TABLE x (a INT)", "CREATE"),
        ("read_csv('/etc/passwd') IS NOT NULL", "read_csv"),
        ("getenv('HOME') = tile", "getenv"),
        ("filepath = 'x' */ OR 1=1 /*", "*/"),
        ("tile = 'unterminated", "unterminated"),
        ("tile = ?", "?"),
        ("", "non-empty"),
    ],
)
def test_bad_predicates(root, predicate, needle):
    a, _ = _scenario(root, "random_0")
    with pytest.raises(SQLError) as info:
        a.where(predicate)
    assert needle in str(info.value)


# -- results of derived relations -----------------------------------------------------------------


def test_results_api_on_derived_relations(root, trio):
    a, b = _scenario(root, "random_0")
    alpha, beta, _ = trio
    for cheap, rel in (
        (False, a.intersect(b)),
        (False, a.difference(b)),
        (True, alpha.union(beta)),
        (True, a.with_interval_padding(before=dt.timedelta(days=1))),
        (True, a.where("tile = 't2'")),
    ):
        table = rel.to_arrow()
        gdf = rel.to_geopandas()
        rows = list(rel)
        assert len(rel) == table.num_rows == len(gdf) == len(rows) > 0
        assert Counter(r["id"] for r in rows) == Counter(table.column("id").to_pylist()) == Counter(gdf["id"])
        assert all(isinstance(r["geometry"], BaseGeometry) for r in rows)
        assert gdf.crs == "EPSG:4326"
        assert table.schema.field("geometry").metadata[b"ARROW:extension:name"] == b"geoarrow.wkb"
        if cheap:  # (each call compiles the relation again; the join ones are slow to compile)
            assert rel.columns == table.column_names
            assert rel.total_bounds == pytest.approx(tuple(gdf.total_bounds))


def _read_parts(path: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in store.list_parts(path)], promote_options="default")


def _sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def test_to_parquet_of_query_and_intersect(root, tmp_path):
    a, b = _scenario(root, "random_1")
    q = a.query(bbox=(-10, 35, -9, 36), start="2020-01-02")
    ix = a.intersect(b)
    for name, rel, part_rows in (("q", q, 1_000_000), ("ix", ix, 500)):
        target = tmp_path / name
        reopened = rel.to_parquet(target, part_rows=part_rows)
        assert isinstance(reopened, geoduck.Catalog)
        again = geoduck.open_catalog(target)
        expected = _sorted_rows(rel.to_arrow())
        assert _sorted_rows(again.to_arrow()) == expected
        assert _sorted_rows(reopened.to_arrow()) == expected
        assert again.columns == rel.columns
        parts = store.list_parts(target)
        sizes = sorted((pq.read_metadata(p).num_rows for p in parts), reverse=True)
        assert sizes == [part_rows] * (len(expected) // part_rows) + [len(expected) % part_rows] * (
            len(expected) % part_rows > 0
        )
        assert len(sizes) >= (2 if name == "ix" else 1)
        total = 0
        for part in parts:
            meta = pq.read_metadata(part).metadata
            geo = json.loads(meta[b"geo"])
            assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
            column = geo["columns"]["geometry"]
            assert column["encoding"] == "WKB"
            assert column["covering"] == {"bbox": {k: ["bbox", k] for k in schema.BBOX_KEYS}}
            assert meta[schema.KV_SCHEMA_VERSION] == b"1"
            t = pq.read_table(part)
            total += t.num_rows
            bb = pd.DataFrame(t.column("bbox").to_pylist())
            assert column["bbox"] == [bb["xmin"].min(), bb["ymin"].min(), bb["xmax"].max(), bb["ymax"].max()]
            assert t.schema.field("geometry").type == pa.binary()
        assert total == len(expected)
        # the written catalog is queried like any other
        box_q = (-9.6, 35.4, -9.2, 35.8)
        f = frame(again)
        assert set(again.query(bbox=box_q).to_arrow().column("id").to_pylist()) == set(
            f["id"][f.geometry.intersects(box(*box_q))]
        )
        with pytest.raises(ArgumentError, match="already holds a catalog"):
            rel.to_parquet(target)
    assert len(_read_parts(tmp_path / "ix")) == len(ix)
    with pytest.raises(ArgumentError, match="no rows"):
        a.query(bbox=(100, -60, 101, -59)).to_parquet(tmp_path / "empty")


# -- SQL over derived relations -------------------------------------------------------------------


def test_module_sql_joins_relations(root):
    a, b = _scenario(root, "random_0")
    fa, fb = frame(a), frame(b)
    out = geoduck.sql(
        "SELECT s2.id AS sid, labels.id AS lid FROM s2 JOIN labels ON s2.tile = labels.tile "
        "WHERE ST_Intersects(s2.geometry, labels.geometry)",
        s2=a,
        labels=b,
    )
    assert type(out) is pd.DataFrame
    hit = shapely.intersects(np.asarray(fa.geometry)[:, None], np.asarray(fb.geometry)[None, :]) & (
        np.asarray(fa["tile"], dtype=object)[:, None] == np.asarray(fb["tile"], dtype=object)[None, :]
    )
    i, j = np.nonzero(hit)
    assert sorted(zip(out["sid"], out["lid"], strict=True)) == sorted(
        zip(fa["id"].values[i], fb["id"].values[j], strict=True)
    )
    # derived relations as tables
    ix = a.intersect(b)
    per_left = geoduck.sql("SELECT left_id, count(*) AS n FROM ix GROUP BY left_id", ix=ix)
    expected = Counter(left for left, _ in brute_pairs(fa, fb))
    assert dict(zip(per_left["left_id"], per_left["n"].astype(int), strict=True)) == expected
    u = a.union(b)
    counts = u.sql("SELECT source, count(*) AS n FROM catalog GROUP BY source ORDER BY source")
    assert list(counts["source"]) == ["a", "b"] and list(counts["n"]) == [len(fa), len(fb)]
    geo = ix.sql("SELECT id, geometry FROM catalog WHERE left_tile = 't0'")
    assert isinstance(geo, gpd.GeoDataFrame) and geo.crs == "EPSG:4326"
    assert set(geo["id"]) == set(ix.where("left_tile = 't0'").to_arrow().column("id").to_pylist())
    padded = a.with_interval_padding(before=dt.timedelta(days=2))
    n = geoduck.sql(
        "SELECT count(*) AS n FROM p JOIN a USING (id) WHERE p.start_datetime = a.start_datetime - INTERVAL 2 DAY",
        p=padded,
        a=a,
        b=b,
    )
    assert int(n["n"][0]) == fa[schema.START].notna().sum()
    with pytest.raises(SQLError):
        geoduck.sql("SELECT * FROM ix; DROP TABLE ix", ix=ix)
    with pytest.raises(SQLError):
        ix.sql("SELECT 'unterminated FROM catalog")
