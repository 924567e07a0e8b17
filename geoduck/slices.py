"""``GeoSlice``: a pixel grid (bounds, CRS, resolution) plus an optional time interval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Polygon

from .errors import ArgumentError, CRSError
from .geo import (
    Bounds,
    crs_key,
    crs_to_string,
    densified_ring,
    footprint_wgs84,
    norm_crs,
    pole_inside,
    transformer,
    unwrap_ring,
    validate_bounds,
    wrap_shift,
)
from .intervals import TimeLike, query_interval


def _pixels(extent: float, res: float) -> int:
    n = extent / res
    nearest = round(n)
    return max(1, int(nearest if abs(n - nearest) < 1e-6 * max(1.0, n) else math.ceil(n)))


def reproject_bounds(bounds: Bounds, src: Any, dst: Any, *, densify: int = 21) -> Bounds:
    """The envelope in ``dst`` of ``bounds`` (in ``src`` units), edges densified with ``densify`` points.

    Into a geographic ``dst`` longitudes are unwrapped, so an envelope crossing the antimeridian has
    ``xmax > 180`` (e.g. 170 … 190) rather than spanning the globe; bounds that contain a pole reach
    that pole's latitude over all longitudes. Raises :class:`CRSError` when the bounds do not
    project (outside ``dst``'s area of use).
    """
    s, d = norm_crs(src, argument="src"), norm_crs(dst, argument="dst")
    if s.equals(d):
        return tuple(float(v) for v in bounds)  # type: ignore[return-value]
    xs, ys = densified_ring(bounds, densify)
    with np.errstate(all="ignore"):
        x, y = transformer(s, d).transform(xs, ys, errcheck=False)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise CRSError(
            f"bounds={tuple(bounds)} in {crs_to_string(s)} do not project to "
            f"{crs_to_string(d)} (outside its area of use)"
        )
    if d.is_geographic:
        x, pole = unwrap_ring(x, y, pole_hint=pole_inside(bounds, s))
        if pole is not None:  # the bounds contain a pole: all longitudes
            return (-180.0, min(float(y.min()), pole), 180.0, max(float(y.max()), pole))
        x = x - wrap_shift(float(x.min()))
    return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def _as_time(value: Any) -> pd.Timestamp | None:
    """A row's timestamp (datetime/Timestamp/None) as an exact UTC instant."""
    return None if value is None else pd.Timestamp(value)


def _pixel_pair(value: Any, argument: str) -> tuple[int, int]:
    """An int or a pair of ints → (y, x) pixels (``(rows, cols)`` order)."""
    pair = (value, value) if isinstance(value, int | np.integer) else value
    try:
        y, x = pair
    except (TypeError, ValueError):
        raise ArgumentError(f"{argument}={value!r} must be an int or a pair of ints (rows, cols)") from None
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (y, x)):
        raise ArgumentError(f"{argument}={value!r} must be an int or a pair of ints (rows, cols)")
    return int(y), int(x)


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

    Slices are values: inputs are normalised once (float bounds, CRS string, UTC microsecond
    timestamps), so slices built from equivalent inputs compare equal and hash equal.
    """

    bounds: Bounds
    crs: str
    resolution: tuple[float, float]
    start: pd.Timestamp | None = field(default=None)
    end: pd.Timestamp | None = field(default=None)

    def __init__(
        self,
        bounds: Any,
        crs: Any,
        resolution: float | tuple[float, float],
        start: TimeLike = None,
        end: TimeLike = None,
    ) -> None:
        b = validate_bounds(bounds, argument="bounds")
        if not (b[0] < b[2] and b[1] < b[3]):
            raise ArgumentError(f"bounds={b} must have xmin < xmax and ymin < ymax")
        res = (resolution, resolution) if isinstance(resolution, int | float) else tuple(resolution)
        if len(res) != 2 or not all(isinstance(r, int | float) and math.isfinite(r) and r > 0 for r in res):
            raise ArgumentError(f"resolution={resolution!r} must be one or two positive numbers")
        t0, t1 = query_interval(start, end)
        object.__setattr__(self, "bounds", b)
        object.__setattr__(self, "crs", crs_key(crs))
        object.__setattr__(self, "resolution", (float(res[0]), float(res[1])))
        object.__setattr__(self, "start", t0)
        object.__setattr__(self, "end", t1)

    @classmethod
    def _make(
        cls,
        bounds: Bounds,
        crs: str,
        resolution: tuple[float, float],
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
    ) -> GeoSlice:
        """Fast path for already-normalised values (samplers build many slices)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "bounds", tuple(float(v) for v in bounds))
        object.__setattr__(obj, "crs", crs)
        object.__setattr__(obj, "resolution", (float(resolution[0]), float(resolution[1])))
        object.__setattr__(obj, "start", start)
        object.__setattr__(obj, "end", end)
        return obj

    @classmethod
    def from_row(
        cls, row: Mapping[str, Any], *, resolution: float | tuple[float, float] | None = None, crs: Any = "native"
    ) -> GeoSlice:
        """The slice of one catalog row (a dict from iterating a :class:`~geoduck.Catalog`), on the
        row's own grid: use this instead of converting the row's ``geometry`` (lon/lat) by hand.

        - Grid: the row's native CRS (column ``crs``) and ``native_bounds``; for a raster row the
          file's pixel size (``res_x``, ``res_y``), so a north-up file's slice has the file's
          transform and shape and ``load_raster`` on it returns exactly the file's pixels (a
          south-up file's pixels come north-up; a rotated file gets the north-up envelope of its
          grid at its pixel size, resampled). Cube (xarray) and vector rows have no pixel grid in
          the catalog: pass ``resolution`` (units of the row's CRS).
        - Interval: the row's ``[start_datetime, end_datetime]`` (None for static rows), so the
          slice loads this acquisition and not others of the same place.
        - ``resolution`` (in the row's CRS units) replaces the pixel size: the grid keeps the
          row's top-left corner and covers its bounds (``ceil`` of pixel counts).
        - ``crs`` other than ``"native"``/None: the slice reprojected with :meth:`to_crs`
          (the envelope of the grid; ``resolution`` then in ``crs`` units, default: the
          same pixel counts).

        Raises:
            ArgumentError: the row lacks ``crs``/``native_bounds``, or has no pixel size and no
                ``resolution`` is given.
        """
        rid = row.get("id", "?")
        native_crs, nb = row.get("crs"), row.get("native_bounds")
        if native_crs is None or nb is None:
            raise ArgumentError(
                f"row {rid!r} has no native crs/native_bounds (a relation without them, e.g. an "
                "intersect result: take the rows of one catalog; STAC items without proj:* fields: "
                "build with from_stac(..., read_headers=True) / `geoduck build stac ... --read-headers`)"
            )
        bounds = tuple(nb[k] for k in ("xmin", "ymin", "xmax", "ymax")) if isinstance(nb, Mapping) else tuple(nb)
        native = crs is None or (isinstance(crs, str) and crs.strip().lower() == "native")
        res: Any = resolution if native else None
        if res is None and row.get("res_x") is not None and row.get("res_y") is not None:
            res = (float(row["res_x"]), float(row["res_y"]))
        if res is None and not native and resolution is not None:  # one pixel: grid_bounds == bounds
            res = (bounds[2] - bounds[0], bounds[3] - bounds[1])
        if res is None:
            raise ArgumentError(
                f"row {rid!r} ({row.get('backend', 'non-raster')} row) has no pixel grid in the catalog: "
                "pass resolution= (in the units of its crs)"
            )
        out = cls(bounds, native_crs, res, _as_time(row.get("start_datetime")), _as_time(row.get("end_datetime")))
        return out if native else out.to_crs(crs, resolution=resolution)

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

    def footprint(self) -> Polygon | MultiPolygon:
        """The pixel grid's footprint (``grid_bounds``) in EPSG:4326 lon/lat, densified like catalog
        footprints and split at the antimeridian."""
        return footprint_wgs84(self.grid_bounds, norm_crs(self.crs))

    def to_crs(self, crs: Any, *, resolution: float | tuple[float, float] | None = None) -> GeoSlice:
        """This slice in another CRS (same interval).

        Bounds: the envelope of the pixel grid (``grid_bounds``, edges densified to 21 points) in
        ``crs`` (see :func:`reproject_bounds`). Resolution rule: unless given (in ``crs`` units),
        it is chosen so the pixel count along each axis is preserved (``shape`` is unchanged), i.e.
        ``new extent / old width`` and ``new extent / old height``: the same number of pixels
        over a (slightly larger, since it is an envelope) area.
        """
        target = crs_key(crs)
        if target == self.crs and resolution is None:
            return self
        bounds = reproject_bounds(self.grid_bounds, self.crs, target)
        if resolution is None:
            h, w = self.shape
            resolution = ((bounds[2] - bounds[0]) / w, (bounds[3] - bounds[1]) / h)
        return GeoSlice(bounds, target, resolution, self.start, self.end)

    def buffer(self, pixels: int | tuple[int, int]) -> GeoSlice:
        """The pixel grid grown by ``pixels`` on each side (an int, or ``(rows, cols)``).

        The result keeps the grid alignment: its grid is this grid plus whole pixels, so its
        ``shape`` is ``(height + 2·rows, width + 2·cols)`` and its origin moves by
        ``(-cols·res_x, +rows·res_y)``. Negative values shrink it (at least one pixel must remain).
        """
        py, px = _pixel_pair(pixels, "pixels")
        h, w = self.shape
        if h + 2 * py < 1 or w + 2 * px < 1:
            raise ArgumentError(f"buffer(pixels={pixels!r}) leaves no pixel of a {h}×{w} slice")
        rx, ry = self.resolution
        xmin, ymax = self.bounds[0] - px * rx, self.bounds[3] + py * ry
        bounds = (xmin, ymax - (h + 2 * py) * ry, xmin + (w + 2 * px) * rx, ymax)
        return GeoSlice._make(bounds, self.crs, self.resolution, self.start, self.end)
