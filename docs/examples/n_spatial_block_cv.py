"""Proposal §8.5, example N: spatial-block cross-validation (no spatial leakage).

``spatial_folds`` clusters the rows' centroids into k-means blocks and deals whole blocks to
folds (all dates of a place share its fold), leaving out rows within ``buffer`` metres of another
fold. The fold table is a plain pandas DataFrame; ``Catalog.join`` attaches it to the catalog
lazily, in the same DuckDB query, so each fold's train/validation catalogs are ordinary
``where`` filters. Chips drawn from each side are saved with ``samples_to_parquet`` (fold and
split columns) to audit the split in SQL.

The proposal assigned a column on an in-memory GeoDataFrame and filtered with a pandas-style
``where("block != @fold")``; a catalog in GeoParquet has no such column, and ``where("id IN
(...)")`` with many ids is slow — ``join`` is the way for any user table (labels, scores,
splits).

Data: :func:`geoduck.testing.synthetic_archive` — six 96 km tiles along 40°N in UTM zones
29/30/31, ~30 km apart, × two dates.

Run: ``python docs/examples/n_spatial_block_cv.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import geoduck
from geoduck.testing import ARCHIVE_REGEX, DEMO_TILES, synthetic_archive

DATES = [dt.date(2023, 5, 10), dt.date(2023, 8, 10)]
N_FOLDS = 3
BUFFER = 10_000.0  # metres: rows of different folds are kept farther apart than this


def main(workdir: str | Path, chips_per_split: int = 8) -> dict[str, Any]:
    work = Path(workdir)
    synthetic_archive(work / "s2", tiles=DEMO_TILES, dates=DATES, size=96, res=1000.0)
    catalog = geoduck.build_raster_catalog(
        work / "s2", work / "catalog", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    folds = geoduck.spatial_folds(catalog, n_folds=N_FOLDS, n_clusters=N_FOLDS, buffer=BUFFER, seed=0)
    labelled = catalog.join(folds, on="id")  # id, …, block, fold: lazy, one DuckDB query
    split_chips, split_columns = [], {"fold": [], "split": []}
    for k in range(N_FOLDS):
        train = labelled.where(f"fold <> {k} AND fold >= 0")
        val = labelled.where(f"fold = {k}")
        for split, cat in (("train", train), ("val", val)):
            chips = geoduck.random_sampler(cat, chip_size=32, length=chips_per_split, seed=k)
            split_chips += list(chips)
            split_columns["fold"] += [k] * len(chips)
            split_columns["split"] += [split] * len(chips)
            # train_one_fold(model, loader(train chips), loader(val chips)) would go here
        print(f"fold {k}: {len(train)} train rows, {len(val)} validation rows")
    audit = geoduck.samples_to_parquet(split_chips, work / "cv_chips.parquet", columns=split_columns)
    counts = labelled.sql("SELECT fold, count(*) AS n FROM catalog GROUP BY fold ORDER BY fold")
    print(counts.to_string(index=False))  # rows per fold (-1: left out by the buffer)
    return {"catalog": catalog, "folds": folds, "labelled": labelled, "audit": audit, "chips": split_chips}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="geoduck-example-n-"))
