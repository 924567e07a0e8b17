"""Quality masks applied to each source before a mosaic merges it (:class:`QualityMask`).

A cloud-free composite must mask every acquisition *before* the merge: masking the merged result
throws away pixels that another, clear acquisition could have filled. ``load_raster(...,
mask=...)`` does that: for each source (a file, or the band files of one scene) it reads the mask
array on the output grid, tests it, and marks the rejected pixels invalid, so they never win (or
count in) any merge method.

The mask array is

* a *mask band* (``band=``): a 1-based band index or band description of the same file (e.g. the
  ``QA60`` band of a Sentinel-2 GeoTIFF), or, for band-file scenes (catalog rows with
  ``scene_id``/``band``), the ``band`` name of the scene's QA file (``"QA_PIXEL"``, ``"SCL"``).
  It is read on the output grid with *nearest* resampling (QA values are codes, never
  interpolated) and *without* its nodata applied: a QA value that equals the file's nodata (e.g.
  0 = "clear" in a file with nodata 0) is a value like any other;
* or, without ``band``, the source's data bands themselves (``(bands, h, w)`` as read).

Tests (any combination; a pixel is rejected if any test rejects it, in every band if any band
rejects it):

* ``bits``: bit positions (0 = least significant) of which any set bit rejects — QA60 bits 10
  (opaque clouds) and 11 (cirrus) are ``bits=(10, 11)``; integer mask arrays only;
* ``values``: values that reject (e.g. Sentinel-2 SCL classes ``{3, 8, 9, 10}``);
* ``valid_range``: ``(lo, hi)``, closed; values outside it (and NaN) reject;
* ``fn``: a callable given the mask array (``(h, w)`` for a mask band, ``(bands, h, w)`` for the
  data) returning a boolean array, True where rejected, of shape ``(h, w)`` or the array's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArgumentError

RejectFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class QualityMask:
    """Which pixels of each source to reject before merging (see the module docstring).

    Attributes:
        band: the mask band — 1-based index or band description in the same file, or a band
            file's ``band`` name within its scene; None tests the data bands themselves.
        bits: reject where any of these bits (0..63) is set.
        values: reject these values.
        valid_range: reject values outside ``[lo, hi]`` (and NaN).
        fn: reject where ``fn(mask array)`` is True.
    """

    band: int | str | None = None
    bits: tuple[int, ...] = ()
    values: frozenset[float] = field(default_factory=frozenset)
    valid_range: tuple[float, float] | None = None
    fn: RejectFn | None = None

    def __post_init__(self) -> None:
        band = self.band
        if band is not None and (isinstance(band, bool) or not isinstance(band, int | str | np.integer)):
            raise ArgumentError(f"mask band={band!r} must be a 1-based band index, a band name or None")
        if isinstance(band, np.integer):
            object.__setattr__(self, "band", int(band))
        object.__setattr__(self, "bits", _bits(self.bits))
        object.__setattr__(self, "values", _values(self.values))
        if self.valid_range is not None:
            object.__setattr__(self, "valid_range", _range(self.valid_range))
        if self.fn is not None and not callable(self.fn):
            raise ArgumentError(f"mask fn={self.fn!r} must be callable (array -> boolean reject array)")
        if not (self.bits or self.values or self.valid_range is not None or self.fn is not None):
            raise ArgumentError(
                f"mask={self.band!r} needs a test: mask_bits=[...] (bit flags that reject), "
                "mask_values=[...] (values that reject), mask_range=(lo, hi) (valid range) or a callable"
            )

    def reject(self, array: np.ndarray, shape: tuple[int, int], where: str = "the mask") -> np.ndarray:
        """Boolean ``shape`` (h, w): True where ``array`` (the mask band (h, w) or data (b, h, w))
        is rejected by any test, in any band."""
        out: np.ndarray = np.zeros(array.shape, dtype=bool)
        if self.bits:
            if array.dtype.kind not in "iub":
                raise ArgumentError(
                    f"mask_bits need integer values, but {where} is {array.dtype}; use mask_values or mask_range"
                )
            flags = np.uint64(sum(1 << b for b in self.bits))
            out |= (array.astype(np.uint64, copy=False) & flags) != 0
        if self.values:
            finite = [v for v in self.values if not math.isnan(v)]
            if finite:
                out |= np.isin(array, np.asarray(finite))
            if len(finite) < len(self.values) and array.dtype.kind in "fc":
                out |= np.isnan(array)
        if self.valid_range is not None:
            lo, hi = self.valid_range
            with np.errstate(invalid="ignore"):
                out |= ~((array >= lo) & (array <= hi))
        if self.fn is not None:
            got = np.asarray(self.fn(array))
            if got.dtype != bool or got.shape not in (array.shape, shape):
                raise ArgumentError(
                    f"mask callable {self.fn!r} must return a boolean array of shape {shape} or "
                    f"{array.shape} (True = reject), got {got.dtype} {got.shape}"
                )
            if got.shape == out.shape:
                out |= got
            else:  # (h, w) for a (b, h, w) array
                out = np.asarray(out.any(axis=0)) | got
        return np.asarray(out.any(axis=0)) if out.ndim == 3 else out


def _bits(bits: Iterable[int] | int) -> tuple[int, ...]:
    items = [bits] if isinstance(bits, int | np.integer) else list(bits)
    out = []
    for b in items:
        if isinstance(b, bool) or not isinstance(b, int | np.integer) or not 0 <= int(b) <= 63:
            raise ArgumentError(f"mask_bits={bits!r}: each bit is an integer position 0..63 (0 = least significant)")
        out.append(int(b))
    return tuple(sorted(set(out)))


def _values(values: Iterable[float] | float) -> frozenset[float]:
    items = [values] if isinstance(values, int | float | np.number) else list(values)
    out = set()
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int | float | np.number):
            raise ArgumentError(f"mask_values={values!r}: each value is a number, got {v!r}")
        out.add(v.item() if isinstance(v, np.generic) else v)
    return frozenset(out)


def _range(rng: object) -> tuple[float, float]:
    try:
        a, b = list(rng)  # type: ignore[call-overload]
        lo, hi = float(a), float(b)
    except (TypeError, ValueError):
        raise ArgumentError(f"mask_range={rng!r} must be (lo, hi), the closed range of valid values") from None
    if not lo <= hi:
        raise ArgumentError(f"mask_range={rng!r}: lo must be <= hi")
    return lo, hi


def quality_mask(
    mask: QualityMask | int | str | RejectFn | None,
    bits: Iterable[int] | int | None = None,
    values: Iterable[float] | float | None = None,
    valid_range: tuple[float, float] | None = None,
) -> QualityMask | None:
    """The loaders' ``mask=``/``mask_bits=``/``mask_values=``/``mask_range=`` arguments as one
    :class:`QualityMask` (None: no masking). ``mask`` is a QualityMask (then no ``mask_*``), a
    mask band (index or name) tested by the ``mask_*`` arguments, a callable on the data bands, or
    None (the ``mask_*`` tests then apply to the data bands)."""
    loose = bits is not None or values is not None or valid_range is not None
    if isinstance(mask, QualityMask):
        if loose:
            raise ArgumentError("give either mask=QualityMask(...) or mask_bits/mask_values/mask_range, not both")
        return mask
    if mask is None and not loose:
        return None
    kwargs: dict = dict(bits=() if bits is None else bits, values=() if values is None else values)
    kwargs["valid_range"] = valid_range
    if mask is not None and not isinstance(mask, int | str | np.integer) and callable(mask):
        return QualityMask(fn=mask, **kwargs)
    return QualityMask(band=mask, **kwargs)
