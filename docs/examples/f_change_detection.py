"""Proposal §8.3, example F: change detection across two epochs (siamese model on an intersect).

Two catalogs — pre-event and post-event imagery — are paired with
``before.intersect(after, spatial_only=True)``; ``grid_sampler`` tiles the places both cover (one
CRS for the whole grid, no ``crs=`` needed). Each chip is loaded from each epoch's time window (a
lazy ``query`` of that catalog: no slice surgery), a toy siamese "model" scores the change, the
chips are stitched with ``method="max"``, saved as a COG, and the changed areas are vectorised
with ``polygons_from_mask``.

Data: :func:`geoduck.testing.synthetic_archive` — two overlapping UTM 30 tiles; before: 1 and
17 August 2023, after: 16 September 2023 (plus 1 October, outside the window). The synthetic
landscape is seasonal, so the two epochs differ; some files have nodata holes, which the
stitched change map leaves NaN.

Run: ``python docs/examples/f_change_detection.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import geoduck
from geoduck.testing import ARCHIVE_REGEX, DEMO_TILES, synthetic_archive

TILES = DEMO_TILES[1:3]
BEFORE_WINDOW = ("2023-08-15", "2023-08-25")
AFTER_WINDOW = ("2023-09-15", "2023-09-25")
THRESHOLD = 0.12  # relative change of band B02 that counts as "changed"


def siamese_change_model(before: np.ndarray, after: np.ndarray, nodata: float) -> np.ndarray:
    """A stand-in for a trained siamese network: the relative change of the first band, (1, h, w)
    float32, NaN where either epoch has no data."""
    b, a = before[0].astype(np.float32), after[0].astype(np.float32)
    change = np.abs(a - b) / np.maximum(b, 1.0)
    change[(before[0] == nodata) | (after[0] == nodata)] = np.nan
    return change[None]


def main(workdir: str | Path, chip_size: int = 48) -> dict[str, Any]:
    work = Path(workdir)
    pre = [dt.date(2023, 8, 1), dt.date(2023, 8, 17)]
    post = [dt.date(2023, 9, 16), dt.date(2023, 10, 1)]
    synthetic_archive(work / "pre", tiles=TILES, dates=pre, size=144, res=1000.0, hole_every=3)
    synthetic_archive(work / "post", tiles=TILES, dates=post, size=144, res=1000.0, hole_every=3)
    before = geoduck.build_raster_catalog(
        work / "pre", work / "before", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    after = geoduck.build_raster_catalog(
        work / "post", work / "after", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    shared = before.intersect(after, spatial_only=True)  # places imaged in both epochs
    chips = geoduck.grid_sampler(shared, chip_size=chip_size)
    epoch_b = before.query(start=BEFORE_WINDOW[0], end=BEFORE_WINDOW[1])
    epoch_a = after.query(start=AFTER_WINDOW[0], end=AFTER_WINDOW[1])
    deltas = []
    for sl in chips:
        x_b = geoduck.load_raster(epoch_b, sl, bands=[1], resampling="nearest")
        x_a = geoduck.load_raster(epoch_a, sl, bands=[1], resampling="nearest")
        deltas.append(siamese_change_model(x_b.values, x_a.values, nodata=x_b.fill_value_default))
    change = geoduck.stitch(deltas, chips, method="max")
    cog = geoduck.save_cog(change, work / "change.tif", descriptions=["relative change B02"])
    changed = geoduck.polygons_from_mask(change.values[0] > THRESHOLD, transform=change.transform, crs=change.crs)
    changed.to_file(work / "changed.geojson", driver="GeoJSON")
    print(f"{len(shared)} overlapping pairs, {len(chips)} chips in {chips[0].crs}; change map {change.shape} → {cog}")
    print(f"{len(changed)} changed areas, {changed.area.sum() / 1e6:.0f} km² → {work / 'changed.geojson'}")
    return {"before": before, "after": after, "chips": chips, "change": change, "cog": cog, "changed": changed}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="geoduck-example-f-"))
