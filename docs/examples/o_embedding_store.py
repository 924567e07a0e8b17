"""Proposal §8.5, example O: a foundation-model embedding store.

Encode every chip of a time-stacked catalog with a frozen encoder and persist the ``(N, D)``
embeddings in Zarr, with the chips' metadata (bounds, CRS, resolution, interval) as GeoParquet
via ``samples_to_parquet`` — queryable with DuckDB and read back exactly with
``samples_from_parquet``.

``grid_sampler(..., by="interval")`` lays one aligned grid per acquisition and every chip carries
its interval, so each embedding describes one acquisition. In the proposal the grid chips had no
time, ``load_raster`` silently merged all dates under each chip (the oldest imagery won) and the
metadata's ``tmin``/``tmax`` could not be filled.

Data: :func:`geoduck.testing.synthetic_archive` — two overlapping UTM 30 tiles × three dates
(each tile acquired on its own day, so each interval is one file).

Run: ``python docs/examples/o_embedding_store.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import zarr

import geoduck
from geoduck.testing import ARCHIVE_REGEX, DEMO_TILES, synthetic_archive

TILES = DEMO_TILES[1:3]
DATES = [dt.date(2023, 3, 1), dt.date(2023, 6, 1), dt.date(2023, 9, 1)]
CHIP = 48
D = 16  # embedding size


def frozen_encoder(x: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """A stand-in for a frozen vision encoder: 4 × 4 average pooling of the (bands, 48, 48) chip
    (nodata 0 counts as 0), flattened and projected to ``D`` float32 values."""
    b, h, w = x.shape
    pooled = x.astype(np.float64).reshape(b, 4, h // 4, 4, w // 4).mean(axis=(2, 4))
    return (projection @ pooled.ravel()).astype(np.float32)


def main(workdir: str | Path) -> dict[str, Any]:
    work = Path(workdir)
    synthetic_archive(work / "s2", tiles=TILES, dates=DATES, size=144, res=1000.0)
    catalog = geoduck.build_raster_catalog(
        work / "s2", work / "catalog", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    slices = geoduck.grid_sampler(catalog, chip_size=CHIP, by="interval")  # one grid per acquisition
    projection = np.random.default_rng(0).normal(size=(D, 3 * 16)) / 1e4
    store = zarr.open_group(work / "embeddings.zarr", mode="w")
    emb = store.create_array("emb", shape=(len(slices), D), chunks=(256, D), dtype="float32")
    for i, sl in enumerate(slices):
        x = geoduck.load_raster(catalog, sl, bands=["B02", "B03", "B04"]).values  # this acquisition only
        emb[i] = frozen_encoder(x, projection)
    meta = geoduck.samples_to_parquet(slices, work / "embeddings_meta.parquet")  # row i ↔ emb[i]
    per_date = duckdb.execute(  # the metadata is plain GeoParquet: audit it with SQL
        "SELECT start_datetime, count(*) AS chips FROM read_parquet(?) GROUP BY ALL ORDER BY 1", [str(meta)]
    ).fetchall()
    for start, n in per_date:
        print(f"{start:%Y-%m-%d}: {n} chips")
    print(f"{len(slices)} chips × {D} → {work / 'embeddings.zarr'}; metadata → {meta}")
    return {
        "catalog": catalog,
        "slices": slices,
        "store": work / "embeddings.zarr",
        "meta": meta,
        "projection": projection,
        "per_date": per_date,
    }


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="geoduck-example-o-"))
