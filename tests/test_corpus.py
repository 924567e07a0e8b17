"""Real files (tools/fetch_corpus.py): what the catalog records is what rasterio / pyogrio / xarray
report for the same file, and loaded pixels are rasterio's, with no masked pixel coming back valid."""

from __future__ import annotations

import math

import numpy as np
import pyogrio
import pyproj
import pytest
import rasterio
import shapely
from corpus import ids, of_kind
from rasterio.enums import Resampling
from rasterio.warp import reproject

import geoduck
from geoduck.geo import densified_polygon

RASTERS = of_kind("raster")
VECTORS = of_kind("vector")
NETCDF = of_kind("netcdf")


def _rows(cat) -> dict[str, dict]:
    return {r["filepath"]: r for r in cat.to_arrow().to_pylist()}


@pytest.fixture(scope="module")
def raster_catalog(corpus_dir, tmp_path_factory):
    paths = [str(corpus_dir / f.path) for f in RASTERS]
    cat = geoduck.build_raster_catalog(paths, tmp_path_factory.mktemp("corpus") / "cat", workers=1, progress=False)
    return cat, _rows(cat)


def test_every_corpus_raster_is_indexed(raster_catalog, corpus_dir):
    cat, rows = raster_catalog
    assert cat.build_report.errors == ()
    assert sorted(rows) == sorted(str(corpus_dir / f.path) for f in RASTERS)


def _envelope(t, w: int, h: int) -> tuple[float, float, float, float]:
    xs = [t.a * c + t.b * r + t.c for c, r in ((0, 0), (w, 0), (w, h), (0, h))]
    ys = [t.d * c + t.e * r + t.f for c, r in ((0, 0), (w, 0), (w, h), (0, h))]
    return min(xs), min(ys), max(xs), max(ys)


@pytest.mark.parametrize("item", RASTERS, ids=ids(RASTERS))
def test_catalog_row_equals_rasterio(item, raster_catalog, corpus_dir):
    path = str(corpus_dir / item.path)
    row = raster_catalog[1][path]
    with rasterio.open(path) as src:  # rasterio's defaults: sidecars seen as any user sees them
        assert pyproj.CRS.from_user_input(row["crs"]) == pyproj.CRS.from_wkt(src.crs.to_wkt())
        assert row["transform"] == list(src.transform)[:6]
        assert (row["width"], row["height"], row["count"]) == (src.width, src.height, src.count)
        assert row["dtype"] == src.dtypes[0]
        if src.nodata is None:
            assert row["nodata"] is None
        else:
            assert row["nodata"] == src.nodata or (math.isnan(row["nodata"]) and math.isnan(src.nodata))
        nb = row["native_bounds"]
        assert (nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]) == _envelope(src.transform, src.width, src.height)
        if src.transform.b == 0 == src.transform.d:
            b = src.bounds
            assert (nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]) == (
                b.left,
                min(b.bottom, b.top),
                b.right,
                max(b.bottom, b.top),
            )
        assert (row["res_x"], row["res_y"]) == pytest.approx(src.res, rel=1e-12)


@pytest.mark.parametrize("item", RASTERS, ids=ids(RASTERS))
def test_load_on_own_grid_equals_rasterio(item, raster_catalog, corpus_dir):
    """Each file loaded by geoduck onto its own grid (north-up) or onto its envelope grid (rotated):
    pixels equal rasterio's, and every pixel rasterio masks holds the fill value."""
    cat, rows = raster_catalog
    path = str(corpus_dir / item.path)
    row = rows[path]
    one = cat.where(f"id = '{row['id']}'")
    nb = row["native_bounds"]
    with rasterio.open(path) as src:
        t = src.transform
        if t.b == 0 == t.d and t.e < 0:
            sl = geoduck.GeoSlice((nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]), row["crs"], (t.a, -t.e))
            got = geoduck.load_raster(one, sl, resampling="nearest")
            assert got.values.shape == (src.count, src.height, src.width)
            want, mask = src.read(), src.read_masks()
        else:  # rotated: rasterio/GDAL's own warp onto the same north-up grid is the oracle
            res = min(row["res_x"], row["res_y"])
            sl = geoduck.GeoSlice((nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]), row["crs"], res)
            got = geoduck.load_raster(one, sl, resampling="nearest")
            h, w = sl.shape
            want = np.zeros((src.count, h, w), src.dtypes[0])
            alpha = np.zeros((h, w), np.uint8)
            reproject(
                src.read(),
                want,
                src_transform=t,
                src_crs=src.crs,
                dst_transform=sl.transform,
                dst_crs=src.crs,
                resampling=Resampling.nearest,
            )
            reproject(
                np.full((src.height, src.width), 255, np.uint8),
                alpha,
                src_transform=t,
                src_crs=src.crs,
                dst_transform=sl.transform,
                dst_crs=src.crs,
                resampling=Resampling.nearest,
                dst_nodata=0,
            )
            mask = np.broadcast_to(alpha, want.shape)
    valid = mask > 0
    if want.dtype.kind == "f":  # NaN is never a valid observation for geoduck (nor for a mean)
        valid &= ~np.isnan(want)
    assert valid.any()
    np.testing.assert_array_equal(got.values[valid], want[valid])
    fill = got.fill_value_default
    masked = got.values[~valid]
    if isinstance(fill, float) and math.isnan(fill):
        assert np.isnan(masked).all()
    else:
        assert (masked == fill).all()
    if row["nodata"] is not None and (~valid).any():
        assert fill == row["nodata"] or (math.isnan(fill) and math.isnan(row["nodata"]))


def test_sidecar_nodata_is_catalogued_and_masked(raster_catalog, corpus_dir):
    """elev_pam.tif keeps its nodata only in the .aux.xml: catalogued, and its holes come back as
    nodata, not as valid-looking zeros."""
    cat, rows = raster_catalog
    row = rows[str(corpus_dir / "derived/elev_pam.tif")]
    assert row["nodata"] == -32768.0
    with rasterio.open(corpus_dir / "terra/elev.tif") as src:
        holes = src.read(1) == src.nodata
    assert holes.sum() > 1000
    t = row["transform"]
    nb = row["native_bounds"]
    sl = geoduck.GeoSlice((nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]), row["crs"], (t[0], -t[4]))
    got = geoduck.load_raster(cat.where(f"id = '{row['id']}'"), sl, resampling="nearest")
    assert got.fill_value_default == -32768
    assert (got.values[0][holes] == -32768).all() and (got.values[0][~holes] != -32768).all()


def test_world_file_and_two_file_formats_are_georeferenced(raster_catalog, corpus_dir):
    rows = raster_catalog[1]
    world = rows[str(corpus_dir / "derived/L7_band1_world.tif")]
    with rasterio.open(corpus_dir / "stars/L7_ETMs.tif") as src:
        assert world["transform"] == pytest.approx(list(src.transform)[:6], abs=1e-6)
        assert world["crs"] == "EPSG:31985"
    assert rows[str(corpus_dir / "terra/test.grd")]["width"] == 80
    envi = rows[str(corpus_dir / "rgdal/test_envi_class.img")]
    assert envi["transform"] == pytest.approx([0.5, 0.0, -100.0, 0.0, -0.5, 63.05], abs=1e-6)


def test_towgs84_footprint_uses_the_datum_shift(raster_catalog, corpus_dir):
    row = raster_catalog[1][str(corpus_dir / "derived/meuse_rd_towgs84.tif")]
    from fetch_corpus import RD_TOWGS84

    tr = pyproj.Transformer.from_crs(pyproj.CRS.from_proj4(RD_TOWGS84), "EPSG:4326", always_xy=True)
    nb = row["native_bounds"]
    k = np.linspace(0.0, 1.0, 201)
    x0, y0, x1, y1 = nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]
    xs = np.concatenate([x0 + k * (x1 - x0), np.full(k.size, x1), x1 - k * (x1 - x0), np.full(k.size, x0)])
    ys = np.concatenate([np.full(k.size, y0), y0 + k * (y1 - y0), np.full(k.size, y1), y1 - k * (y1 - y0)])
    lon, lat = tr.transform(xs, ys)
    b = row["bbox"]
    assert (b["xmin"], b["ymin"], b["xmax"], b["ymax"]) == pytest.approx(
        (lon.min(), lat.min(), lon.max(), lat.max()), abs=1e-7
    )
    # the +towgs84 shift moves the footprint by ~100 m against the same numbers on a bare Bessel datum
    bare = pyproj.Transformer.from_crs(
        pyproj.CRS.from_proj4(
            RD_TOWGS84.replace("+towgs84=565.2369,50.0087,465.658,-0.406857,0.350733,-1.87035,4.0812 ", "")
        ),
        "EPSG:4326",
        always_xy=True,
    )
    blon, blat = bare.transform(xs, ys)
    assert abs(blat.min() - b["ymin"]) > 1e-4


def test_rotated_grid_footprint_is_its_parallelogram(raster_catalog, corpus_dir):
    row = raster_catalog[1][str(corpus_dir / "stars/geomatrix.tif")]
    footprint = shapely.from_wkb(row["geometry"])
    with rasterio.open(corpus_dir / "stars/geomatrix.tif") as src:
        t, w, h = src.transform, src.width, src.height
        corners = [t * (c, r) for c, r in ((0, 0), (w, 0), (w, h), (0, h))]
        to_ll = pyproj.Transformer.from_crs(src.crs.to_wkt(), "EPSG:4326", always_xy=True)
    xs, ys = densified_polygon(corners)
    lon, lat = to_ll.transform(xs, ys)
    want = shapely.Polygon(np.column_stack([lon, lat]))
    assert footprint.symmetric_difference(want).area < 1e-6 * want.area
    envelope = shapely.box(*_envelope(t, w, h))
    assert shapely.Polygon(corners).area < 0.8 * envelope.area  # the envelope would overstate it
    ex0, ey0, ex1, ey1 = envelope.bounds
    x0, y0 = to_ll.transform(ex0, ey0)  # a corner of the envelope is outside the true footprint
    assert not footprint.contains(shapely.Point(x0, y0))


# -- vector files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vector_rows(corpus_dir, tmp_path_factory):
    paths = [str(corpus_dir / f.path) for f in VECTORS]
    cat = geoduck.build_vector_catalog(paths, tmp_path_factory.mktemp("corpus") / "vcat", workers=1, progress=False)
    assert cat.build_report.errors == ()
    return cat.to_arrow().to_pylist()


@pytest.mark.parametrize("item", VECTORS, ids=ids(VECTORS))
def test_vector_rows_equal_pyogrio(item, vector_rows, corpus_dir):
    path = str(corpus_dir / item.path)
    rows = {r["layer"]: r for r in vector_rows if r["filepath"] == path}
    layers = [name for name, _ in pyogrio.list_layers(path)]
    assert sorted(rows) == sorted(layers)
    for name in layers:
        info = pyogrio.read_info(path, layer=name, force_feature_count=True, force_total_bounds=True)
        row = rows[name]
        assert row["n_features"] == info["features"]
        assert pyproj.CRS.from_user_input(row["crs"]) == pyproj.CRS.from_user_input(info["crs"])
        nb = row["native_bounds"]
        assert (nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]) == pytest.approx(tuple(info["total_bounds"]))


# -- NetCDF cubes ----------------------------------------------------------------------------------

NETCDF_CASES = NETCDF


def _cell_edges(c: np.ndarray) -> tuple[float, float]:
    half = abs(float(np.diff(c).mean())) / 2
    return float(c.min()) - half, float(c.max()) + half


@pytest.mark.parametrize("item", NETCDF_CASES, ids=ids(NETCDF))
def test_netcdf_footprint_matches_xarray_coords(item, corpus_dir, tmp_path):
    """The catalogued native bounds are the outer cell edges of xarray's coordinates, in the CRS's
    own units (metres for a projected grid whose x/y are in km), or the bounds variables if any."""
    import xarray as xr

    path = corpus_dir / item.path
    cat = geoduck.build_xarray_catalog([str(path)], tmp_path / "cat", workers=1, progress=False)
    assert cat.build_report.errors == ()
    rows = cat.to_arrow().to_pylist()
    with xr.open_dataset(path, decode_times=False) as ds:
        for row in rows:
            da = ds[row["variable"]]
            xdim, ydim = da.dims[-1], da.dims[-2]
            x, y = ds[xdim], ds[ydim]
            scale = 1000.0 if x.attrs.get("units") == "km" else 1.0
            if x.attrs.get("bounds") in ds.variables:  # bcsd_obs_1999.nc names bounds it lacks
                xb, yb = ds[x.attrs["bounds"]].values, ds[y.attrs["bounds"]].values
                want = (xb.min(), yb.min(), xb.max(), yb.max())
            else:
                (x0, x1), (y0, y1) = _cell_edges(x.values), _cell_edges(y.values)
                want = (x0 * scale, y0 * scale, x1 * scale, y1 * scale)
            nb = row["native_bounds"]
            assert (nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]) == pytest.approx(want, rel=1e-9, abs=1e-6)


def test_netcdf_time_bounds_give_the_interval(corpus_dir, tmp_path):
    """With CF ``time_bnds`` (months of 1999), the row's interval is the bounds' span, closed:
    [1999-01-01, 1999-12-31T23:59:59.999999], not first..last time step."""
    import pandas as pd

    path = corpus_dir / "derived/bcsd_obs_1999_bnds.nc"
    cat = geoduck.build_xarray_catalog([str(path)], tmp_path / "cat", workers=1, progress=False)
    for row in cat.to_arrow().to_pylist():
        assert pd.Timestamp(row["start_datetime"]) == pd.Timestamp("1999-01-01", tz="UTC")
        assert pd.Timestamp(row["end_datetime"]) == pd.Timestamp("1999-12-31 23:59:59.999999", tz="UTC")


def test_cli_query_csv_of_corpus_rows_equals_rasterio(raster_catalog, corpus_dir, tmp_path):
    """``geoduck query --format csv`` (written without pandas) on the catalog of real files: the
    same text as the pandas route, each file found by a lon/lat box around its rasterio bounds, and
    every row's grid as rasterio reads the file."""
    import csv
    import io

    from click.testing import CliRunner
    from rasterio.warp import transform_bounds

    from geoduck.catalog import _arrow_to_frame
    from geoduck.cli import _csv_text, _emit, main

    cat, _ = raster_catalog
    out = CliRunner().invoke(main, ["query", str(cat.node.root), "--format", "csv"])
    assert out.exit_code == 0, out.output
    _emit(_arrow_to_frame(cat.to_arrow(), require_geometry=True), "csv", tmp_path / "pandas.csv")
    assert out.output == (tmp_path / "pandas.csv").read_text()
    table = cat.to_arrow()
    plain = [c for c in table.column_names if c not in ("geometry", "bbox", "native_bounds", "transform")]
    assert _csv_text(table, plain, {}) is not None  # (the pandas-free writer wrote it, no fallback)
    rows = {r["filepath"]: r for r in csv.DictReader(io.StringIO(out.output))}
    assert sorted(rows) == sorted(str(corpus_dir / f.path) for f in RASTERS)
    for path, row in rows.items():
        with rasterio.open(path) as src:
            assert (int(row["width"]), int(row["height"]), int(row["count"])) == (src.width, src.height, src.count)
            assert row["dtype"] == src.dtypes[0]
            assert row["nodata"] == ("" if src.nodata is None else repr(float(src.nodata)).replace("nan", ""))
            if src.transform.b != 0 or src.transform.d != 0 or not src.crs:
                continue
            w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        cx, cy = (w + e) / 2, (s + n) / 2
        box = [str(v) for v in (cx - 1e-6, cy - 1e-6, cx + 1e-6, cy + 1e-6)]
        hit = CliRunner().invoke(main, ["query", str(cat.node.root), "--bbox", *box, "--format", "csv"])
        assert hit.exit_code == 0, hit.output
        assert path in {r["filepath"] for r in csv.DictReader(io.StringIO(hit.output))}
