"""Footprints, antimeridian and poles, Hilbert keys, CRS normalisation (geoduck.geo)."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
import rasterio
import rasterio.crs
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box

from geoduck.builders.raster import read_raster_header
from geoduck.errors import CRSError
from geoduck.geo import (
    DENSIFY_POINTS,
    HILBERT_ORDER,
    crs_to_string,
    footprint_wgs84,
    hilbert_key,
    norm_crs,
    ring_to_wgs84,
)
from geoduck.testing import coordinate_raster


def brute_ring(bounds: tuple[float, float, float, float], n: int) -> np.ndarray:
    """Closed-bounds boundary sampled with ``n`` points per edge, corners included once per edge."""
    xmin, ymin, xmax, ymax = bounds
    t = np.linspace(0.0, 1.0, n)
    edges = [
        (xmin + (xmax - xmin) * t, np.full(n, ymin)),
        (np.full(n, xmax), ymin + (ymax - ymin) * t),
        (xmax - (xmax - xmin) * t, np.full(n, ymax)),
        (np.full(n, xmin), ymax - (ymax - ymin) * t),
    ]
    return np.column_stack([np.concatenate([e[0] for e in edges]), np.concatenate([e[1] for e in edges])])


def to_lonlat(crs: str, xy: np.ndarray) -> np.ndarray:
    """An independent pyproj transform (not geoduck's cached one) to lon/lat."""
    t = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = t.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


def header_footprint(path) -> tuple[dict, Polygon | MultiPolygon]:
    row = read_raster_header(str(path))[0]
    return row, shapely.from_wkb(row["geometry"])


# -- footprints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "crs, origin", [("EPSG:32630", (400_000.0, 4_500_000.0)), ("EPSG:32631", (600_000.0, 5_000_000.0))]
)
def test_utm_footprint_is_densified_reprojected_bounds(tmp_path, crs, origin):
    path = coordinate_raster(tmp_path / "utm.tif", crs=crs, origin=origin, res=1000.0, shape=(48, 64))
    with rasterio.open(path) as src:
        bounds = tuple(src.bounds)
    assert bounds == (origin[0], origin[1] - 48_000.0, origin[0] + 64_000.0, origin[1])
    row, fp = header_footprint(path)

    assert DENSIFY_POINTS >= 21
    assert isinstance(fp, Polygon) and fp.is_valid and fp.exterior.is_ccw
    assert len(fp.exterior.coords) == 4 * (DENSIFY_POINTS - 1) + 1

    brute = to_lonlat(crs, brute_ring(bounds, DENSIFY_POINTS))
    # Every brute-force point lies on the footprint's boundary ...
    dist = shapely.distance(fp.exterior, shapely.points(brute))
    assert dist.max() < 1e-9
    # ... and every footprint vertex is one of the brute-force points.
    verts = np.asarray(fp.exterior.coords)
    gaps = np.hypot(verts[:, None, 0] - brute[None, :, 0], verts[:, None, 1] - brute[None, :, 1])
    assert gaps.min(axis=1).max() < 1e-9
    # Densification matters: the curved UTM edges bulge away from the 4-corner polygon.
    corners = Polygon(
        to_lonlat(crs, np.array([bounds[:2], [bounds[2], bounds[1]], bounds[2:], [bounds[0], bounds[3]]]))
    )
    assert fp.symmetric_difference(corners).area > 0
    np.testing.assert_allclose(fp.bounds, (*brute.min(axis=0), *brute.max(axis=0)), atol=1e-12)
    assert row["bbox"] == dict(zip(("xmin", "ymin", "xmax", "ymax"), fp.bounds, strict=True))


def test_footprint_densify_argument(tmp_path):
    crs = norm_crs("EPSG:32630")
    bounds = (400_000.0, 4_400_000.0, 500_000.0, 4_500_000.0)
    fp = footprint_wgs84(bounds, crs, densify=41)
    assert len(fp.exterior.coords) == 4 * 40 + 1
    brute = to_lonlat("EPSG:32630", brute_ring(bounds, 41))
    assert shapely.distance(fp.exterior, shapely.points(brute)).max() < 1e-9


def test_antimeridian_epsg4326_raster_is_split(tmp_path):
    # 16 x 160 pixels of 0.125°: native bounds 179..181 E, 10 S..10 N.
    path = coordinate_raster(tmp_path / "am.tif", crs="EPSG:4326", origin=(179.0, 10.0), res=0.125, shape=(160, 16))
    row, fp = header_footprint(path)
    assert row["native_bounds"] == {"xmin": 179.0, "ymin": -10.0, "xmax": 181.0, "ymax": 10.0}
    assert isinstance(fp, MultiPolygon) and fp.is_valid
    parts = sorted((g.bounds for g in fp.geoms), key=lambda b: b[0])
    np.testing.assert_allclose(parts, [(-180.0, -10.0, -179.0, 10.0), (179.0, -10.0, 180.0, 10.0)], atol=1e-12)
    assert fp.area == pytest.approx(2.0 * 20.0)
    assert row["bbox"] == {"xmin": -180.0, "ymin": -10.0, "xmax": 180.0, "ymax": 10.0}
    assert fp.contains(Point(179.5, 0.0)) and fp.contains(Point(-179.5, 0.0))
    assert not fp.contains(Point(0.0, 0.0)) and not fp.contains(Point(178.5, 0.0))


def test_antimeridian_epsg3832_raster_is_split(tmp_path):
    # EPSG:3832 (PDC Mercator, lon_0 = 150°E) is continuous across 180°.
    fwd = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3832", always_xy=True)
    x0, y_top = fwd.transform(178.5, 10.0)
    x1, _ = fwd.transform(-178.0, 10.0)
    width = 32
    res = (x1 - x0) / width
    path = coordinate_raster(tmp_path / "pdc.tif", crs="EPSG:3832", origin=(x0, y_top), res=res, shape=(40, width))
    row, fp = header_footprint(path)
    assert row["crs"] == "EPSG:3832"
    nb = row["native_bounds"]
    lon_lat = to_lonlat("EPSG:3832", np.array([[nb["xmin"], nb["ymin"]], [nb["xmax"], nb["ymax"]]]))
    lat_min, lat_max = lon_lat[0, 1], lon_lat[1, 1]
    assert lat_max == pytest.approx(10.0, abs=1e-9) and 4.0 < lat_min < 6.0

    assert isinstance(fp, MultiPolygon) and fp.is_valid
    west, east = sorted((g.bounds for g in fp.geoms), key=lambda b: b[0])
    np.testing.assert_allclose(east, (178.5, lat_min, 180.0, lat_max), atol=1e-9)
    np.testing.assert_allclose(west, (-180.0, lat_min, -178.0, lat_max), atol=1e-9)


@pytest.mark.parametrize("epsg", [32601, 32660])
def test_utm_zone_at_the_antimeridian_is_split(tmp_path, epsg):
    # UTM zone 1 (central meridian 177°W) and zone 60 (177°E) rasters reaching across 180°.
    x0 = 100_000.0 if epsg == 32601 else 700_000.0
    path = coordinate_raster(tmp_path / "z.tif", crs=f"EPSG:{epsg}", origin=(x0, 500_000.0), res=6250.0, shape=(16, 32))
    row, fp = header_footprint(path)
    assert isinstance(fp, MultiPolygon) and fp.is_valid
    west, east = sorted((g.bounds for g in fp.geoms), key=lambda b: b[0])
    assert west[0] == -180.0 and east[2] == 180.0
    brute = to_lonlat(f"EPSG:{epsg}", brute_ring(tuple(row["native_bounds"].values()), DENSIFY_POINTS))
    east_lons, west_lons = brute[brute[:, 0] > 0, 0], brute[brute[:, 0] < 0, 0]
    assert west[2] == pytest.approx(west_lons.max(), abs=1e-9)
    assert east[0] == pytest.approx(east_lons.min(), abs=1e-9)
    assert 0.0 <= min(west[1], east[1])
    assert max(west[3], east[3]) == pytest.approx(brute[:, 1].max(), abs=1e-9)
    # Unwrapped to one side, the two parts are one footprint of the raster's ~200 km width.
    assert (west[2] + 360.0) - east[0] == pytest.approx(200_000.0 / 111_320.0, rel=0.02)
    assert shapely.distance(fp.boundary, shapely.points(brute)).max() < 1e-9


@pytest.mark.parametrize("crs, pole", [("EPSG:3413", 90.0), ("EPSG:3031", -90.0)])
def test_polar_box_containing_pole_reaches_the_pole(tmp_path, crs, pole):
    path = coordinate_raster(tmp_path / "polar.tif", crs=crs, origin=(-1.0e6, 1.0e6), res=62_500.0, shape=(32, 32))
    row, fp = header_footprint(path)
    assert row["native_bounds"] == {"xmin": -1e6, "ymin": -1e6, "xmax": 1e6, "ymax": 1e6}
    assert isinstance(fp, Polygon) and fp.is_valid

    brute = to_lonlat(crs, brute_ring((-1e6, -1e6, 1e6, 1e6), DENSIFY_POINTS))
    far = brute[:, 1].min() if pole > 0 else brute[:, 1].max()  # the box corners, farthest from the pole
    xmin, ymin, xmax, ymax = fp.bounds
    assert (xmin, xmax) == (-180.0, 180.0)
    if pole > 0:
        assert ymax == 90.0 and ymin == pytest.approx(far, abs=1e-9)
    else:
        assert ymin == -90.0 and ymax == pytest.approx(far, abs=1e-9)
    # The cap around the pole is inside at every longitude; lat 70° is outside.
    for lon in (-179.0, -90.0, -45.0, 0.0, 45.0, 135.0, 179.0):
        assert fp.contains(Point(lon, math.copysign(89.0, pole)))
        assert not fp.contains(Point(lon, math.copysign(70.0, pole)))
    # The projected box boundary is on the footprint boundary.
    assert shapely.distance(fp.exterior, shapely.points(brute)).max() < 1e-9


# -- Hilbert keys ---------------------------------------------------------------------------------


def test_hilbert_first_block_is_a_unit_step_path():
    """On a 16x16 cell block at the origin the keys are exactly 0..255 and consecutive keys are
    4-neighbours: a bijection onto a Hilbert curve segment."""
    n = 1 << HILBERT_ORDER
    extent = (0.0, 0.0, float(n), float(n))
    yy, xx = np.mgrid[0:16, 0:16]
    keys = hilbert_key(xx.ravel() + 0.5, yy.ravel() + 0.5, extent)
    assert keys.dtype == np.uint64
    assert sorted(keys.tolist()) == list(range(256))
    order = np.argsort(keys)
    steps = np.abs(np.diff(xx.ravel()[order])) + np.abs(np.diff(yy.ravel()[order]))
    assert (steps == 1).all()


def test_hilbert_global_coarse_grid_is_bijective_and_local():
    """Cell centres of a 16x16 grid over the lon/lat extent: key // 4**12 enumerates the 256 cells
    once each, consecutive cells are adjacent, and the first/last cells are the two bottom corners."""
    k = 16
    lon = -180.0 + (np.arange(k) + 0.5) * 360.0 / k
    lat = -90.0 + (np.arange(k) + 0.5) * 180.0 / k
    glon, glat = np.meshgrid(lon, lat)
    coarse = hilbert_key(glon.ravel(), glat.ravel()) // np.uint64(4 ** (HILBERT_ORDER - 4))
    assert sorted(coarse.tolist()) == list(range(256))
    ix, iy = np.meshgrid(np.arange(k), np.arange(k))
    order = np.argsort(coarse)
    steps = np.abs(np.diff(ix.ravel()[order])) + np.abs(np.diff(iy.ravel()[order]))
    assert (steps == 1).all()
    corner = 1e-4  # well inside the first cell; the last cell (as in ST_Hilbert) holds only xmax itself
    assert hilbert_key(np.array([-180.0 + corner]), np.array([-90.0 + corner]))[0] == 0
    assert hilbert_key(np.array([180.0]), np.array([-90.0 + corner]))[0] == 4**HILBERT_ORDER - 1


def test_hilbert_same_cell_same_key_and_clipping():
    n = (1 << HILBERT_ORDER) - 1  # DuckDB's ST_Hilbert quantisation: 65535 cells span the extent
    cell_lon, cell_lat = 360.0 / n, 180.0 / n
    x0, y0 = -180.0 + 40_000.25 * cell_lon, -90.0 + 50_000.25 * cell_lat  # a quarter into a cell
    a, b = hilbert_key(np.array([x0, x0 + 0.5 * cell_lon]), np.array([y0, y0]))
    assert a == b
    far = hilbert_key(np.array([x0 + 5 * cell_lon]), np.array([y0]))[0]
    assert far != a
    # Points outside the extent are clipped to the border cells.
    out = hilbert_key(np.array([-500.0, 500.0]), np.array([-100.0, -100.0]))
    assert out.tolist() == [0, 4**HILBERT_ORDER - 1]


def test_hilbert_neighbours_have_closer_keys_than_far_points():
    rng = np.random.default_rng(7)
    lon = rng.uniform(-170, 170, 500)
    lat = rng.uniform(-80, 80, 500)
    k0 = hilbert_key(lon, lat).astype(np.int64)
    k_near = hilbert_key(lon + 1e-3, lat).astype(np.int64)
    k_far = hilbert_key(-lon, -lat).astype(np.int64)
    assert np.median(np.abs(k_near - k0)) < np.median(np.abs(k_far - k0)) / 1000


# -- CRS normalisation ----------------------------------------------------------------------------


def test_norm_crs_accepts_crs_like_inputs():
    expected = pyproj.CRS.from_epsg(32630)
    for value in ("EPSG:32630", 32630, expected, rasterio.crs.CRS.from_epsg(32630), expected.to_wkt()):
        assert norm_crs(value).equals(expected)


@pytest.mark.parametrize("bad", ["EPSG:999999", "not a crs", 12.5, object()])
def test_norm_crs_errors_name_the_argument(bad):
    with pytest.raises(CRSError) as info:
        norm_crs(bad, argument="aoi_crs")
    assert isinstance(info.value, ValueError)
    assert "aoi_crs=" in str(info.value)
    if isinstance(bad, str):
        assert repr(bad) in str(info.value)


def test_norm_crs_none_names_the_argument():
    with pytest.raises(CRSError, match="dst_crs is required"):
        norm_crs(None, argument="dst_crs")


def test_crs_to_string():
    assert crs_to_string(norm_crs("EPSG:32630")) == "EPSG:32630"
    assert crs_to_string(norm_crs(rasterio.crs.CRS.from_epsg(32630))) == "EPSG:32630"
    assert crs_to_string(norm_crs("EPSG:4326")) == "EPSG:4326"
    custom = norm_crs("+proj=tmerc +lat_0=0 +lon_0=3.3 +k=0.9996 +x_0=500000 +y_0=0 +ellps=WGS84 +units=m +no_defs")
    text = crs_to_string(custom)
    assert text.startswith("PROJCRS[") and not text.startswith("EPSG:")
    assert pyproj.CRS.from_wkt(text).equals(custom)
    assert "3.3" in text


def test_one_transformer_per_crs_pair_whatever_the_spelling_of_the_inputs():
    from geoduck.geo import transformer

    a = transformer("EPSG:32630", "EPSG:4326")
    assert transformer("EPSG:32630", "EPSG:4326") is a
    assert transformer(pyproj.CRS.from_epsg(32630), "EPSG:4326").transform(500_000, 0) == pytest.approx((-3.0, 0.0))
    assert a.transform(500_000, 0) == pytest.approx((-3.0, 0.0))  # always x/lon first
    with pytest.raises(CRSError, match="dst"):
        transformer("EPSG:4326", "not a crs")


def test_crs_key_is_the_canonical_string():
    from geoduck.geo import crs_key

    assert crs_key("epsg:32630") == crs_key(pyproj.CRS.from_epsg(32630)) == crs_key(32630) == "EPSG:32630"
    with pytest.raises(CRSError, match="bounds_crs"):
        crs_key("nonsense", argument="bounds_crs")


def test_unwrap_ring_and_rejoin_are_the_inverse_of_the_antimeridian_split():
    from geoduck.geo import rejoin_antimeridian, unwrap_ring, unwrapped_bounds

    lon = np.array([170.0, 179.0, -179.0, -170.0, -170.0, 170.0])
    lat = np.array([0.0, 0.0, 0.0, 0.0, 5.0, 5.0])
    ulon, pole = unwrap_ring(lon, lat)
    np.testing.assert_array_equal(ulon, [170.0, 179.0, 181.0, 190.0, 190.0, 170.0])
    assert pole is None
    ring = np.linspace(-180.0, 180.0, 37) % 360.0  # winds once round the globe at 80°N
    assert unwrap_ring(ring, np.full(37, 80.0))[1] == 90.0
    assert unwrap_ring(lon, lat, pole_hint=-90.0)[1] == -90.0
    split = ring_to_wgs84(np.array([170.0, 190.0, 190.0, 170.0, 170.0]), np.array([0.0, 0.0, 5.0, 5.0, 0.0]))
    assert isinstance(split, MultiPolygon) and split.bounds == (-180.0, 0.0, 180.0, 5.0)
    assert unwrapped_bounds(split) == (170.0, 0.0, 190.0, 5.0)
    assert rejoin_antimeridian(split).equals(box(170.0, 0.0, 190.0, 5.0))
    whole = box(0.0, 0.0, 1.0, 1.0)
    assert rejoin_antimeridian(whole) is whole and unwrapped_bounds(whole) == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "crs, centre",
    [
        ("EPSG:32630", (-3.0, 40.0)),
        ("EPSG:32601", (-179.4, 10.0)),  # near the antimeridian: still inside the zone
        ("EPSG:3413", (-40.0, 75.0)),  # polar stereographic, away from the pole
        ("EPSG:3035", (10.0, 52.0)),  # LAEA Europe
        ("EPSG:3857", (120.0, -30.0)),
        ("EPSG:2154", (2.0, 46.0)),  # Lambert conformal conic
    ],
)
def test_aoi_probe_point_is_inside_and_box_contains_the_aoi(crs, centre):
    """The probe's point lies inside the AOI that ``aoi_to_wgs84`` builds for a small grid, and
    the AOI lies inside the probe's box; grids too large, geographic or over ±180° get None."""
    from geoduck.geo import PROBE_MAX_DEGREES, aoi_probe, aoi_to_wgs84, transformer

    rng = np.random.default_rng(7)
    cx, cy = transformer("EPSG:4326", crs).transform(*centre)
    answered = 0
    for _ in range(150):
        size = float(rng.choice([10.0, 2_560.0, 20_000.0, 200_000.0]))
        x0, y0 = cx + rng.uniform(-150_000, 150_000), cy + rng.uniform(-150_000, 150_000)
        bounds = (x0, y0, x0 + size * rng.uniform(0.5, 2.0), y0 + size)
        probe = aoi_probe(bounds, crs)
        aoi = aoi_to_wgs84(bbox=bounds, crs=crs)
        if probe is None:
            assert size >= 20_000.0 or max(abs(v) for v in aoi.bounds[::2]) > 179.0
            continue
        answered += 1
        px, py, box_ = probe
        assert aoi.contains(shapely.Point(px, py))
        assert shapely.box(*box_).contains(aoi)
        assert box_[2] - box_[0] <= 1.5 * PROBE_MAX_DEGREES + 1e-9
    assert answered >= 60
    assert aoi_probe((-3.0, 40.0, -2.9, 40.1), "EPSG:4326") is None  # lon/lat: no reprojection to save


def test_unwrap_longitudes_adds_whole_turns_only():
    """The one unwrapping routine: values before a jump are kept bit for bit, later ones move by
    exactly 360° per turn, so a closed ring across ±180° stays closed (its first and last points
    equal) and a 0…360 grid stored as …359.55, 0.05… reads …359.55, 360.05…."""
    from geoduck.geo import unwrap_longitudes

    ring = np.array([179.40056206238984, 179.9, -179.7, -178.80061696125352, 179.1, 179.40056206238984])
    u = unwrap_longitudes(ring)
    assert u[0] == u[-1] == ring[0] and u[1] == ring[1]
    assert u[2] == -179.7 + 360.0 and u[3] == -178.80061696125352 + 360.0 and u[4] == 179.1
    grid = np.array([359.05, 359.55, 0.05, 0.55])
    assert unwrap_longitudes(grid).tolist() == [359.05, 359.55, 0.05 + 360.0, 0.55 + 360.0]
    plain = np.array([-3.5, -3.4, -3.3])
    assert unwrap_longitudes(plain).tolist() == plain.tolist()  # no jump: unchanged
