"""Proposal §8.5, example M: a self-supervised temporal-pair sampler (SimCLR-style positives).

``temporal_pair_sampler`` draws (anchor, positive) chips: the same place (bounds, CRS, pixel grid)
at two acquisitions at least ``min_gap`` apart, seeded and reproducible. Each chip carries its
row's interval, so ``load_raster`` loads exactly that acquisition (no merge of other dates). A
plain NumPy loop stands in for the training step (torch is optional in geoduck; with it,
``geoduck.torch.GeoIterableDataset`` wraps the same pairs); the pairs are saved with
``samples_to_parquet`` for auditing.

The proposal drew random chips, looked up the containing tile with a GeoDataFrame ``contains``
and re-drew a time by hand — a positive that could fall on no acquisition at all.

Data: :func:`geoduck.testing.synthetic_archive` — two overlapping UTM 30 tiles × four dates over
2023 (a seasonal landscape, so the two views of a pair differ).

Run: ``python docs/examples/m_temporal_pairs.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import geoduck
from geoduck.testing import ARCHIVE_REGEX, DEMO_TILES, archive_dates, synthetic_archive

TILES = DEMO_TILES[1:3]
MIN_GAP = "60D"


def encoder(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A frozen toy encoder: per-band mean and standard deviation of a (bands, h, w) chip (NaN-free:
    nodata pixels are left out) and a constant, projected by ``weights`` and L2-normalised."""
    valid = (x != 0).all(axis=0)
    v = x[:, valid].astype(np.float64) if valid.any() else np.zeros((x.shape[0], 1))
    z = weights @ np.concatenate([v.mean(axis=1), v.std(axis=1), [1000.0]])
    return z / max(float(np.linalg.norm(z)), 1e-12)


def main(workdir: str | Path, n_pairs: int = 16) -> dict[str, Any]:
    work = Path(workdir)
    synthetic_archive(work / "s2", tiles=TILES, dates=archive_dates(years=(2023,)), size=144, res=1000.0)
    catalog = geoduck.build_raster_catalog(
        work / "s2", work / "catalog", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    pairs = geoduck.temporal_pair_sampler(catalog, chip_size=32, length=n_pairs, min_gap=MIN_GAP, seed=0)
    weights = np.random.default_rng(0).normal(size=(8, 7))
    similarity = []
    for anchor, positive in pairs:
        x_a = geoduck.load_raster(catalog, anchor).values  # the anchor's acquisition only
        x_p = geoduck.load_raster(catalog, positive).values
        similarity.append(float(encoder(x_a, weights) @ encoder(x_p, weights)))  # a loss would use these
    anchors = [a for a, _ in pairs]
    positives = [p for _, p in pairs]
    audit = geoduck.samples_to_parquet(
        anchors + positives,
        work / "pairs.parquet",
        columns={
            "pair": list(range(len(pairs))) * 2,
            "role": ["anchor"] * len(pairs) + ["positive"] * len(pairs),
            "row_id": [a for a, _ in pairs.row_ids] + [p for _, p in pairs.row_ids],
        },
    )
    print(f"{len(pairs)} pairs ≥ {MIN_GAP} apart, mean cosine similarity {np.mean(similarity):.3f} → {audit}")
    return {"catalog": catalog, "pairs": pairs, "similarity": similarity, "audit": audit, "weights": weights}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="geoduck-example-m-"))
