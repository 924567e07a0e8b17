"""Rows as slices: ``GeoSlice.from_row`` / ``Catalog.slices`` put each row on its own grid and interval,
so ``load_raster`` on a row's slice returns exactly that file's pixels (checked against rasterio)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from corpus import of_kind

import geoduck
from geoduck.errors import ArgumentError
from geoduck.testing import write_raster


def _rasterio_pixels(path: str) -> tuple[np.ndarray, tuple]:
    with rasterio.open(path) as src:
        return src.read(), tuple(src.transform)[:6]


def test_every_archive_row_slice_loads_exactly_its_file(archive_catalog):
    rows = sorted(archive_catalog, key=lambda r: r["id"])
    slices = archive_catalog.slices()
    assert len(slices) == len(rows) == 48
    for row, sl in zip(rows, slices, strict=True):
        assert sl == geoduck.GeoSlice.from_row(row)
        values, transform = _rasterio_pixels(row["filepath"])
        assert sl.crs == row["crs"] and sl.shape == values.shape[1:]
        assert tuple(sl.transform)[:6] == pytest.approx(transform, abs=1e-9)
        assert (sl.start, sl.end) == (pd.Timestamp(row["start_datetime"]), pd.Timestamp(row["end_datetime"]))
    # overlapping tiles of other dates and neighbouring tiles exist: the row's own pixels still win
    for row, sl in list(zip(rows, slices, strict=True))[::7]:
        got = geoduck.load_raster(archive_catalog, sl)
        values, _ = _rasterio_pixels(row["filepath"])
        own = values != 0  # nodata 'cloud' holes may be filled by a same-day neighbour: not here
        np.testing.assert_array_equal(got.values[own], values[own])
        assert tuple(got.transform)[:6] == pytest.approx(tuple(sl.transform)[:6])


def test_a_real_corpus_file_round_trips(corpus_dir, tmp_path):
    item = next(f for f in of_kind("raster") if f.path == "stars/L7_ETMs.tif")
    path = corpus_dir / item.path
    cat = geoduck.build_raster_catalog([str(path)], tmp_path / "cat", progress=False, workers=1)
    (sl,) = cat.slices()
    values, transform = _rasterio_pixels(str(path))
    assert sl.shape == values.shape[1:]
    assert tuple(sl.transform)[:6] == pytest.approx(transform, abs=1e-9)
    got = geoduck.load_raster(cat, sl)
    np.testing.assert_array_equal(got.values, values)


def test_resolution_and_crs_overrides(archive_catalog):
    row = min(archive_catalog, key=lambda r: r["id"])
    native = geoduck.GeoSlice.from_row(row)
    coarse = geoduck.GeoSlice.from_row(row, resolution=1000.0)
    assert coarse.resolution == (1000.0, 1000.0)
    assert coarse.bounds == native.bounds and coarse.shape == (144, 144)
    lonlat = geoduck.GeoSlice.from_row(row, crs="EPSG:4326")
    assert lonlat == native.to_crs("EPSG:4326") and lonlat.shape == native.shape
    fixed = geoduck.GeoSlice.from_row(row, crs="EPSG:4326", resolution=0.01)
    assert fixed.resolution == (0.01, 0.01) and fixed.interval == native.interval
    assert archive_catalog.slices(resolution=1000.0)[0] == coarse


def test_rows_without_a_pixel_grid_need_a_resolution(tmp_path):
    row = {
        "id": "cube-1",
        "backend": "xarray",
        "crs": "EPSG:4326",
        "native_bounds": {"xmin": -4.0, "ymin": 40.0, "xmax": -3.0, "ymax": 41.0},
        "start_datetime": None,
        "end_datetime": None,
    }
    with pytest.raises(ArgumentError, match="cube-1.*resolution="):
        geoduck.GeoSlice.from_row(row)
    sl = geoduck.GeoSlice.from_row(row, resolution=0.25)
    assert sl.bounds == (-4.0, 40.0, -3.0, 41.0) and sl.shape == (4, 4) and sl.interval == (None, None)
    utm = geoduck.GeoSlice.from_row(row, crs="EPSG:32630", resolution=1000.0)
    assert utm.crs == "EPSG:32630" and utm.resolution == (1000.0, 1000.0)
    with pytest.raises(ArgumentError, match="native_bounds"):
        geoduck.GeoSlice.from_row({"id": "x", "crs": None})


def test_per_file_output_is_aligned_to_its_input(tmp_path):
    """Example G: a sidecar written on the row's slice has the input file's transform and shape."""
    src = write_raster(
        tmp_path / "in_20230615.tif",
        np.arange(30 * 40, dtype="uint16").reshape(30, 40) + 1,
        crs="EPSG:32630",
        transform=rasterio.Affine(20.0, 0, 400_010.0, 0, -20.0, 4_500_030.0),
        nodata=0,
    )
    cat = geoduck.build_raster_catalog([str(src)], tmp_path / "cat", progress=False, workers=1)
    (row,) = list(cat)
    x = geoduck.load_raster(cat, geoduck.GeoSlice.from_row(row))
    out = geoduck.save_cog(x, tmp_path / "in_20230615.cloud.tif")
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (a.transform, a.shape, a.crs) == (b.transform, b.shape, b.crs)
        np.testing.assert_array_equal(a.read(), b.read())
