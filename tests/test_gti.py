"""GDAL GTI export: rasterio (GDAL 3.10's GTI driver) reads the index as the mosaic load_raster gives."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from shapely.geometry import box

import geoduck
from geoduck.cli import main
from geoduck.errors import ArgumentError, CRSError
from geoduck.geo import transformer

# (name, date, x0, y0): overlapping 64 px COGs on one 10 m UTM 30N grid, dates not in name order
TILES = (
    ("a", "20230101", 500_000, 4_400_000),
    ("b", "20230301", 500_300, 4_399_800),
    ("c", "20230201", 500_150, 4_400_100),
)


def _cog(path, values, crs, transform, nodata):
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=values.shape[2],
        height=values.shape[1],
        count=values.shape[0],
        dtype=values.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(values)
    return path


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    root = tmp_path_factory.mktemp("gti")
    (root / "files").mkdir()
    rng = np.random.default_rng(3)
    for k, (name, date, x0, y0) in enumerate(TILES):
        v = rng.integers(1, 60_000, size=(2, 64, 64)).astype("uint16")
        v[:, 10 + 5 * k : 25 + 5 * k, 8:40] = 0  # nodata holes: older tiles show through
        _cog(root / "files" / f"{name}_{date}.tif", v, "EPSG:32630", from_origin(x0, y0, 10, 10), 0)
    return geoduck.build_raster_catalog(
        root / "files", root / "cat", filename_regex=r"_(?P<date>\d{8})\.tif$", progress=False
    )


def _load_like(cat, ds, merge="last"):
    sl = geoduck.GeoSlice(tuple(ds.bounds), ds.crs.to_string(), ds.res)
    return np.asarray(geoduck.load_raster(cat, sl, merge=merge, resampling="nearest").values)


def test_gti_mosaic_equals_load_raster_last(overlapping, tmp_path):
    path = overlapping.to_gti(tmp_path / "mosaic.gti.gpkg")
    with rasterio.open(path) as ds:
        assert ds.driver == "GTI"
        assert ds.count == 2 and ds.crs.to_string() == "EPSG:32630" and ds.dtypes == ("uint16", "uint16")
        assert ds.nodata == 0 and ds.res == (10.0, 10.0)
        assert tuple(ds.bounds) == (500_000, 4_399_160, 500_940, 4_400_100)  # union of the three tiles
        gdal = ds.read()
        last = _load_like(overlapping, ds)
        first = _load_like(overlapping, ds, merge="first")
    assert gdal.shape == (2, 94, 94)
    np.testing.assert_array_equal(gdal, last)
    assert (gdal != first).sum() > 1000  # the order matters here, and GDAL put the latest on top
    assert (gdal == 0).sum() > 0 and ((gdal == 0) == (last == 0)).all()
    info = pyogrio.read_info(path)
    meta = info["layer_metadata"]
    assert meta["SORT_FIELD"] == "start_datetime" and meta["SORT_FIELD_ASC"] == "YES"
    assert (meta["BAND_COUNT"], meta["DATA_TYPE"], meta["SRS"], meta["LOCATION_FIELD"]) == (
        "2",
        "UInt16",
        "EPSG:32630",
        "location",
    )
    index = pyogrio.read_dataframe(path)
    rows = {r["filepath"]: r for r in overlapping.to_arrow().to_pylist()}
    assert sorted(index["location"]) == sorted(rows)
    for loc, geom in zip(index["location"], index.geometry, strict=True):
        nb = rows[loc]["native_bounds"]
        assert geom.equals(box(nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]))


def test_gti_of_a_query_result(overlapping, tmp_path):
    rel = overlapping.query(end="2023-02-28")  # tiles a and c only
    path = rel.to_gti(tmp_path / "early.gti.gpkg")
    with rasterio.open(path) as ds:
        assert tuple(ds.bounds) == (500_000, 4_399_360, 500_790, 4_400_100)
        np.testing.assert_array_equal(ds.read(), _load_like(rel, ds))
    assert len(pyogrio.read_dataframe(path)) == 2


def test_mixed_crs_needs_a_target_srs(tmp_path):
    # one file in UTM 30N and one in UTM 31N across the zone edge (lon 0°)
    rng = np.random.default_rng(5)
    a = rng.integers(1, 200, size=(1, 40, 40)).astype("uint8")
    b = rng.integers(1, 200, size=(1, 40, 40)).astype("uint8")
    (tmp_path / "f").mkdir()
    _cog(tmp_path / "f" / "w_20230101.tif", a, "EPSG:32630", from_origin(755_000, 4_432_000, 30, 30), 255)
    _cog(tmp_path / "f" / "e_20230102.tif", b, "EPSG:32631", from_origin(244_000, 4_432_000, 30, 30), 255)
    cat = geoduck.build_raster_catalog(
        tmp_path / "f", tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})", progress=False
    )
    with pytest.raises(CRSError, match="2 CRSs .*EPSG:32630, EPSG:32631.*srs="):
        cat.to_gti(tmp_path / "x.gti.gpkg")
    with pytest.raises(ArgumentError, match="resolution="):
        cat.to_gti(tmp_path / "x.gti.gpkg", srs="EPSG:32630")
    assert not list(tmp_path.glob("*.gpkg")) and not list(tmp_path.glob(".*"))
    path = cat.to_gti(tmp_path / "utm30.gti.gpkg", srs="EPSG:32630", resolution=30.0)
    index = pyogrio.read_dataframe(path)
    east = cat.query(start="2023-01-02").to_arrow().to_pylist()[0]
    nb = east["native_bounds"]
    geom = index.geometry[index["location"] == east["filepath"]].iloc[0]
    corners = transformer("EPSG:32631", "EPSG:32630").transform(
        [nb["xmin"], nb["xmax"], nb["xmax"], nb["xmin"]], [nb["ymin"], nb["ymin"], nb["ymax"], nb["ymax"]]
    )
    for x, y in zip(*corners, strict=True):  # the footprint reprojected to the index SRS
        assert geom.exterior.distance(box(x - 1e-6, y - 1e-6, x + 1e-6, y + 1e-6)) < 1e-6
    with rasterio.open(path) as ds:
        assert ds.crs.to_string() == "EPSG:32630" and ds.count == 1 and ds.res == (30.0, 30.0)
        gdal = ds.read()
        mine = _load_like(cat, ds)
    valid = (gdal != 255) & (mine != 255)
    assert valid.sum() > 2500  # both files reprojected into the mosaic
    # GDAL warped the UTM 31 tile itself: same values wherever both have data (nearest); only some
    # pixels on the warped tile's outline differ in whether they count as covered
    np.testing.assert_array_equal(gdal[valid], mine[valid])
    assert ((gdal == 255) != (mine == 255)).mean() < 0.02


def test_refusals(overlapping, tmp_path):
    (tmp_path / "f").mkdir()
    _cog(
        tmp_path / "f" / "x_20230105.tif",
        np.ones((3, 16, 16), "uint16"),
        "EPSG:32630",
        from_origin(500_000, 4_400_000, 10, 10),
        0,
    )
    other = geoduck.build_raster_catalog(
        tmp_path / "f", tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})", progress=False
    )
    with pytest.raises(ArgumentError, match="band counts"):
        overlapping.union(other).to_gti(tmp_path / "x.gti.gpkg")
    with pytest.raises(ArgumentError, match=r"\.gti\.gpkg"):
        overlapping.to_gti(tmp_path / "x.tif")
    with pytest.raises(ArgumentError, match="no rows"):
        overlapping.query(start="2030-01-01").to_gti(tmp_path / "x.gti.gpkg")
    with pytest.raises(ArgumentError, match="nodata"):
        _cog(
            tmp_path / "g.tif", np.ones((2, 16, 16), "uint16"), "EPSG:32630", from_origin(500_000, 4_400_000, 10, 10), 7
        )
        nd = geoduck.build_raster_catalog(tmp_path / "g.tif", tmp_path / "cat2", progress=False)
        overlapping.union(nd).to_gti(tmp_path / "x.gti.gpkg")
    assert not list(tmp_path.glob("*.gpkg"))


def test_band_files_need_one_band(tmp_path):
    from geoduck.testing import SENTINEL2_REGEX, synthetic_sentinel2_archive

    synthetic_sentinel2_archive(
        tmp_path / "a", dates=(dt.date(2023, 6, 15),), size=20, bands_10m=("B02", "B03"), bands_20m=()
    )
    s2 = geoduck.build_raster_catalog(tmp_path / "a", tmp_path / "cat", filename_regex=SENTINEL2_REGEX, progress=False)
    with pytest.raises(ArgumentError, match="band = 'B02'"):
        s2.to_gti(tmp_path / "x.gti.gpkg", srs="EPSG:32630", resolution=10)
    path = s2.where("band = 'B03'").to_gti(tmp_path / "b03.gti.gpkg", srs="EPSG:32630", resolution=10)
    assert len(pyogrio.read_dataframe(path)) == 2


def test_cli_export_gti(overlapping, tmp_path):
    runner = CliRunner()
    cat_dir = str(overlapping.node.root)
    out = tmp_path / "m.gti.gpkg"
    res = runner.invoke(main, ["export", "gti", str(out), "-c", cat_dir, "--where", "start_datetime >= '2023-02-01'"])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), _load_like(overlapping.query(start="2023-02-01"), ds))
    res = runner.invoke(main, ["export", "gti", str(tmp_path / "f.gti.fgb"), "-c", cat_dir])
    assert res.exit_code == 0, res.output  # FlatGeobuf: same layer metadata (rasterio's GDAL has no FlatGeobuf driver)
    assert pyogrio.read_info(tmp_path / "f.gti.fgb")["layer_metadata"]["SORT_FIELD"] == "start_datetime"
    res = runner.invoke(main, ["export", "gti", str(tmp_path / "x.gti.gpkg"), "-c", cat_dir, "--resolution", "0", "0"])
    assert res.exit_code == 1 and res.output.startswith("Error:")


def test_ties_in_time_follow_the_path_order_as_in_load_raster(tmp_path):
    (tmp_path / "f").mkdir()
    for name, x0, value in (("b_20230101", 500_000, 1), ("a_20230101", 500_100, 2), ("c_20230101", 500_050, 3)):
        _cog(tmp_path / "f" / f"{name}.tif", np.full((1, 32, 32), value, "uint8"), "EPSG:32630",
             from_origin(x0, 4_400_000, 10, 10), 0)  # fmt: skip
    cat = geoduck.build_raster_catalog(
        tmp_path / "f", tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})", progress=False
    )
    with rasterio.open(cat.to_gti(tmp_path / "t.gti.gpkg")) as ds:
        gdal = ds.read()
        np.testing.assert_array_equal(gdal, _load_like(cat, ds))
    assert sorted(np.unique(gdal[0, 0])) == [1, 2, 3]
    assert (gdal[0, 0, 2], gdal[0, 0, 12], gdal[0, 0, 40]) == (1, 3, 2)  # b alone; a, b, c: c on top; a alone
