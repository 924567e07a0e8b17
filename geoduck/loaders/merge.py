"""Merge methods: small strategy objects that fold per-source arrays into one mosaic.

A merger is fed each source's ``(values, valid)`` pair on the output grid, in the order it asks for
(:attr:`Merger.newest_first`), and says when feeding more cannot change the result
(:attr:`Merger.is_done`, so ``first``/``last`` stop reading once every pixel is filled). Invalid
pixels (nodata, outside the source, masked, NaN) never contribute.

Output dtypes and fill values (``fill`` = what a pixel without any valid observation holds, also
the GeoTensor's ``fill_value_default``):

* ``first``, ``last``, ``min``, ``max``: the sources' dtype (``np.result_type`` of all sources);
  fill = the sources' nodata, else 0.
* ``sum``: int64 for bool/integer sources (uint64 stays uint64), float64 for floats; fill = 0 for
  integer outputs, NaN for floats.
* ``count``: uint16 (int32 beyond 65,535 sources); fill = 0.
* ``mean``, ``median``: float32 for ≤ 16-bit integer and float32 sources, else float64; fill = NaN.

``sum`` of no observation is the empty sum 0 for integer outputs; use ``count`` to tell "no
observation" apart. ``median`` of an even number of observations is the mean of the middle two.

Provenance (:meth:`Merger.track`, used by ``load_raster(..., return_sources=True)``): for
``first``/``last``/``min``/``max`` the number of output values (band × row × col) each fed source
*won* (supplied to the result; ties of ``min``/``max`` go to the source fed first); for ``sum``,
``count``, ``mean`` and ``median``, where every valid observation counts, the number of output
values each source *contributed to*.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar

import numpy as np
from numpy.typing import DTypeLike

from ..errors import ArgumentError


class Validity:
    """A read's validity mask, computed on first use (``.array`` or ``np.asarray``).

    ``holds`` is the value every invalid pixel already holds (the source's nodata, when validity
    is nodata-only), or None; ``all_valid`` says no pixel is invalid. With either, a
    ``first``/``last``/``min``/``max`` mosaic of one source needs no mask at all.
    """

    __slots__ = ("_compute", "_array", "holds", "all_valid")

    def __init__(self, compute: Callable[[], np.ndarray], holds: float | None = None, all_valid: bool = False) -> None:
        self._compute = compute
        self._array: np.ndarray | None = None
        self.holds, self.all_valid = holds, all_valid

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = self._compute()
        return self._array

    def __array__(self, dtype: DTypeLike | None = None, copy: object = None) -> np.ndarray:
        return self.array if dtype is None else self.array.astype(dtype)


Mask = np.ndarray | Validity
"""A boolean validity mask (bands, h, w), given or lazy."""


def as_array(valid: Mask) -> np.ndarray:
    return valid.array if isinstance(valid, Validity) else valid


class Merger:
    """Folds ``(values, valid)`` arrays of shape ``shape`` into one array (see module docstring).

    Args:
        shape: (bands, height, width) of the output.
        dtype: the sources' common dtype.
        nodata: the sources' nodata value (None: none), the fill of source-dtype outputs.
        n_sources: how many sources may be fed (sizes the ``count`` dtype).
    """

    name: ClassVar[str]
    newest_first: ClassVar[bool] = False
    """Feed sources latest ``start_datetime`` first (``last``) instead of earliest first."""

    winner_takes_all: ClassVar[bool] = False
    """One source supplies each output value (its provenance is the winner, not every contributor)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, nodata: float | None, n_sources: int = 1) -> None:
        self.shape = tuple(shape)
        self.source_dtype = np.dtype(dtype)
        self.dtype, self.fill = output_spec(self.name, self.source_dtype, nodata, n_sources)
        self.n_fed = 0
        self._owner: np.ndarray | None = None
        self._contributed: list[int] | None = None

    def track(self) -> None:
        """Record provenance from now on (call before the first :meth:`feed`)."""
        if self.winner_takes_all:
            self._owner = np.full(self.shape, -1, dtype=np.int32)
        else:
            self._contributed = []

    def _record(self, took: np.ndarray) -> None:
        """Bookkeeping of one feed (each ``feed`` calls it exactly once): ``took`` are the output
        values this source now supplies (winner mode) or contributes to."""
        if self._owner is not None:
            np.copyto(self._owner, self.n_fed, where=took)
        elif self._contributed is not None:
            self._contributed.append(int(np.count_nonzero(took)))
        self.n_fed += 1

    def source_counts(self) -> list[int]:
        """Output values won by (or contributed to by) each fed source, in feeding order; see
        the module docstring. Needs :meth:`track`."""
        if self._owner is not None:
            owner = self._owner[self._owner >= 0]
            return np.bincount(owner, minlength=self.n_fed).astype(int).tolist()
        assert self._contributed is not None, "source_counts() needs track() before the first feed"
        return list(self._contributed)

    def feed(self, values: np.ndarray, valid: Mask) -> None:
        """Add one source: ``values`` (bands, h, w) and its boolean validity (same shape; an
        array or a lazy :class:`Validity`). The merger may modify and keep both. Implementations
        call :meth:`_record` exactly once per feed (provenance)."""
        raise NotImplementedError

    @property
    def is_done(self) -> bool:
        """True when no further source can change :meth:`result`."""
        return False

    def result(self) -> np.ndarray:
        """The merged array (``self.dtype``), ``self.fill`` where no source was valid."""
        raise NotImplementedError


def _fill_scalar(dtype: np.dtype, value: float) -> int | float:
    """``value`` as a Python scalar of ``dtype``; 0 when an integer dtype cannot hold it."""
    if dtype.kind in "iub" and not (np.isfinite(value) and _int_range(dtype)[0] <= value <= _int_range(dtype)[1]):
        value = 0
    return dtype.type(value).item()


def _int_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype) if dtype.kind != "b" else np.iinfo(np.uint8)
    return int(info.min), int(info.max)


@lru_cache(maxsize=256)
def output_spec(method: str, dtype: np.dtype, nodata: float | None, n_sources: int = 1) -> tuple[np.dtype, int | float]:
    """(output dtype, fill value) of ``method`` for sources of ``dtype`` with ``nodata``."""
    dtype = np.dtype(dtype)
    if method in ("first", "last", "min", "max"):
        return dtype, _fill_scalar(dtype, 0 if nodata is None else nodata)
    if method == "sum":
        if dtype.kind in "fc":
            out = np.dtype("complex128" if dtype.kind == "c" else "float64")
            return out, _fill_scalar(out, np.nan)
        return (np.dtype("uint64"), 0) if dtype == np.uint64 else (np.dtype("int64"), 0)
    if method == "count":
        return np.dtype("uint16" if n_sources <= np.iinfo(np.uint16).max else "int32"), 0
    if method in ("mean", "median"):
        out = np.result_type(dtype, np.float32) if dtype.kind != "c" else np.dtype("complex128")
        return np.dtype(out), _fill_scalar(np.dtype(out), np.nan)
    raise ArgumentError(f"merge={method!r} is not one of {tuple(MERGERS)}")


def _same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (a != a and b != b))  # NaN == NaN here


class _Filled(Merger):
    """Keeps one value per pixel and which pixels are filled (``filled`` may stay lazy)."""

    winner_takes_all = True

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.out: np.ndarray | None = None
        self._filled: Mask | None = None

    @property
    def filled(self) -> np.ndarray:
        assert self._filled is not None  # set by the first feed
        self._filled = as_array(self._filled)
        return self._filled

    def _first_feed(self, values: np.ndarray, valid: Mask) -> None:
        """Adopt the first source's arrays (invalid pixels set to the fill)."""
        self._filled = valid
        if (
            isinstance(valid, Validity)
            and (valid.all_valid or _same(valid.holds, self.fill))
            and values.dtype == self.dtype
        ):
            self.out = values  # invalid pixels already hold the fill: the mask may never be needed
            return
        values = values.astype(self.dtype, copy=False)
        mask = self.filled
        if not mask.all():
            np.copyto(values, self.fill, where=~mask, casting="unsafe")
        self.out = values

    def result(self) -> np.ndarray:
        if self.out is None:
            return np.full(self.shape, self.fill, dtype=self.dtype)
        return self.out


class FirstMerger(_Filled):
    """The earliest valid observation wins each pixel (static rows first, then by path)."""

    name = "first"
    _done: bool | None = False

    def feed(self, values: np.ndarray, valid: Mask) -> None:
        if self.out is None:
            self._first_feed(values, valid)
            self._done = True if isinstance(valid, Validity) and valid.all_valid else None  # None: on demand
            if self._owner is not None:
                self._record(self.filled)
            else:
                self.n_fed += 1
            return
        filled = self.filled
        take = as_array(valid) & ~filled
        np.copyto(self.out, values, where=take, casting="unsafe")
        filled |= take
        self._done = bool(filled.all())
        self._record(take)

    @property
    def is_done(self) -> bool:
        if self._done is None:
            self._done = bool(self.filled.all())
        return self._done


class LastMerger(FirstMerger):
    """The latest valid observation wins: ``first`` fed newest first."""

    name = "last"
    newest_first = True


class MinMerger(_Filled):
    """Per-pixel minimum of the valid observations."""

    name = "min"

    @staticmethod
    def _better(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """Where ``values`` beat the values ``kept`` so far."""
        return np.less(values, kept)

    def feed(self, values: np.ndarray, valid: Mask) -> None:
        if self.out is None:
            self._first_feed(values, valid)
            if self._owner is not None:
                self._record(self.filled)
            else:
                self.n_fed += 1
            return
        valid = as_array(valid)
        values = values.astype(self.dtype, copy=False)
        filled = self.filled
        take = valid & (~filled | self._better(values, self.out))
        np.copyto(self.out, values, where=take)
        filled |= valid
        self._record(take)


class MaxMerger(MinMerger):
    """Per-pixel maximum of the valid observations."""

    name = "max"

    @staticmethod
    def _better(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
        return np.greater(values, kept)


class SumMerger(Merger):
    """Per-pixel sum (in a wide dtype) and count of the valid observations."""

    name = "sum"

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.total = np.zeros(self.shape, dtype=self._accumulator())
        self.count = np.zeros(self.shape, dtype=np.int64)

    def _accumulator(self) -> np.dtype:
        return self.dtype

    def feed(self, values: np.ndarray, valid: Mask) -> None:
        valid = as_array(valid)
        np.add(self.total, values, out=self.total, where=valid, casting="unsafe")
        self.count += valid
        self._record(valid)

    def result(self) -> np.ndarray:
        out = self.total.astype(self.dtype, copy=False)
        if self.fill != 0:
            out[self.count == 0] = self.fill
        return out


class MeanMerger(SumMerger):
    """Per-pixel mean of the valid observations (accumulated in float64)."""

    name = "mean"

    def _accumulator(self) -> np.dtype:
        return np.dtype("complex128" if self.dtype.kind == "c" else "float64")

    def result(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (self.total / self.count).astype(self.dtype, copy=False)
        out[self.count == 0] = self.fill
        return out


class CountMerger(Merger):
    """Number of valid observations per pixel."""

    name = "count"

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.count = np.zeros(self.shape, dtype=self.dtype)

    def feed(self, values: np.ndarray, valid: Mask) -> None:
        valid = as_array(valid)
        self.count += valid
        self._record(valid)

    def result(self) -> np.ndarray:
        return self.count


class MedianMerger(Merger):
    """Per-pixel median of the valid observations (keeps every observation until :meth:`result`)."""

    name = "median"

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.stack: list[np.ndarray] = []

    def feed(self, values: np.ndarray, valid: Mask) -> None:
        values = values.astype(self.dtype)
        valid = as_array(valid)
        values[~valid] = np.nan
        self.stack.append(values)
        self._record(valid)

    def result(self) -> np.ndarray:
        if not self.stack:
            return np.full(self.shape, self.fill, dtype=self.dtype)
        if len(self.stack) == 1:
            return self.stack[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels → NaN
            return np.nanmedian(np.stack(self.stack), axis=0).astype(self.dtype, copy=False)


MERGERS: dict[str, type[Merger]] = {
    m.name: m for m in (FirstMerger, LastMerger, MinMerger, MaxMerger, SumMerger, CountMerger, MeanMerger, MedianMerger)
}
"""Merge method name → strategy class."""


def merger_class(method: object) -> type[Merger]:
    """The strategy class of ``method`` (a name in :data:`MERGERS`); ArgumentError otherwise."""
    cls = MERGERS.get(method) if isinstance(method, str) else None
    if cls is None:
        names = ", ".join(repr(m) for m in MERGERS)
        raise ArgumentError(f"merge={method!r} is not one of: {names}")
    return cls
