"""``load_raster`` merge methods, bands by name, mixed grids, concurrency, fork safety and
``load_raster_timeseries``, each checked against numpy references built from the source arrays."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rasterio.enums import Resampling
from rasterio.transform import Affine

import geoduck
from geoduck.errors import ArgumentError, NoDataError
from geoduck.loaders import raster as lr
from geoduck.loaders import sources as ls
from geoduck.loaders.merge import MERGERS, output_spec
from geoduck.testing import coordinate_raster, pixel_centres, write_raster

DATED = r"_(?P<date>\d{8})\.tif$"
ORIGIN = (500000.0, 4400000.0)
RES = 10.0
H, W = 24, 32
NAMES = ["B02", "B03", "QA60"]
# name, date, (row0, row1, col0, col1) on the H × W reference grid (top-left at ORIGIN)
SOURCES = [("a", "20230105", (0, 24, 0, 20)), ("b", "20230120", (0, 16, 8, 32)), ("c", "20230303", (6, 24, 4, 28))]


def build(paths, out: Path, regex: str | None = DATED) -> geoduck.Catalog:
    return geoduck.build_raster_catalog([str(p) for p in paths], out, filename_regex=regex, progress=False, workers=1)


class Stack:
    """Three overlapping dated sources with nodata holes, and their arrays on the H × W grid."""

    def __init__(self, root: Path, dtype: str) -> None:
        rng = np.random.default_rng(7)
        self.dtype = np.dtype(dtype)
        self.nodata = -1 if self.dtype.kind == "i" else float("nan")
        self.values = np.zeros((3, 3, H, W), dtype=self.dtype)  # source, band, y, x
        self.valid = np.zeros((3, 3, H, W), dtype=bool)
        paths = []
        for k, (name, date, (r0, r1, c0, c1)) in enumerate(SOURCES):
            v = rng.integers(0, 50, size=(3, r1 - r0, c1 - c0)).astype(self.dtype)  # ties for min/max
            hole = rng.random(v.shape) < 0.15
            v[hole] = self.nodata
            transform = Affine(RES, 0, ORIGIN[0] + c0 * RES, 0, -RES, ORIGIN[1] - r0 * RES)
            paths.append(
                write_raster(
                    root / "src" / f"{name}_{date}.tif",
                    v,
                    crs="EPSG:32630",
                    transform=transform,
                    nodata=self.nodata,
                    descriptions=NAMES,
                )
            )
            self.values[k, :, r0:r1, c0:c1] = v
            self.valid[k, :, r0:r1, c0:c1] = ~hole
        self.catalog = build(paths, root / "cat")
        # the slice: the reference grid plus one column west of every source (partial reads)
        self.slice = geoduck.GeoSlice(
            (ORIGIN[0] - RES, ORIGIN[1] - H * RES, ORIGIN[0] + W * RES, ORIGIN[1]), "EPSG:32630", RES
        )

    def on_slice(self, a: np.ndarray, fill) -> np.ndarray:
        """A (..., H, W) reference array on the slice grid (one fill column in front)."""
        pad = np.full((*a.shape[:-1], 1), fill, dtype=a.dtype)
        return np.concatenate([pad, a], axis=-1)

    def reference(self, method: str, sources: list[int] | None = None) -> tuple[np.ndarray, object]:
        """What ``method`` must give, from the source arrays (sources in date order)."""
        ks = list(range(3)) if sources is None else sources
        v, ok = self.values[ks].astype(np.float64), self.valid[ks]
        dtype, fill = output_spec(method, self.dtype, None if self.dtype.kind == "f" else -1, len(ks))
        fill = self.nodata if method in ("first", "last", "min", "max") else fill
        anyok = ok.any(axis=0)
        if method in ("first", "last"):
            order = range(len(ks)) if method == "first" else reversed(range(len(ks)))
            out = np.full(v.shape[1:], np.nan)
            for k in order:
                take = ok[k] & np.isnan(out)
                out[take] = v[k][take]
        elif method in ("min", "max"):
            big = np.inf if method == "min" else -np.inf
            out = getattr(np, method)(np.where(ok, v, big), axis=0)
        elif method in ("sum", "mean"):
            out = np.where(ok, v, 0).sum(axis=0)
            if method == "mean":
                with np.errstate(invalid="ignore", divide="ignore"):
                    out = out / ok.sum(axis=0)
        elif method == "count":
            out = ok.sum(axis=0).astype(np.float64)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out = np.nanmedian(np.where(ok, v, np.nan), axis=0)
        if method != "count":
            out = np.where(anyok, out, np.nan if fill is None else fill)
        return self.on_slice(out, fill).astype(dtype), fill


@pytest.fixture(scope="module", params=["int16", "float32"])
def stack(request, tmp_path_factory) -> Stack:
    return Stack(tmp_path_factory.mktemp(f"stack_{request.param}"), request.param)


# -- merge methods ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(MERGERS))
def test_merge_method_matches_numpy(stack, method):
    g = geoduck.load_raster(stack.catalog, stack.slice, merge=method)
    expected, fill = stack.reference(method)
    assert g.values.dtype == expected.dtype
    assert g.values.shape == (3, H, W + 1) and g.transform == stack.slice.transform
    np.testing.assert_equal(g.fill_value_default, fill)
    if method in ("mean", "median"):
        np.testing.assert_allclose(g.values, expected, rtol=1e-6, equal_nan=True)
    else:
        np.testing.assert_array_equal(g.values, expected)
    n = stack.valid.sum(axis=0)  # the case is not trivial: 0, 1, 2 and 3 observations occur
    assert {0, 1, 2, 3} <= set(np.unique(n))


def test_merge_dtypes_and_fills(stack):
    fills = {m: geoduck.load_raster(stack.catalog, stack.slice, merge=m) for m in MERGERS}
    src = stack.dtype
    wide = np.dtype("float64") if src.kind == "f" else np.dtype("int64")
    floats = np.dtype("float32")
    expected = {
        "first": src,
        "last": src,
        "min": src,
        "max": src,
        "sum": wide,
        "count": np.dtype("uint16"),
        "mean": floats,
        "median": floats,
    }
    assert {m: g.values.dtype for m, g in fills.items()} == expected
    uncovered = (slice(None), slice(16, 24), slice(29, 33))  # no source there (nor the pad column)
    for m, g in fills.items():
        block = g.values[uncovered]
        if isinstance(g.fill_value_default, float) and np.isnan(g.fill_value_default):
            assert np.isnan(block).all(), m
        else:
            assert (block == g.fill_value_default).all(), m
    assert fills["count"].fill_value_default == 0 and np.isnan(fills["mean"].fill_value_default)


@pytest.mark.parametrize(
    ("src", "method", "dtype"),
    [
        ("uint8", "mean", "float32"),
        ("uint16", "median", "float32"),
        ("int32", "mean", "float64"),
        ("float64", "median", "float64"),
        ("uint64", "sum", "uint64"),
        ("uint16", "sum", "int64"),
        ("float32", "sum", "float64"),
        ("int8", "count", "uint16"),
        ("uint16", "first", "uint16"),
    ],
)
def test_output_spec_table(src, method, dtype):
    assert output_spec(method, np.dtype(src), 0.0)[0] == np.dtype(dtype)


def test_count_dtype_widens_beyond_uint16():
    assert output_spec("count", np.dtype("uint8"), None, 70_000) == (np.dtype("int32"), 0)


def test_first_and_last_stop_reading_when_filled(tmp_path, monkeypatch):
    """Three full, valid, same-footprint files: ``first``/``last`` read one, ``mean`` all three."""
    paths = [
        write_raster(
            tmp_path / "src" / f"f_2023010{d}.tif",
            np.full((1, 8, 8), d, "uint8"),
            crs="EPSG:32630",
            transform=Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]),
        )
        for d in (1, 2, 3)
    ]
    cat = build(paths, tmp_path / "cat")
    s = geoduck.GeoSlice((ORIGIN[0], ORIGIN[1] - 80, ORIGIN[0] + 80, ORIGIN[1]), "EPSG:32630", RES)
    reads: list[str] = []
    real = lr.read_on_grid
    monkeypatch.setattr(lr, "read_on_grid", lambda r, *a: reads.append(r.path) or real(r, *a))
    assert (geoduck.load_raster(cat, s, merge="first", max_workers=1).values == 1).all()
    assert reads == [str(paths[0])]
    reads.clear()
    assert (geoduck.load_raster(cat, s, merge="last", max_workers=1).values == 3).all()
    assert reads == [str(paths[2])]
    reads.clear()
    assert (geoduck.load_raster(cat, s, merge="mean").values == 2).all()
    assert sorted(reads) == sorted(map(str, paths))


def test_internal_mask_and_nodata_both_invalidate(tmp_path):
    """A file with an internal mask band (and a nodata value): masked and nodata pixels never win."""
    import rasterio

    t = Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])
    v = np.full((1, 8, 8), 7, "uint16")
    v[0, :2] = 0  # nodata rows
    masked = tmp_path / "src" / "m_20230101.tif"
    masked.parent.mkdir(parents=True)
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(
            masked,
            "w",
            driver="GTiff",
            width=8,
            height=8,
            count=1,
            dtype="uint16",
            crs="EPSG:32630",
            transform=t,
            nodata=0,
        ) as dst,
    ):
        dst.write(v)
        m = np.full((8, 8), 255, "uint8")
        m[:, :3] = 0  # masked columns
        dst.write_mask(m)
    under = write_raster(
        tmp_path / "src" / "u_20230102.tif", np.full((1, 8, 8), 9, "uint16"), crs="EPSG:32630", transform=t, nodata=0
    )
    cat = build([masked, under], tmp_path / "cat")
    s = geoduck.GeoSlice((ORIGIN[0], ORIGIN[1] - 80, ORIGIN[0] + 80, ORIGIN[1]), "EPSG:32630", RES)
    got = geoduck.load_raster(cat, s, merge="first").values[0]
    expected = np.full((8, 8), 7)
    expected[:2] = 9
    expected[:, :3] = 9
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(geoduck.load_raster(cat, s, merge="count").values[0], np.where(expected == 7, 2, 1))


# -- bands ----------------------------------------------------------------------------------------------


def test_bands_by_name_index_and_mixed(stack):
    by_index = geoduck.load_raster(stack.catalog, stack.slice, bands=[3, 1], merge="max")
    by_name = geoduck.load_raster(stack.catalog, stack.slice, bands=["QA60", "B02"], merge="max")
    mixed = geoduck.load_raster(stack.catalog, stack.slice, bands=["qa60", 1], merge="max")
    single = geoduck.load_raster(stack.catalog, stack.slice, bands="QA60", merge="max")
    expected = stack.reference("max")[0][[2, 0]]
    for g in (by_index, by_name, mixed):
        np.testing.assert_array_equal(g.values, expected)
    np.testing.assert_array_equal(single.values, expected[:1])


def test_unknown_band_name_lists_the_available_ones(stack):
    with pytest.raises(ArgumentError) as info:
        geoduck.load_raster(stack.catalog, stack.slice, bands=["B04"])
    msg = str(info.value)
    assert "'B04'" in msg and "a_20230105.tif" in msg
    for listed in ("1 'B02'", "2 'B03'", "3 'QA60'", "1..3"):
        assert listed in msg


def test_band_names_resolve_in_each_file(tmp_path):
    """Two files storing the bands in different orders: a name picks the right band in each."""
    order = {"west_20230101.tif": ["B02", "QA60", "B03"], "east_20230101.tif": ["QA60", "B03", "B02"]}
    code = {"B02": 2, "B03": 3, "QA60": 60}
    paths = []
    for k, (name, names) in enumerate(order.items()):
        v = np.stack([np.full((8, 8), code[n], "uint8") for n in names])
        t = Affine(RES, 0, ORIGIN[0] + 80 * k, 0, -RES, ORIGIN[1])
        paths.append(write_raster(tmp_path / "src" / name, v, crs="EPSG:32630", transform=t, descriptions=names))
    cat = build(paths, tmp_path / "cat")
    s = geoduck.GeoSlice((ORIGIN[0], ORIGIN[1] - 80, ORIGIN[0] + 160, ORIGIN[1]), "EPSG:32630", RES)
    g = geoduck.load_raster(cat, s, bands=["QA60", "B02", "B03"])
    assert [np.unique(b).tolist() for b in g.values] == [[60], [2], [3]]


# -- mixed resolutions and CRSs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A 10 m UTM 30 raster (4 km square) inside a 500 m UTM 29 raster (40 km square), lon/lat
    encoding, tags 1 and 2, around 6.1°W 40°N, and a slice on a 100 m UTM 30 grid over both."""
    root = tmp_path_factory.mktemp("mixed")
    fine = coordinate_raster(
        root / "src" / "fine.tif",
        crs="EPSG:32630",
        origin=(230000.0, 4436000.0),
        res=10.0,
        shape=(400, 400),
        encode="lonlat",
        extra_band=1,
    )
    coarse = coordinate_raster(
        root / "src" / "coarse.tif",
        crs="EPSG:32629",
        origin=(720000.0, 4460000.0),
        res=500.0,
        shape=(80, 80),
        encode="lonlat",
        extra_band=2,
    )
    s = geoduck.GeoSlice((226000.0, 4428000.0, 238000.0, 4438000.0), "EPSG:32630", 100.0)
    return build([fine, coarse], root / "cat", regex=None), s


@pytest.mark.parametrize("resampling", ["nearest", Resampling.nearest, "bilinear", Resampling.bilinear])
def test_mixed_resolutions_and_crs_land_on_one_grid(mixed, resampling):
    cat, s = mixed
    g = geoduck.load_raster(cat, s, resampling=resampling, merge="last")  # static: last by path = fine
    assert g.values.shape == (3, 100, 120) and g.transform == s.transform
    tag = g.values[2]
    fine = np.zeros(s.shape, bool)
    fine[20:60, 40:80] = True  # x 230000..234000, y 4432000..4436000
    np.testing.assert_array_equal(tag, np.where(fine, 1.0, 2.0))
    import pyproj

    xs, ys = pixel_centres(s.transform, s.shape)
    lon, lat = pyproj.Transformer.from_crs(s.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    for t, src_res in ((1.0, 10.0), (2.0, 500.0)):
        mine = tag == t
        assert mine.sum() > 500
        # positions within half a source pixel (+ GDAL's 0.125 px tolerance) of the pixel centre
        err_lon = np.abs(g.values[0][mine] - lon[mine]) * 111_000 * np.cos(np.radians(40.0))
        err_lat = np.abs(g.values[1][mine] - lat[mine]) * 111_000
        limit = 0.625 * src_res * 1.05
        assert err_lon.max() <= limit and err_lat.max() <= limit
    name = resampling if isinstance(resampling, str) else resampling.name
    other = geoduck.load_raster(
        cat, s, merge="last", resampling=Resampling[name] if isinstance(resampling, str) else name
    )
    np.testing.assert_array_equal(g.values, other.values)


def test_same_crs_resampled_read_equals_warped_read(mixed):
    """The windowed read with out_shape (same CRS, other resolution) gives GDAL's warped result."""
    cat, _ = mixed
    fine = next(r["filepath"] for r in cat if r["filepath"].endswith("fine.tif"))
    s = geoduck.GeoSlice((231003.0, 4432517.0, 233503.0, 4435017.0), "EPSG:32630", 25.0)
    r = lr.open_raster(fine)
    grid = lr.Grid.of(s)
    assert lr._source_window(r, grid) is not None  # the windowed route applies
    for rs in (Resampling.nearest, Resampling.bilinear):
        values, valid = lr.read_on_grid(r, grid, [1, 2, 3], rs)
        warped, wvalid = lr._read_warped(r, grid, [1, 2, 3], rs) if rs == Resampling.nearest else (None, None)
        assert np.asarray(valid).all()
        if warped is not None:
            np.testing.assert_array_equal(values, warped)
            assert np.asarray(wvalid).all()
        xs, ys = pixel_centres(s.transform, s.shape)
        import pyproj

        lon, lat = pyproj.Transformer.from_crs(s.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
        tol = (0.5 if rs == Resampling.nearest else 0.01) * 10.0 / 80_000  # degrees
        assert np.abs(values[0] - lon).max() < tol and np.abs(values[1] - lat).max() < tol


def test_warp_fast_route_equals_warpedvrt(mixed, monkeypatch):
    """Cross-CRS, all source pixels valid: the in-memory warp equals the WarpedVRT route."""
    cat, _ = mixed
    coarse = next(r["filepath"] for r in cat if r["filepath"].endswith("coarse.tif"))
    s = geoduck.GeoSlice((220000.0, 4430000.0, 232000.0, 4440000.0), "EPSG:32630", 250.0)
    r, grid = lr.open_raster(coarse), lr.Grid.of(s)
    for rs in (Resampling.bilinear, Resampling.cubic):
        assert lr._covering_window(r, grid, rs) is not None
        fast, fvalid = lr._read_warped(r, grid, [1, 2, 3], rs)
        with monkeypatch.context() as m:
            m.setattr(lr, "_covering_window", lambda *a: None)
            slow, svalid = lr._read_warped(r, grid, [1, 2, 3], rs)
        assert np.asarray(fvalid).all() and np.asarray(svalid).all()
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)


# -- concurrency, the row index, fork ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["first", "last", "mean", "median", "sum"])
def test_concurrency_gives_the_sequential_result(stack, method, monkeypatch):
    sequential = geoduck.load_raster(stack.catalog, stack.slice, merge=method, max_workers=1).values
    real = lr.read_on_grid
    rnd = random.Random(3)

    def jittered(*args):  # completion order differs from submission order
        time.sleep(rnd.random() * 0.02)
        return real(*args)

    monkeypatch.setattr(lr, "read_on_grid", jittered)
    for workers in (2, 3, 8):
        threaded = geoduck.load_raster(stack.catalog, stack.slice, merge=method, max_workers=workers).values
        np.testing.assert_array_equal(threaded, sequential)


def test_row_index_matches_duckdb(archive_catalog, monkeypatch):
    slices = [
        geoduck.GeoSlice((500000, 4400000, 530000, 4430000), "EPSG:32630", 500),  # one zone
        geoduck.GeoSlice((196000, 4404000, 262000, 4452000), "EPSG:32630", 2000),  # across 29/30
        geoduck.GeoSlice((196000, 4404000, 262000, 4452000), "EPSG:32630", 2000, start="2022-05-01", end="2022-08-31"),
        geoduck.GeoSlice((-6.5, 39.8, -3.0, 40.2), "EPSG:4326", 0.01, start="2023-02-01"),
        geoduck.GeoSlice((0.0, 0.0, 1000.0, 1000.0), "EPSG:32630", 10),  # nothing there
    ]
    via_index = [ls.sources_for(archive_catalog, s) for s in slices]
    monkeypatch.setattr(ls, "INDEX_MAX_ROWS", 0)
    ls.clear_cache()
    via_duckdb = [ls.sources_for(archive_catalog, s) for s in slices]
    ls.clear_cache()
    assert [len(v) for v in via_index][:3] == [len(v) for v in via_duckdb][:3]
    assert via_index == via_duckdb
    assert len(via_index[1]) > 2 and len(via_index[2]) < len(via_index[1]) and via_index[4] == []
    assert [x.start for x in via_index[1]] == sorted(x.start for x in via_index[1])


def test_row_index_sees_appended_files(tmp_path):
    t = Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])
    first = write_raster(
        tmp_path / "src" / "x_20230101.tif", np.full((1, 8, 8), 1, "uint8"), crs="EPSG:32630", transform=t
    )
    cat = build([first], tmp_path / "cat")
    s = geoduck.GeoSlice((ORIGIN[0], ORIGIN[1] - 80, ORIGIN[0] + 80, ORIGIN[1]), "EPSG:32630", RES)
    assert (geoduck.load_raster(cat, s, merge="sum").values == 1).all()
    second = write_raster(
        tmp_path / "src" / "x_20230102.tif", np.full((1, 8, 8), 5, "uint8"), crs="EPSG:32630", transform=t
    )
    build([second], tmp_path / "cat")  # appends a part
    assert (geoduck.load_raster(cat, s, merge="sum").values == 6).all()
    assert (geoduck.load_raster(cat, s, merge="last").values == 5).all()


def _child_load(catalog_dir: str, bounds, crs: str) -> tuple[int, np.ndarray, np.ndarray, bool]:
    cat = geoduck.open_catalog(catalog_dir)
    s = geoduck.GeoSlice(bounds, crs, RES)
    mean = geoduck.load_raster(cat, s, merge="mean", max_workers=2).values
    first = geoduck.load_raster(cat, s, merge="first", max_workers=1).values
    inherited = len(lr._inherited) > 0
    return os.getpid(), mean, first, inherited


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (Python ≥ 3.12)
def test_fork_child_loads_correct_values(stack):
    s = stack.slice
    parent_mean = geoduck.load_raster(stack.catalog, s, merge="mean", max_workers=2).values
    parent_first = geoduck.load_raster(stack.catalog, s, merge="first", max_workers=1).values
    root = ls._roots(stack.catalog)[0]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = [pool.apply_async(_child_load, (root, s.bounds, s.crs)) for _ in range(4)]
        out = [r.get(timeout=120) for r in results]
    assert {pid for pid, *_ in out} - {os.getpid()}  # really other processes
    for _, mean, first, inherited in out:
        np.testing.assert_array_equal(mean, parent_mean)
        np.testing.assert_array_equal(first, parent_first)
        assert inherited  # the parent's open datasets were set aside, not reused
    # and the parent still reads correctly afterwards
    np.testing.assert_array_equal(geoduck.load_raster(stack.catalog, s, merge="mean").values, parent_mean)


# -- time series ------------------------------------------------------------------------------------------


def test_timeseries_one_step_per_acquisition(stack):
    da = geoduck.load_raster_timeseries(stack.catalog, stack.slice, bands=["B02", "QA60"])
    assert da.dims == ("time", "band", "y", "x") and da.shape == (3, 2, H, W + 1)
    assert list(da.time.values) == [np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}T00:00:00", "ns") for _, d, _ in SOURCES]
    assert list(da.band.values) == ["B02", "QA60"]
    t = stack.slice.transform
    np.testing.assert_allclose(da.x.values, t.c + (np.arange(W + 1) + 0.5) * RES)
    np.testing.assert_allclose(da.y.values, t.f - (np.arange(H) + 0.5) * RES)
    for k in range(3):
        expected, fill = stack.reference("first", [k])
        np.testing.assert_array_equal(da.values[k], expected[[0, 2]])
    np.testing.assert_equal(da.attrs["_FillValue"], stack.nodata)
    assert da.attrs["crs"] == "EPSG:32630" and da.attrs["transform"] == tuple(t)[:6]
    ref = da.spatial_ref.attrs
    assert "UTM zone 30N" in ref["crs_wkt"] and ref["GeoTransform"].split() == [repr(float(v)) for v in t.to_gdal()]
    assert da.encoding["grid_mapping"] == "spatial_ref"


def test_timeseries_monthly_aggregation(stack):
    da = geoduck.load_raster_timeseries(stack.catalog, stack.slice, freq="MS", aggregation="mean")
    assert [str(t)[:10] for t in da.time.values] == ["2023-01-01", "2023-02-01", "2023-03-01"]
    assert list(da.band.values) == [1, 2, 3] and da.dtype == np.float32
    np.testing.assert_allclose(da.values[0], stack.reference("mean", [0, 1])[0], rtol=1e-6)
    assert np.isnan(da.values[1]).all()  # February: no acquisition
    np.testing.assert_allclose(da.values[2], stack.reference("mean", [2])[0], rtol=1e-6)
    january = geoduck.GeoSlice(stack.slice.bounds, stack.slice.crs, RES, start="2023-01-01", end="2023-01-31")
    np.testing.assert_allclose(da.values[0], geoduck.load_raster(stack.catalog, january, merge="mean").values)
    for agg in ("first", "last", "max", "min", "median"):
        got = geoduck.load_raster_timeseries(stack.catalog, stack.slice, freq="MS", aggregation=agg)
        np.testing.assert_array_equal(got.values[0], stack.reference(agg, [0, 1])[0])
    yearly = geoduck.load_raster_timeseries(stack.catalog, stack.slice, freq="YS", aggregation="count")
    assert yearly.shape[0] == 1 and str(yearly.time.values[0])[:10] == "2023-01-01"
    np.testing.assert_array_equal(yearly.values[0], stack.reference("count")[0])


def test_timeseries_static_rows_and_bad_arguments(stack, tmp_path):
    with pytest.raises(ArgumentError, match="freq"):
        geoduck.load_raster_timeseries(stack.catalog, stack.slice, freq="fortnightly")
    with pytest.raises(ArgumentError, match="merge"):
        geoduck.load_raster_timeseries(stack.catalog, stack.slice, aggregation="mode")
    static = write_raster(
        tmp_path / "static.tif",
        np.ones((1, 4, 4), "uint8"),
        crs="EPSG:32630",
        transform=Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]),
    )
    cat = build([static], tmp_path / "cat", regex=None)
    with pytest.raises(NoDataError, match="static rows"):
        geoduck.load_raster_timeseries(cat, stack.slice)
    later = geoduck.GeoSlice(stack.slice.bounds, stack.slice.crs, RES, start="2024-01-01")
    with pytest.raises(NoDataError):
        geoduck.load_raster_timeseries(stack.catalog, later)


def test_timeseries_rioxarray_reads_the_crs(stack):
    pytest.importorskip("rioxarray")
    da = geoduck.load_raster_timeseries(stack.catalog, stack.slice)
    assert da.rio.crs.to_epsg() == 32630
    assert tuple(da.rio.transform())[:6] == tuple(stack.slice.transform)[:6]


def test_exports():
    assert geoduck.load_raster_timeseries is lr.load_raster_timeseries
    assert "load_raster_timeseries" in geoduck.__all__
    assert pd.Timestamp("2023-01-05", tz="UTC") == ls.Source("x", pd.Timestamp("2023-01-05", tz="UTC")).start
