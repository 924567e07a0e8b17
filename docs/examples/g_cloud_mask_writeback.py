"""Proposal §8.3, example G: cloud detection written back as a sidecar aligned to each input file.

For every catalog row, ``GeoSlice.from_row`` gives the row's own grid (native CRS, transform,
shape) and interval, so ``load_raster`` returns exactly that file's pixels — not a mosaic of
the neighbours or of other dates — and the predicted cloud mask has the input's affine and shape
by construction. Each mask is written as a COG next to a copy of the input's name
(``<name>.cloud.tif``) with ``save_cog``, and its cloud outlines with ``polygons_from_mask``.

The proposal built the slice from ``row.geometry.bounds`` (lon/lat degrees) with a 10 m
resolution and the catalog's CRS: wrong grid, wrong units, and all dates merged. ``from_row``
(or ``catalog.slices()``) is the way.

Data: :func:`geoduck.testing.synthetic_archive` with ``qa60=True`` — two overlapping UTM 30
tiles × two dates, clouds bright (10000) in the data bands; the toy "cloud model" thresholds
brightness, so its output can be checked against the files' QA60 cloud bits.

Run: ``python docs/examples/g_cloud_mask_writeback.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from georeader.geotensor import GeoTensor

import geoduck
from geoduck.testing import ARCHIVE_REGEX, DEMO_TILES, synthetic_archive

TILES = DEMO_TILES[1:3]
DATES = [dt.date(2023, 6, 15), dt.date(2023, 7, 15)]
FILL = 255  # the sidecar's nodata: no input data under the pixel


def cloud_model(rgb: np.ndarray, nodata: float) -> np.ndarray:
    """A stand-in for a cloud detector: (1, h, w) uint8 cloud probability in % from brightness,
    ``FILL`` where the input has no data."""
    brightness = rgb.astype(np.float32).mean(axis=0)
    prob = np.clip((brightness - 6000.0) / 40.0, 0, 100).astype(np.uint8)
    prob[(rgb == nodata).all(axis=0)] = FILL
    return prob[None]


def main(workdir: str | Path) -> dict[str, Any]:
    work = Path(workdir)
    synthetic_archive(work / "s2", tiles=TILES, dates=DATES, size=144, res=1000.0, qa60=True)
    catalog = geoduck.build_raster_catalog(
        work / "s2", work / "catalog", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    out = work / "clouds"
    out.mkdir(parents=True, exist_ok=True)
    sidecars, outlines = [], []
    for row in catalog:  # or: zip(catalog, catalog.slices()) — never row["geometry"] by hand
        sl = geoduck.GeoSlice.from_row(row)  # the file's own grid and interval
        rgb = geoduck.load_raster(catalog, sl, bands=["B02", "B03", "B04"])
        cloud = GeoTensor(cloud_model(rgb.values, rgb.fill_value_default), rgb.transform, rgb.crs, FILL)
        path = out / Path(row["filepath"]).with_suffix(".cloud.tif").name
        sidecars.append(geoduck.save_cog(cloud, path, descriptions=["cloud probability (%)"]))
        polygons = geoduck.polygons_from_mask(
            (cloud.values[0] >= 50) & (cloud.values[0] != FILL), transform=cloud.transform, crs=cloud.crs
        )
        outlines.append(polygons.to_crs("EPSG:4326").assign(source=row["id"], date=row["start_datetime"]))
    clouds = gpd.GeoDataFrame(pd.concat(outlines, ignore_index=True), crs="EPSG:4326")
    clouds.to_file(work / "clouds.geojson", driver="GeoJSON")
    print(f"{len(sidecars)} sidecars in {out}; {len(clouds)} cloud polygons → {work / 'clouds.geojson'}")
    return {"catalog": catalog, "sidecars": sidecars, "clouds": clouds}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="geoduck-example-g-"))
