"""Arbitrary inputs at the query API either work or raise a GeoduckError with a message —
never a raw DuckDB/pyproj/pandas traceback, never a silently wrong result."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp, parse

import geoduck
from geoduck.errors import GeoduckError
from geoduck.testing import write_synthetic_catalog

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    root = write_synthetic_catalog(tmp_path_factory.mktemp("hostile") / "c", 25, 10, tile_deg=0.2)
    return geoduck.open_catalog(root)


def brute_force(cat, bbox, t0=None, t1=None) -> set[str]:
    gdf = cat.to_geopandas()
    aoi = shapely.box(*bbox)
    hit = gdf.geometry.intersects(aoi)
    if t0 is not None:
        hit &= gdf["end_datetime"] >= t0
    if t1 is not None:
        hit &= gdf["start_datetime"] <= t1
    return set(gdf.loc[hit, "id"])


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**9), 10**9))


@SETTINGS
@given(bbox=st.tuples(numbers, numbers, numbers, numbers))
def test_arbitrary_bboxes(cat, bbox):
    try:
        ids = set(cat.query(bbox=bbox).to_arrow()["id"].to_pylist())
    except GeoduckError as exc:
        assert str(exc)
        return
    xmin, ymin, xmax, ymax = (float(v) for v in bbox)
    assert all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax))
    if xmin <= xmax:  # not an antimeridian-crossing box: compare with brute force
        assert ids == brute_force(cat, (xmin, ymin, xmax, ymax))


@SETTINGS
@given(xmin=st.floats(-10.5, -8.5), ymin=st.floats(34.5, 36.5), w=st.floats(0, 1), h=st.floats(0, 1))
def test_valid_lonlat_boxes_match_brute_force(cat, xmin, ymin, w, h):
    bbox = (xmin, ymin, xmin + w, ymin + h)
    assert set(cat.query(bbox=bbox).to_arrow()["id"].to_pylist()) == brute_force(cat, bbox)


crs_strings = st.one_of(
    st.sampled_from(
        [
            "EPSG:4326",
            "EPSG:32629",
            "EPSG:3857",
            "OGC:CRS84",
            "EPSG:999999",
            "nonsense",
            "+proj=utm +zone=29 +datum=WGS84",
            "",
            "EPSG:4326;DROP TABLE x",
            "ESRI:54009",
        ]
    ),
    st.text(max_size=30),
)


@SETTINGS
@given(crs=crs_strings, bbox=st.tuples(*[st.floats(-1e7, 1e7)] * 4))
def test_arbitrary_crs(cat, crs, bbox):
    try:
        cat.query(bbox=bbox, crs=crs).to_arrow()
    except GeoduckError as exc:
        assert str(exc)


times = st.one_of(
    st.none(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.datetimes(
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-11)), dt.timezone(dt.timedelta(hours=14))])
    ),
    st.dates(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "2020-01-05",
            "20200105",
            "2020-13-01",
            "0000-01-01",
            "99999-01-01",
            "2020-01-05T25:00",
            "yesterday",
            "2020-01-05'; DROP TABLE x; --",
        ]
    ),
)


@SETTINGS
@given(start=times, end=times)
def test_arbitrary_times(cat, start, end):
    try:
        result = cat.query(start=start, end=end)
        ids = set(result.to_arrow()["id"].to_pylist())
    except GeoduckError as exc:
        assert str(exc)
        return
    t0, t1 = (result.node.start, result.node.end) if hasattr(result.node, "start") else (None, None)
    assert t0 is None or t1 is None or t0 <= t1
    gdf = cat.to_geopandas()
    hit = (gdf["end_datetime"] >= t0 if t0 is not None else True) & (
        gdf["start_datetime"] <= t1 if t1 is not None else True
    )
    assert ids == set(gdf.loc[hit, "id"]) if not isinstance(hit, bool) else ids == set(gdf["id"])


predicates = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "tile = 'T000001'",
            "tile = 'x''; DROP TABLE catalog; --'",
            "width > 100 AND count = 1",
            "1=1; DROP TABLE catalog",
            "tile IN (SELECT id FROM catalog)",
            "/* */ tile = 'a' -- x",
            "read_parquet('/etc') IS NULL",
            "COPY catalog TO 'x'",
            "tile = $$a$$",
            "bbox.xmin < 0",
            "unknown_col = 1",
            "",
            "   ",
            "tile = 'T000001' OR 1=1",
            "ST_Area(geometry) > 0",
        ]
    ),
)


@SETTINGS
@given(predicate=predicates)
def test_arbitrary_where(cat, predicate):
    try:
        rel = cat.where(predicate)
        n = len(rel)
    except GeoduckError as exc:
        assert str(exc)
        return
    # Whatever was accepted stayed one expression inside one SELECT.
    statements = [s for s in parse(rel.sql_text, read="duckdb") if s is not None]
    assert len(statements) == 1 and isinstance(statements[0], exp.Select)
    assert 0 <= n <= len(cat)
