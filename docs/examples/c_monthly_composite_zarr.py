"""Proposal §8.2, example C: atmospheric correction ETL → cloud mask → monthly composite → Zarr.

For each month: tile the month's footprints with ``grid_sampler``, load each chip as the mean of
the month's clear acquisitions (QA60 cloud bits rejected per acquisition, *before* the mean),
apply a per-chip surface-reflectance correction, ``stitch`` the chips back into one raster,
convert it with ``to_xarray`` (CRS written) and append it to a Zarr store with a ``time`` axis.

The proposal loaded QA60 next to the bands and set cloudy pixels to NaN in user code; here the
mask is part of ``load_raster``. The toy correction :func:`toa_to_boa` is affine per band, so
applying it to the monthly mean equals the mean of the corrected acquisitions.

Data: :func:`geoduck.testing.synthetic_archive` with ``qa60=True`` — two overlapping UTM 30 tiles,
two acquisitions per month from June to August 2023 (bands B02 B03 B04 QA60, nodata 0).

Run: ``python docs/examples/c_monthly_composite_zarr.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import geoduck
from geoduck.testing import ARCHIVE_REGEX, DEMO_TILES, synthetic_archive

TILES = DEMO_TILES[1:3]
DATES = [dt.date(2023, m, d) for m in (6, 7, 8) for d in (4, 20)]
BANDS = ["B02", "B03", "B04"]
DARK_OBJECT = np.array([0.02, 0.015, 0.01], dtype=np.float32)  # per-band path reflectance to subtract


def toa_to_boa(toa: np.ndarray) -> np.ndarray:
    """A toy atmospheric correction: digital numbers (×10⁴ reflectance) → surface reflectance by
    dark-object subtraction, per band; NaN (no clear observation) stays NaN."""
    return toa * np.float32(1e-4) - DARK_OBJECT[:, None, None]


def main(workdir: str | Path, chip_size: int = 48) -> dict[str, Any]:
    work = Path(workdir)
    synthetic_archive(work / "s2", tiles=TILES, dates=DATES, size=144, res=1000.0, qa60=True)
    catalog = geoduck.build_raster_catalog(
        work / "s2", work / "catalog", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    store = work / "s2_monthly_boa.zarr"
    months = pd.period_range("2023-06", "2023-08", freq="M")
    layers = []
    for month in months:
        acquisitions = catalog.query(start=str(month), end=str(month))  # "2023-06" as end: the whole month
        chips = geoduck.grid_sampler(acquisitions, chip_size=chip_size)  # 1 km: the files' pixel size
        boa = []
        for sl in chips:
            toa = geoduck.load_raster(
                acquisitions, sl, bands=BANDS, merge="mean", mask="QA60", mask_bits=[10, 11], resampling="nearest"
            )  # float32, NaN where no clear observation
            boa.append(toa_to_boa(toa.values))
        mosaic = geoduck.stitch(boa, chips, method="average")
        layer = geoduck.to_xarray(mosaic, band=BANDS, name="boa").expand_dims(time=[month.start_time])
        layers.append(layer)
        print(f"{month}: {len(acquisitions)} files, {len(chips)} chips, clear {np.isfinite(mosaic.values).mean():.1%}")
    cube = xr.concat(layers, dim="time")
    cube.to_dataset().to_zarr(store, mode="w", consolidated=True, zarr_format=2)
    print(f"{dict(cube.sizes)} → {store}")
    return {"catalog": catalog, "store": store, "cube": cube}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="geoduck-example-c-"))
