"""``Catalog.query`` / ``Catalog.sql`` against brute force.

The catalog mixes the synthetic archive (UTM 29/30/31, dated by file name), static rasters in other
UTM zones and EPSG:4326 (one across the antimeridian) and back-to-back daily files. Every query's
ids are compared with an answer computed independently from the rows' footprints (shapely) and an
AOI reprojected here with pyproj, plus the closed-interval time rule.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyproj
import pytest
import shapely
import sqlglot
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from sqlglot import exp

import geoduck
from geoduck.errors import ArgumentError, CRSError, SQLError, TimeParseError
from geoduck.testing import ARCHIVE_REGEX, coordinate_raster

DAILY_REGEX = r"^D_(?P<date>\d{8})\.tif$"
DAILY_DATES = ("20230614", "20230615", "20230616")
DAILY_BBOX = (20.0, 9.0, 21.0, 10.0)  # lon/lat area where only the daily files are

# name -> (crs, top-left origin, resolution, (rows, cols)); all static (built without a regex)
STATIC_RASTERS: dict[str, tuple[str, tuple[float, float], float, tuple[int, int]]] = {
    "am_4326": ("EPSG:4326", (179.0, 1.0), 0.125, (16, 16)),  # 179E .. 179W, 1S .. 1N
    "am_utm01": ("EPSG:32601", (100_000.0, 1_200_000.0), 5000.0, (32, 32)),  # crosses 180 too
    "africa_4326": ("EPSG:4326", (10.0, 2.0), 0.0625, (32, 32)),  # 10..12E, 0..2N
    "spain_4326": ("EPSG:4326", (-4.0, 40.5), 0.03125, (32, 64)),  # over the archive
    "utm33": ("EPSG:32633", (300_000.0, 4_700_000.0), 2000.0, (32, 32)),
    "utm18": ("EPSG:32618", (500_000.0, 4_500_000.0), 1000.0, (64, 64)),
    "utm55s": ("EPSG:32755", (300_000.0, 6_300_000.0), 4000.0, (16, 16)),
}

EPS = 1e-3  # degrees: AOIs closer than this to a footprint's boundary are not judged (densification)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(archive, tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("query_rasters")
    static = [
        coordinate_raster(root / "static" / f"{name}.tif", crs=crs, origin=origin, res=res, shape=shape)
        for name, (crs, origin, res, shape) in STATIC_RASTERS.items()
    ]
    daily = [
        coordinate_raster(
            root / "daily" / f"D_{d}.tif",
            crs="EPSG:4326",
            origin=(DAILY_BBOX[0], DAILY_BBOX[3]),
            res=1 / 16,
            shape=(16, 16),
        )
        for d in DAILY_DATES
    ]
    return {"archive": list(archive), "static": static, "daily": daily}


@pytest.fixture(scope="module")
def cat(files, tmp_path_factory) -> geoduck.Catalog:
    """One catalog directory appended to by three builds (different regexes, union_by_name)."""
    out = tmp_path_factory.mktemp("query_cat") / "cat"
    geoduck.build_raster_catalog(files["archive"], out, filename_regex=ARCHIVE_REGEX, progress=False, workers=1)
    geoduck.build_raster_catalog(files["static"], out, progress=False, workers=1)
    return geoduck.build_raster_catalog(files["daily"], out, filename_regex=DAILY_REGEX, progress=False, workers=1)


@pytest.fixture(scope="module")
def frame(cat) -> gpd.GeoDataFrame:
    return cat.to_geopandas().set_index("id", drop=False)


def ids_of(frame: gpd.GeoDataFrame, stem_pattern: str) -> set[str]:
    """Ids of rows whose file name (without .tif) matches ``stem_pattern``."""
    stems = frame["filepath"].map(lambda p: Path(p).stem)
    return set(frame.index[stems.str.fullmatch(stem_pattern)])


def query_ids(cat: geoduck.Catalog, **kwargs) -> set[str]:
    return {r["id"] for r in cat.query(**kwargs).to_arrow().select(["id"]).to_pylist()}


# -- brute force ----------------------------------------------------------------------------------


def lonlat_aoi_of_bbox(b: tuple[float, float, float, float]) -> BaseGeometry:
    xmin, ymin, xmax, ymax = b
    if xmin <= xmax:
        return box(xmin, ymin, xmax, ymax)
    return MultiPolygon([box(xmin, ymin, 180.0, ymax), box(-180.0, ymin, xmax, ymax)])


def reproject_aoi(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """Densify (400+ points per ring) in ``crs`` and reproject with pyproj to lon/lat."""
    if pyproj.CRS(crs).equals(pyproj.CRS(4326)):
        return geom
    t = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def ring(coords) -> np.ndarray:
        line = shapely.LinearRing(coords)
        dense = shapely.segmentize(line, line.length / 400)
        x, y = t.transform(*np.asarray(dense.coords).T)
        return np.column_stack([x, y])

    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    out = [Polygon(ring(p.exterior.coords), [ring(h.coords) for h in p.interiors]) for p in polys]
    return shapely.union_all(out)


def spatial_expectation(frame: gpd.GeoDataFrame, aoi: BaseGeometry) -> tuple[set[str], set[str]]:
    """(ids that surely intersect, ids that may intersect) the lon/lat AOI, within ``EPS``."""
    inner, outer = aoi.buffer(-EPS), aoi.buffer(EPS)
    sure = set(frame.index[frame.geometry.intersects(inner)]) if not inner.is_empty else set()
    maybe = set(frame.index[frame.geometry.intersects(outer)])
    return sure, maybe


def time_mask(frame: gpd.GeoDataFrame, t0: pd.Timestamp | None, t1: pd.Timestamp | None) -> set[str]:
    start, end = frame["start_datetime"], frame["end_datetime"]
    ok = start.isna() & end.isna()
    dated = ~ok
    if t1 is not None:
        dated &= start <= t1
    if t0 is not None:
        dated &= end >= t0
    return set(frame.index[ok | dated])


# -- random inputs --------------------------------------------------------------------------------


def random_time(rng: np.random.Generator) -> tuple[object, pd.Timestamp | None, pd.Timestamp | None]:
    """A random (value, its start instant, its end instant) in one of several input forms."""
    day = pd.Timestamp("2021-11-01") + pd.Timedelta(days=int(rng.integers(0, 820)))
    form = rng.integers(0, 6)
    eod = pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    if form == 0:
        return None, None, None
    if form == 1:  # ISO date: the whole day
        d = day.tz_localize("UTC")
        return day.strftime("%Y-%m-%d"), d, d + eod
    if form == 2:  # compact date
        d = day.tz_localize("UTC")
        return day.strftime("%Y%m%d"), d, d + eod
    if form == 3:  # dt.date
        d = day.tz_localize("UTC")
        return day.date(), d, d + eod
    if form == 4:  # naive datetime (UTC), an instant
        t = day + pd.Timedelta(seconds=int(rng.integers(0, 86400)))
        u = t.tz_localize("UTC")
        return t.to_pydatetime(), u, u
    t = (day + pd.Timedelta(seconds=int(rng.integers(0, 86400)))).tz_localize("Europe/Madrid")
    u = t.tz_convert("UTC")
    return t, u, u  # aware Timestamp, an instant


def random_interval(rng: np.random.Generator) -> tuple[dict, pd.Timestamp | None, pd.Timestamp | None]:
    for _ in range(100):
        s, s0, _ = random_time(rng)
        e, _, e1 = random_time(rng)
        if s0 is None or e1 is None or s0 <= e1:
            return {"start": s, "end": e}, s0, e1
    raise AssertionError("unreachable")


UTM_ZONES = {"EPSG:32629": -9.0, "EPSG:32630": -3.0, "EPSG:32631": 3.0, "EPSG:32633": 15.0, "EPSG:32618": -75.0}


def random_aoi(rng: np.random.Generator) -> tuple[dict, BaseGeometry]:
    """(query kwargs, the AOI as lon/lat geometry computed independently)."""
    kind = rng.choice(
        ["spain_lonlat", "global_lonlat", "utm_bbox", "utm_polygon", "lonlat_polygon", "mercator_polygon"],
        p=[0.3, 0.15, 0.2, 0.15, 0.1, 0.1],
    )
    if kind == "spain_lonlat":
        cx, cy = rng.uniform(-9, 3), rng.uniform(38.5, 41.5)
        hw, hh = rng.uniform(0.02, 2.0), rng.uniform(0.02, 1.0)
        b = (cx - hw, cy - hh, cx + hw, cy + hh)
        return {"bbox": b}, lonlat_aoi_of_bbox(b)
    if kind == "global_lonlat":
        xmin, xmax = rng.uniform(-180, 180, 2)  # xmin > xmax crosses the antimeridian
        ymin, ymax = np.sort(rng.uniform(-60, 60, 2))
        b = (float(xmin), float(ymin), float(xmax), float(ymax))
        return {"bbox": b}, lonlat_aoi_of_bbox(b)
    crs = str(rng.choice(list(UTM_ZONES)))
    if kind == "mercator_polygon":
        crs = "EPSG:3857"
    to_native = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    cm = UTM_ZONES.get(crs, -3.0)
    lat = rng.uniform(38.5, 42.0) if crs != "EPSG:32633" else rng.uniform(40.5, 43.0)
    cx, cy = to_native.transform(cm + rng.uniform(-4, 4), lat)
    size = rng.uniform(5_000, 250_000)
    if kind == "utm_bbox":
        b = (cx - size, cy - size * rng.uniform(0.3, 1.0), cx + size, cy + size)
        return {"bbox": b, "crs": crs}, reproject_aoi(box(*b), crs)
    if kind == "lonlat_polygon":
        crs = "EPSG:4326"
        cx, cy, size = rng.uniform(-9, 3), rng.uniform(38.5, 41.5), rng.uniform(0.05, 2.0)
    # a random star (possibly concave), sometimes with a hole
    n = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = size * rng.uniform(0.3, 1.0, n)
    poly = Polygon(np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)]))
    if not poly.is_valid or poly.area == 0:
        poly = Point(cx, cy).buffer(size, quad_segs=4)
    if rng.random() < 0.3:
        hole = Point(cx, cy).buffer(size * 0.25, quad_segs=3)
        if poly.contains(hole):
            poly = Polygon(poly.exterior.coords, [hole.exterior.coords])
    return {"geometry": poly, "crs": crs}, reproject_aoi(poly, crs)


# -- correctness against brute force ----------------------------------------------------------------


def test_catalog_contents(cat, frame, files):
    assert len(frame) == len(cat) == sum(len(v) for v in files.values())
    assert frame.index.is_unique
    assert set(frame["filepath"]) == {str(p) for v in files.values() for p in v}


def test_random_queries_match_brute_force(cat, frame):
    rng = np.random.default_rng(20240615)
    judged = partial = 0
    for i in range(80):
        kwargs, aoi = random_aoi(rng)
        tkw, t0, t1 = random_interval(rng) if rng.random() < 0.6 else ({}, None, None)
        got = query_ids(cat, **kwargs, **tkw)
        sure, maybe = spatial_expectation(frame, aoi)
        in_time = time_mask(frame, t0, t1)
        sure, maybe = sure & in_time, maybe & in_time
        context = f"query #{i}: {kwargs} {tkw}"
        assert sure <= got, f"{context}: missing {sorted(sure - got)}"
        assert got <= maybe, f"{context}: unexpected {sorted(got - maybe)}"
        judged += sure == maybe
        partial += 0 < len(sure) < len(frame)
    assert judged >= 70  # almost every query is far from any footprint boundary
    assert partial >= 30  # and many select a proper, non-empty subset


def test_random_time_windows_match_brute_force(cat, frame):
    rng = np.random.default_rng(7)
    for _ in range(40):
        tkw, t0, t1 = random_interval(rng)
        assert query_ids(cat, **tkw) == time_mask(frame, t0, t1), tkw


def test_polygon_hole_excludes_rows_inside_it(cat, frame):
    africa = ids_of(frame, "africa_4326")
    donut = Polygon(box(8, -2, 14, 4).exterior.coords, [box(9.5, -0.5, 12.5, 2.5).exterior.coords])
    assert query_ids(cat, geometry=donut) & africa == set()
    assert query_ids(cat, geometry=box(8, -2, 14, 4)) & africa == africa


def test_projected_hole_edges_are_densified(tmp_path):
    """A UTM rectangle's edges are curves in lon/lat: the hole's top edge bulges ~0.024° north of
    the chord between its corners. A tiny raster in that band is inside the true hole."""
    tiny = coordinate_raster(
        tmp_path / "tiny.tif", crs="EPSG:4326", origin=(-3.005, 40.644), res=0.000625, shape=(16, 16)
    )  # lon -3.005..-2.995, lat 40.634..40.644
    cat = geoduck.build_raster_catalog([tiny], tmp_path / "cat", progress=False, workers=1)
    hole = box(300_000, 4_300_000, 700_000, 4_500_000)
    to_lonlat = pyproj.Transformer.from_crs(32630, 4326, always_xy=True)
    top_mid, top_corner = to_lonlat.transform(500_000, 4_500_000), to_lonlat.transform(300_000, 4_500_000)
    assert top_corner[1] < 40.634 < 40.644 < top_mid[1]  # the band between chord and curve
    donut = Polygon(box(100_000, 4_100_000, 900_000, 4_900_000).exterior.coords, [hole.exterior.coords])
    assert len(cat.query(geometry=donut, crs="EPSG:32630")) == 0
    assert len(cat.query(geometry=hole, crs="EPSG:32630")) == 1
    assert len(cat.query(bbox=hole.bounds, crs=32630)) == 1


# -- time semantics ------------------------------------------------------------------------------


def test_back_to_back_daily_files(cat, frame):
    day = {d: ids_of(frame, f"D_{d}") for d in DAILY_DATES}
    assert all(len(v) == 1 for v in day.values())
    q = {"bbox": DAILY_BBOX}
    assert query_ids(cat, **q, start="2023-06-15", end="2023-06-15") == day["20230615"]
    assert query_ids(cat, **q, start=dt.date(2023, 6, 15), end=dt.date(2023, 6, 15)) == day["20230615"]
    # a date-only end includes that whole day
    assert query_ids(cat, **q, start="2023-06-01", end="2023-06-15") == day["20230614"] | day["20230615"]
    assert query_ids(cat, **q, end="20230615") == day["20230614"] | day["20230615"]
    # instants at the day boundaries: closed intervals, µs resolution, no double counting
    last_us = pd.Timestamp("2023-06-15T23:59:59.999999", tz="UTC")
    assert query_ids(cat, **q, start=last_us, end=last_us) == day["20230615"]
    midnight = dt.datetime(2023, 6, 16, tzinfo=dt.UTC)
    assert query_ids(cat, **q, start=midnight, end=midnight) == day["20230616"]
    assert query_ids(cat, **q, start=midnight) == day["20230616"]
    assert query_ids(cat, **q, end=dt.datetime(2023, 6, 14)) == day["20230614"]
    # aware input is converted to UTC: 01:30 in Madrid (UTC+2) on the 16th is the 15th in UTC
    madrid = pd.Timestamp("2023-06-16T01:30", tz="Europe/Madrid")
    assert query_ids(cat, **q, start=madrid, end=madrid) == day["20230615"]
    assert query_ids(cat, **q, start="2023-06-17") == set()


def test_static_rows_match_every_time_query(cat, frame):
    static = ids_of(frame, "|".join(STATIC_RASTERS))
    assert len(static) == len(STATIC_RASTERS)
    assert frame.loc[sorted(static), "start_datetime"].isna().all()
    assert frame.loc[sorted(static), "end_datetime"].isna().all()
    for kw in (
        {"start": "1900-01-01", "end": "1900-01-01"},
        {"start": "2999-12-31"},
        {"end": "1000-01-01"},
        {"start": "2023-06-15", "end": "2023-06-15"},
    ):
        got = query_ids(cat, **kw)
        assert static <= got
        assert got - static == time_mask(frame, *_bounds(kw)) - static
    assert query_ids(cat, start="1900-01-01", end="1900-01-01") == static


def _bounds(kw: dict) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    s, e = kw.get("start"), kw.get("end")
    t0 = None if s is None else pd.Timestamp(s, tz="UTC")
    t1 = None if e is None else pd.Timestamp(e, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(1, "us")
    return t0, t1


# -- antimeridian ------------------------------------------------------------------------------


def test_antimeridian_row(cat, frame):
    am = ids_of(frame, "am_4326")
    (row_id,) = am
    footprint = frame.loc[row_id, "geometry"]
    assert isinstance(footprint, MultiPolygon)  # split at 180
    assert footprint.bounds == pytest.approx((-180.0, -1.0, 180.0, 1.0))
    assert query_ids(cat, bbox=(179.4, -0.1, 179.6, 0.1)) & am == am
    assert query_ids(cat, bbox=(179.5, 0.0, 179.5, 0.0)) & am == am  # a point bbox
    assert query_ids(cat, bbox=(-179.6, -0.1, -179.4, 0.1)) & am == am
    assert query_ids(cat, geometry=Point(-179.5, 0.5)) & am == am
    assert query_ids(cat, bbox=(170, -5, -170, 5)) & am == am
    assert query_ids(cat, bbox=(-0.5, -0.5, 0.5, 0.5)) & am == set()
    assert query_ids(cat, bbox=(0, 0, 0, 0)) & am == set()
    # the AOI across 180 is not the 'long way round': rows at lon 0..20 are not matched
    assert query_ids(cat, bbox=(170, -5, -170, 5)) == am
    # UTM zone 1 raster across 180: found from both sides, not from the middle of the map
    utm1 = ids_of(frame, "am_utm01")
    assert query_ids(cat, bbox=(179.8, 10.3, 179.9, 10.4)) == utm1
    assert query_ids(cat, bbox=(-179.5, 10.3, -179.4, 10.4)) == utm1
    assert query_ids(cat, bbox=(-90, 10.3, 90, 10.4)) == set()
    # a lon/lat bbox wider than 180° is taken as given, not as its short-way complement
    assert query_ids(cat, bbox=(-170, -1, 170, 11)) == ids_of(frame, "africa_4326|D_.*")
    assert query_ids(cat, bbox=(15, -1, -170, 11)) == ids_of(frame, "D_.*|am_.*")
    assert query_ids(cat, geometry=box(-170, -1, 170, 11)) == ids_of(frame, "africa_4326|D_.*")
    assert query_ids(cat, geometry=box(170, -1, 190, 11)) == ids_of(frame, "am_.*")


# -- argument errors -----------------------------------------------------------------------------


def test_projected_bbox_without_crs_is_an_error(cat):
    with pytest.raises(CRSError, match="crs="):
        cat.query(bbox=(400000, 4000000, 500000, 4100000))
    with pytest.raises(CRSError):
        cat.query(geometry=box(400000, 4000000, 500000, 4100000))
    # with its CRS the same bbox is fine (and finds what a lon/lat query of it finds)
    lonlat = pyproj.Transformer.from_crs(32630, 4326, always_xy=True).transform_bounds(400000, 4000000, 500000, 4100000)
    assert (
        query_ids(cat, bbox=(400000, 4000000, 500000, 4100000), crs="EPSG:32630")
        == query_ids(cat, bbox=lonlat)
        == set()
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bbox": (0, 0, 1, 1), "geometry": box(0, 0, 1, 1)},
        {"bbox": (0, float("nan"), 1, 1)},
        {"bbox": (0, 0, float("inf"), 1)},
        {"bbox": (0, 0, 1)},
        {"bbox": (0, 2, 1, 1)},
        {"bbox": ("0", "0", "1", "1); DROP TABLE catalog; --")},
        {"crs": "EPSG:32630"},
        {"bbox": (500000, 4000000, 400000, 4100000), "crs": "EPSG:32630"},
        {"geometry": "POLYGON((0 0, 1 0, 1 1, 0 0)); DROP TABLE catalog; --"},
        {"geometry": 42},
        {"start": "2023-06-16", "end": "2023-06-15"},
    ],
)
def test_bad_arguments(cat, kwargs):
    with pytest.raises(ArgumentError):
        cat.query(**kwargs)


def test_bad_time_and_crs(cat):
    with pytest.raises(TimeParseError):
        cat.query(start="2023-01-01'; DROP TABLE catalog; --")
    with pytest.raises(CRSError):
        cat.query(bbox=(0, 0, 1, 1), crs="EPSG:4326'; --")


# -- generated SQL -------------------------------------------------------------------------------


def _string_literals(sql: str) -> list[str]:
    tree = sqlglot.parse_one(sql, read="duckdb")
    return [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]


def test_sql_text_bbox_first_and_values_as_literals(cat):
    weird = {
        "type": "Polygon",
        "coordinates": [
            [[-5.0, 39.0], [-4.999999999999999, 41.0], [1e-300, 41.0], [2.5e-7, 39.000000000000014], [-5.0, 39.0]]
        ],
    }
    rel = cat.query(geometry=weird, start="2023-01-01", end="2023-06-30")
    sql = rel.sql_text
    positions = {
        k: sql.find(k)
        for k in ('"bbox".xmin <=', '"bbox".xmax >=', '"bbox".ymin <=', '"bbox".ymax >=', "ST_INTERSECTS")
    }
    assert all(v >= 0 for v in positions.values()), positions
    assert max(v for k, v in positions.items() if k != "ST_INTERSECTS") < positions["ST_INTERSECTS"]
    assert "POLYGON" not in sql.upper().replace("ST_GEOMFROMHEXWKB", "")
    strings = _string_literals(sql)
    hexes = [s for s in strings if re.fullmatch(r"[0-9A-F]+", s)]
    assert len(hexes) == 1
    aoi = shapely.from_wkb(bytes.fromhex(hexes[0]))
    assert aoi.equals(shapely.geometry.shape(weird))
    assert sorted(s for s in strings if s not in hexes and not s.endswith(".parquet")) == [
        "2023-01-01T00:00:00+00:00",
        "2023-06-30T23:59:59.999999+00:00",
    ]
    # the envelope bounds appear as exact numeric literals
    tree = sqlglot.parse_one(sql, read="duckdb")
    numbers = {
        float(n.sql())
        for n in tree.find_all(exp.Neg, exp.Literal)
        if not (isinstance(n, exp.Literal) and (n.is_string or isinstance(n.parent, exp.Neg)))
    }
    assert {-5.0, 39.0, 41.0, 2.5e-7} <= numbers


def test_wkt_with_sql_in_it_is_only_a_hex_literal(cat):
    wkt = "POLYGON ((-5 39, -5 41, -4 41, -4 39, -5 39))"
    sql = cat.query(geometry=wkt).sql_text
    assert wkt not in sql and "-5 39" not in sql
    (hexwkb,) = [s for s in _string_literals(sql) if re.fullmatch(r"[0-9A-F]+", s)]
    assert shapely.from_wkb(bytes.fromhex(hexwkb)).equals(shapely.from_wkt(wkt))


def test_antimeridian_sql_has_one_box_per_piece(cat):
    sql = cat.query(bbox=(170, -5, -170, 5)).sql_text
    assert sql.count('"bbox".xmin <=') == 3  # the envelope, then one per side of 180
    assert sql.find('"bbox".xmin <=') < sql.find("ST_INTERSECTS")


def _scan_filters(plan: str) -> str:
    """The text of READ_PARQUET's ``Filters:`` section of an EXPLAIN box plot, spaces removed."""
    lines = [line.strip().strip("│").strip() for line in plan.splitlines()]
    flat = "".join(line.replace(" ", "") for line in lines)
    scan = flat.rindex("READ_PARQUET")
    filters = flat.index("Filters:", scan)
    end = flat.find("└", filters)
    return flat[filters + len("Filters:") : end if end > 0 else None]


def test_filters_are_pushed_into_the_parquet_scan(cat):
    rel = cat.query(bbox=(-6.0, 39.0, -5.0, 41.0), start="2023-01-01", end="2023-06-30")
    filters = _scan_filters(rel.plan())
    for needle in (
        "bbox.xmin<=-5.0",
        "bbox.xmax>=-6.0",
        "bbox.ymin<=41.0",
        "bbox.ymax>=39.0",
        "start_datetime<='2023-06-3023:59:59.999999",
        "end_datetime>='2023-01-0100:00:00",
    ):
        assert needle in filters, (needle, filters)


# -- results --------------------------------------------------------------------------------------


def test_results_api(cat, frame):
    rel = cat.query(bbox=(-6.5, 39.5, -2.5, 40.5), start="2022-05-01", end="2023-02-28")
    sure, maybe = spatial_expectation(frame, box(-6.5, 39.5, -2.5, 40.5))
    expected = sure & time_mask(
        frame, pd.Timestamp("2022-05-01", tz="UTC"), pd.Timestamp("2023-03-01", tz="UTC") - pd.Timedelta(1, "us")
    )
    assert sure == maybe and len(expected) > 5
    assert len(rel) == len(expected)

    rows = list(rel)
    assert {r["id"] for r in rows} == expected
    for r in rows:
        assert isinstance(r["geometry"], BaseGeometry)
        assert r["geometry"].equals_exact(frame.loc[r["id"], "geometry"], 0)
        assert r["filepath"] == frame.loc[r["id"], "filepath"]

    table = rel.to_arrow()
    assert isinstance(table, pa.Table) and table.num_rows == len(expected)
    meta = table.schema.field("geometry").metadata
    assert meta[b"ARROW:extension:name"] == b"geoarrow.wkb"
    crs = json.loads(meta[b"ARROW:extension:metadata"])["crs"]
    assert pyproj.CRS.from_json_dict(crs) == pyproj.CRS(4326)

    gdf = rel.to_geopandas()
    assert isinstance(gdf, gpd.GeoDataFrame) and gdf.crs == "EPSG:4326"
    assert set(gdf["id"]) == expected

    geoms = frame.loc[sorted(expected), "geometry"]
    assert rel.total_bounds == pytest.approx(tuple(shapely.total_bounds(geoms.values)), abs=1e-12)
    # temporal extent from the file names: S2_<tile>_<YYYYMMDD>.tif
    days = sorted(
        pd.Timestamp(re.search(r"_(\d{8})\.tif$", p).group(1), tz="UTC")
        for p in frame.loc[sorted(expected), "filepath"]
        if "S2_" in p
    )
    assert len(days) == len(expected) - 1  # plus the static spain_4326 raster
    assert rel.temporal_extent == (days[0], days[-1] + pd.Timedelta(days=1) - pd.Timedelta(1, "us"))


def test_whole_catalog_extent(cat, files):
    dates = [
        pd.Timestamp(re.search(r"_(\d{8})\.tif$", str(p)).group(1), tz="UTC") for p in files["archive"] + files["daily"]
    ]
    assert cat.temporal_extent == (min(dates), max(dates) + pd.Timedelta(days=1) - pd.Timedelta(1, "us"))
    # total bounds: the antimeridian rows reach both ±180
    xmin, ymin, xmax, ymax = cat.total_bounds
    assert (xmin, xmax) == (-180.0, 180.0)
    lat_55s = pyproj.Transformer.from_crs(32755, 4326, always_xy=True).transform_bounds(
        300_000, 6_300_000 - 16 * 4000, 300_000 + 16 * 4000, 6_300_000, densify_pts=21
    )
    assert ymin == pytest.approx(lat_55s[1], abs=1e-9)


def test_empty_and_static_results(cat, frame):
    empty = cat.query(bbox=(-100, -80, -99, -79))
    assert len(empty) == 0 and list(empty) == []
    assert empty.total_bounds is None
    assert empty.temporal_extent == (None, None)
    assert empty.to_arrow().num_rows == 0
    static = cat.query(bbox=(10.5, 0.5, 11.5, 1.5))
    assert set(static.to_geopandas()["id"]) == ids_of(frame, "africa_4326")
    assert static.temporal_extent == (None, None)
    assert static.total_bounds == pytest.approx((10.0, 0.0, 12.0, 2.0))


def test_relations_are_lazy_and_immutable(cat, frame):
    a = cat.query(bbox=(-9, 38, 3, 42))
    b = a.query(start="2023-01-01")
    assert len(a) > len(b) > 0
    assert set(b.to_geopandas()["id"]) == query_ids(cat, bbox=(-9, 38, 3, 42), start="2023-01-01")
    assert cat.query().sql_text == cat.sql_text


# -- SQL -------------------------------------------------------------------------------------------


def test_sql_group_by(cat, frame):
    out = cat.sql("SELECT tile, count(*) AS n FROM catalog GROUP BY tile")
    assert type(out) is pd.DataFrame
    got = {(None if pd.isna(t) else t): int(n) for t, n in zip(out["tile"], out["n"], strict=True)}
    expected = frame["tile"].value_counts(dropna=False)
    assert got == {(None if pd.isna(t) else t): int(n) for t, n in expected.items()}
    assert got[None] == len(STATIC_RASTERS) + len(DAILY_DATES)
    assert all(got[t] == 8 for t in ("29TNE", "30TTK", "30TVK", "30TYK", "31TBE"))


def test_sql_geometry_returns_geodataframe(cat, frame):
    out = cat.sql("SELECT id, geometry FROM catalog WHERE tile = '30TVK' ORDER BY id")
    assert isinstance(out, gpd.GeoDataFrame) and out.crs == "EPSG:4326"
    assert list(out["id"]) == sorted(frame.index[frame["tile"] == "30TVK"])
    for i, g in zip(out["id"], out.geometry, strict=True):
        assert g.equals_exact(frame.loc[i, "geometry"], 0)


def test_sql_on_a_query(cat, frame):
    rel = cat.query(bbox=DAILY_BBOX)
    out = rel.sql("SELECT count(*) AS n, min(start_datetime) AS t0 FROM catalog")
    assert int(out["n"][0]) == 3
    assert pd.Timestamp(out["t0"][0]) == pd.Timestamp("2023-06-14", tz="UTC")


@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE catalog",
        "COPY catalog TO 'out.csv'",
        "INSERT INTO catalog VALUES (1)",
        "DELETE FROM catalog",
        "SELECT 1; SELECT 2",
        "SELECT * FROM catalog; DROP TABLE catalog",
        "SELECT * FROM other",
        "SELECT * FROM main.catalog",
        "SELECT * FROM read_csv('x')",
        "SELECT * FROM catalog, read_csv('x')",
        "SELECT * FROM (SELECT * FROM read_parquet('/etc/passwd'))",
        "SELECT * FROM '/etc/passwd'",
        "ATTACH 'x.db'",
        "PRAGMA version",
        "SELECT * FROM",
    ],
)
def test_sql_refused(cat, query):
    with pytest.raises(SQLError):
        cat.sql(query)


def test_sql_ctes_and_multi_catalog_join(cat, frame):
    n = cat.sql("WITH t AS (SELECT * FROM catalog WHERE tile = '31TBE') SELECT count(*) AS n FROM t")
    assert int(n["n"][0]) == 8
    a = cat.query(bbox=(-4.5, 39.5, -3.0, 40.5))
    b = cat.query(start="2023-01-01")
    out = geoduck.sql("SELECT a.id, a.tile FROM a JOIN b ON a.id = b.id ORDER BY a.id", a=a, b=b)
    expected = query_ids(cat, bbox=(-4.5, 39.5, -3.0, 40.5)) & query_ids(cat, start="2023-01-01")
    assert type(out) is pd.DataFrame
    assert list(out["id"]) == sorted(expected) and len(expected) > 0
    with pytest.raises(ArgumentError):
        geoduck.sql("SELECT 1")
    with pytest.raises(SQLError, match="unknown table 'c'"):
        geoduck.sql("SELECT * FROM a JOIN c USING (id)", a=a, b=b)
