"""geoduck.header: one header reader for builder and loader; sidecars; CRSs that cannot be placed
on Earth; GDAL errors wrapped with the path."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

import geoduck
from geoduck.builders.raster import read_raster_header
from geoduck.errors import CRSError, GeoduckError, SourceError
from geoduck.header import RasterHeader, is_remote, read_header
from geoduck.loaders import raster as lr


def _write(path, data, *, crs, transform, nodata=None):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data, 1)
    return path


LOCAL_CS = 'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'


def test_engineering_crs_is_reported_by_path_with_the_reason(tmp_path):
    data = np.arange(64, dtype="uint8").reshape(8, 8)
    p = _write(tmp_path / "site.tif", data, crs=CRS.from_wkt(LOCAL_CS), transform=Affine(1, 0, 0, 0, -1, 8))
    good = _write(tmp_path / "good.tif", data, crs="EPSG:32630", transform=Affine(10, 0, 5e5, 0, -10, 4e6))
    with pytest.raises(CRSError, match=r"local/engineering CRS.*site\.tif"):
        read_raster_header(str(p))
    cat = geoduck.build_raster_catalog(tmp_path, tmp_path / "cat", workers=1, progress=False)
    assert len(cat) == 1 and cat.to_arrow().column("filepath").to_pylist() == [str(good)]
    ((path, reason),) = cat.build_report.errors
    assert path == str(p)
    assert "CRS 'site grid' is a local/engineering CRS" in reason and "cannot be placed on Earth" in reason
    assert "PROJ" not in reason and "proj_" not in reason
    with pytest.raises(CRSError, match="local/engineering"):
        lr.open_raster(str(p))


def test_gdal_errors_are_wrapped_with_the_path(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00" + bytes(200))
    with pytest.raises(SourceError, match=r"not a readable raster: .*broken\.tif") as info:
        lr.open_raster(str(bad))
    assert isinstance(info.value, GeoduckError) and isinstance(info.value, OSError)
    assert "RasterioIOError" not in str(info.value)
    # a file truncated after its header: the read fails inside GDAL, the error names the file
    data = np.arange(256 * 256, dtype="uint16").reshape(256, 256)
    p = _write(tmp_path / "trunc.tif", data, crs="EPSG:32630", transform=Affine(10, 0, 5e5, 0, -10, 4e6))
    cat = geoduck.build_raster_catalog([p], tmp_path / "cat", workers=1, progress=False)
    raw = p.read_bytes()
    p.write_bytes(raw[:1024])
    sl = geoduck.GeoSlice((5e5, 4e6 - 2560, 5e5 + 2560, 4e6), "EPSG:32630", 10)
    with pytest.raises(SourceError, match=r"trunc\.tif"):
        geoduck.load_raster(cat, sl, max_workers=1)


def test_builder_and_loader_read_the_same_header(tmp_path):
    """Sidecar nodata and band descriptions (.aux.xml) reach the catalog row and the loader alike."""
    data = np.arange(100, dtype="int16").reshape(10, 10)
    data[0, :] = -9999
    p = _write(tmp_path / "dem.tif", data, crs="EPSG:32630", transform=Affine(10, 0, 5e5, 0, -10, 4e6))
    (tmp_path / "dem.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><Description>elevation</Description>'
        "<NoDataValue>-9999</NoDataValue></PAMRasterBand></PAMDataset>"
    )
    hdr = read_header(str(p))
    assert hdr.nodata == (-9999.0,) and hdr.descriptions == ("elevation",)
    assert hdr.mask_flags == (("nodata",),) and hdr.simple_masks
    row = read_raster_header(str(p))[0]
    assert row["nodata"] == -9999.0
    opened = lr.open_raster(str(p))
    assert opened.nodata == hdr.nodata and opened.descriptions == hdr.descriptions
    cat = geoduck.build_raster_catalog([p], tmp_path / "cat", workers=1, progress=False)
    sl = geoduck.GeoSlice((5e5, 4e6 - 100, 5e5 + 100, 4e6), "EPSG:32630", 10)
    got = geoduck.load_raster(cat, sl, bands=["elevation"])
    assert got.fill_value_default == -9999
    np.testing.assert_array_equal(got.values[0], data)


def test_rotated_header_bounds_are_the_corner_envelope(tmp_path):
    t = Affine.translation(5e5, 4e6) * Affine.rotation(30) * Affine.scale(10, -10)
    p = _write(tmp_path / "rot.tif", np.ones((20, 40), "uint8"), crs="EPSG:32630", transform=t)
    hdr = read_header(str(p))
    assert isinstance(hdr, RasterHeader) and hdr.rotated
    xs = [t.a * c + t.b * r + t.c for c, r in ((0, 0), (40, 0), (40, 20), (0, 20))]
    ys = [t.d * c + t.e * r + t.f for c, r in ((0, 0), (40, 0), (40, 20), (0, 20))]
    assert hdr.bounds == (min(xs), min(ys), max(xs), max(ys))
    assert hdr.res == pytest.approx((10.0, 10.0))


@pytest.mark.parametrize(
    ("path", "remote"),
    [
        ("/data/x.tif", False),
        ("file:///data/x.tif", False),
        ("/vsizip//data/a.zip/x.tif", False),
        ("s3://bucket/x.tif", True),
        ("https://host/x.tif", True),
        ("/vsicurl/https://h/x.tif", True),
        ("/vsis3/bucket/x.tif", True),
        ("/vsizip//vsicurl/https://h/a.zip/x.tif", True),
    ],
)
def test_which_paths_skip_sidecar_lookups(path, remote):
    assert is_remote(path) is remote


def test_vector_layer_in_an_engineering_crs_is_reported(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    p = tmp_path / "site.gpkg"
    gpd.GeoDataFrame({"v": [1, 2]}, geometry=[Point(0, 0), Point(5, 5)], crs=LOCAL_CS).to_file(p)
    with pytest.raises(geoduck.errors.BuildError):
        geoduck.build_vector_catalog([p], tmp_path / "cat", workers=1, progress=False)
    from geoduck.builders.vector import read_vector_header

    with pytest.raises(CRSError, match=r"layer 'site' of site\.gpkg: CRS 'site grid' is a local/engineering CRS"):
        read_vector_header(str(p))
