"""random_sampler on real-world CRS cases: lon/lat files, rows across the antimeridian, any sampling CRS.

The oracle, independent of geoduck's own geometry code: each chip's pixel grid outline (101 points
per edge) transformed with pyproj to the row's native CRS lies inside the row's native bounds
(longitudes taken modulo 360), i.e. on the data of the row it was drawn from; a few chips per case
are loaded and every pixel must come from the row (coordinate rasters hold their own x/y).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyproj
import pytest
from shapely.geometry import box

import geoduck
from geoduck.errors import CRSError, NoDataError
from geoduck.testing import coordinate_raster

N = 300


def _utm_origin(epsg: int, lon: float, lat: float, half: float) -> tuple[float, float]:
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return x - half, y + half


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> dict[str, geoduck.Catalog]:
    root = tmp_path_factory.mktemp("sampler_crs")
    lonlat = [  # 1° tiles at 40° N, 0.01° pixels (EPSG:4326 files, as many DEMs and products ship)
        coordinate_raster(
            root / "ll" / f"ll_{i}.tif", crs="EPSG:4326", origin=(-3.0 + i, 41.0), res=0.01, shape=(100, 100)
        )
        for i in range(3)
    ]
    am_lonlat = [  # lon/lat rows across 180°: xmax > 180 in the file, and a row ending at 180
        coordinate_raster(
            root / "aml" / "across.tif", crs="EPSG:4326", origin=(179.5, -16.0), res=0.01, shape=(100, 100)
        ),
        coordinate_raster(
            root / "aml" / "west.tif", crs="EPSG:4326", origin=(179.0, -18.0), res=0.01, shape=(100, 100)
        ),
    ]
    am_utm = [  # 100 km UTM tiles straddling 180° at ~17° S, in zone 60 and in zone 1
        coordinate_raster(
            root / "amu" / "z60.tif",
            crs="EPSG:32760",
            res=1000.0,
            shape=(100, 100),
            origin=_utm_origin(32760, 180.0, -17.0, 50_000),
        ),
        coordinate_raster(
            root / "amu" / "z01.tif",
            crs="EPSG:32701",
            res=1000.0,
            shape=(100, 100),
            origin=_utm_origin(32701, 180.0, -18.5, 50_000),
        ),
    ]
    build = lambda files, name: geoduck.build_raster_catalog(  # noqa: E731
        [str(f) for f in files], root / name, progress=False, workers=1
    )
    return {
        "lonlat": build(lonlat, "c_ll"),
        "am_lonlat": build(am_lonlat, "c_aml"),
        "am_utm": build(am_utm, "c_amu"),
        "mixed": build([*lonlat, *am_utm], "c_mixed"),
    }


def _native(row: dict) -> tuple[float, float, float, float]:
    b = row["native_bounds"]
    return b["xmin"], b["ymin"], b["xmax"], b["ymax"]


def _outline(bounds, n: int = 101) -> tuple[np.ndarray, np.ndarray]:
    xmin, ymin, xmax, ymax = bounds
    t = np.linspace(0.0, 1.0, n)
    xs = np.concatenate([xmin + (xmax - xmin) * t, np.full(n, xmax), xmax - (xmax - xmin) * t, np.full(n, xmin)])
    ys = np.concatenate([np.full(n, ymin), ymin + (ymax - ymin) * t, np.full(n, ymax), ymax - (ymax - ymin) * t])
    return xs, ys


def assert_on_row_data(sampler, catalog: geoduck.Catalog, *, crs: str | None = "native") -> None:
    """Every chip lies on its row's data; ``crs``: the chips' CRS ("native": their row's, None: any)."""
    rows = {r["id"]: r for r in catalog}
    assert len(sampler) == N and len(sampler.row_ids) == N
    for sl, rid in zip(sampler, sampler.row_ids, strict=True):
        row = rows[rid]
        if crs is not None:
            assert sl.crs == (row["crs"] if crs == "native" else crs)
        native = pyproj.CRS(row["crs"])
        x, y = pyproj.Transformer.from_crs(sl.crs, native, always_xy=True).transform(*_outline(sl.grid_bounds))
        x, y = np.asarray(x), np.asarray(y)
        xmin, ymin, xmax, ymax = _native(row)
        if native.is_geographic:
            x = (x - xmin) % 360.0 + xmin
        tol = 1e-6 * max(xmax - xmin, ymax - ymin)
        assert np.isfinite(x).all() and np.isfinite(y).all()
        assert x.min() >= xmin - tol and x.max() <= xmax + tol, (sl, rid)
        assert y.min() >= ymin - tol and y.max() <= ymax + tol, (sl, rid)
    # each chip finds its own row again by a catalog query with the chip's bounds in its CRS
    for sl, rid in list(zip(sampler, sampler.row_ids, strict=True))[:10]:
        hits = catalog.query(geometry=box(*sl.grid_bounds), crs=sl.crs).to_arrow().column("id").to_pylist()
        assert rid in hits


def assert_pixels_from_row(sampler, catalog: geoduck.Catalog, k: int = 4) -> None:
    """Loaded chips are full of the row's own pixels: band 1/2 hold native x/y inside its bounds."""
    rows = {r["id"]: r for r in catalog}
    for sl, rid in list(zip(sampler, sampler.row_ids, strict=True))[:k]:
        row = rows[rid]
        values = np.asarray(geoduck.load_raster(catalog.where(f"id = '{rid}'"), sl, bands=[1, 2]).values)
        xmin, ymin, xmax, ymax = _native(row)
        res = row["res_x"]
        assert values.shape == (2, *sl.shape)
        assert ((values[0] > xmin) & (values[0] < xmax + res)).all(), rid
        assert ((values[1] > ymin) & (values[1] < ymax)).all(), rid


# -- lon/lat files --------------------------------------------------------------------------------


def test_lonlat_files_with_a_resolution_in_metres(catalogs):
    cat = catalogs["lonlat"]
    # natively, the resolution is degrees: 16 px of 500° fit nowhere; the error says how to use metres
    with pytest.raises(NoDataError, match=r"degrees for EPSG:4326.*crs='utm'"):
        geoduck.random_sampler(cat, chip_size=16, resolution=500.0, length=N, seed=0)
    utm = geoduck.random_sampler(cat, chip_size=16, resolution=500.0, length=N, seed=0, crs="utm")
    assert {s.crs for s in utm} == {"EPSG:32630"}
    assert all(s.resolution == (500.0, 500.0) and s.shape == (16, 16) for s in utm)
    assert_on_row_data(utm, cat, crs="EPSG:32630")
    assert_pixels_from_row(utm, cat)
    assert utm.skipped_ids == ()
    # chips reach across the whole row, not only its middle (uniform placement, curved edges respected)
    assert len({rid for rid in utm.row_ids}) == 3


@pytest.mark.parametrize("crs", [None, "native", "EPSG:4326"])
def test_lonlat_files_in_degrees_on_their_own_grid(catalogs, crs):
    cat = catalogs["lonlat"]
    sampler = geoduck.random_sampler(cat, chip_size=(8, 12), resolution=0.01, length=N, seed=1, crs=crs)
    assert_on_row_data(sampler, cat)
    rows = {r["id"]: r for r in cat}
    for sl, rid in zip(sampler, sampler.row_ids, strict=True):  # whole pixels from the row's corner
        xmin, _, _, ymax = _native(rows[rid])
        assert (sl.bounds[0] - xmin) / 0.01 == pytest.approx(round((sl.bounds[0] - xmin) / 0.01), abs=1e-6)
        assert (ymax - sl.bounds[3]) / 0.01 == pytest.approx(round((ymax - sl.bounds[3]) / 0.01), abs=1e-6)
    assert_pixels_from_row(sampler, cat, k=2)


def test_one_resolution_cannot_mix_units(catalogs):
    with pytest.raises(CRSError, match=r"different units: .*crs='utm'"):
        geoduck.random_sampler(catalogs["mixed"], chip_size=8, resolution=100.0, length=10)
    with pytest.raises(CRSError, match="different units"):
        geoduck.grid_sampler(catalogs["mixed"], chip_size=8, resolution=100.0, crs="native")
    # by default the grid is in one CRS, the one covering most area: the three 1° tiles at 40° N
    # (3 × ~85 × 111 km²) outweigh the two 100 km UTM tiles, so EPSG:4326
    one = geoduck.grid_sampler(catalogs["mixed"], chip_size=8, resolution=0.05)
    assert {s.crs for s in one} == {"EPSG:4326"}
    mixed = geoduck.random_sampler(catalogs["mixed"], chip_size=8, resolution=1000.0, length=N, seed=4, crs="utm")
    assert_on_row_data(mixed, catalogs["mixed"], crs=None)


# -- across the antimeridian ----------------------------------------------------------------------


@pytest.mark.parametrize("crs", [None, "utm", "EPSG:32760", "EPSG:32701", "EPSG:3857", "EPSG:3832"])
def test_utm_rows_across_the_antimeridian(catalogs, crs):
    cat = catalogs["am_utm"]
    sampler = geoduck.random_sampler(cat, chip_size=8, resolution=1000.0, length=N, seed=2, crs=crs)
    assert_on_row_data(sampler, cat, crs={None: "native", "utm": None}.get(crs, crs))
    assert len(set(sampler.row_ids)) == 2 and sampler.skipped_ids == ()
    if crs == "utm":  # both tiles are centred near 180°: zone 60 or zone 1 (south)
        assert {s.crs for s in sampler} <= {"EPSG:32760", "EPSG:32701"}
    if crs == "EPSG:3857":  # a row cut by the CRS's edge at ±180°: chips on both sides, none across
        xs = np.array([s.bounds[0] for s in sampler])
        assert (xs > 0).any() and (xs < 0).any()
    assert_pixels_from_row(sampler, cat, k=2)


@pytest.mark.parametrize("crs", [None, "utm", "EPSG:3857", "EPSG:3832"])
def test_lonlat_rows_across_the_antimeridian(catalogs, crs):
    cat = catalogs["am_lonlat"]
    res = 0.01 if crs is None else 1000.0
    sampler = geoduck.random_sampler(cat, chip_size=8, resolution=res, length=N, seed=3, crs=crs)
    assert_on_row_data(sampler, cat, crs={None: "native", "utm": None}.get(crs, crs))
    assert len(set(sampler.row_ids)) == 2
    if crs is None:  # natively: chips east of 180° keep xmax > 180, like the file
        assert any(s.bounds[2] > 180.0 for s in sampler)


def test_grid_across_the_antimeridian_in_web_mercator(catalogs):
    """A row split at 180° is gridded where it lies (both edges of EPSG:3857), not over the world."""
    cat = catalogs["am_utm"]
    chips = geoduck.grid_sampler(cat, chip_size=16, resolution=2000.0, crs="EPSG:3857")
    xs = np.array([s.bounds[0] for s in chips])
    assert (xs > 0).any() and (xs < 0).any()
    half = 20037508.342789244
    assert all(abs(s.bounds[0]) > half - 400_000 or abs(s.bounds[2]) > half - 400_000 for s in chips)
    # brute force: every chip overlaps a row's lon/lat footprint, and no chip is repeated
    rows = list(cat)
    for s in chips:
        assert any(r["geometry"].intersection(s.footprint()).area > 0 for r in rows)
    assert len(set(chips)) == len(chips) < 200


# -- rows that cannot hold a chip ------------------------------------------------------------------


def test_rows_smaller_than_the_chip_are_skipped_and_counted(tmp_path, caplog):
    big = coordinate_raster(
        tmp_path / "big.tif", crs="EPSG:32630", origin=(500_000.0, 4_400_000.0), res=10.0, shape=(64, 64)
    )
    tiny = coordinate_raster(
        tmp_path / "tiny.tif", crs="EPSG:32630", origin=(600_000.0, 4_400_000.0), res=10.0, shape=(8, 40)
    )
    cat = geoduck.build_raster_catalog([str(big), str(tiny)], tmp_path / "cat", progress=False, workers=1)
    ids = {Path(r["filepath"]).stem: r["id"] for r in cat}
    with caplog.at_level(logging.WARNING, logger="geoduck.samplers"):
        sampler = geoduck.random_sampler(cat, chip_size=16, resolution=10.0, length=N, seed=0)
    assert sampler.skipped_ids == (ids["tiny"],)
    assert set(sampler.row_ids) == {ids["big"]}  # never centred over a row narrower than the chip
    assert "1 of 2 rows hold no chip" in caplog.text
    assert_on_row_data(sampler, cat)
    with pytest.raises(NoDataError, match=r"2 of 2 rows are smaller than the chip"):
        geoduck.random_sampler(cat, chip_size=65, resolution=10.0, length=5)
