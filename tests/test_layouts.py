"""Product layouts: bands in separate files (scenes), regexes on relative paths, verbose regexes,
skipped files, and band stacking checked pixel by pixel against rasterio reads of the band files.

The archives are geoduck.testing's Sentinel-2 L2A-like (10/20 m, ``S2B_30TYK_20230615_0_L2A/B04.tif``)
and Landsat C2 L2-like (30 m, ``LC08_L2SP_199032_…_SR_B4.TIF``) archives over UTM zones 30/31,
whose uint32 pixels encode band number and pixel centre (``band_value``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

import geoduck
from geoduck.cli import main
from geoduck.errors import ArgumentError
from geoduck.testing import (
    LANDSAT_REGEX,
    SENTINEL2_REGEX,
    band_value,
    pixel_centres,
    synthetic_landsat_archive,
    synthetic_sentinel2_archive,
    write_raster,
)

UTM30 = "EPSG:32630"
HOLE_SCENE = "S2B_30TYK_20230615_0_L2A"
HOLE = (slice(20, 60), slice(70, 120))  # rows, cols of B08 (10 m) set to nodata in that scene

# The S2 regex written as TorchGeo writes its dataset regexes (verbose mode).
S2_VERBOSE = r"""
    (?P<sensor>S2[AB])_           # spacecraft
    (?P<tile>\d{2}[A-Z]{3})_      # MGRS tile
    (?P<date>\d{8})_\d+_L2A/      # acquisition date; the product folder
    (?P<band>B\d[\dA])\.tif$      # one file per band
"""


@pytest.fixture(scope="module")
def s2(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2")
    files = synthetic_sentinel2_archive(root / "archive", hole={f"{HOLE_SCENE}/B08": HOLE})
    cat = geoduck.build_raster_catalog(
        root / "archive", root / "cat", filename_regex=SENTINEL2_REGEX, progress=False, workers=1
    )
    return root, files, cat


@pytest.fixture(scope="module")
def landsat(tmp_path_factory):
    root = tmp_path_factory.mktemp("landsat")
    files = synthetic_landsat_archive(root / "archive")
    cat = geoduck.build_raster_catalog(
        root / "archive", root / "cat", filename_regex=LANDSAT_REGEX, progress=False, workers=1
    )
    return root, files, cat


def rows(cat) -> pd.DataFrame:
    return cat.sql("SELECT * FROM catalog ORDER BY filepath")


def band_file(files, scene: str, band: str) -> Path:
    (hit,) = [f for f in files if scene in str(f) and f.stem.endswith(band)]
    return hit


def warped(path: Path, sl: geoduck.GeoSlice) -> np.ndarray:
    """The band file read onto the slice grid by rasterio (nearest), nodata 0 outside."""
    with (
        rasterio.open(path) as ds,
        WarpedVRT(
            ds, crs=sl.crs, transform=sl.transform, width=sl.width, height=sl.height, resampling=Resampling.nearest
        ) as vrt,
    ):
        return vrt.read(1)


# -- catalog: one row per band file, scene key --------------------------------------------------------


def test_band_files_form_scenes_matched_on_relative_paths(s2):
    _, files, cat = s2
    df = rows(cat)
    assert len(df) == len(files) == 24  # one row per file
    assert cat.build_report.skipped == 0 and cat.build_report.errors == ()
    scenes = df.groupby("scene_id")["band"].apply(sorted).to_dict()
    assert scenes == {
        f"{s}|{t}|{d}": ["B02", "B03", "B04", "B05", "B08", "B11"]
        for s, d in (("S2B", "20230615"), ("S2A", "20230620"))
        for t in ("30TYK", "31TBE")
    }
    # date and tile came from the folder name, band from the file name
    r = df[df.filepath.str.endswith(f"{HOLE_SCENE}/B11.tif")].iloc[0]
    assert (r.tile, r.sensor, r.band, r.res_x) == ("30TYK", "S2B", "B11", 20.0)
    assert r.start_datetime == pd.Timestamp("2023-06-15", tz="UTC")
    assert r.end_datetime == pd.Timestamp("2023-06-15T23:59:59.999999", tz="UTC")
    assert set(df["crs"]) == {"EPSG:32630", "EPSG:32631"}


def test_landsat_scenes(landsat):
    _, files, cat = landsat
    df = rows(cat)
    assert len(df) == 16
    assert df.groupby("scene_id").size().to_dict() == {
        "LC08|198032|20230615": 4,
        "LC08|199032|20230615": 4,
        "LC09|198032|20230623": 4,
        "LC09|199032|20230623": 4,
    }
    assert sorted(set(df.band)) == ["SR_B2", "SR_B3", "SR_B4", "SR_B5"]


def test_verbose_regex_as_flag_as_compiled_pattern_and_on_the_cli(s2, tmp_path):
    root, files, _ = s2
    expected = rows(s2[2]).drop(columns=["file_mtime"]).reset_index(drop=True)
    flag = geoduck.build_raster_catalog(
        root / "archive", tmp_path / "a", filename_regex=S2_VERBOSE, regex_verbose=True, progress=False, workers=1
    )
    compiled = geoduck.build_raster_catalog(
        root / "archive", tmp_path / "b", progress=False, workers=1, filename_regex=re.compile(S2_VERBOSE, re.VERBOSE)
    )
    for cat in (flag, compiled):
        got = rows(cat).drop(columns=["file_mtime"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got[expected.columns], expected)
    res = CliRunner().invoke(
        main,
        [
            "build",
            "raster",
            str(root / "archive"),
            "-o",
            str(tmp_path / "c"),
            "--regex",
            S2_VERBOSE,
            "--regex-verbose",
            "--no-progress",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "24 rows from 24 files" in res.output
    assert sorted(rows(geoduck.open_catalog(tmp_path / "c")).scene_id.unique()) == sorted(expected.scene_id.unique())
    # without the flag the verbose pattern matches nothing: a user error naming an example path
    with pytest.raises(ArgumentError, match=r"matches none of the 24 files.*relative to the scanned folder"):
        geoduck.build_raster_catalog(
            root / "archive", tmp_path / "d", filename_regex=S2_VERBOSE, progress=False, workers=1
        )


def test_glob_root_is_the_scanned_folder(s2, tmp_path):
    root, files, _ = s2
    cat = geoduck.build_raster_catalog(
        str(root / "archive" / "30" / "**" / "*.tif"),
        tmp_path / "g",
        filename_regex=SENTINEL2_REGEX,
        progress=False,
        workers=1,
    )
    assert len(cat) == 12 and set(rows(cat).tile) == {"30TYK"}


def test_unmatched_files_are_skipped_and_reported_by_the_cli(s2, tmp_path):
    root, files, _ = s2
    src = tmp_path / "in"
    for f in files[:6]:  # one scene
        dst = src / f.relative_to(root / "archive")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(f.read_bytes())
    folder = files[0].parent.relative_to(root / "archive")
    for extra in ("TCI.tif", "AOT.tif"):
        (src / folder / extra).write_bytes(files[0].read_bytes())
    res = CliRunner().invoke(
        main,
        [
            "build",
            "raster",
            str(src),
            "-o",
            str(tmp_path / "cat"),
            "--regex",
            SENTINEL2_REGEX,
            "--no-progress",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "6 rows from 6 files indexed" in res.output and "0 errors" in res.output
    assert "2 files skipped" in res.output and f"{folder}/AOT.tif" in res.output
    assert "skipped /" not in res.output  # not listed as errors


def test_two_files_for_one_band_of_a_scene_are_errors_naming_both(s2, tmp_path):
    root, _, _ = s2
    # no date group: the two dates of a tile collapse into one scene key → duplicates
    regex = r"(?P<tile>\d{2}[A-Z]{3})_\d{8}_\d_L2A/(?P<band>B\d\d)\.tif$"
    cat = geoduck.build_raster_catalog(
        root / "archive", tmp_path / "cat", filename_regex=regex, progress=False, workers=1
    )
    assert len(cat) == 12 and len(cat.build_report.errors) == 12
    path, reason = cat.build_report.errors[0]
    # files are taken in path order: S2A_…_20230620 first, so the S2B file is the second B02
    assert "S2B_30TYK_20230615_0_L2A/B02.tif" in path and "band 'B02' of scene '30TYK'" in reason
    assert "S2A_30TYK_20230620_0_L2A/B02.tif" in reason
    assert regex not in reason


# -- band stacking ------------------------------------------------------------------------------------


def scene_grid(files, scene: str, band: str = "B04", res: float = 10.0, **time) -> geoduck.GeoSlice:
    with rasterio.open(band_file(files, scene, band)) as ds:
        return geoduck.GeoSlice(tuple(ds.bounds), ds.crs.to_string(), res, **time)


def test_stack_on_a_scene_grid_equals_rasterio_reads_and_the_encoding(s2):
    _, files, cat = s2
    scene = "S2A_30TYK_20230620_0_L2A"
    sl = scene_grid(files, scene, start="2023-06-20", end="2023-06-20")
    got = geoduck.load_raster(cat, sl, bands=["B04", "B03", "B11", "b08"], resampling="nearest", merge="first")
    assert got.values.shape == (4, 120, 120) and got.values.dtype == np.uint32
    # 10 m bands: the files' own pixels; the 20 m band: rasterio's nearest read onto the 10 m grid
    for k, band in enumerate(["B04", "B03"]):
        with rasterio.open(band_file(files, scene, band)) as ds:
            np.testing.assert_array_equal(got.values[k], ds.read(1))
    with rasterio.open(band_file(files, scene, "B11")) as ds:
        np.testing.assert_array_equal(got.values[2], ds.read(1, out_shape=(120, 120), resampling=Resampling.nearest))
    # and the encoding: each 10 m pixel holds the 20 m pixel containing its centre
    xs, ys = pixel_centres(sl.transform, sl.shape)
    x0, y1 = sl.bounds[0], sl.bounds[3]
    cx = x0 + (np.floor((xs - x0) / 20) + 0.5) * 20
    cy = y1 - (np.floor((y1 - ys) / 20) + 0.5) * 20
    np.testing.assert_array_equal(got.values[2], band_value(cx, cy, 11))
    np.testing.assert_array_equal(got.values[3], band_value(xs, ys, 8))  # case-insensitive name


def scene_stack(files, scene: str, bands: list[str], sl: geoduck.GeoSlice) -> tuple[np.ndarray, np.ndarray]:
    values = np.stack([warped(band_file(files, scene, b), sl) for b in bands])
    return values, (values != 0).all(axis=0)


def test_mosaic_of_scenes_across_utm_zones_never_mixes_scenes(s2):
    _, files, cat = s2
    # a 10 m grid in zone 30 over both tiles of 2023-06-15 (31TBE lies across the zone edge)
    a, b = "S2B_30TYK_20230615_0_L2A", "S2B_31TBE_20230615_0_L2A"
    with rasterio.open(band_file(files, a, "B04")) as ds:
        left, bottom, right, top = ds.bounds
    sl = geoduck.GeoSlice(
        (left + 300, bottom - 200, right + 600, top - 200), UTM30, 10.0, start="2023-06-15", end="2023-06-15"
    )
    bands = ["B08", "B04", "B05"]
    got = geoduck.load_raster(cat, sl, bands=bands, resampling="nearest", merge="first").values
    va, ok_a = scene_stack(files, a, bands, sl)
    vb, ok_b = scene_stack(files, b, bands, sl)
    expected = np.where(ok_a, va, np.where(ok_b, vb, 0))  # 30TYK sorts first (same start)
    np.testing.assert_array_equal(got, expected)
    # the B08 hole of 30TYK: there every band comes from 31TBE or is fill, never a mix
    hole = ok_b & ~ok_a & (va[1] != 0)
    assert hole.sum() > 100
    np.testing.assert_array_equal(got[:, hole], vb[:, hole])
    assert (ok_a & ok_b).sum() > 1000 and (~ok_a & ok_b).sum() > 1000  # both scenes contribute
    last = geoduck.load_raster(cat, sl, bands=bands, resampling="nearest", merge="last").values
    np.testing.assert_array_equal(last, np.where(ok_b, vb, np.where(ok_a, va, 0)))


def test_landsat_bands_in_the_requested_order(landsat):
    _, files, cat = landsat
    scene = "LC09_L2SP_198032_20230623"
    with rasterio.open(band_file(files, scene, "SR_B4")) as ds:
        sl = geoduck.GeoSlice(tuple(ds.bounds), ds.crs.to_string(), 30.0, start="2023-06-23", end="2023-06-23")
    got = geoduck.load_raster(cat, sl, bands=["SR_B4", "SR_B3", "SR_B2"])
    for k, band in enumerate(["SR_B4", "SR_B3", "SR_B2"]):
        with rasterio.open(band_file(files, scene, band)) as ds:
            np.testing.assert_array_equal(got.values[k], ds.read(1))
    assert [int(v) // 100_000_000 for v in got.values[:, 5, 5]] == [4, 3, 2]


def test_default_bands_are_the_first_scenes_sorted(landsat):
    _, files, cat = landsat
    scene = "LC08_L2SP_199032_20230615"
    with rasterio.open(band_file(files, scene, "SR_B2")) as ds:
        sl = geoduck.GeoSlice(tuple(ds.bounds), ds.crs.to_string(), 30.0, start="2023-06-15", end="2023-06-15")
    got = geoduck.load_raster(cat, sl)
    assert [int(v) // 100_000_000 for v in got.values[:, 0, 0]] == [2, 3, 4, 5]


def test_band_errors_name_what_exists(s2):
    _, files, cat = s2
    sl = scene_grid(files, "S2A_30TYK_20230620_0_L2A", start="2023-06-20", end="2023-06-20")
    with pytest.raises(ArgumentError, match=r"no band file named 'B09'.*'B02', 'B03'"):
        geoduck.load_raster(cat, sl, bands=["B04", "B09"])
    with pytest.raises(ArgumentError, match=r"name bands by their 'band' value"):
        geoduck.load_raster(cat, sl, bands=[1, 2])


def test_band_descriptions_inside_one_file_keep_working(tmp_path):
    t = rasterio.transform.from_origin(500_000, 4_400_000, 10, 10)
    values = np.arange(3 * 8 * 8, dtype="uint16").reshape(3, 8, 8) + 1
    write_raster(
        tmp_path / "in" / "S2_30TVK_20230615.tif", values, crs=UTM30, transform=t, descriptions=["B02", "B03", "B04"]
    )
    cat = geoduck.build_raster_catalog(
        tmp_path / "in",
        tmp_path / "cat",
        progress=False,
        workers=1,
        filename_regex=r"S2_(?P<tile>\w{5})_(?P<date>\d{8})",
    )
    sl = geoduck.GeoSlice((500_000, 4_399_920, 500_080, 4_400_000), UTM30, 10.0)
    np.testing.assert_array_equal(geoduck.load_raster(cat, sl, bands=["B04", "B02"]).values, values[[2, 0]])


def test_timeseries_steps_are_scenes(s2):
    _, files, cat = s2
    sl = scene_grid(files, "S2B_30TYK_20230615_0_L2A", res=20.0)
    bands = ["B04", "B11"]
    da = geoduck.load_raster_timeseries(cat, sl, bands=bands, resampling="nearest")
    assert list(da.band.values) == bands
    assert list(pd.DatetimeIndex(da.time.values)) == [pd.Timestamp("2023-06-15"), pd.Timestamp("2023-06-20")]
    for k, day in enumerate(["2023-06-15", "2023-06-20"]):
        one = geoduck.load_raster(
            cat, geoduck.GeoSlice(sl.bounds, sl.crs, 20.0, start=day, end=day), bands=bands, resampling="nearest"
        )
        np.testing.assert_array_equal(da.values[k], one.values)


# -- samplers, map_chips, torch -----------------------------------------------------------------------


def test_random_sampler_draws_scenes_not_band_files(s2):
    _, _, cat = s2
    sampler = geoduck.random_sampler(cat, chip_size=32, resolution=20.0, length=400, seed=1)
    scenes = sampler.scene_ids
    assert len(set(sampler.row_ids)) == 4 and set(scenes) == set(rows(cat).scene_id)
    for chip, scene in zip(sampler[:5], scenes[:5], strict=True):
        assert chip.start == pd.Timestamp(scene.split("|")[2], tz="UTC")
    # every scene has the same area: about a quarter of the chips each (6 band files count once)
    counts = pd.Series(scenes).value_counts()
    assert counts.min() > 60


def test_map_chips_and_torch_load_whole_scenes(s2):
    torch = pytest.importorskip("torch")
    from geoduck.torch import GeoIterableDataset

    _, files, cat = s2
    sampler = geoduck.random_sampler(cat, chip_size=16, resolution=10.0, length=12, seed=3)
    loader = functools.partial(geoduck.load_raster, bands=["B04", "B08", "B11"], resampling="nearest")
    chips = geoduck.map_chips(cat, sampler, lambda g: np.asarray(g.values), loader=loader)
    bands = ["B04", "B08", "B11"]
    for sl, chip, scene in zip(sampler, chips, sampler.scene_ids, strict=True):
        sensor, _, date = scene.split("|")
        # the chip carries its scene's interval: that date's scenes (both tiles) are mosaicked,
        # 30TYK first; each pixel's bands all come from one scene
        (va, ok_a), (vb, ok_b) = (
            scene_stack(files, f"{sensor}_{t}_{date}_0_L2A", bands, sl) for t in ("30TYK", "31TBE")
        )
        mine = ok_a if "30TYK" in scene else ok_b
        assert mine.sum() > 0
        np.testing.assert_array_equal(chip, np.where(ok_a, va, np.where(ok_b, vb, 0)))
    ds = GeoIterableDataset(cat, sampler, lambda c, s: loader(c, s).values.astype("int64"))
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0))
    np.testing.assert_array_equal(torch.cat(batches).numpy(), np.stack(chips).astype("int64"))
