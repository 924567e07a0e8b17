"""``GeoSlice`` grids and ``load_raster`` mosaics, checked exactly with coordinate rasters.

``coordinate_raster`` files hold each pixel centre's x/y (or lon/lat) in bands 1/2 and an optional
constant tag in band 3, so every output pixel says which source pixel of which file it came from.
Where GDAL warps, positions are allowed GDAL's approximate-transformer error: ``WarpedVRT``'s
default ``tolerance`` of 0.125 source pixel.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
from georeader.geotensor import GeoTensor
from rasterio.enums import Resampling
from rasterio.transform import Affine

import geoduck
from geoduck.errors import ArgumentError, CRSError, NoDataError
from geoduck.loaders import raster as lr
from geoduck.loaders.merge import as_array
from geoduck.testing import DEMO_TILES, coordinate_raster, pattern, pixel_centres

GDAL_TOLERANCE = 0.125  # WarpedVRT's default approximation error, in source pixels
NODATA = -9999.0
DATED = r"_(?P<date>\d{8})\.tif$"


def build(paths, out: Path, regex: str | None = None) -> geoduck.Catalog:
    return geoduck.build_raster_catalog([str(p) for p in paths], out, filename_regex=regex, progress=False, workers=1)


def transform_xy(src: str, dst: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    tx, ty = pyproj.Transformer.from_crs(src, dst, always_xy=True).transform(x, y)
    return np.asarray(tx), np.asarray(ty)


def inside(x, y, bounds, margin: float = 0.0) -> np.ndarray:
    xmin, ymin, xmax, ymax = bounds
    return (x > xmin + margin) & (x < xmax - margin) & (y > ymin + margin) & (y < ymax - margin)


def assert_geotensor_on(g: GeoTensor, s: geoduck.GeoSlice, bands: int) -> None:
    assert isinstance(g, GeoTensor)
    assert g.values.shape == (bands, *s.shape)
    assert g.transform == s.transform
    assert g.crs == rasterio.crs.CRS.from_user_input(s.crs)


# -- GeoSlice -------------------------------------------------------------------------------------


def test_slice_shape_and_transform():
    s = geoduck.GeoSlice((0, 0, 100, 50), "EPSG:32630", 10)
    assert (s.width, s.height, s.shape) == (10, 5, (5, 10))
    assert s.transform == Affine(10.0, 0.0, 0.0, 0.0, -10.0, 50.0)
    assert s.grid_bounds == (0.0, 0.0, 100.0, 50.0)
    assert s.crs == "EPSG:32630" and s.resolution == (10.0, 10.0)
    assert s.interval == (None, None)
    r = geoduck.GeoSlice((0, 0, 100, 50), 32630, (10, 5))
    assert r.shape == (10, 10)
    assert r.transform == Affine(10.0, 0.0, 0.0, 0.0, -5.0, 50.0)
    # the transform maps pixel corners to the bounds' corners: anchored at (xmin, ymax)
    assert r.transform * (0, 0) == (0.0, 50.0)
    assert r.transform @ (10, 10) == (100.0, 0.0)


@pytest.mark.parametrize(
    ("bounds", "res", "shape", "grid_bounds"),
    [
        ((0, 3, 105, 50), 10, (5, 11), (0.0, 0.0, 110.0, 50.0)),  # ceil: covers the bounds
        ((0, 0, 100.5, 10), 10, (1, 11), (0.0, 0.0, 110.0, 10.0)),
        ((0, 0, 0.3, 0.1), 0.1, (1, 3), (0.0, 0.0, 0.30000000000000004, 0.1)),  # 0.3/0.1 = 2.9999…
        ((0, 0, 0.7, 0.7), 0.1, (7, 7), None),  # 0.7/0.1 = 6.9999… is not rounded up to 8
        ((0, 0, 1, 1), 10, (1, 1), (0.0, -9.0, 10.0, 1.0)),  # never empty
        ((500000, 4399990, 500640, 4400000), (20, 10), (1, 32), None),
    ],
)
def test_slice_ceil_rule(bounds, res, shape, grid_bounds):
    s = geoduck.GeoSlice(bounds, "EPSG:32630", res)
    assert s.shape == shape
    assert s.transform.c == bounds[0] and s.transform.f == bounds[3]
    if grid_bounds is not None:
        assert s.grid_bounds == pytest.approx(grid_bounds)
    g = s.grid_bounds
    assert g[0] == bounds[0] and g[3] == bounds[3]
    assert g[2] >= bounds[2] - 1e-9 and g[1] <= bounds[1] + 1e-9  # covers
    assert g[2] - bounds[2] < s.resolution[0] and bounds[1] - g[1] < s.resolution[1]  # < 1 px more


def test_slice_equality_and_hash():
    b = (500000.0, 4390000.0, 501000.0, 4400000.0)
    forms = [
        geoduck.GeoSlice(b, "EPSG:32630", 10),
        geoduck.GeoSlice(list(b), 32630, (10, 10)),
        geoduck.GeoSlice(b, pyproj.CRS.from_epsg(32630), 10.0),
        geoduck.GeoSlice(tuple(np.array(b)), rasterio.crs.CRS.from_epsg(32630), np.float64(10)),
    ]
    assert all(f == forms[0] for f in forms)
    assert len({hash(f) for f in forms}) == 1 and len(set(forms)) == 1
    assert geoduck.GeoSlice(b, "EPSG:32630", 20) != forms[0]
    assert geoduck.GeoSlice(b, "EPSG:32629", 10) != forms[0]
    assert geoduck.GeoSlice((b[0], b[1], b[2] + 1, b[3]), "EPSG:32630", 10) != forms[0]
    day = geoduck.GeoSlice(b, "EPSG:32630", 10, start="2023-06-15", end="2023-06-15")
    same = geoduck.GeoSlice(
        b,
        "EPSG:32630",
        10,
        start=dt.datetime(2023, 6, 15, tzinfo=dt.UTC),
        end=pd.Timestamp("2023-06-15T23:59:59.999999Z"),
    )
    assert day == same and hash(day) == hash(same) and day != forms[0]
    assert day.interval == (pd.Timestamp("2023-06-15", tz="UTC"), pd.Timestamp("2023-06-15T23:59:59.999999", tz="UTC"))
    assert len({forms[0], day, same}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        forms[0].resolution = (1.0, 1.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    "bounds",
    [
        (0, 0, 0, 10),
        (10, 0, 0, 10),
        (0, 10, 10, 0),
        (0, 0, 10, 0),
        (0, 0, float("nan"), 10),
        (0, 0, float("inf"), 10),
        (0, 0, 10),
        ("a", 0, 10, 10),
        None,
    ],
)
def test_slice_bad_bounds(bounds):
    with pytest.raises(ArgumentError, match="bounds"):
        geoduck.GeoSlice(bounds, "EPSG:32630", 10)


@pytest.mark.parametrize("res", [0, -1, float("nan"), float("inf"), (1, 2, 3), (1,), (10, 0), "10", (10, "a")])
def test_slice_bad_resolution(res):
    with pytest.raises(ArgumentError, match="resolution"):
        geoduck.GeoSlice((0, 0, 100, 100), "EPSG:32630", res)


def test_slice_bad_crs_and_interval():
    with pytest.raises(CRSError):
        geoduck.GeoSlice((0, 0, 100, 100), "EPSG:999999", 10)
    with pytest.raises(CRSError):
        geoduck.GeoSlice((0, 0, 100, 100), None, 10)
    with pytest.raises(ArgumentError):
        geoduck.GeoSlice((0, 0, 100, 100), "EPSG:32630", 10, start="2023-06-16", end="2023-06-15")


# -- load_raster: exact mosaics -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def utm30(tmp_path_factory) -> tuple[geoduck.Catalog, Path]:
    """One 64×64 native-coordinate raster in UTM 30 at 10 m, origin (500000, 4400000), no nodata."""
    root = tmp_path_factory.mktemp("utm30")
    path = coordinate_raster(root / "src" / "a.tif", crs="EPSG:32630", origin=(500000, 4400000), res=10, shape=(64, 64))
    return build([path], root / "cat"), path


@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "cubic"])
def test_aligned_slice_is_exact(utm30, resampling):
    cat, _ = utm30
    s = geoduck.GeoSlice((500100, 4399500, 500420, 4399800), "EPSG:32630", 10)
    g = geoduck.load_raster(cat, s, resampling=resampling)
    assert_geotensor_on(g, s, 2)
    assert g.values.dtype == np.float64
    xs, ys = pixel_centres(s.transform, s.shape)
    assert xs[0, 0] == 500105.0 and ys[0, 0] == 4399795.0
    np.testing.assert_array_equal(g.values[0], xs)
    np.testing.assert_array_equal(g.values[1], ys)


def test_aligned_slice_partly_outside_source(utm30):
    cat, _ = utm30
    # source: x 500000..500640, y 4399360..4400000
    s = geoduck.GeoSlice((500500, 4399000, 501000, 4399500), "EPSG:32630", 10)
    g = geoduck.load_raster(cat, s)
    assert g.fill_value_default == 0  # the source has no nodata
    xs, ys = pixel_centres(s.transform, s.shape)
    covered = inside(xs, ys, (500000, 4399360, 500640, 4400000))
    assert covered.sum() == 14 * 14
    np.testing.assert_array_equal(g.values[0][covered], xs[covered])
    np.testing.assert_array_equal(g.values[1][covered], ys[covered])
    assert (g.values[:, ~covered] == 0).all()


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_same_crs_other_grid(utm30, resampling):
    cat, _ = utm30
    # 30 m pixels whose centres fall on source pixel centres: nearest and bilinear are exact
    s = geoduck.GeoSlice((500100, 4399400, 500400, 4399700), "EPSG:32630", 30)
    g = geoduck.load_raster(cat, s, resampling=resampling)
    xs, ys = pixel_centres(s.transform, s.shape)
    np.testing.assert_allclose(g.values[0], xs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(g.values[1], ys, rtol=0, atol=1e-6)


def test_bilinear_reproduces_linear_values(utm30):
    """Values linear in x/y are reproduced by bilinear at any point inside the source."""
    cat, _ = utm30
    s = geoduck.GeoSlice((500033.3, 4399421.7, 500590.1, 4399950.2), "EPSG:32630", 7.3)
    g = geoduck.load_raster(cat, s, resampling="bilinear")
    xs, ys = pixel_centres(s.transform, s.shape)
    interior = inside(xs, ys, (500000, 4399360, 500640, 4400000), margin=10)
    assert interior.sum() > 0.8 * xs.size
    tol = GDAL_TOLERANCE * 10 + 1e-6
    np.testing.assert_allclose(g.values[0][interior], xs[interior], rtol=0, atol=tol)
    np.testing.assert_allclose(g.values[1][interior], ys[interior], rtol=0, atol=tol)


def _source_offsets(g: GeoTensor, s: geoduck.GeoSlice, src_crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (source CRS units) from each slice pixel centre to the position its lon/lat encodes."""
    xs, ys = pixel_centres(s.transform, s.shape)
    px, py = transform_xy(s.crs, src_crs, xs, ys)
    qx, qy = transform_xy("EPSG:4326", src_crs, g.values[0], g.values[1])
    return qx - px, qy - py


@pytest.fixture(scope="module")
def lonlat30(tmp_path_factory) -> tuple[geoduck.Catalog, tuple[float, float], float]:
    """A lon/lat-encoding raster in UTM 30 west of its zone (lon ≈ -6.3 … -5.9), 500 m pixels."""
    root = tmp_path_factory.mktemp("lonlat30")
    origin, res = (230000.0, 4450000.0), 500.0
    path = coordinate_raster(
        root / "src" / "a.tif", crs="EPSG:32630", origin=origin, res=res, shape=(64, 64), encode="lonlat"
    )
    return build([path], root / "cat"), origin, res


def test_other_zone_nearest_picks_the_covering_source_pixel(lonlat30):
    cat, origin, res = lonlat30
    x0, y0 = transform_xy("EPSG:32630", "EPSG:32629", 235000.0, 4445000.0)
    s = geoduck.GeoSlice((float(x0), float(y0) - 22 * 700, float(x0) + 22 * 700, float(y0)), "EPSG:32629", 700)
    g = geoduck.load_raster(cat, s, resampling="nearest")
    assert_geotensor_on(g, s, 2)
    assert (g.values != 0).all()
    # every value is a source pixel centre …
    qx, qy = transform_xy("EPSG:4326", "EPSG:32630", g.values[0], g.values[1])
    col, row = (qx - origin[0]) / res - 0.5, (origin[1] - qy) / res - 0.5
    np.testing.assert_allclose(col, np.round(col), atol=1e-6)
    np.testing.assert_allclose(row, np.round(row), atol=1e-6)
    # … of the source pixel containing the slice pixel centre
    dx, dy = _source_offsets(g, s, "EPSG:32630")
    limit = (0.5 + GDAL_TOLERANCE) * res
    assert np.abs(dx).max() <= limit and np.abs(dy).max() <= limit
    assert np.abs(dx).max() > 0.3 * res  # really resampled, not by chance aligned


def test_other_zone_bilinear(lonlat30):
    cat, _, res = lonlat30
    x0, y0 = transform_xy("EPSG:32630", "EPSG:32629", 235000.0, 4445000.0)
    s = geoduck.GeoSlice((float(x0), float(y0) - 22 * 700, float(x0) + 22 * 700, float(y0)), "EPSG:32629", 700)
    g = geoduck.load_raster(cat, s, resampling="bilinear")
    dx, dy = _source_offsets(g, s, "EPSG:32630")
    # lon/lat is linear in UTM metres to < 1 mm over a pixel: only GDAL's approximation remains
    limit = GDAL_TOLERANCE * res
    assert np.abs(dx).max() <= limit and np.abs(dy).max() <= limit


def test_warped_source_without_nodata_is_invalid_outside_its_footprint(lonlat30):
    """GDAL's added alpha band, not the (all-valid) band masks, tells where a warped source is."""
    cat, origin, res = lonlat30
    x0, y0 = transform_xy("EPSG:32630", "EPSG:32629", origin[0], origin[1] - 16000.0)
    s = geoduck.GeoSlice(
        (float(x0) - 10_000, float(y0) - 10_000, float(x0) + 10_000, float(y0) + 10_000), "EPSG:32629", 1000
    )
    g = geoduck.load_raster(cat, s, resampling="nearest")
    xs, ys = pixel_centres(s.transform, s.shape)
    nx, ny = transform_xy(s.crs, "EPSG:32630", xs, ys)
    b = (origin[0], origin[1] - 64 * res, origin[0] + 64 * res, origin[1])
    well_in, well_out = inside(nx, ny, b, margin=res), ~inside(nx, ny, b, margin=-res)
    assert well_in.sum() > 50 and well_out.sum() > 50
    assert (g.values[:, well_out] == 0).all() and g.fill_value_default == 0
    (path,) = [r["filepath"] for r in cat]
    r = lr.open_raster(path)
    _, mask = lr.read_on_grid(r, lr.Grid.of(s), [1, 2], Resampling.nearest)
    valid = as_array(mask)
    assert r.nodata[0] is None
    assert valid[:, well_in].all() and not valid[:, well_out].any()
    dx, dy = _source_offsets(g, s, "EPSG:32630")
    limit = (0.5 + GDAL_TOLERANCE) * res
    assert np.abs(dx[well_in]).max() <= limit and np.abs(dy[well_in]).max() <= limit


@pytest.fixture(scope="module")
def two_zones(tmp_path_factory):
    """Two lon/lat-encoding rasters, one per UTM zone (29 and 30), overlapping around 6°W."""
    root = tmp_path_factory.mktemp("two_zones")
    specs = {  # tag: (file, crs, origin)
        1: ("a_utm29.tif", "EPSG:32629", (690000.0, 4460000.0)),
        2: ("b_utm30.tif", "EPSG:32630", (220000.0, 4460000.0)),
    }
    res, size = 1000.0, 64
    paths, bounds = [], {}
    for tag, (name, crs, origin) in specs.items():
        paths.append(
            coordinate_raster(
                root / "src" / name,
                crs=crs,
                origin=origin,
                res=res,
                shape=(size, size),
                encode="lonlat",
                extra_band=tag,
            )
        )
        bounds[tag] = (crs, (origin[0], origin[1] - size * res, origin[0] + size * res, origin[1]))
    return build(paths, root / "cat"), bounds, res


@pytest.mark.parametrize("merge", ["first", "last"])
def test_slice_across_two_zones_is_covered(two_zones, merge):
    cat, bounds, res = two_zones
    s = geoduck.GeoSlice((196000, 4404000, 262000, 4452000), "EPSG:32630", 2000)
    xs, ys = pixel_centres(s.transform, s.shape)
    lon, _ = transform_xy(s.crs, "EPSG:4326", xs, ys)
    assert lon.min() < -6.3 and lon.max() > -5.8  # straddles the zone edge at 6°W
    g = geoduck.load_raster(cat, s, resampling="nearest", merge=merge)
    assert_geotensor_on(g, s, 3)
    tag = g.values[2]
    assert set(np.unique(tag)) == {1.0, 2.0}  # fully covered, by both files
    covers = {}
    for t, (crs, b) in bounds.items():
        nx, ny = transform_xy(s.crs, crs, xs, ys)
        covers[t] = (inside(nx, ny, b), inside(nx, ny, b, margin=res), inside(nx, ny, b, margin=-res))
        # each pixel comes from a source that covers it, and from the right source pixel
        mine = tag == t
        assert covers[t][0][mine].all()
        qx, qy = transform_xy("EPSG:4326", crs, g.values[0][mine], g.values[1][mine])
        limit = (0.5 + GDAL_TOLERANCE) * res
        assert np.abs(qx - nx[mine]).max() <= limit and np.abs(qy - ny[mine]).max() <= limit
    # both static: "first" = first by file path (zone 29), "last" = zone 30, where they cover
    winner, loser = (1, 2) if merge == "first" else (2, 1)
    assert (tag[covers[winner][1]] == winner).all()
    assert (tag[~covers[winner][2]] == loser).all()
    assert covers[winner][1].sum() > 50 and (~covers[winner][2]).sum() > 50


@pytest.fixture(scope="module")
def dated(tmp_path_factory):
    """Three tagged files on one UTM 30 grid (10 m, nodata -9999), dated by name; file-name
    order (a < m < z) differs from date order (z: Jan, m: Feb with a hole, a: Mar, east half)."""
    root = tmp_path_factory.mktemp("dated")
    origin = (500000.0, 4400000.0)
    kw = dict(crs="EPSG:32630", res=10.0, nodata=NODATA)
    paths = [
        coordinate_raster(root / "src" / "z_20230101.tif", origin=origin, shape=(32, 32), extra_band=1, **kw),
        coordinate_raster(
            root / "src" / "m_20230201.tif",
            origin=origin,
            shape=(32, 32),
            extra_band=2,
            hole=(slice(4, 12), slice(20, 28)),
            **kw,
        ),
        coordinate_raster(
            root / "src" / "a_20230301.tif", origin=(origin[0] + 160, origin[1]), shape=(32, 16), extra_band=3, **kw
        ),
    ]
    slice_bounds = (origin[0], origin[1] - 320, origin[0] + 320, origin[1])
    return build(paths, root / "cat", regex=DATED), slice_bounds


def _tags(cat, bounds, merge="first", **times) -> np.ndarray:
    s = geoduck.GeoSlice(bounds, "EPSG:32630", 10, **times)
    g = geoduck.load_raster(cat, s, merge=merge)
    assert_geotensor_on(g, s, 3)
    xs, ys = pixel_centres(s.transform, s.shape)
    valid = g.values[2] != NODATA
    np.testing.assert_array_equal(g.values[0][valid], xs[valid])  # every valid pixel is exact
    np.testing.assert_array_equal(g.values[1][valid], ys[valid])
    assert (g.values[:, ~valid] == NODATA).all()
    assert g.fill_value_default == NODATA
    return g.values[2]


def test_merge_first_and_last_by_start_datetime(dated):
    cat, b = dated
    east = np.zeros((32, 32), bool)
    east[:, 16:] = True
    np.testing.assert_array_equal(_tags(cat, b, "first"), np.full((32, 32), 1.0))  # January
    np.testing.assert_array_equal(_tags(cat, b, "last"), np.where(east, 3.0, 2.0))  # March, Feb


def test_hole_is_filled_from_the_next_source(dated):
    cat, b = dated
    hole = np.zeros((32, 32), bool)
    hole[4:12, 20:28] = True
    # February only: the hole is unfilled; February + March: the hole is filled from March
    feb = _tags(cat, b, start="2023-02-01", end="2023-02-28")
    np.testing.assert_array_equal(feb, np.where(hole, NODATA, 2.0))
    febmar = _tags(cat, b, "first", start="2023-02-01")
    np.testing.assert_array_equal(febmar, np.where(hole, 3.0, 2.0))
    # with merge="last" March wins its half and February fills the rest
    east = np.zeros((32, 32), bool)
    east[:, 16:] = True
    np.testing.assert_array_equal(_tags(cat, b, "last", start="2023-02-01"), np.where(east, 3.0, 2.0))


def test_time_filtering_of_the_slice(dated):
    cat, b = dated
    ones, twos = np.full((32, 32), 1.0), np.full((32, 32), 2.0)
    # a date-only end includes that whole day; an instant end does not reach the next day
    np.testing.assert_array_equal(_tags(cat, b, "last", end="2023-01-01"), ones)
    np.testing.assert_array_equal(_tags(cat, b, "last", end=dt.datetime(2023, 1, 31, 23, 59)), ones)
    np.testing.assert_array_equal(_tags(cat, b, "last", end="2023-02-01"), np.where(_hole_mask(), 1.0, twos))
    # March only: the west half has no source → fill value (the sources' nodata)
    east = np.zeros((32, 32), bool)
    east[:, 16:] = True
    np.testing.assert_array_equal(_tags(cat, b, start="2023-03-01", end="2023-03-31"), np.where(east, 3.0, NODATA))
    with pytest.raises(NoDataError):
        geoduck.load_raster(cat, geoduck.GeoSlice(b, "EPSG:32630", 10, start="2024-01-01"))
    with pytest.raises(NoDataError):
        geoduck.load_raster(cat, geoduck.GeoSlice(b, "EPSG:32630", 10, end="2022-12-31"))


def _hole_mask() -> np.ndarray:
    hole = np.zeros((32, 32), bool)
    hole[4:12, 20:28] = True
    return hole


def test_no_row_under_the_slice(dated):
    cat, _ = dated
    with pytest.raises(NoDataError, match="no catalog row"):
        geoduck.load_raster(cat, geoduck.GeoSlice((600000, 4500000, 600320, 4500320), "EPSG:32630", 10))
    # a catalog query that excludes every row is also NoDataError, even over the data
    with pytest.raises(NoDataError):
        geoduck.load_raster(
            cat.query(start="1999-01-01", end="1999-01-02"),
            geoduck.GeoSlice((500000, 4399680, 500320, 4400000), "EPSG:32630", 10),
        )


def test_bands_selection(dated):
    cat, b = dated
    s = geoduck.GeoSlice(b, "EPSG:32630", 10)
    g = geoduck.load_raster(cat, s, bands=[3, 2])
    assert_geotensor_on(g, s, 2)
    _, ys = pixel_centres(s.transform, s.shape)
    np.testing.assert_array_equal(g.values[0], np.full((32, 32), 1.0))
    np.testing.assert_array_equal(g.values[1], ys)


@pytest.mark.parametrize(
    ("kwargs", "listed"),
    [
        ({"merge": "average"}, ["'first'", "'last'", "'median'", "'count'"]),
        ({"merge": None}, ["'first'", "'last'"]),
        ({"max_workers": 0}, ["max_workers"]),
        ({"bands": ["B99"]}, ["'B99'", "no band descriptions", "1..3"]),
        ({"bands": [1.5]}, ["1-based index", "1.5"]),
        ({"resampling": "cubicc"}, ["nearest", "bilinear", "cubic", "lanczos"]),
        ({"resampling": 3.5}, ["nearest", "bilinear"]),
        ({"bands": [0]}, ["1-based", "1..3"]),
        ({"bands": []}, ["1-based", "1..3"]),
        ({"bands": [4]}, ["1..3", "3 band"]),
        ({"bands": [1, 4]}, ["1..3", "3 band"]),
    ],
)
def test_bad_arguments(dated, kwargs, listed):
    cat, b = dated
    with pytest.raises(ArgumentError) as info:
        geoduck.load_raster(cat, geoduck.GeoSlice(b, "EPSG:32630", 10), **kwargs)
    for option in listed:
        assert option in str(info.value)


# -- the synthetic demo archive -----------------------------------------------------------------------


def _lonlat(s: geoduck.GeoSlice, dx: float = 0.0, dy: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = pixel_centres(s.transform, s.shape)
    return transform_xy(s.crs, "EPSG:4326", xs + dx, ys + dy)


def _variation(s: geoduck.GeoSlice, doy: int, radius: float) -> np.ndarray:
    """Per pixel: how much ``pattern`` changes within ``radius`` metres of the pixel centre
    (sampled in 16 directions, +10 % for the directions in between)."""
    centre = pattern(*_lonlat(s), doy).astype(float)
    worst = np.zeros(s.shape)
    for a in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        moved = pattern(*_lonlat(s, radius * np.cos(a), radius * np.sin(a)), doy).astype(float)
        worst = np.maximum(worst, np.abs(moved - centre))
    return worst * 1.1


def _curvature(s: geoduck.GeoSlice, doy: int, h: float) -> np.ndarray:
    """Per pixel: the bilinear interpolation error bound h²/8 (|f_xx| + |f_yy|) of ``pattern``
    on an ``h``-metre grid, from second differences (+10 %)."""
    f = {
        (dx, dy): pattern(*_lonlat(s, dx, dy), doy).astype(float)
        for dx, dy in ((0, 0), (h, 0), (-h, 0), (0, h), (0, -h))
    }
    fxx = np.abs(f[h, 0] - 2 * f[0, 0] + f[-h, 0])
    fyy = np.abs(f[0, h] - 2 * f[0, 0] + f[0, -h])
    return (fxx + fyy) / 8 * 1.1


def _tolerance(s: geoduck.GeoSlice, doy: int, resampling: str, src_res: float) -> np.ndarray:
    """What a value warped from a ``src_res`` source may differ from ``pattern`` at the pixel
    centre: the sampling position is off by GDAL's tolerance (plus up to half a source pixel for
    nearest), bilinear adds its interpolation error, and ±2 covers the uint16 truncation of the
    source and of the expectation and the rounding of the output."""
    radius = (GDAL_TOLERANCE + (0.5 if resampling == "nearest" else 0.0)) * src_res * np.sqrt(2)
    tol = _variation(s, doy, radius) + 2
    if resampling == "bilinear":
        tol += _curvature(s, doy, src_res)
    return tol


@pytest.mark.parametrize("resampling", ["bilinear", "nearest"])
def test_demo_mosaic_across_utm_29_30_is_seamless(archive_catalog, resampling):
    west, east = DEMO_TILES[0], DEMO_TILES[1]
    assert (west.name, east.name, west.epsg, east.epsg) == ("29TNE", "30TTK", 32629, 32630)
    res = 500.0  # the archive's pixel size, checked below
    # the AOI: lon -6.4 … -5.6, lat 39.8 … 40.2 on the 30TTK grid (snapped to its 500 m pixels)
    x0, y0 = transform_xy("EPSG:4326", "EPSG:32630", np.array([-6.4, -5.6]), np.array([39.8, 40.2]))
    bounds = (
        np.floor(x0.min() / res) * res,
        np.floor(y0.min() / res) * res,
        np.ceil(x0.max() / res) * res,
        np.ceil(y0.max() / res) * res,
    )
    # 2022-05-15 (+0 days for 29TNE, +1 for 30TTK): neither file has a cloud hole
    s = geoduck.GeoSlice(bounds, "EPSG:32630", res, start="2022-05-15", end="2022-05-16")
    rows = {
        Path(r["filepath"]).name: r
        for r in archive_catalog.query(bbox=s.grid_bounds, crs=s.crs, start=s.start, end=s.end)
    }
    assert sorted(rows) == ["S2_29TNE_20220515.tif", "S2_30TTK_20220516.tif"]
    w_row, e_row = rows["S2_29TNE_20220515.tif"], rows["S2_30TTK_20220516.tif"]
    assert (w_row["crs"], e_row["crs"]) == ("EPSG:32629", "EPSG:32630")
    assert w_row["res_x"] == e_row["res_x"] == res
    assert e_row["transform"][2] % res == 0 and e_row["transform"][5] % res == 0  # same grid

    g = geoduck.load_raster(archive_catalog, s, resampling=resampling)
    assert_geotensor_on(g, s, 3)
    assert g.fill_value_default == 0
    band1 = g.values[0].astype(float)
    assert (band1 > 0).all()  # seamless: no pixel left empty

    doy_w, doy_e = 135, 136
    lon, lat = _lonlat(s)
    expected_w = pattern(lon, lat, doy_w).astype(float)
    expected_e = pattern(lon, lat, doy_e).astype(float)
    # which tile covers each pixel centre (merge="first": 29TNE, acquired a day earlier, wins)
    xs, ys = pixel_centres(s.transform, s.shape)
    wx, wy = transform_xy(s.crs, w_row["crs"], xs, ys)
    wb = tuple(w_row["native_bounds"][k] for k in ("xmin", "ymin", "xmax", "ymax"))
    from_west = inside(wx, wy, wb, margin=res)  # well inside 29TNE
    from_east = ~inside(wx, wy, wb, margin=-res)  # well outside 29TNE: 30TTK, on the slice grid
    assert from_west.sum() > 100 and from_east.sum() > 100

    # 30TTK is read on its own grid: exact up to the uint16 truncation of the lon/lat maths
    assert np.abs(band1 - expected_e)[from_east].max() <= 1
    # 29TNE is warped: within the tolerance of pattern at the pixel centre (see _tolerance)
    tol_w = _tolerance(s, doy_w, resampling, res)
    ok_w = np.abs(band1 - expected_w) <= tol_w
    assert ok_w[from_west].all()
    # … and the tolerance is tight enough to see a misregistration by 1 (bilinear) or 2 pixels
    shift = res * (1 if resampling == "bilinear" else 2)
    shifted = pattern(*_lonlat(s, shift, 0.0), doy_w).astype(float)
    assert (np.abs(band1 - shifted) > tol_w)[from_west].mean() > 0.5
    # within a pixel of 29TNE's edge either tile may supply the pixel, and GDAL's bilinear kernel
    # is renormalised over the valid source pixels there: a position up to half a pixel away
    edge = ~(from_west | from_east)
    near_w = np.abs(band1 - expected_w) <= _tolerance(s, doy_w, "nearest", res)
    near_e = np.abs(band1 - expected_e) <= _tolerance(s, doy_e, "nearest", res)
    assert (near_w | near_e)[edge].all()
    # band 2 is band 1 // 2 at the source pixel (bilinear: of the interpolated values)
    assert np.abs(g.values[1].astype(float) - band1 // 2).max() <= (1 if resampling == "bilinear" else 0)
