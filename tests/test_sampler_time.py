"""Chips carry the time they came from, grids per interval, one-CRS grids that stitch, default resolutions.

The archive (6 tiles × 8 dates over UTM 29/30/31, 500 m pixels, each tile on its own days) has a
different seasonal pattern per date, so loading the wrong acquisition shows in the pixels; the
oracle is rasterio reading the drawn file.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds

import geoduck
from geoduck.errors import ArgumentError
from geoduck.testing import write_raster


def _read(path: str, sl: geoduck.GeoSlice) -> np.ndarray:
    """The file's pixels on the slice's grid (same CRS, aligned), 0 outside the file."""
    with rasterio.open(path) as src:
        assert src.crs.to_string() == sl.crs
        window = from_bounds(*sl.grid_bounds, transform=src.transform).round_offsets().round_lengths()
        return src.read(window=window, boundless=True, fill_value=0)


@pytest.fixture(scope="module")
def rows(archive_catalog) -> dict[str, dict]:
    return {r["id"]: r for r in archive_catalog}


def test_random_chips_load_the_drawn_acquisition(archive_catalog, rows):
    sampler = geoduck.random_sampler(archive_catalog, chip_size=32, length=12, seed=5)
    assert sampler.resolution == (500.0, 500.0)  # default: the rows' native pixel size
    telling = 0
    for sl, rid in zip(sampler, sampler.row_ids, strict=True):
        row = rows[rid]
        assert (sl.start, sl.end) == (row["start_datetime"], row["end_datetime"])
        got = geoduck.load_raster(archive_catalog, sl).values
        np.testing.assert_array_equal(got, _read(row["filepath"], sl))
        # the same place without a time (what a static chip loads): the oldest acquisition, not this one
        oldest = min((r for r in rows.values() if r["tile"] == row["tile"]), key=lambda r: r["start_datetime"])
        if not np.array_equal(_read(oldest["filepath"], sl), got):  # same day of year, other year: same pixels
            static = geoduck.GeoSlice(sl.bounds, sl.crs, sl.resolution)
            assert not np.array_equal(geoduck.load_raster(archive_catalog, static).values, got)
            telling += 1
    assert telling >= 6


def test_grid_by_interval_gives_one_aligned_grid_per_acquisition(archive_catalog, rows):
    chips = geoduck.grid_sampler(archive_catalog, chip_size=64, crs="native", by="interval")
    per_interval = Counter(s.interval for s in chips)
    intervals = {(r["start_datetime"], r["end_datetime"]) for r in rows.values()}
    assert set(per_interval) == intervals and len(intervals) == 48
    plain = geoduck.grid_sampler(archive_catalog, chip_size=64, crs="native")
    grid = {(s.crs, s.bounds) for s in plain}
    assert all((s.crs, s.bounds) in grid for s in chips)  # one grid per CRS, shared by all dates
    assert all(s.interval == (None, None) for s in plain)  # multi-date without by=: static chips
    by_interval = {(r["start_datetime"], r["end_datetime"]): r for r in rows.values()}
    for k, sl in enumerate(chips):
        row = by_interval[sl.interval]  # one row per interval: each tile has its own days
        assert sl.crs == row["crs"]
        nb = row["native_bounds"]
        assert sl.bounds[0] < nb["xmax"] and sl.bounds[2] > nb["xmin"]
        assert sl.bounds[1] < nb["ymax"] and sl.bounds[3] > nb["ymin"]
        if k % 23 == 0:
            got = geoduck.load_raster(archive_catalog, sl).values
            np.testing.assert_array_equal(got, _read(row["filepath"], sl))
    # exact count: every chip of a row's own zone grid that overlaps the row, for every row
    expected = sum(
        sum(
            1
            for s in plain
            if s.crs == r["crs"]
            and s.bounds[0] < r["native_bounds"]["xmax"]
            and s.bounds[2] > r["native_bounds"]["xmin"]
            and s.bounds[1] < r["native_bounds"]["ymax"]
            and s.bounds[3] > r["native_bounds"]["ymin"]
        )
        for r in rows.values()
    )
    assert len(chips) == expected


def test_grid_to_stitch_across_utm_zones_without_crs(archive_catalog):
    chips = geoduck.grid_sampler(archive_catalog, chip_size=64, stride=48)
    assert {s.crs for s in chips} == {"EPSG:32630"}  # 4 of the 6 tiles: most of the area
    out = geoduck.stitch([np.full((1, 64, 64), 7.0) for _ in chips], chips)
    assert out.crs.to_string() == "EPSG:32630" and np.nanmax(out.values) == 7.0
    # the stitched raster covers every tile, those of zones 29 and 31 included
    for row in archive_catalog:
        lon, lat = row["geometry"].centroid.coords[0]
        x, y = rasterio.warp.transform("EPSG:4326", "EPSG:32630", [lon], [lat])
        r, c = rasterio.transform.rowcol(out.transform, x[0], y[0])
        assert out.values[0, r, c] == 7.0
    native = geoduck.grid_sampler(archive_catalog, chip_size=64, crs="native")
    with pytest.raises(ArgumentError, match=r"crs='EPSG:32630'"):
        geoduck.stitch([np.zeros((64, 64)) for _ in native], native)


def test_default_resolution_is_the_finest_native_one(tmp_path):
    fine = write_raster(
        tmp_path / "fine_20230101.tif",
        np.ones((20, 20), "uint8"),
        crs="EPSG:32630",
        transform=rasterio.Affine(10.0, 0, 500_000.0, 0, -10.0, 4_400_200.0),
    )
    coarse = write_raster(
        tmp_path / "coarse_20230102.tif",
        np.ones((10, 20), "uint8"),
        crs="EPSG:32630",
        transform=rasterio.Affine(20.0, 0, 500_000.0, 0, -40.0, 4_400_200.0),
    )
    cat = geoduck.build_raster_catalog(
        [str(fine), str(coarse)], tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})\.tif$", progress=False
    )
    assert {s.resolution for s in geoduck.grid_sampler(cat, chip_size=8)} == {(10.0, 10.0)}
    assert geoduck.random_sampler(cat, chip_size=4, length=3).resolution == (10.0, 10.0)
    # in another CRS: the row's pixel count over its extent there (≈ 10 m in UTM 31, 1e-4° in lon/lat)
    (rx, ry) = geoduck.grid_sampler(cat, chip_size=8, crs="EPSG:4326")[0].resolution
    assert rx == pytest.approx(10.0 / 85_000, rel=0.05) and ry == pytest.approx(10.0 / 111_000, rel=0.05)
    with pytest.raises(ArgumentError, match="resolution="):
        geoduck.grid_sampler((0, 0, 100, 100), crs="EPSG:32630", chip_size=8)
    with pytest.raises(ArgumentError, match="by="):
        geoduck.grid_sampler(cat, chip_size=8, by="date")


def test_intersect_results_default_to_the_left_rows_pixel_size(archive_catalog):
    """An intersect result has no res_x/native_bounds of its own: natively sampled, its rows take
    the left row's pixel size (not an error asking for resolution=, nor the footprint's size)."""
    left = archive_catalog.where("tile = '30TTK'")
    right = archive_catalog.where("tile = '30TVK'")
    shared = left.intersect(right, spatial_only=True)
    assert "res_x" not in shared.columns and "left_res_x" in shared.columns
    chips = geoduck.grid_sampler(shared, chip_size=16)
    assert chips and {c.resolution for c in chips} == {(500.0, 500.0)} and {c.crs for c in chips} == {"EPSG:32630"}
    sampler = geoduck.random_sampler(shared, chip_size=16, length=4, seed=1)
    assert sampler.resolution == (500.0, 500.0)
    with pytest.raises(ArgumentError, match="resolution="):  # other CRS: no pixel grid known there
        geoduck.random_sampler(shared, chip_size=16, length=4, crs="EPSG:3857")
