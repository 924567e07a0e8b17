"""The proposal's examples A, C, F, G, M, N and O (``docs/examples/``) run and give the right answer.

Each script's ``main(workdir)`` runs on its own synthetic archive; its outputs are checked against
references computed here from the files as rasterio reads them (raw values, no geoduck code on
the pixel path), with pandas for the join and shapely for the spatial separation of folds.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import Affine
from rasterio.windows import Window

import geoduck
from geoduck.testing import QA60_CLOUD_BITS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def example(name: str) -> dict[str, Any]:
    """The globals of ``docs/examples/<name>.py`` (its ``main`` not run)."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


def read_on(path: str | Path, transform: Affine, shape: tuple[int, int], bands: list[int]) -> np.ndarray:
    """Raw bands of ``path`` on an aligned grid of the same CRS (0 outside the file)."""
    h, w = shape
    with rasterio.open(path) as src:
        t = src.transform
        assert (transform.a, transform.e) == (t.a, t.e)
        col, row = round((transform.c - t.c) / t.a), round((transform.f - t.f) / t.e)
        out = src.read(bands, window=Window(col, row, w, h), boundless=True, fill_value=0)
    assert out.shape[1:] == shape
    return out


def date_of(path: str | Path) -> pd.Timestamp:
    return pd.Timestamp(Path(path).stem.split("_")[2], tz="UTC")


def first_valid(stack: np.ndarray, valid: np.ndarray, fill: float) -> tuple[np.ndarray, list[int]]:
    """Per pixel, the value of the first source (axis 0) valid there; and how many pixels each won."""
    owner = np.argmax(valid, axis=0)
    out = np.take_along_axis(stack, owner[None], axis=0)[0].astype(np.float64)
    anyv = valid.any(axis=0)
    out[~anyv] = fill
    return out, np.bincount(owner[anyv].ravel(), minlength=len(stack)).tolist()


def test_all_seven_examples_exist_with_a_docstring_naming_the_proposal_example():
    names = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    assert [n[0] for n in names] == list("acfgmno")
    for n in names:
        g = example(n)
        assert f"example {n[0].upper()}" in g["__doc__"] and callable(g["main"])


# -- A: cloud-free monthly composite -----------------------------------------------------------------


def test_a_composite_masks_each_acquisition_before_the_merge(tmp_path):
    out = example("a_cloud_free_composite")["main"](tmp_path)
    sl, composite, sources = out["slice"], out["composite"], out["sources"]
    june = sorted((p for p in out["files"] if date_of(p).month == 6), key=lambda p: (date_of(p), str(p)))
    assert len(june) == 8 and len(out["files"]) == 10  # July acquisitions are outside the slice's interval
    newest_first = june[::-1]
    raw = np.stack([read_on(p, sl.transform, sl.shape, [1, 2, 3, 4]) for p in newest_first]).astype(np.int64)
    data, qa = raw[:, :3], raw[:, 3]
    valid = (data[:, 0] != 0) & ((qa & QA60_CLOUD_BITS) == 0)  # mask first, then merge
    want = np.stack([first_valid(data[:, b], valid, 0)[0] for b in range(3)])
    np.testing.assert_array_equal(composite.values, want)
    assert not (composite.values == 10000).any()  # no cloud pixel won
    # provenance: the June files newest first, with the pixels each won
    _, won = first_valid(data[:, 0], valid, 0)
    assert list(sources["filepath"]) == [str(p) for p in newest_first]
    assert list(sources["pixels"]) == [3 * n for n in won]
    np.testing.assert_allclose(sources["share"].sum(), (want != 0).mean())
    # the naive composite (merge, then mask with the merged QA) fills fewer pixels
    naive_valid = (data[:, 0] != 0).any(axis=0) & (
        (first_valid(qa, data[:, 0] != 0, 0)[0].astype(np.int64) & QA60_CLOUD_BITS) == 0
    )
    assert (want[0] != 0).sum() > naive_valid.sum()
    with rasterio.open(out["cog"]) as src:
        np.testing.assert_array_equal(src.read(), composite.values)
        assert src.descriptions == ("B02", "B03", "B04") and src.transform == sl.transform
        assert src.crs.to_epsg() == 32630


def test_a_runs_as_a_script(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "a_cloud_free_composite.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s2_2023-06_composite.tif").is_file() and "filled 100.0%" in done.stdout


# -- C: monthly composites of corrected reflectance in Zarr --------------------------------------------


def test_c_zarr_holds_the_monthly_mean_of_clear_corrected_acquisitions(tmp_path):
    import xarray as xr

    g = example("c_monthly_composite_zarr")
    out = g["main"](tmp_path)
    ds = xr.open_zarr(out["store"])
    assert list(pd.DatetimeIndex(ds.time.values).strftime("%Y-%m")) == ["2023-06", "2023-07", "2023-08"]
    assert list(ds.band.values) == ["B02", "B03", "B04"]
    gt = [float(v) for v in ds["spatial_ref"].attrs["GeoTransform"].split()]
    transform = Affine.from_gdal(*gt)
    assert rasterio.crs.CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).to_epsg() == 32630
    shape = (ds.sizes["y"], ds.sizes["x"])
    files = sorted((tmp_path / "s2").rglob("*.tif"))
    for k, month in enumerate((6, 7, 8)):
        raw = np.stack([read_on(p, transform, shape, [1, 2, 3, 4]) for p in files if date_of(p).month == month])
        data, qa = raw[:, :3].astype(np.float64), raw[:, 3].astype(np.int64)
        valid = (data[:, 0] != 0) & ((qa & QA60_CLOUD_BITS) == 0)
        n = valid.sum(axis=0)
        with np.errstate(invalid="ignore"):
            mean = (data * valid[:, None]).sum(axis=0) / n
        want = mean * 1e-4 - g["DARK_OBJECT"][:, None, None]
        got = ds["boa"].isel(time=k).values
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
        assert np.isfinite(got).mean() > 0.8


# -- F: change detection -----------------------------------------------------------------------------


def test_f_change_map_is_the_model_on_each_epochs_window(tmp_path):
    g = example("f_change_detection")
    out = g["main"](tmp_path)
    change, chips = out["change"], out["chips"]
    assert {c.crs for c in chips} == {"EPSG:32630"} and chips[0].resolution == (1000.0, 1000.0)
    shape = change.values.shape[1:]

    def epoch(folder: str, lo: str, hi: str) -> np.ndarray:
        files = sorted(
            (
                p
                for p in (tmp_path / folder).rglob("*.tif")
                if pd.Timestamp(lo, tz="UTC") <= date_of(p) <= pd.Timestamp(hi, tz="UTC")
            ),
            key=lambda p: (date_of(p), str(p)),
        )
        assert len(files) == 2  # one acquisition per tile in each window
        stack = np.stack([read_on(p, change.transform, shape, [1])[0] for p in files])
        return first_valid(stack, stack != 0, 0)[0]  # the default merge: first in time order

    before, after = epoch("pre", *g["BEFORE_WINDOW"]), epoch("post", *g["AFTER_WINDOW"])
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.abs(after - before) / np.maximum(before, 1.0)
    want[(before == 0) | (after == 0)] = np.nan
    covered = np.zeros(shape, bool)
    for c in chips:
        r = round((change.transform.f - c.bounds[3]) / 1000.0)
        col = round((c.bounds[0] - change.transform.c) / 1000.0)
        covered[r : r + c.height, col : col + c.width] = True
    got = change.values[0]
    np.testing.assert_allclose(got[covered], want[covered], rtol=1e-6, equal_nan=True)
    assert np.isnan(got[~covered]).all() and np.isnan(want).any() and np.isfinite(got).mean() > 0.5
    # the vectorised changed areas are exactly the pixels above the threshold (1 km² each)
    flagged = int((got > g["THRESHOLD"]).sum())
    assert 0 < flagged < np.isfinite(got).sum()
    assert out["changed"].area.sum() == pytest.approx(flagged * 1e6)


# -- G: per-file cloud masks -------------------------------------------------------------------------


def test_g_sidecars_are_aligned_to_their_inputs_and_match_qa60(tmp_path):
    g = example("g_cloud_mask_writeback")
    out = g["main"](tmp_path)
    inputs = sorted((tmp_path / "s2").rglob("*.tif"))
    assert len(out["sidecars"]) == len(inputs) == 4
    for src_path in inputs:
        sidecar = tmp_path / "clouds" / src_path.with_suffix(".cloud.tif").name
        with rasterio.open(src_path) as src, rasterio.open(sidecar) as dst:
            assert (dst.transform, dst.crs, dst.shape) == (src.transform, src.crs, src.shape)
            data, qa = src.read([1, 2, 3]), src.read(4).astype(np.int64)
            got = dst.read(1)
            assert dst.nodata == g["FILL"]
        want = np.where((data == 0).all(axis=0), g["FILL"], np.where((qa & QA60_CLOUD_BITS) != 0, 100, 0))
        np.testing.assert_array_equal(got, want)  # the file's own pixels, not a neighbour's or another date's
        polys = out["clouds"][
            out["clouds"]["source"].isin([r["id"] for r in out["catalog"] if r["filepath"] == str(src_path)])
        ]
        area = polys.to_crs("EPSG:32630").area.sum()
        assert area == pytest.approx((want == 100).sum() * 1e6, rel=1e-3)


# -- M: temporal pairs -------------------------------------------------------------------------------


def test_m_pairs_are_one_place_two_acquisitions_far_apart(tmp_path):
    g = example("m_temporal_pairs")
    out = g["main"](tmp_path)
    pairs, catalog = out["pairs"], out["catalog"]
    rows = {r["id"]: r for r in catalog}
    again = geoduck.temporal_pair_sampler(catalog, chip_size=32, length=len(pairs), min_gap=g["MIN_GAP"], seed=0)
    assert list(again) == list(pairs) and again.row_ids == pairs.row_ids  # seeded
    sims, seen = [], 0
    for (a, p), (ra, rp) in zip(pairs, pairs.row_ids, strict=True):
        assert (a.bounds, a.crs, a.resolution) == (p.bounds, p.crs, p.resolution)
        assert abs(a.start - p.start) >= pd.Timedelta(g["MIN_GAP"])
        assert (a.start, a.end) == (pd.Timestamp(rows[ra]["start_datetime"]), pd.Timestamp(rows[ra]["end_datetime"]))
        assert (p.start, p.end) == (pd.Timestamp(rows[rp]["start_datetime"]), pd.Timestamp(rows[rp]["end_datetime"]))
        x_a = read_on(rows[ra]["filepath"], a.transform, a.shape, [1, 2, 3])
        x_p = read_on(rows[rp]["filepath"], p.transform, p.shape, [1, 2, 3])
        sims.append(float(g["encoder"](x_a, out["weights"]) @ g["encoder"](x_p, out["weights"])))
        seen += int((x_a != 0).any()) + int((x_p != 0).any())
    assert seen > len(pairs)  # mostly on data (a chip may fall in a nodata hole of its file)
    np.testing.assert_allclose(out["similarity"], sims, rtol=1e-12)
    audit = pd.read_parquet(out["audit"])
    assert geoduck.samples_from_parquet(out["audit"]) == [a for a, _ in pairs] + [p for _, p in pairs]
    assert list(audit["row_id"]) == [a for a, _ in pairs.row_ids] + [p for _, p in pairs.row_ids]


# -- N: spatial-block cross-validation ---------------------------------------------------------------


def test_n_folds_are_spatially_separated_and_the_join_matches_pandas(tmp_path):
    g = example("n_spatial_block_cv")
    out = g["main"](tmp_path)
    catalog, folds, labelled = out["catalog"], out["folds"], out["labelled"]
    gdf = catalog.to_geopandas()
    merged = gdf.merge(folds, on="id", how="inner")
    assert len(labelled) == len(merged) == len(gdf) == 12
    got = labelled.to_geopandas().sort_values("id")
    assert list(got["fold"]) == list(merged.sort_values("id")["fold"])
    utm = gdf.set_index("id").geometry.to_crs(folds.attrs["crs"])
    for k in range(g["N_FOLDS"]):
        train = labelled.where(f"fold <> {k} AND fold >= 0")
        val = labelled.where(f"fold = {k}")
        want_train = merged[(merged["fold"] != k) & (merged["fold"] >= 0)]
        assert len(train) == len(want_train) and len(val) == int((merged["fold"] == k).sum()) > 0
        t_ids = {r["id"] for r in train}
        v_ids = {r["id"] for r in val}
        assert t_ids == set(want_train["id"]) and not t_ids & v_ids
        gap = shapely.distance(shapely.union_all(utm[list(t_ids)].values), shapely.union_all(utm[list(v_ids)].values))
        assert gap > g["BUFFER"]
        # all dates of a tile share their fold
        assert merged.groupby("tile")["fold"].nunique().max() == 1
    # chips saved with their fold/split lie on their split's rows
    audit = pd.read_parquet(out["audit"])
    assert geoduck.samples_from_parquet(out["audit"]) == out["chips"]
    for chip, fold, split in zip(out["chips"], audit["fold"], audit["split"], strict=True):
        side = merged[(merged["fold"] == fold) if split == "val" else (merged["fold"] != fold) & (merged["fold"] >= 0)]
        x0, y0, x1, y1 = chip.bounds  # on the data of a row of its split, in that row's CRS
        assert any(
            crs == chip.crs and nb["xmin"] <= x0 and nb["ymin"] <= y0 and x1 <= nb["xmax"] and y1 <= nb["ymax"]
            for crs, nb in zip(side["crs"], side["native_bounds"], strict=True)
        )


# -- O: embedding store ------------------------------------------------------------------------------


def test_o_each_embedding_encodes_its_chips_acquisition(tmp_path):
    import zarr

    g = example("o_embedding_store")
    out = g["main"](tmp_path)
    slices, catalog = out["slices"], out["catalog"]
    rows = list(catalog)
    by_interval = {(pd.Timestamp(r["start_datetime"]), pd.Timestamp(r["end_datetime"])): r for r in rows}
    assert len(by_interval) == len(rows) == 6  # every acquisition is one file
    emb = zarr.open_group(out["store"], mode="r")["emb"][:]
    assert emb.shape == (len(slices), g["D"])
    origin = (slices[0].bounds[0], slices[0].bounds[3])
    for i, sl in enumerate(slices):
        row = by_interval[sl.interval]  # every chip carries one row's interval
        assert sl.shape == (g["CHIP"], g["CHIP"]) and sl.crs == row["crs"]
        assert (sl.bounds[0] - origin[0]) % 1000 == 0 and (origin[1] - sl.bounds[3]) % 1000 == 0  # one aligned grid
        x = read_on(row["filepath"], sl.transform, sl.shape, [1, 2, 3])
        np.testing.assert_allclose(emb[i], g["frozen_encoder"](x, out["projection"]), rtol=1e-5)
    # each acquisition's chips cover its file
    for key, row in by_interval.items():
        chips = shapely.union_all([shapely.box(*s.grid_bounds) for s in slices if s.interval == key])
        nb = row["native_bounds"]
        assert chips.contains(shapely.box(nb["xmin"], nb["ymin"], nb["xmax"], nb["ymax"]))
    assert geoduck.samples_from_parquet(out["meta"]) == slices
    counts = Counter(s.start for s in slices)
    assert [(pd.Timestamp(t), n) for t, n in out["per_date"]] == sorted(counts.items())
