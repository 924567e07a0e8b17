"""Quality masks applied per source before merging, and mosaic provenance (``return_sources``).

Every expectation comes from a NumPy reference built from the files as rasterio reads them (raw
values, no masking): each acquisition is masked first, then the stack is reduced with an
independent formulation of each merge method (argmax/argmin over the stack in merge order)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoduck
from geoduck.errors import ArgumentError, NoDataError
from geoduck.loaders.masks import QualityMask
from geoduck.testing import (
    ARCHIVE_REGEX,
    BAND_TILES,
    DEMO_TILES,
    LANDSAT_REGEX,
    LANDSAT_SCENES,
    QA60_CLOUD_BITS,
    QA_PIXEL_CLEAR,
    QA_PIXEL_CLOUD,
    QA_PIXEL_SHADOW,
    SCL_CLOUDS,
    SENTINEL2_REGEX,
    archive_dates,
    synthetic_archive,
    synthetic_landsat_archive,
    synthetic_sentinel2_archive,
    tile_transform,
)

METHODS = ["first", "last", "min", "max", "sum", "count", "mean", "median"]


# -- the reference ----------------------------------------------------------------------------------


def paste(path: Path, band: int, grid, shape, repeat: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Raw band ``band`` of ``path`` on an aligned grid (``repeat``: source pixels are ``repeat``
    grid pixels wide, nearest): (values, inside the file)."""
    with rasterio.open(path) as src:
        raw = src.read(band)
        t = src.transform
    raw = np.repeat(np.repeat(raw, repeat, axis=0), repeat, axis=1)
    row = round((t.f - grid.f) / grid.e)
    col = round((t.c - grid.c) / grid.a)
    out = np.zeros(shape, dtype=raw.dtype)
    inside = np.zeros(shape, dtype=bool)
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + raw.shape[0], shape[0]), min(col + raw.shape[1], shape[1])
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] = raw[r0 - row : r1 - row, c0 - col : c1 - col]
        inside[r0:r1, c0:c1] = True
    return out, inside


def reference(values: np.ndarray, valid: np.ndarray, method: str, fill: float) -> tuple[np.ndarray, list[int]]:
    """(merged (b, h, w), per-source counts in merge order) of a (n, b, h, w) stack given in time
    order; ``valid`` already holds the masks."""
    n = values.shape[0]
    order = list(range(n))[::-1] if method == "last" else list(range(n))
    v, ok = values[order].astype(np.float64), valid[order]
    anyv = ok.any(axis=0)
    if method in ("first", "last", "min", "max"):
        if method in ("first", "last"):
            owner = np.argmax(ok, axis=0)
        elif method == "min":
            owner = np.argmin(np.where(ok, v, np.inf), axis=0)
        else:
            owner = np.argmax(np.where(ok, v, -np.inf), axis=0)
        out = np.take_along_axis(v, owner[None], axis=0)[0]
        out[~anyv] = fill
        counts = np.bincount(owner[anyv], minlength=n).tolist()
        return out.astype(values.dtype), counts
    counts = [int(ok[k].sum()) for k in range(n)]
    m = np.ma.masked_array(v, ~ok)
    if method == "count":
        return ok.sum(axis=0), counts
    if method == "sum":
        return m.sum(axis=0).filled(0).astype(np.int64), counts
    if method == "mean":
        return (m.sum(axis=0) / ok.sum(axis=0)).filled(np.nan).astype(np.float32), counts
    return np.ma.median(m.astype(np.float32), axis=0).filled(np.nan).astype(np.float32), counts


def check(got, want, method: str) -> None:
    if method in ("mean", "median"):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, equal_nan=True)
    else:
        np.testing.assert_array_equal(np.asarray(got), want)


# -- single-file archive with a QA60 band (Sentinel-2 L1C style) --------------------------------------


class QA60Archive:
    """2 overlapping tiles of UTM 30 × 4 dates, bands B02 B03 B04 QA60 under nodata 0."""

    def __init__(self, root: Path) -> None:
        tiles = DEMO_TILES[1:3]
        self.paths = synthetic_archive(root / "files", tiles=tiles, dates=archive_dates(per_year=4)[:4], qa60=True)
        self.catalog = geoduck.build_raster_catalog(
            self.paths, root / "cat", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
        )
        t = tile_transform(tiles[1], 288, 500.0)  # 30TVK: the slice straddles its west edge (16 km overlap)
        x0, y0 = t.c - 60 * 500, t.f - 150 * 500
        self.slice = geoduck.GeoSlice((x0, y0, x0 + 100 * 500, y0 + 90 * 500), "EPSG:32630", 500.0)
        self.grid, self.shape = self.slice.transform, self.slice.shape
        self.order = sorted(self.paths, key=lambda p: (p.name.split("_")[2], str(p)))  # time, then path
        self.data = np.stack([np.stack([paste(p, b, self.grid, self.shape)[0] for b in (1, 2, 3)]) for p in self.order])
        self.qa = np.stack([paste(p, 4, self.grid, self.shape)[0] for p in self.order])
        self.valid = self.data != 0  # nodata 0; outside a file the paste is 0 as well

    def expected(self, reject: np.ndarray, method: str, fill: float) -> tuple[np.ndarray, list[int]]:
        valid = self.valid & ~reject[:, None]
        return reference(self.data, valid, method, fill)


@pytest.fixture(scope="module")
def qa60(tmp_path_factory) -> QA60Archive:
    return QA60Archive(tmp_path_factory.mktemp("qa60"))


FILLS = {"first": 0, "last": 0, "min": 0, "max": 0, "sum": 0, "count": 0, "mean": np.nan, "median": np.nan}


@pytest.mark.parametrize("method", METHODS)
def test_qa60_bits_mask_each_acquisition_before_merging(qa60, method):
    got, sources = geoduck.load_raster(
        qa60.catalog,
        qa60.slice,
        bands=["B02", "B03", "B04"],
        merge=method,
        mask="QA60",
        mask_bits=[10, 11],
        return_sources=True,
    )
    reject = (qa60.qa & QA60_CLOUD_BITS) != 0
    want, counts = qa60.expected(reject, method, FILLS[method])
    check(got.values, want, method)
    # provenance: every row in merge order, exact counts from the reference
    order = qa60.order[::-1] if method == "last" else qa60.order
    assert list(sources["filepath"]) == [str(p) for p in order]
    assert list(sources["pixels"]) == counts
    np.testing.assert_allclose(sources["share"], np.array(counts) / want.size)
    ids = dict(zip(qa60.catalog.to_geopandas()["filepath"], qa60.catalog.to_geopandas()["id"], strict=True))
    assert list(sources["id"]) == [ids[str(p)] for p in order]
    if method in ("first", "last", "min", "max"):
        assert sources["pixels"].sum() == (want != 0).sum()


def test_masking_after_the_merge_loses_pixels_and_qa_zero_is_clear(qa60):
    """The issue's trap: merge, then mask with the merged QA band. Masking per source first fills
    more pixels, and QA60 = 0 (= the file's nodata) never masks data."""
    ours = geoduck.load_raster(qa60.catalog, qa60.slice, bands=[1, 2, 3], merge="last", mask=4, mask_bits=[10, 11])
    naive = geoduck.load_raster(qa60.catalog, qa60.slice, bands=[1, 2, 3], merge="last").values.copy()
    qa = geoduck.load_raster(qa60.catalog, qa60.slice, bands=["QA60"], merge="last").values
    naive[:, ((qa[0] & QA60_CLOUD_BITS) != 0)] = 0
    assert (ours.values[0] != 0).sum() > (naive[0] != 0).sum()
    assert not (ours.values == 10000).any()  # no cloud pixel won
    clear_everywhere = (qa60.qa == 0) & qa60.valid[:, 0]
    assert clear_everywhere.any()
    covered = clear_everywhere.any(axis=0)
    assert (ours.values[0][covered] != 0).all()


MASKS = {
    "values": (
        dict(mask="QA60", mask_values=[1024, 1056, 3072, 3104]),
        lambda a: np.isin(a.qa, [1024, 1056, 3072, 3104]),
    ),
    "range-by-index": (dict(mask=4, mask_range=(0, 1023)), lambda a: a.qa > 1023),
    "callable-on-band": (dict(mask=QualityMask(band="QA60", fn=lambda q: q >= 2048)), lambda a: a.qa >= 2048),
    "callable-on-data": (dict(mask=lambda v: v[0] == 10000), lambda a: a.data[:, 0] == 10000),
    "range-on-data": (dict(mask_range=(1, 9999)), lambda a: ((a.data < 1) | (a.data > 9999)).any(axis=1)),
    "value-object": (
        dict(mask=QualityMask(band="QA60", bits=(10,), values={2048})),
        lambda a: ((a.qa & 1024) != 0) | (a.qa == 2048),
    ),
}


@pytest.mark.parametrize("method", ["first", "last", "median"])
@pytest.mark.parametrize("kind", sorted(MASKS))
def test_mask_kinds_match_the_reference(qa60, kind, method):
    kwargs, reject = MASKS[kind]
    got = geoduck.load_raster(qa60.catalog, qa60.slice, bands=["B02", "B03", "B04"], merge=method, **kwargs)
    want, _ = qa60.expected(reject(qa60), method, FILLS[method])
    check(got.values, want, method)


def test_concurrent_reads_give_the_sequential_masked_result(qa60):
    kw = dict(bands=["B02", "B03", "B04"], merge="min", mask="QA60", mask_bits=[10, 11], return_sources=True)
    a, sa = geoduck.load_raster(qa60.catalog, qa60.slice, max_workers=1, **kw)
    b, sb = geoduck.load_raster(qa60.catalog, qa60.slice, max_workers=4, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    assert sa.equals(sb)


def test_timeseries_masks_each_acquisition(qa60):
    da = geoduck.load_raster_timeseries(
        qa60.catalog, qa60.slice, bands=["B02", "B03", "B04"], mask="QA60", mask_bits=[10, 11]
    )
    reject = (qa60.qa & QA60_CLOUD_BITS) != 0
    assert da.sizes["time"] == len(qa60.order)  # one acquisition per time step here
    for k in range(len(qa60.order)):
        want = np.where(qa60.valid[k] & ~reject[k][None], qa60.data[k], 0)
        np.testing.assert_array_equal(da.values[k], want)


# -- band-file scenes: the scene's QA file ---------------------------------------------------------


def test_sentinel2_scl_file_of_each_scene_at_20m(tmp_path):
    tile = BAND_TILES[0]
    dates = (dt.date(2023, 6, 15), dt.date(2023, 6, 20), dt.date(2023, 6, 25))
    hole = {f"S2B_{tile.name}_20230615_0_L2A/B08": (slice(0, 50), slice(0, 60))}
    files = synthetic_sentinel2_archive(tmp_path / "s2", tiles=(tile,), dates=dates, scl=True, hole=hole)
    cat = geoduck.build_raster_catalog(
        tmp_path / "s2", tmp_path / "cat", filename_regex=SENTINEL2_REGEX, progress=False, workers=1
    )
    t = tile_transform(tile, 60, 20.0)
    sl = geoduck.GeoSlice((t.c, t.f - 1200, t.c + 1200, t.f), "EPSG:32630", 10.0)
    scenes = sorted({p.parent for p in files}, key=lambda p: p.name.split("_")[2])  # by date
    data = np.stack(
        [np.stack([paste(s / f"{b}.tif", 1, sl.transform, sl.shape)[0] for b in ("B04", "B08")]) for s in scenes]
    )
    scl = np.stack([paste(s / "SCL.tif", 1, sl.transform, sl.shape, repeat=2)[0] for s in scenes])
    valid = (data != 0).all(axis=1, keepdims=True) & ~np.isin(scl, SCL_CLOUDS)[:, None]
    valid = np.broadcast_to(valid, data.shape)
    for method in ("first", "last", "mean"):
        got, sources = geoduck.load_raster(
            cat, sl, bands=["B04", "B08"], merge=method, mask="SCL", mask_values=SCL_CLOUDS, return_sources=True
        )
        want, counts = reference(data, valid, method, FILLS[method])
        check(got.values, want, method)
        order = scenes[::-1] if method == "last" else scenes
        assert list(sources["filepath"]) == [str(s / f"{b}.tif") for s in order for b in ("B04", "B08")]
        assert list(sources["band"]) == ["B04", "B08"] * 3
        assert list(sources["pixels"]) == [c for c in counts for _ in range(2)]  # a scene wins as a whole
    assert np.isin(scl, SCL_CLOUDS).any() and (np.isin(scl, SCL_CLOUDS) & (data != 0).all(axis=1)).any()


@pytest.mark.parametrize(("bits", "extra"), [([1, 3, 4], []), ([0, 3], [1])])
def test_landsat_qa_pixel_bits(tmp_path, bits, extra):
    """QA_PIXEL has nodata 1 (fill): read raw, value 1 is rejected only when bit 0 is asked for."""
    scene = LANDSAT_SCENES[0]
    dates = (dt.date(2023, 6, 7), dt.date(2023, 6, 15), dt.date(2023, 6, 23))
    synthetic_landsat_archive(tmp_path / "l", scenes=(scene,), dates=dates, qa_pixel=True)
    cat = geoduck.build_raster_catalog(
        tmp_path / "l", tmp_path / "cat", filename_regex=LANDSAT_REGEX, progress=False, workers=1
    )
    t = tile_transform(scene[1], 40, 30.0)
    sl = geoduck.GeoSlice((t.c, t.f - 1200, t.c + 1200, t.f), "EPSG:32630", 30.0)
    products = sorted((tmp_path / "l").iterdir(), key=lambda p: p.name.split("_")[3])
    data = np.stack(
        [
            np.stack([paste(next(p.glob(f"*_{b}.TIF")), 1, sl.transform, sl.shape)[0] for b in ("SR_B4", "SR_B5")])
            for p in products
        ]
    )
    qa = np.stack([paste(next(p.glob("*_QA_PIXEL.TIF")), 1, sl.transform, sl.shape)[0] for p in products])
    assert {QA_PIXEL_CLEAR, QA_PIXEL_CLOUD, QA_PIXEL_SHADOW, 1} <= set(np.unique(qa).tolist())
    flags = sum(1 << b for b in bits)
    valid = np.broadcast_to(((data != 0).all(axis=1) & ((qa & flags) == 0))[:, None], data.shape)
    got, sources = geoduck.load_raster(
        cat, sl, bands=["SR_B4", "SR_B5"], merge="last", mask="QA_PIXEL", mask_bits=bits, return_sources=True
    )
    want, counts = reference(data, valid, "last", 0)
    np.testing.assert_array_equal(got.values, want)
    assert list(sources["pixels"]) == [c for c in counts for _ in range(2)]  # values alike: owners tell
    assert list(sources["start_datetime"].dt.date) == [d for d in dates[::-1] for _ in range(2)]
    fill_corner = got.values[0, :5, :5]
    assert (fill_corner == 0).all() if extra else (fill_corner != 0).all()


def test_first_lists_rows_never_read_with_zero(tmp_path):
    scene = LANDSAT_SCENES[0]
    dates = (dt.date(2023, 6, 7), dt.date(2023, 6, 15), dt.date(2023, 6, 23))
    synthetic_landsat_archive(tmp_path / "l", scenes=(scene,), dates=dates)
    cat = geoduck.build_raster_catalog(
        tmp_path / "l", tmp_path / "cat", filename_regex=LANDSAT_REGEX, progress=False, workers=1
    )
    t = tile_transform(scene[1], 40, 30.0)
    sl = geoduck.GeoSlice((t.c, t.f - 1200, t.c + 1200, t.f), "EPSG:32630", 30.0)
    got, sources = geoduck.load_raster(cat, sl, bands=["SR_B4"], merge="first", return_sources=True)
    assert list(sources["pixels"]) == [40 * 40, 0, 0]
    assert list(sources["share"]) == [1.0, 0.0, 0.0]
    assert list(sources["start_datetime"].dt.date) == list(dates)


# -- real file --------------------------------------------------------------------------------------


def test_real_landsat7_file_masked_by_its_own_band(corpus_dir, tmp_path):
    """stars' L7_ETMs.tif (uint8, 6 bands, no nodata) as two acquisitions; band 6 as the mask."""
    src = corpus_dir / "stars" / "L7_ETMs.tif"
    paths = [shutil.copy(src, tmp_path / f"L7_{d}.tif") for d in ("20230101", "20230201")]
    cat = geoduck.build_raster_catalog(
        paths, tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})\.tif$", progress=False, workers=1
    )
    with rasterio.open(src) as ds:
        raw = ds.read()
        b = ds.bounds
        res = ds.res
        crs = ds.crs
    sl = geoduck.GeoSlice(tuple(b), crs, res)
    keep = (raw[5] >= 40) & (raw[5] <= 120)
    for method, pixels in (("first", [int(keep.sum()) * 3, 0]), ("count", [int(keep.sum()) * 3] * 2)):
        got, sources = geoduck.load_raster(
            cat, sl, bands=[1, 2, 3], merge=method, mask=6, mask_range=(40, 120), return_sources=True
        )
        want = np.where(keep, raw[:3], 0) if method == "first" else np.broadcast_to(keep * 2, (3, *keep.shape))
        np.testing.assert_array_equal(got.values, want)
        assert list(sources["pixels"]) == pixels


# -- bad input --------------------------------------------------------------------------------------


def test_mask_errors(qa60, tmp_path):
    with pytest.raises(ArgumentError, match="needs a test"):
        geoduck.load_raster(qa60.catalog, qa60.slice, mask="QA60")
    with pytest.raises(ArgumentError, match="not both"):
        geoduck.load_raster(qa60.catalog, qa60.slice, mask=QualityMask(bits=(1,)), mask_bits=[2])
    with pytest.raises(ArgumentError, match="0..63"):
        QualityMask(band=1, bits=(64,))
    with pytest.raises(ArgumentError, match="lo must be <= hi"):
        QualityMask(band=1, valid_range=(5, 1))
    with pytest.raises(ArgumentError, match="no band named 'CLOUDS'"):
        geoduck.load_raster(qa60.catalog, qa60.slice, mask="CLOUDS", mask_bits=[1])
    with pytest.raises(ArgumentError, match="boolean array of shape"):
        geoduck.load_raster(qa60.catalog, qa60.slice, mask=lambda v: v.sum(axis=0))
    with pytest.raises(ArgumentError, match="integer values"):
        QualityMask(bits=(1,)).reject(np.zeros((2, 2), np.float32), (2, 2))
    files = synthetic_sentinel2_archive(tmp_path / "s2", tiles=BAND_TILES[:1], dates=(dt.date(2023, 6, 15),))
    cat = geoduck.build_raster_catalog(
        tmp_path / "s2", tmp_path / "cat", filename_regex=SENTINEL2_REGEX, progress=False, workers=1
    )
    assert files
    t = tile_transform(BAND_TILES[0], 60, 20.0)
    sl = geoduck.GeoSlice((t.c, t.f - 1200, t.c + 1200, t.f), "EPSG:32630", 10.0)
    with pytest.raises(ArgumentError, match="mask: no band file named 'SCL'"):
        geoduck.load_raster(cat, sl, bands=["B04"], mask="SCL", mask_values=[9])
    with pytest.raises(ArgumentError, match="name the QA file by its 'band' value"):
        geoduck.load_raster(cat, sl, bands=["B04"], mask=1, mask_values=[9])
    with pytest.raises(NoDataError):
        far = geoduck.GeoSlice((0, 0, 100, 100), "EPSG:32630", 10.0)
        geoduck.load_raster(cat, far, mask="SCL", mask_values=[9])


def test_exports():
    assert geoduck.QualityMask is QualityMask
    assert {"QualityMask", "polygons_from_mask", "to_xarray"} <= set(geoduck.__all__)


def test_mask_band_warped_across_utm_zones_with_nearest(tmp_path):
    """29TNE (zone 29) lands on a zone-30 grid through GDAL's warper: the QA60 band is warped with
    nearest and without its nodata (0 stays a clear 0); reference: rasterio.warp.reproject."""
    from rasterio.warp import Resampling, reproject

    paths = synthetic_archive(tmp_path / "f", tiles=DEMO_TILES[:2], dates=archive_dates(per_year=2)[:2], qa60=True)
    cat = geoduck.build_raster_catalog(paths, tmp_path / "cat", filename_regex=ARCHIVE_REGEX, progress=False, workers=1)
    t = tile_transform(DEMO_TILES[1], 288, 500.0)
    x0, y0 = t.c - 40 * 500, t.f - 150 * 500
    sl = geoduck.GeoSlice((x0, y0, x0 + 80 * 500, y0 + 60 * 500), "EPSG:32630", 500.0)
    order = sorted(paths, key=lambda p: (p.name.split("_")[2], str(p)))
    data, qa = [], []
    for p in order:
        with rasterio.open(p) as src:
            out = np.zeros((4, *sl.shape), dtype="uint16")
            for b in range(4):
                reproject(
                    src.read(b + 1),
                    out[b],
                    src_transform=src.transform,
                    src_crs=src.crs,
                    dst_transform=sl.transform,
                    dst_crs="EPSG:32630",
                    resampling=Resampling.nearest,
                    src_nodata=0,
                    dst_nodata=0,
                )
        data.append(out[:3])
        qa.append(out[3])
    data_a, qa_a = np.stack(data), np.stack(qa)
    valid = (data_a != 0) & ((qa_a & QA60_CLOUD_BITS) == 0)[:, None]
    got = geoduck.load_raster(
        cat, sl, bands=[1, 2, 3], merge="last", resampling="nearest", mask="QA60", mask_bits=[10, 11]
    )
    want, _ = reference(data_a, valid, "last", 0)
    np.testing.assert_array_equal(got.values, want)
    zone29 = [k for k, p in enumerate(order) if "29TNE" in p.name]
    assert ((qa_a[zone29] == 0) & (data_a[zone29, 0] != 0)).any()  # clear 0 over data in the warped tile
