"""Hostile and broken inputs for every builder: each case is indexed correctly or reported
(path + reason) while the rest of the build completes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from rasterio.transform import Affine

import geoduck
from geoduck.testing import write_raster


def _good(path: Path, *, x0: float = 400_000.0, size: int = 8) -> Path:
    return write_raster(
        path,
        np.ones((1, size, size), "uint8"),
        crs="EPSG:32630",
        transform=Affine(10, 0, x0, 0, -10, 4_400_000),
        tiled=False,
    )


def _raw_tif(path: Path, width: int, height: int, *, crs: str | None, transform: Affine | None) -> Path:
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8")
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.zeros((1, height, width), "uint8"))
    return path


@pytest.fixture(scope="module")
def raster_matrix(tmp_path_factory):
    """(directory, {case: path}, expected outcome per case: 'ok' or a reason fragment)."""
    root = tmp_path_factory.mktemp("hostile_rasters")
    cases: dict[str, tuple[Path, str]] = {}

    def case(name: str, path: Path, expect: str) -> None:
        cases[name] = (path, expect)

    case("good", _good(root / "good.tif"), "ok")
    (root / "zero.tif").write_bytes(b"")
    case("zero-byte", root / "zero.tif", "not a readable raster")
    good_bytes = (root / "good.tif").read_bytes()
    (root / "truncated.tif").write_bytes(good_bytes[: len(good_bytes) // 3])
    case("truncated", root / "truncated.tif", "")
    (root / "text.tif").write_text("this is not a GeoTIFF\n")
    case("text named .tif", root / "text.tif", "not a readable raster")
    case("no CRS", _raw_tif(root / "nocrs.tif", 4, 4, crs=None, transform=Affine(1, 0, 0, 0, -1, 4)), "no CRS")
    case(
        "no geotransform", _raw_tif(root / "notransform.tif", 4, 4, crs="EPSG:32630", transform=None), "no geotransform"
    )
    case(
        "rotated",
        _raw_tif(
            root / "rotated.tif",
            10,
            10,
            crs="EPSG:32630",
            transform=Affine.translation(400_000, 4_400_000) @ Affine.rotation(30) @ Affine.scale(10, -10),
        ),
        "ok",
    )
    case(
        "1x1",
        _raw_tif(root / "one.tif", 1, 1, crs="EPSG:32630", transform=Affine(10, 0, 400_000, 0, -10, 4_400_000)),
        "ok",
    )
    case(
        "huge header",
        _raw_tif(root / "huge.tif", 1, 1, crs="EPSG:4326", transform=Affine(1e-4, 0, -10, 0, -1e-4, 40)),
        "ok",
    )
    # A huge-dimension header: a VRT declaring 10^7 x 10^7 pixels (no data is read to index it).
    (root / "huge.vrt").write_text(
        '<VRTDataset rasterXSize="10000000" rasterYSize="10000000"><SRS>EPSG:4326</SRS>'
        "<GeoTransform>-10, 1e-7, 0, 40, 0, -1e-7</GeoTransform>"
        '<VRTRasterBand dataType="Byte" band="1"/></VRTDataset>'
    )
    case("huge dimensions", root / "huge.vrt", "ok")
    for i, name in enumerate(["with space.tif", "ünïcødé_名前.tif", "quote'd\"name.tif", "semi;colon -- x.tif"]):
        case(f"name {name!r}", _good(root / name, x0=410_000 + i * 1000), "ok")
    os.symlink(root / "does-not-exist.tif", root / "dangling.tif")
    case("dangling symlink", root / "dangling.tif", "")
    locked = root / "locked"
    locked.mkdir()
    _good(locked / "inside.tif")
    locked.chmod(0)
    return root, cases, locked


def test_raster_builder_matrix(raster_matrix, tmp_path):
    root, cases, locked = raster_matrix
    paths = [str(p) for p, _ in cases.values()]
    paths.append(str(cases["good"][0]))  # the same path given twice
    paths.append(str(locked / "inside.tif"))  # a file in a directory without read permission
    try:
        cat = geoduck.build_raster_catalog(paths, tmp_path / "cat", progress=False, workers=1)
    finally:
        locked.chmod(0o755)
    report = cat.build_report
    errors = dict(report.errors)
    indexed = set(cat.to_arrow()["filepath"].to_pylist())
    for name, (path, expect) in cases.items():
        if expect == "ok":
            assert str(path) in indexed, f"{name} should be indexed; errors: {errors.get(str(path))}"
        else:
            assert str(path) in errors, f"{name} should be reported"
            assert expect in errors[str(path)], f"{name}: {errors[str(path)]!r}"
    if os.geteuid() != 0:  # root reads through permissions
        assert str(locked / "inside.tif") in errors
    assert len(indexed) == sum(1 for _, e in cases.values() if e == "ok") + (os.geteuid() == 0)
    # the good file given twice is indexed once; ids unique
    ids = cat.to_arrow()["id"].to_pylist()
    assert len(ids) == len(set(ids))
    # the 1x1 and rotated rasters have correct footprints: rotated = envelope of the 4 corners
    rows = {r["filepath"]: r for r in cat.to_arrow().to_pylist()}
    rotated = rows[str(cases["rotated"][0])]
    with rasterio.open(cases["rotated"][0]) as src:
        corners = [src.transform @ c for c in ((0, 0), (10, 0), (0, 10), (10, 10))]
    xs, ys = zip(*corners, strict=True)
    assert rotated["native_bounds"] == pytest.approx(
        {"xmin": min(xs), "ymin": min(ys), "xmax": max(xs), "ymax": max(ys)}
    )
    huge = rows[str(cases["huge dimensions"][0])]
    assert (huge["width"], huge["height"]) == (10_000_000, 10_000_000)
    assert huge["bbox"]["xmax"] == pytest.approx(-9.0)


def test_xarray_builder_matrix(tmp_path):
    src = tmp_path / "cubes"
    src.mkdir()
    time = pd.date_range("2023-01-01", periods=3, freq="D")
    good = xr.Dataset(
        {"t": (("time", "lat", "lon"), np.zeros((3, 4, 5), "float32"))},
        coords={
            "time": time,
            "lat": ("lat", [40.5, 40.0, 39.5, 39.0], {"units": "degrees_north"}),
            "lon": ("lon", np.arange(5.0), {"units": "degrees_east"}),
        },
    )
    good.to_netcdf(src / "good.nc")
    broken = good.copy()
    broken["time"] = ("time", [0, 1, 2], {"units": "days since the dawn of time", "calendar": "standard"})
    broken.to_netcdf(src / "broken_time.nc")
    nocrs = xr.Dataset({"v": (("y", "x"), np.zeros((3, 3)))}, coords={"y": [3.0, 2.0, 1.0], "x": [0.0, 1.0, 2.0]})
    nocrs.to_netcdf(src / "no_crs.nc")
    (src / "zero.nc").write_bytes(b"")
    (src / "text.nc").write_text("not netcdf")
    cat = geoduck.build_xarray_catalog(src, tmp_path / "cat", progress=False, workers=1)
    errors = dict(cat.build_report.errors)
    assert set(cat.to_arrow()["filepath"].to_pylist()) == {str(src / "good.nc")}
    assert "time" in errors[str(src / "broken_time.nc")].lower()
    assert "crs" in errors[str(src / "no_crs.nc")].lower()
    assert str(src / "zero.nc") in errors and str(src / "text.nc") in errors


def test_vector_builder_matrix(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    src = tmp_path / "labels"
    src.mkdir()
    gpd.GeoDataFrame({"c": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(src / "good.geojson")
    (src / "empty.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (src / "zero.geojson").write_bytes(b"")
    (src / "garbage.gpkg").write_text("not a geopackage")
    gpd.GeoDataFrame({"c": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(src / "sp ace'q.geojson")
    cat = geoduck.build_vector_catalog(src, tmp_path / "cat", progress=False, workers=1)
    errors = dict(cat.build_report.errors)
    assert set(cat.to_arrow()["filepath"].to_pylist()) == {str(src / "good.geojson"), str(src / "sp ace'q.geojson")}
    assert "empty" in errors[str(src / "empty.geojson")].lower()
    assert str(src / "zero.geojson") in errors and str(src / "garbage.gpkg") in errors
