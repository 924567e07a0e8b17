"""``GeoSlice``: a pixel grid (bounds, CRS, resolution) plus an optional time interval."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from rasterio.transform import Affine

from .errors import ArgumentError
from .geo import Bounds, crs_to_string, norm_crs, validate_bounds
from .intervals import TimeLike, query_interval


def _pixels(extent: float, res: float) -> int:
    n = extent / res
    nearest = round(n)
    return max(1, int(nearest if abs(n - nearest) < 1e-6 * max(1.0, n) else math.ceil(n)))


@dataclass(frozen=True)
class GeoSlice:
    """A grid anchored at the top-left corner ``(xmin, ymax)`` of ``bounds``, in ``crs`` units.

    Args:
        bounds: (xmin, ymin, xmax, ymax) in ``crs`` units.
        crs: anything pyproj accepts; stored as an authority code (``"EPSG:32630"``) or WKT2.
        resolution: pixel size in ``crs`` units, one number or (x, y), positive.
        start, end: closed interval (UTC); a date-only ``end`` includes that whole day. None = any time.

    The grid has ``ceil(width / res)`` columns (exact multiples are not rounded up), so it covers
    ``bounds`` and may extend past ``xmax``/``ymin`` by less than a pixel.
    """

    bounds: Bounds
    crs: str
    resolution: tuple[float, float]
    start: pd.Timestamp | None = field(default=None)
    end: pd.Timestamp | None = field(default=None)

    def __init__(self, bounds: Any, crs: Any, resolution: float | tuple[float, float],
                 start: TimeLike = None, end: TimeLike = None) -> None:
        b = validate_bounds(bounds, argument="bounds")
        if not (b[0] < b[2] and b[1] < b[3]):
            raise ArgumentError(f"bounds={b} must have xmin < xmax and ymin < ymax")
        res = (resolution, resolution) if isinstance(resolution, int | float) else tuple(resolution)
        if len(res) != 2 or not all(isinstance(r, int | float) and math.isfinite(r) and r > 0 for r in res):
            raise ArgumentError(f"resolution={resolution!r} must be one or two positive numbers")
        t0, t1 = query_interval(start, end)
        object.__setattr__(self, "bounds", b)
        object.__setattr__(self, "crs", crs_to_string(norm_crs(crs)))
        object.__setattr__(self, "resolution", (float(res[0]), float(res[1])))
        object.__setattr__(self, "start", t0)
        object.__setattr__(self, "end", t1)

    @property
    def width(self) -> int:
        return _pixels(self.bounds[2] - self.bounds[0], self.resolution[0])

    @property
    def height(self) -> int:
        return _pixels(self.bounds[3] - self.bounds[1], self.resolution[1])

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.height, self.width

    @property
    def transform(self) -> Affine:
        """Affine from pixel (col, row) to ``crs`` coordinates; north-up."""
        rx, ry = self.resolution
        return Affine(rx, 0.0, self.bounds[0], 0.0, -ry, self.bounds[3])

    @property
    def grid_bounds(self) -> Bounds:
        """Bounds of the pixel grid (``bounds`` extended to whole pixels)."""
        xmin, _, _, ymax = self.bounds
        return (xmin, ymax - self.height * self.resolution[1], xmin + self.width * self.resolution[0], ymax)

    @property
    def interval(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        return self.start, self.end
