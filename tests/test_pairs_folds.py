"""Temporal pairs (same place, two acquisitions ≥ min_gap apart) and spatial-block folds, checked by
brute force over every pair / every two items."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyproj
import pytest
import rasterio
import shapely
from rasterio.windows import from_bounds

import geoduck
from geoduck.errors import ArgumentError, CRSError, NoDataError
from geoduck.samplers import kmeans

GAP = dt.timedelta(days=100)


@pytest.fixture(scope="module")
def rows(archive_catalog) -> dict[str, dict]:
    return {r["id"]: r for r in archive_catalog}


def _inside(bounds, nb: dict) -> bool:
    return nb["xmin"] <= bounds[0] and bounds[2] <= nb["xmax"] and nb["ymin"] <= bounds[1] and bounds[3] <= nb["ymax"]


def test_pairs_are_one_place_at_two_dates_min_gap_apart(archive_catalog, rows):
    pairs = geoduck.temporal_pair_sampler(archive_catalog, chip_size=24, length=80, min_gap=GAP, seed=3)
    assert len(pairs) == len(pairs.row_ids) == 80
    seen_partners = set()
    for (a, p), (ra, rp) in zip(pairs, pairs.row_ids, strict=True):
        row_a, row_p = rows[ra], rows[rp]
        assert a.bounds == p.bounds and a.crs == p.crs == row_a["crs"] == row_p["crs"]
        assert a.resolution == p.resolution == (500.0, 500.0)
        assert (a.start, a.end) == (row_a["start_datetime"], row_a["end_datetime"])
        assert (p.start, p.end) == (row_p["start_datetime"], row_p["end_datetime"])
        assert abs(row_p["start_datetime"] - row_a["start_datetime"]) >= GAP
        assert _inside(a.bounds, row_a["native_bounds"]) and _inside(a.bounds, row_p["native_bounds"])
        # the positive is one of the brute-force candidates: same CRS, covers the chip, far enough in time
        candidates = {
            r["id"]
            for r in rows.values()
            if r["crs"] == a.crs
            and _inside(a.bounds, r["native_bounds"])
            and abs(r["start_datetime"] - row_a["start_datetime"]) >= GAP
        }
        assert rp in candidates
        seen_partners.add((ra, rp))
    assert len(seen_partners) > 40  # many different acquisitions, in both time directions
    assert any(rows[p]["start_datetime"] < rows[a]["start_datetime"] for a, p in seen_partners)
    # reproducible, and the seed matters
    again = geoduck.temporal_pair_sampler(archive_catalog, chip_size=24, length=80, min_gap=GAP, seed=3)
    assert list(again) == list(pairs) and again.row_ids == pairs.row_ids
    other = geoduck.temporal_pair_sampler(archive_catalog, chip_size=24, length=80, min_gap=GAP, seed=4)
    assert list(other) != list(pairs)
    # each slice loads its own acquisition
    for (a, p), (ra, rp) in list(zip(pairs, pairs.row_ids, strict=True))[:2]:
        for sl, rid in ((a, ra), (p, rp)):
            with rasterio.open(rows[rid]["filepath"]) as src:
                want = src.read(window=from_bounds(*sl.bounds, transform=src.transform).round_offsets())
            np.testing.assert_array_equal(geoduck.load_raster(archive_catalog, sl).values, want)


def test_pair_sampler_errors(archive_catalog):
    with pytest.raises(NoDataError, match="min_gap"):
        geoduck.temporal_pair_sampler(archive_catalog, chip_size=8, length=3, min_gap=dt.timedelta(days=800))
    with pytest.raises(ArgumentError, match="min_gap"):
        geoduck.temporal_pair_sampler(archive_catalog, chip_size=8, length=3, min_gap=dt.timedelta(0))
    with pytest.raises(ArgumentError, match="min_gap"):
        geoduck.temporal_pair_sampler(archive_catalog, chip_size=8, length=3, min_gap="soon")
    with pytest.raises(NoDataError, match="chip"):  # larger than any tile: no chip lies on two rows
        geoduck.temporal_pair_sampler(archive_catalog, chip_size=400, length=3, min_gap=GAP)
    one_day = geoduck.temporal_pair_sampler(archive_catalog, chip_size=8, length=5, min_gap="1D", seed=1)
    assert all(a.bounds == p.bounds and a.start != p.start for a, p in one_day)


BLOCK = 33_333.3  # no chip centre (multiples of 250 m) falls on a block edge


@pytest.fixture(scope="module")
def chips(archive_catalog) -> list:
    out = geoduck.grid_sampler(archive_catalog, chip_size=32, resolution=500.0)
    assert {s.crs for s in out} == {"EPSG:32630"}  # one grid CRS: chip outlines are exact boxes there
    return out


def _centres(chips, crs: str) -> np.ndarray:
    """Chip centres in ``crs``, computed with pyproj from the chip's own CRS."""
    b = np.array([s.grid_bounds for s in chips])
    (src,) = {s.crs for s in chips}
    x, y = pyproj.Transformer.from_crs(src, crs, always_xy=True).transform(
        (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    )
    return np.column_stack([x, y])


def test_blocks_go_whole_to_folds_with_exact_counts(chips, tmp_path):
    folds = geoduck.spatial_folds(chips, n_folds=4, block_size=BLOCK, seed=7)
    assert folds.attrs["crs"] == "EPSG:32630" and list(folds["chip"]) == list(range(len(chips)))
    cells = np.floor(_centres(chips, "EPSG:32630") / BLOCK).astype(int)
    # brute force: the blocks are exactly the BLOCK-metre cells of the centres, each in one fold
    fold_of_cell: dict[tuple, set] = defaultdict(set)
    block_of_cell: dict[tuple, set] = defaultdict(set)
    for (cx, cy), b, f in zip(cells.tolist(), folds["block"], folds["fold"], strict=True):
        fold_of_cell[cx, cy].add(f)
        block_of_cell[cx, cy].add(b)
    assert all(len(v) == 1 for v in fold_of_cell.values()) and all(len(v) == 1 for v in block_of_cell.values())
    assert len({next(iter(v)) for v in block_of_cell.values()}) == len(block_of_cell) == folds["block"].nunique()
    counts = folds["fold"].value_counts()
    sizes = folds["block"].value_counts()
    assert set(counts.index) == {0, 1, 2, 3} and counts.sum() == len(chips)
    assert counts.max() - counts.min() <= sizes.max()  # greedy balance: within one block
    assert geoduck.spatial_folds(chips, n_folds=4, block_size=BLOCK, seed=7).equals(folds)
    # saved with the chips, read back exactly
    path = geoduck.samples_to_parquet(chips, tmp_path / "folds.parquet", columns={"fold": folds["fold"].tolist()})
    assert pq.read_table(path).column("fold").to_pylist() == folds["fold"].tolist()


def _check_buffer(chips, block: float, buffer: float, n_folds: int, seed: int) -> np.ndarray:
    """spatial_folds(buffer=) against brute force over all chip pairs; returns who was left out."""
    folds = geoduck.spatial_folds(chips, n_folds=n_folds, block_size=block, buffer=buffer, seed=seed)
    fold = folds["fold"].to_numpy()
    assert folds.attrs["crs"] == "EPSG:32630"
    boxes = shapely.box(*np.array([s.grid_bounds for s in chips]).T)  # exact outlines in that CRS
    dist = shapely.distance(boxes[:, None], boxes[None, :])
    other = (fold[:, None] != fold[None, :]) & (fold[:, None] >= 0) & (fold[None, :] >= 0)
    assert (dist[other] > buffer).all()  # kept items of different folds: more than the buffer apart
    # left out exactly those within the buffer of another fold (as assigned without a buffer)
    plain = geoduck.spatial_folds(chips, n_folds=n_folds, block_size=block, seed=seed)["fold"].to_numpy()
    near = ((dist <= buffer) & (plain[:, None] != plain[None, :])).any(axis=1)
    np.testing.assert_array_equal(fold, np.where(near, -1, plain))
    return near


def test_buffer_keeps_folds_apart(chips):
    near = _check_buffer(chips, 3 * BLOCK, 20_000.0, 3, seed=2)  # ~100 km blocks of 16 km chips
    assert 0 < near.sum() < len(chips)
    folds = geoduck.spatial_folds(chips, n_folds=3, block_size=3 * BLOCK, buffer=20_000.0, seed=2)
    assert set(folds["fold"]) == {-1, 0, 1, 2}


def test_buffer_with_heavily_overlapping_chips(archive_catalog):
    """Chips at a quarter of their size apart (each overlaps ~50 others): the same rule, exactly."""
    chips = geoduck.grid_sampler(archive_catalog, chip_size=32, resolution=500.0, stride=8)[:1500]
    boxes = shapely.box(*np.array([s.grid_bounds for s in chips]).T)
    overlaps = shapely.STRtree(boxes).query(boxes, predicate="overlaps")[0]
    assert np.median(np.bincount(overlaps, minlength=len(chips))) >= 20
    for buffer in (1.0, 5_000.0):
        near = _check_buffer(chips, BLOCK, buffer, 4, seed=5)
        assert 0 < near.sum() < len(chips)


def test_kmeans_clusters_of_catalog_rows(archive_catalog, rows):
    folds = geoduck.spatial_folds(archive_catalog, n_folds=2, n_clusters=3, seed=0)
    assert list(folds["id"]) == sorted(rows) and set(folds["fold"]) == {0, 1}
    assert folds.groupby("block")["fold"].nunique().eq(1).all()
    by_tile = folds.assign(tile=[rows[i]["tile"] for i in folds["id"]]).groupby("tile")["block"].nunique()
    assert by_tile.eq(1).all()  # the 8 dates of a tile share its footprint, so its cluster
    # k-means fixed point on a plain point set: each point is nearest to its own cluster's mean
    pts = np.random.default_rng(1).normal(size=(300, 2)) + np.repeat([[0, 0], [6, 0], [0, 6]], 100, axis=0)
    labels = kmeans(pts, 3, seed=5)
    means = np.array([pts[labels == k].mean(axis=0) for k in range(3)])
    assert (((pts[:, None] - means[None]) ** 2).sum(axis=2).argmin(axis=1) == labels).all()
    assert sorted(np.bincount(labels)) == [100, 100, 100]


def test_fold_errors(chips):
    with pytest.raises(ArgumentError, match="exactly one"):
        geoduck.spatial_folds(chips, n_folds=3)
    with pytest.raises(ArgumentError, match="blocks"):
        geoduck.spatial_folds(chips, n_folds=5, block_size=5e6)
    with pytest.raises(CRSError, match="metres"):
        geoduck.spatial_folds(chips, block_size=1000.0, crs="EPSG:4326")
    with pytest.raises(ArgumentError, match="n_folds"):
        geoduck.spatial_folds(chips, n_folds=1, block_size=1000.0)
    assert isinstance(geoduck.spatial_folds(chips[:10], n_folds=2, n_clusters=2), pd.DataFrame)
