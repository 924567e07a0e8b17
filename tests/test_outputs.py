"""Outputs: polygons_from_mask, to_xarray and save_cog of every loader's result, each checked by
reading the output back with rasterio / rasterizing the polygons back / rioxarray."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from georeader.geotensor import GeoTensor
from rasterio.features import rasterize
from rasterio.transform import Affine

import geoduck
from geoduck.errors import ArgumentError, CRSError
from geoduck.testing import ARCHIVE_REGEX, synthetic_archive, synthetic_cube, synthetic_labels

T = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_400_000.0)


def _blobs() -> np.ndarray:
    m = np.zeros((20, 30), dtype=bool)
    m[2:6, 3:9] = True  # 24 px
    m[10:18, 10:20] = True  # a ring: 80 - 12 = 68 px, with a hole
    m[12:15, 13:17] = False
    m[0, 29] = m[1, 28] = True  # two pixels touching at a corner
    return m


def test_polygons_of_a_boolean_mask_rasterize_back_to_it():
    m = _blobs()
    gdf = geoduck.polygons_from_mask(m, transform=T, crs="EPSG:32630")
    assert gdf.crs.to_epsg() == 32630
    assert list(gdf["value"]) == [True] * 4  # the two corner pixels are two regions (4-connected)
    assert sorted(round(a) for a in gdf.area) == [100, 100, 2400, 6800]
    assert sum(len(p.interiors) for p in gdf.geometry) == 1
    back = rasterize(((g, 1) for g in gdf.geometry), out_shape=m.shape, transform=T, fill=0).astype(bool)
    np.testing.assert_array_equal(back, m)
    eight = geoduck.polygons_from_mask(m, transform=T, crs="EPSG:32630", connectivity=8)
    assert len(eight) == 3


def test_polygons_of_labels_from_a_geotensor_keep_values_and_skip_the_fill():
    labels = np.zeros((1, 20, 30), dtype=np.int64)
    labels[0, :, :10] = 10**10  # beyond what rasterio.features.shapes takes: coded internally
    labels[0, 5:8, 20:25] = 3
    gt = GeoTensor(labels, transform=T, crs="EPSG:32630", fill_value_default=0)
    gdf = geoduck.polygons_from_mask(gt)
    assert sorted(gdf["value"]) == [3, 10**10]
    areas = dict(zip(gdf["value"], gdf.area, strict=True))
    assert areas == {10**10: pytest.approx(200 * 100), 3: pytest.approx(15 * 100)}
    floats = geoduck.polygons_from_mask(np.where(labels[0] == 3, np.nan, 0.25), transform=T, crs="EPSG:32630")
    assert list(floats["value"]) == [0.25]  # NaN never forms polygons
    coarse = geoduck.polygons_from_mask(_blobs(), transform=T, crs="EPSG:32630", simplify=15.0)
    assert sum(len(g.exterior.coords) for g in coarse.geometry) <= sum(
        len(g.exterior.coords) for g in geoduck.polygons_from_mask(_blobs(), transform=T).geometry
    )
    with pytest.raises(ArgumentError, match="transform="):
        geoduck.polygons_from_mask(_blobs())
    with pytest.raises(ArgumentError, match="connectivity"):
        geoduck.polygons_from_mask(_blobs(), transform=T, connectivity=6)


def test_to_xarray_writes_crs_and_transform_and_save_cog_round_trips(tmp_path):
    values = np.arange(2 * 20 * 30, dtype=np.float32).reshape(2, 20, 30)
    gt = GeoTensor(values, transform=T, crs="EPSG:32630", fill_value_default=np.nan)
    da = geoduck.to_xarray(gt, band=["B04", "B08"])
    assert da.dims == ("band", "y", "x") and list(da["band"].values) == ["B04", "B08"]
    np.testing.assert_array_equal(da.values, values)
    assert da["x"].values[0] == 500_005.0 and da["y"].values[0] == 4_399_995.0
    pytest.importorskip("rioxarray")
    assert da.rio.crs.to_epsg() == 32630
    assert tuple(da.rio.transform())[:6] == tuple(T)[:6]
    out = geoduck.save_cog(da, tmp_path / "x.tif")
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(), values)
        assert src.transform == T and src.crs.to_epsg() == 32630
        assert src.descriptions == ("B04", "B08") and np.isnan(src.nodata)
    with pytest.raises(ArgumentError, match="north-up"):
        geoduck.to_xarray(GeoTensor(values, transform=Affine(10, 1, 0, 0, -10, 0), crs="EPSG:32630"))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    from geoduck.testing import DEMO_TILES, archive_dates

    paths = synthetic_archive(root / "a", tiles=DEMO_TILES[1:2], dates=archive_dates(per_year=2)[:2], size=64)
    cat = geoduck.build_raster_catalog(paths, root / "cat", filename_regex=ARCHIVE_REGEX, progress=False, workers=1)
    with rasterio.open(paths[0]) as src:
        b = src.bounds
    sl = geoduck.GeoSlice((b.left, b.bottom, b.left + 320 * 500 / 10, b.top), "EPSG:32630", 500.0)
    return cat, sl


def test_save_cog_of_load_raster_and_its_timeseries(small, tmp_path):
    cat, sl = small
    mosaic = geoduck.load_raster(cat, sl, bands=["B02", "B03"])
    with rasterio.open(geoduck.save_cog(mosaic, tmp_path / "m.tif")) as src:
        np.testing.assert_array_equal(src.read(), mosaic.values)
        assert src.transform == sl.transform and src.nodata == 0
    series = geoduck.load_raster_timeseries(cat, sl, bands=["B02", "B03"])
    with rasterio.open(geoduck.save_cog(series, tmp_path / "s.tif")) as src:
        np.testing.assert_array_equal(src.read(), series.values.reshape(-1, *sl.shape))
        assert src.transform == sl.transform and src.crs.to_epsg() == 32630
        dates = [str(t)[:10] for t in series["time"].values]
        assert src.descriptions == tuple(f"{d}/{b}" for d in dates for b in ("B02", "B03"))


def test_save_cog_of_load_xarray_and_load_vector(tmp_path):
    cube = synthetic_cube(tmp_path / "c" / "t2m.nc", days=3)
    cat = geoduck.build_xarray_catalog(cube, tmp_path / "xcat", progress=False)
    sl = geoduck.GeoSlice((-6.0, 39.5, -4.0, 41.0), "EPSG:4326", 0.25)
    ds = geoduck.load_xarray(cat, sl)
    with rasterio.open(geoduck.save_cog(ds, tmp_path / "x.tif")) as src:
        want = ds["t2m"].transpose("time", "y", "x").values
        np.testing.assert_allclose(src.read(), want)
        assert src.descriptions[0] == "t2m/" + str(ds["time"].values[0])[:10]
        assert src.transform.almost_equals(sl.transform) and src.crs.to_epsg() == 4326
    labels = synthetic_labels(tmp_path / "l" / "fields.geojson")
    vcat = geoduck.build_vector_catalog(labels, tmp_path / "vcat", progress=False)
    import geopandas as gpd

    x0, y0, x1, y1 = gpd.read_file(labels).to_crs("EPSG:32630").total_bounds
    vsl = geoduck.GeoSlice((x0 - 1000, y0 - 1000, x1 + 1000, y1 + 1000), "EPSG:32630", 500.0)
    sem = geoduck.load_vector(vcat, vsl, task="semantic_segmentation", label_field="class_id")
    with rasterio.open(geoduck.save_cog(sem, tmp_path / "sem.tif")) as src:
        np.testing.assert_array_equal(src.read(1), np.asarray(sem).reshape(vsl.shape))
        assert set(np.unique(src.read(1)).tolist()) == {0, 1, 2, 3}
    inst = geoduck.load_vector(vcat, vsl, task="instance_segmentation", label_field="class_id")
    assert len(inst) > 0
    with rasterio.open(geoduck.save_cog(inst, tmp_path / "inst.tif")) as src:
        np.testing.assert_array_equal(src.read().astype(bool), inst.masks)
        assert src.descriptions[0] == f"0: class {int(inst.labels[0])}"
    boxes = geoduck.load_vector(vcat, vsl, task="object_detection", label_field="class_id")
    with pytest.raises(ArgumentError, match="boxes only"):
        geoduck.save_cog(boxes, tmp_path / "b.tif")
    with pytest.raises(CRSError, match="no CRS"):
        geoduck.save_cog(ds.drop_vars("spatial_ref"), tmp_path / "n.tif")
