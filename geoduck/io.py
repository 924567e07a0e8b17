"""Writing georeferenced outputs: GeoTensors as Cloud-Optimized GeoTIFFs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from .errors import ArgumentError


def save_cog(
    tensor: Any,
    path: str | os.PathLike[str],
    *,
    descriptions: Sequence[str] | None = None,
    compress: str = "deflate",
    blocksize: int = 256,
) -> Path:
    """Write a GeoTensor ((bands, h, w) or (h, w)) as a Cloud-Optimized GeoTIFF (GDAL COG driver).

    CRS and transform come from the tensor; its ``fill_value_default`` (NaN allowed for floats,
    None for none) becomes the file's nodata. ``descriptions`` names the bands. Returns ``path``.
    """
    for attr in ("transform", "crs"):
        if getattr(tensor, attr, None) is None:
            raise ArgumentError(
                f"save_cog needs a georeferenced tensor with .{attr} (a GeoTensor), got {type(tensor).__name__}"
            )
    values = np.asarray(tensor)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3:
        raise ArgumentError(f"save_cog writes (bands, h, w) or (h, w) arrays, got shape {values.shape}")
    if descriptions is not None and len(descriptions) != values.shape[0]:
        raise ArgumentError(f"descriptions has {len(descriptions)} names for {values.shape[0]} band(s)")
    out = Path(path)
    with rasterio.open(
        out,
        "w",
        driver="COG",
        width=values.shape[-1],
        height=values.shape[-2],
        count=values.shape[0],
        dtype=values.dtype,
        crs=tensor.crs,
        transform=tensor.transform,
        nodata=getattr(tensor, "fill_value_default", None),
        compress=compress,
        blocksize=blocksize,
    ) as dst:
        dst.write(values)
        for i, name in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, name)
    return out
