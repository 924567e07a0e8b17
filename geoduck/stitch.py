"""Stitching chip predictions back into one raster (:func:`stitch`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from georeader.geotensor import GeoTensor
from rasterio.transform import Affine

from .errors import ArgumentError
from .geo import rasterio_crs
from .io import save_cog
from .slices import GeoSlice

__all__ = ["METHODS", "Stitcher", "save_cog", "stitch"]

Method = Literal["average", "max", "first", "last"]
METHODS: tuple[str, ...] = ("average", "max", "first", "last")

_ALIGN_TOL = 1e-6  # pixels


def _union_grid(slices: Sequence[GeoSlice]) -> tuple[Affine, int, int, list[tuple[int, int]]]:
    """Transform, height, width of the union grid and each slice's (row, col) offset in it."""
    for i, s in enumerate(slices):
        if not isinstance(s, GeoSlice):
            raise ArgumentError(f"slices[{i}] is a {type(s).__name__}, not a GeoSlice")
    first = slices[0]
    rx, ry = first.resolution
    counts = Counter(s.crs for s in slices)
    if len(counts) > 1:
        (most, _), i = counts.most_common(1)[0], next(i for i, s in enumerate(slices) if s.crs != first.crs)
        raise ArgumentError(
            f"slices[{i}] has crs {slices[i].crs} but slices[0] has {first.crs} ({len(counts)} CRSs): "
            f"stitch needs one CRS: make the chips with grid_sampler(..., crs={most!r}) (the CRS of "
            "most chips; grid_sampler's default crs=None also gives one CRS) or reproject the predictions"
        )
    for i, s in enumerate(slices):
        if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(s.resolution, first.resolution, strict=True)):
            raise ArgumentError(
                f"slices[{i}] has resolution {s.resolution} but slices[0] has "
                f"{first.resolution}: stitch needs one resolution"
            )
    x0 = min(s.bounds[0] for s in slices)
    y0 = max(s.bounds[3] for s in slices)
    offsets = []
    for i, s in enumerate(slices):
        col, row = (s.bounds[0] - x0) / rx, (y0 - s.bounds[3]) / ry
        if abs(col - round(col)) > _ALIGN_TOL or abs(row - round(row)) > _ALIGN_TOL:
            raise ArgumentError(
                f"slices[{i}] (bounds={s.bounds}) is off the grid of the others: its "
                f"origin is {col:.6g}, {row:.6g} pixels from the union's corner "
                "(stitch needs whole-pixel offsets)"
            )
        offsets.append((round(row), round(col)))
    height = max(r + s.height for (r, _), s in zip(offsets, slices, strict=True))
    width = max(c + s.width for (_, c), s in zip(offsets, slices, strict=True))
    return Affine(rx, 0.0, x0, 0.0, -ry, y0), height, width, offsets


def _as_array(pred: Any, s: GeoSlice, i: int) -> np.ndarray:
    if isinstance(pred, GeoTensor):
        t = pred.transform
        if not all(
            math.isclose(a, b, rel_tol=0, abs_tol=1e-9 * max(1.0, abs(b)))
            for a, b in zip(tuple(t)[:6], tuple(s.transform)[:6], strict=True)
        ):
            raise ArgumentError(
                f"predictions[{i}] has transform {tuple(t)[:6]} but slices[{i}] has {tuple(s.transform)[:6]}"
            )
    values = np.asarray(pred)
    if values.ndim not in (2, 3) or values.shape[-2:] != s.shape:
        raise ArgumentError(
            f"predictions[{i}] has shape {values.shape}; expected (C, {s.height}, "
            f"{s.width}) or ({s.height}, {s.width}) for slices[{i}]"
        )
    return values


def stitch(
    predictions: Sequence[Any],
    slices: Sequence[GeoSlice],
    *,
    method: Method = "average",
    weights: np.ndarray | None = None,
    fill_value: float | None = None,
) -> GeoTensor:
    """Mosaic per-chip predictions onto the union grid of their slices.

    Args:
        predictions: one per slice: arrays (C, h, w) or (h, w) (all the same rank and C), or
            GeoTensors (whose transform must be the slice's); ``(h, w)`` = the slice's shape.
        slices: the chips' GeoSlices; all in one CRS and resolution, with whole-pixel offsets
            between them (as from :func:`geoduck.grid_sampler`), else :class:`ArgumentError`.
        method: where chips overlap, ``"average"``: the weighted mean, computed as
            ``ref + Σ wᵢ(vᵢ − ref) / Σ wᵢ`` (``ref`` = the first value) so equal values stitch to
            exactly that value; ``"max"``; ``"first"`` / ``"last"``: the value of the first / last
            chip (in ``slices`` order) that covers the pixel.
        weights: ``"average"`` only: per-pixel chip weights (h, w), ≥ 0 (e.g. a window that
            down-weights chip borders), the same for every chip; default uniform.
        fill_value: value of pixels no chip covers. Default NaN, and the output is floating
            (``result_type(predictions, float32)``); a number keeps the predictions' dtype for
            ``max``/``first``/``last`` (e.g. integer class maps).

    NaN prediction values count as missing: they never win and are left out of the average.
    To stitch predictions as they are computed, without holding them all, feed a :class:`Stitcher`.

    Returns:
        A GeoTensor (C, H, W) — (H, W) for 2-D predictions — over the union of the slices (top-left
        = min xmin, max ymax), CRS and resolution of the slices, ``fill_value_default`` = the fill.
    """
    if method not in METHODS:
        raise ArgumentError(f"method={method!r} is not one of {METHODS}")
    preds, chips = list(predictions), list(slices)
    if len(preds) != len(chips) and chips:
        raise ArgumentError(f"{len(preds)} predictions for {len(chips)} slices: give one per slice")
    stitcher = Stitcher(chips, method=method, weights=weights, fill_value=fill_value)
    arrays = [_as_array(p, s, i) for i, (p, s) in enumerate(zip(preds, chips, strict=True))]
    for i, a in enumerate(arrays):
        stitcher.check(i, a)
    stitcher.dtype = np.result_type(*arrays)
    for a in arrays:
        stitcher.feed(a)
    return stitcher.result()


class Stitcher:
    """Incremental :func:`stitch`: :meth:`feed` the predictions one at a time in ``slices`` order,
    then take :meth:`result`; only the output grid (and its accumulators) is held in memory.

    Fed the same predictions, it gives exactly what :func:`stitch` gives, except that the output
    dtype follows the predictions fed so far (widened if a later one needs it) where ``stitch``
    takes the result type of all of them up front.
    """

    def __init__(
        self,
        slices: Sequence[GeoSlice],
        *,
        method: Method = "average",
        weights: np.ndarray | None = None,
        fill_value: float | None = None,
    ) -> None:
        if method not in METHODS:
            raise ArgumentError(f"method={method!r} is not one of {METHODS}")
        self.slices = list(slices)
        if not self.slices:
            raise ArgumentError("stitch needs at least one slice")
        if weights is not None and method != "average":
            raise ArgumentError(f"weights= only applies to method='average', not {method!r}")
        self.method = method
        self.fill_value = fill_value
        self.transform, self.height, self.width, self.offsets = _union_grid(self.slices)
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.ndim != 2 or not np.isfinite(w).all() or (w < 0).any():
                raise ArgumentError(f"weights must be a finite, non-negative (h, w) array, got shape {w.shape}")
            self.weights = w
        self.dtype: np.dtype | None = None
        """Result type of the predictions (set by :meth:`feed`, or up front by :func:`stitch`)."""
        self._first: np.ndarray | None = None
        self._count = 0
        self._out: np.ndarray | None = None
        self._fill: Any = None
        self._acc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._have: np.ndarray | None = None

    @property
    def fed(self) -> int:
        """Predictions fed so far."""
        return self._count

    def check(self, i: int, a: np.ndarray) -> None:
        """Raise :class:`ArgumentError` unless ``a`` has the rank and channel count of the first."""
        first = a if self._first is None else self._first
        if a.ndim != first.ndim or (a.ndim == 3 and a.shape[0] != first.shape[0]):
            raise ArgumentError(
                f"predictions[{i}] has shape {a.shape} but predictions[0] has "
                f"{first.shape}: all need the same rank and channel count"
            )
        if self._first is None:
            self._first = a

    def _out_dtype(self, dtype: np.dtype) -> tuple[np.dtype, Any]:
        fill_value = self.fill_value
        if fill_value is None or self.method == "average":
            out_dtype = np.result_type(dtype, np.float32)
            fill = float("nan") if fill_value is None else fill_value
        else:
            out_dtype, fill = dtype, fill_value
        if not np.issubdtype(out_dtype, np.inexact) and not (
            isinstance(fill, int | np.integer) and np.can_cast(np.min_scalar_type(fill), out_dtype)
        ):
            raise ArgumentError(f"fill_value={fill!r} does not fit the predictions' dtype {out_dtype}")
        return out_dtype, fill

    def _allocate(self, channels: int, dtype: np.dtype) -> None:
        out_dtype, self._fill = self._out_dtype(dtype)
        shape = (channels, self.height, self.width)
        self._out = np.full(shape, self._fill, dtype=out_dtype)
        if self.method == "average":
            self._acc = (
                np.zeros(shape, dtype=np.float64),
                np.zeros(shape, dtype=np.float64),
                np.zeros(shape, dtype=np.float64),
            )
        else:
            self._have = np.zeros(shape, dtype=bool)

    def feed(self, prediction: Any) -> None:
        """Add the prediction of the next slice (array or GeoTensor, as :func:`stitch` takes)."""
        i = self._count
        if i >= len(self.slices):
            raise ArgumentError(f"more predictions than the {len(self.slices)} slices")
        s = self.slices[i]
        v = _as_array(prediction, s, i)
        self.check(i, v)
        dtype = v.dtype if self.dtype is None else np.result_type(self.dtype, v)
        if dtype != self.dtype:
            self.dtype = dtype
            if self._out is not None:  # widen what is there already
                out_dtype, self._fill = self._out_dtype(dtype)
                self._out = self._out.astype(out_dtype)
        v = v[None] if v.ndim == 2 else v
        if self._out is None:
            self._allocate(v.shape[0], dtype)
        assert self._out is not None  # allocated above
        self._count += 1
        r, c = self.offsets[i]
        h, wd = v.shape[-2:]
        win = np.s_[:, r : r + h, c : c + wd]
        valid = ~np.isnan(v) if np.issubdtype(v.dtype, np.inexact) else np.ones(v.shape, dtype=bool)
        if self.method == "average":
            w = self.weights
            if w is not None and w.shape != (h, wd):
                raise ArgumentError(f"weights has shape {w.shape} but predictions[{i}] is {h}×{wd}")
            assert self._acc is not None  # allocated with _out for "average"
            ref, acc, wsum = self._acc
            wv = np.ones((h, wd)) if w is None else w
            vf = v.astype(np.float64)
            new = valid & (wsum[win] == 0)
            ref[win][new] = vf[new]
            acc[win] += np.where(valid, wv * (vf - ref[win]), 0.0)
            wsum[win] += np.where(valid, wv, 0.0)
            return
        region, have = self._out[win], self._have
        assert have is not None  # allocated with _out for first/last/max
        if self.method == "first":
            take = valid & ~have[win]
        elif self.method == "last":
            take = valid
        else:  # max
            take = valid & (~have[win] | (v > region))
        region[take] = v[take]
        have[win] |= take

    def skip(self) -> None:
        """Pass over the next slice (no prediction: e.g. a chip without data)."""
        if self._count >= len(self.slices):
            raise ArgumentError(f"more predictions than the {len(self.slices)} slices")
        self._count += 1

    def result(self) -> GeoTensor:
        """The stitched GeoTensor of the predictions fed (all slices must have been fed)."""
        if self._count != len(self.slices):
            raise ArgumentError(f"{self._count} predictions for {len(self.slices)} slices: give one per slice")
        if self._out is None:
            raise ArgumentError("every slice was skipped: nothing to stitch")
        out = self._out
        assert self._first is not None  # set by the first prediction fed
        if self.method == "average":
            assert self._acc is not None
            ref, acc, wsum = self._acc
            covered = wsum > 0
            out[covered] = (ref[covered] + acc[covered] / wsum[covered]).astype(out.dtype)
        values = out[0] if self._first.ndim == 2 else out
        fill = self._fill
        return GeoTensor(
            values,
            transform=self.transform,
            crs=rasterio_crs(self.slices[0].crs),
            fill_value_default=fill.item() if isinstance(fill, np.generic) else fill,
        )
