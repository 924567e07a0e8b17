"""Proposal §8.1, example A: a cloud-free monthly composite over an AOI.

Query a month over an AOI, reject the QA60 cloud bits (10: opaque, 11: cirrus) of *every
acquisition before merging*, keep the most recent clear pixel per band, save a COG and audit which
acquisitions filled the composite (``return_sources=True``).

The proposal masked after the merge (load the bands with ``merge="last"``, load QA60 the same way,
zero the cloudy pixels). That is wrong on most pixels: a cloud in the newest image hides a clear
pixel of an older one, and a QA60 value 0 ("clear") equal to the file's nodata 0 is dropped too.
``load_raster(..., mask="QA60", mask_bits=[10, 11])`` masks each source first.

Data: :func:`geoduck.testing.synthetic_archive` with ``qa60=True`` — two overlapping UTM 30 tiles,
four June acquisitions and one in July each, bands B02 B03 B04 QA60 (nodata 0); cloud pixels hold a bright 10000.

Run: ``python docs/examples/a_cloud_free_composite.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import geoduck
from geoduck.testing import ARCHIVE_REGEX, DEMO_TILES, synthetic_archive, tile_transform

TILES = DEMO_TILES[1:3]  # 30TTK and 30TVK (EPSG:32630), overlapping by ~16 km
DATES = [dt.date(2023, 6, d) for d in (2, 10, 18, 26)] + [dt.date(2023, 7, 4)]  # tile k: k days later
BANDS = ["B02", "B03", "B04"]


def aoi_slice() -> geoduck.GeoSlice:
    """June 2023 over 100 × 90 km straddling the two tiles' overlap, at 1 km (EPSG:32630)."""
    t = tile_transform(TILES[1], 144, 1000.0)
    x0, y0 = t.c - 60_000, t.f - 120_000
    return geoduck.GeoSlice(
        (x0, y0, x0 + 100_000, y0 + 90_000), "EPSG:32630", 1000.0, start="2023-06-01", end="2023-06-30"
    )


def main(workdir: str | Path) -> dict[str, Any]:
    work = Path(workdir)
    files = synthetic_archive(work / "s2", tiles=TILES, dates=DATES, size=144, res=1000.0, qa60=True)
    catalog = geoduck.build_raster_catalog(
        work / "s2", work / "catalog", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    aoi = aoi_slice()
    composite, sources = geoduck.load_raster(
        catalog,
        aoi,
        bands=BANDS,
        merge="last",  # the newest *clear* pixel wins
        mask="QA60",
        mask_bits=[10, 11],  # opaque clouds and cirrus, tested on each acquisition
        resampling="nearest",
        return_sources=True,
    )
    cog = geoduck.save_cog(composite, work / "s2_2023-06_composite.tif", descriptions=BANDS)
    sources.to_csv(work / "s2_2023-06_sources.csv", index=False)
    filled = float((composite.values[0] != composite.fill_value_default).mean())
    print(f"{len(catalog)} files, composite {composite.shape} filled {filled:.1%} → {cog}")
    print(sources[["filepath", "start_datetime", "pixels", "share"]].to_string(index=False))
    return {"files": files, "catalog": catalog, "slice": aoi, "composite": composite, "sources": sources, "cog": cog}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="geoduck-example-a-"))
