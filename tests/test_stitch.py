"""``stitch`` (average / max / first / last) checked exactly, ``save_cog``, and GeoSlice.to_crs / buffer.

The identity check loads every grid chip of a coordinate raster (pixel values = their own
coordinates) and stitches them back: the result must equal one load of the whole union, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
from georeader.geotensor import GeoTensor
from rasterio.transform import Affine

import geoduck
from geoduck.errors import ArgumentError, CRSError
from geoduck.slices import reproject_bounds
from geoduck.stitch import METHODS
from geoduck.testing import coordinate_raster

UTM30 = "EPSG:32630"
RES = 10.0
X0, Y0 = 500_000.0, 4_400_000.0


# -- GeoSlice.to_crs / buffer -------------------------------------------------------------------------


def test_buffer_grows_the_grid_in_whole_pixels():
    s = geoduck.GeoSlice((X0, Y0 - 95, X0 + 100, Y0), UTM30, (10, 5), start="2023-06-15", end="2023-06-15")
    assert s.shape == (19, 10)
    b = s.buffer(2)
    assert b.bounds == (X0 - 20, Y0 - 95 - 10, X0 + 120, Y0 + 10)
    assert b.shape == (23, 14) and b.interval == s.interval and b.crs == s.crs
    assert b.transform == s.transform * Affine.translation(-2, -2)  # same grid, shifted origin
    assert s.buffer((1, 3)).bounds == (X0 - 30, Y0 - 100, X0 + 130, Y0 + 5)
    assert s.buffer((1, 3)).shape == (21, 16)
    assert s.buffer(-2).shape == (15, 6) and s.buffer(-2).buffer(2) == s.buffer(0)
    assert s.buffer(0).bounds == s.grid_bounds
    # ragged bounds (not whole pixels) are first extended to whole pixels
    r = geoduck.GeoSlice((0, 0, 25, 25), UTM30, 10)
    assert r.buffer(1).bounds == (-10.0, -15.0, 40.0, 35.0) and r.buffer(1).shape == (5, 5)
    with pytest.raises(ArgumentError, match="no pixel"):
        s.buffer(-5)
    with pytest.raises(ArgumentError, match="pixels"):
        s.buffer(1.5)  # type: ignore[arg-type]


def test_to_crs_envelope_and_resolution_rule():
    s = geoduck.GeoSlice((X0, Y0 - 10_000, X0 + 1_000, Y0), UTM30, 10, start="2023-06-15", end="2023-06-15")
    ll = s.to_crs("EPSG:4326")
    t = pyproj.Transformer.from_crs(UTM30, 4326, always_xy=True)
    assert ll.bounds == pytest.approx(t.transform_bounds(*s.grid_bounds, densify_pts=19), abs=1e-12)
    assert ll.crs == "EPSG:4326" and ll.interval == s.interval
    assert ll.shape == s.shape == (1000, 100)  # pixel counts preserved
    assert ll.resolution == pytest.approx(((ll.bounds[2] - ll.bounds[0]) / 100, (ll.bounds[3] - ll.bounds[1]) / 1000))
    assert ll.resolution[1] == pytest.approx(10 / 111_000, rel=0.01)  # ~10 m in degrees of latitude
    # explicit resolution; same CRS is the slice itself; round trip contains the original
    assert s.to_crs(4326, resolution=0.001).resolution == (0.001, 0.001)
    assert s.to_crs(32630) is s
    back = ll.to_crs(UTM30)
    assert back.bounds[0] <= s.bounds[0] and back.bounds[3] >= s.bounds[3]
    assert back.bounds[2] >= s.bounds[2] and back.bounds[1] <= s.bounds[1]
    assert back.bounds[2] - back.bounds[0] == pytest.approx(1000, abs=5)


def test_reproject_bounds_antimeridian_and_errors():
    # UTM zone 60 north, a box crossing 180°E: longitudes unwrapped past 180
    crs60 = "EPSG:32660"
    x, y = pyproj.Transformer.from_crs(4326, crs60, always_xy=True).transform(180.0, 60.0)
    b = reproject_bounds((x - 20_000, y - 20_000, x + 20_000, y + 20_000), crs60, 4326)
    assert 179 < b[0] < 180 < b[2] < 181 and 59.7 < b[1] < 60 < b[3] < 60.3
    sl = geoduck.GeoSlice((x - 20_000, y - 20_000, x + 20_000, y + 20_000), crs60, 100).to_crs(4326)
    assert sl.bounds == pytest.approx(b) and sl.shape == (400, 400)
    # a polar stereographic box around the north pole reaches 90°N over all longitudes
    polar = reproject_bounds((-100_000, -100_000, 100_000, 100_000), "EPSG:3413", 4326)
    assert polar[0] == -180 and polar[2] == 180 and polar[3] == 90 and 88.5 < polar[1] < 89
    with pytest.raises(CRSError, match="do not project"):
        reproject_bounds((0, 0, 1e8, 1e8), UTM30, "EPSG:4326")


# -- stitch: identity on a coordinate raster --------------------------------------------------------


@pytest.fixture(scope="module")
def coords(tmp_path_factory) -> geoduck.Catalog:
    """One 90×100 px coordinate raster (x/y of each pixel centre) in UTM 30 at 10 m."""
    root = tmp_path_factory.mktemp("stitch")
    path = coordinate_raster(root / "src" / "coords.tif", crs=UTM30, origin=(X0, Y0), res=RES, shape=(90, 100))
    return geoduck.build_raster_catalog([str(path)], root / "cat", progress=False, workers=1)


@pytest.mark.parametrize(("chip", "stride"), [(32, 20), (32, 32), ((24, 40), (17, 29))])
def test_average_of_identity_predictions_is_the_raster(coords, chip, stride):
    chips = geoduck.grid_sampler(coords, chip_size=chip, stride=stride, resolution=RES)
    preds = [geoduck.load_raster(coords, sl) for sl in chips]
    whole = geoduck.load_raster(coords, geoduck.GeoSlice((X0, Y0 - 900, X0 + 1000, Y0), UTM30, RES))
    taper = np.outer(np.hanning(chips[0].height + 2)[1:-1], np.hanning(chips[0].width + 2)[1:-1])
    for kwargs in ({}, {"weights": taper}):
        out = geoduck.stitch(preds, chips, method="average", **kwargs)
        assert isinstance(out, GeoTensor)
        assert out.transform == whole.transform and out.shape == whole.shape == (2, 90, 100)
        assert rasterio.crs.CRS.from_user_input(out.crs) == whole.crs
        np.testing.assert_array_equal(np.asarray(out), np.asarray(whole))  # exact
    for method in ("max", "first", "last"):  # GeoTensor predictions, every method
        np.testing.assert_array_equal(np.asarray(geoduck.stitch(preds, chips, method=method)), np.asarray(whole))


# -- stitch: every method against a numpy reference ----------------------------------------------------


def reference(
    preds: list[np.ndarray], chips: list[geoduck.GeoSlice], method: str, shape: tuple[int, int]
) -> np.ndarray:
    """A stack (N, C, H, W) with NaN outside each chip, reduced along N."""
    stack = np.full((len(preds), preds[0].shape[0], *shape), np.nan)
    for k, (p, sl) in enumerate(zip(preds, chips, strict=True)):
        c, r = round((sl.bounds[0] - X0) / RES), round((Y0 - sl.bounds[3]) / RES)
        stack[k, :, r : r + sl.height, c : c + sl.width] = p
    valid = ~np.isnan(stack)
    if method == "average":
        with np.errstate(invalid="ignore"):
            return np.nansum(stack, axis=0) / valid.sum(axis=0) + np.where(valid.any(axis=0), 0, np.nan)
    if method == "max":
        return np.max(np.where(valid, stack, -np.inf), axis=0) + np.where(valid.any(axis=0), 0, np.nan)
    order = np.arange(len(preds))[:, None, None, None]
    pick = np.where(valid, order, len(preds) if method == "first" else -1)
    idx = pick.min(axis=0) if method == "first" else pick.max(axis=0)
    covered = valid.any(axis=0)
    out = np.take_along_axis(stack, np.clip(idx, 0, len(preds) - 1)[None], axis=0)[0]
    return np.where(covered, out, np.nan)


@pytest.mark.parametrize("method", METHODS)
def test_methods_match_numpy_reference(method):
    bounds = (X0, Y0 - 500, X0 + 700, Y0)  # 50 × 70 px
    chips = geoduck.grid_sampler(bounds, crs=UTM30, chip_size=(16, 24), stride=(11, 13), resolution=RES)
    chips = chips[:-1]  # leave the bottom-right corner uncovered → NaN there
    rng = np.random.default_rng(0)
    preds = [rng.normal(size=(2, *sl.shape)) for sl in chips]
    preds[3][0, 2:5, 4:9] = np.nan  # missing values never win and are left out of the mean
    expected = reference(preds, chips, method, (50, 70))
    out = geoduck.stitch(preds, chips, method=method)
    assert out.shape == (2, 50, 70) and out.dtype == np.float64
    assert np.isnan(out.fill_value_default) and np.isnan(np.asarray(out)[:, -1, -1]).all()
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.isnan(out), np.isnan(expected))
    # 2-D predictions give a 2-D raster
    flat = geoduck.stitch([p[0] for p in preds], chips, method=method)
    assert flat.shape == (50, 70) and flat.dims == ("y", "x")
    np.testing.assert_allclose(np.asarray(flat), expected[0], rtol=1e-12, atol=1e-12)


def test_integer_predictions_and_fill_value():
    chips = geoduck.grid_sampler((0, 0, 40, 30), crs=UTM30, chip_size=(1, 2), resolution=10)[:-1]
    preds = [np.full((1, 2), k, dtype=np.uint8) for k in range(len(chips))]
    out = geoduck.stitch(preds, chips, method="last", fill_value=255)
    assert out.dtype == np.uint8 and out.fill_value_default == 255
    assert np.asarray(out).tolist() == [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 255, 255]]
    avg = geoduck.stitch(preds, chips, method="average")
    assert avg.dtype == np.float32 and np.isnan(np.asarray(avg)[2, 3]) and np.asarray(avg)[1, 2] == 3
    with pytest.raises(ArgumentError, match="fill_value"):
        geoduck.stitch(preds, chips, method="max", fill_value=-1)


def test_stitch_errors():
    a = geoduck.GeoSlice((0, 0, 100, 100), UTM30, 10)
    p = np.zeros((10, 10))
    cases = [
        (dict(predictions=[p], slices=[a], method="median"), "method"),
        (dict(predictions=[p, p], slices=[a]), "2 predictions for 1 slices"),
        (dict(predictions=[], slices=[]), "at least one"),
        (dict(predictions=[p, p], slices=[a, geoduck.GeoSlice((0, 0, 100, 100), "EPSG:32629", 10)]), "crs"),
        (dict(predictions=[p, p], slices=[a, geoduck.GeoSlice((0, 0, 100, 100), UTM30, 5)]), "resolution"),
        (dict(predictions=[p, p], slices=[a, geoduck.GeoSlice((5, 0, 105, 100), UTM30, 10)]), "off the grid"),
        (dict(predictions=[np.zeros((9, 10))], slices=[a]), "shape"),
        (
            dict(predictions=[p, np.zeros((1, 10, 10))], slices=[a, geoduck.GeoSlice((100, 0, 200, 100), UTM30, 10)]),
            "same rank",
        ),
        (dict(predictions=[p], slices=[a], method="max", weights=np.ones((10, 10))), "weights"),
        (dict(predictions=[p], slices=[a], weights=np.ones((5, 5))), "weights"),
        (dict(predictions=[p], slices=[a], weights=-np.ones((10, 10))), "weights"),
        (
            dict(predictions=[GeoTensor(p, transform=Affine(10, 0, 10, 0, -10, 100), crs=UTM30)], slices=[a]),
            "transform",
        ),
        (dict(predictions=[p], slices=[(0, 0, 100, 100)]), "GeoSlice"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ArgumentError, match=match):
            geoduck.stitch(**kwargs)


def test_save_cog_round_trip(tmp_path: Path):
    chips = geoduck.grid_sampler((X0, Y0 - 600, X0 + 800, Y0), crs=UTM30, chip_size=32, stride=24, resolution=RES)
    rng = np.random.default_rng(1)
    out = geoduck.stitch([rng.random((3, 32, 32)).astype("float32") for _ in chips], chips)
    path = geoduck.save_cog(out, tmp_path / "pred.tif", descriptions=["a", "b", "c"])
    with rasterio.open(path) as src:
        assert src.driver == "GTiff" and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.crs == rasterio.crs.CRS.from_epsg(32630) and src.transform == out.transform
        assert np.isnan(src.nodata) and src.descriptions == ("a", "b", "c")
        np.testing.assert_array_equal(src.read(), np.asarray(out))
    geoduck.save_cog(out[0], tmp_path / "band.tif")  # 2-D
    with rasterio.open(tmp_path / "band.tif") as src:
        assert src.count == 1
    with pytest.raises(ArgumentError, match="GeoTensor"):
        geoduck.save_cog(np.zeros((2, 2)), tmp_path / "x.tif")
