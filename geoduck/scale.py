"""Running a function over chips, locally or on a Dask cluster (:func:`map_chips`).

Each chip is loaded from the catalog (``loader(catalog, slice)``, :func:`~geoduck.load_raster` by
default), passed to ``fn`` (a model, an index computation …), and the result is, by ``mode``,
returned (``"results"``), stitched into one COG (``"stitch"``), or written as one COG per chip
(``"chips"``).

With a ``dask.distributed.Client``, chips run on the cluster in tasks of ``chips_per_task`` chips,
at most ``max_in_flight`` tasks at a time (the catalog, ``fn`` and ``loader`` are sent to every
worker once). Results are taken in slice order, so a stitched raster is the same bit for bit as
a local loop's; the driver holds the output grid plus at most ``max_in_flight`` tasks' results.
Per-chip outputs are written by the workers themselves (to a directory they can all reach).

``dask`` is imported only when a client is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from georeader.geotensor import GeoTensor
from tqdm.auto import tqdm

from .catalog import Catalog
from .errors import ArgumentError, NoDataError
from .geo import rasterio_crs
from .io import save_cog
from .loaders.raster import load_raster
from .slices import GeoSlice
from .stitch import METHODS, Method, Stitcher

Loader = Callable[[Catalog, GeoSlice], Any]
"""Loads one chip: ``loader(catalog, slice)``, e.g. :func:`geoduck.load_raster` (use
``functools.partial`` for its options: ``partial(load_raster, bands=["B04", "B08"])``)."""

Mode = Literal["results", "stitch", "chips"]
"""What :func:`map_chips` does with ``fn``'s results: return them, stitch them into the COG
``out``, or write one COG per chip into the directory ``out``."""
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class _Tensor:
    """A GeoTensor as it crosses processes (GeoTensor pickles lose transform and CRS)."""

    values: np.ndarray
    transform: Any
    crs: str | None
    fill_value_default: Any

    @classmethod
    def pack(cls, obj: Any) -> Any:
        if not isinstance(obj, GeoTensor):
            return obj
        crs = getattr(obj, "crs", None)
        return cls(
            np.asarray(obj),
            obj.transform,
            None if crs is None else crs.to_wkt(),
            getattr(obj, "fill_value_default", None),
        )

    @staticmethod
    def unpack(obj: Any) -> Any:
        if not isinstance(obj, _Tensor):
            return obj
        crs = None if obj.crs is None else rasterio_crs(obj.crs)
        return GeoTensor(obj.values, transform=obj.transform, crs=crs, fill_value_default=obj.fill_value_default)


def chip_name(index: int, total: int) -> str:
    """File name of chip ``index``'s COG: ``chip_000042.tif`` (at least 6 digits)."""
    return f"chip_{index:0{max(6, len(str(max(total - 1, 0))))}d}.tif"


def _as_tensor(result: Any, s: GeoSlice, i: int) -> Any:
    """``fn``'s result as a georeferenced tensor on the slice's grid (for :func:`save_cog`)."""
    if getattr(result, "transform", None) is not None and getattr(result, "crs", None) is not None:
        return result
    values = np.asarray(result)
    if values.ndim not in (2, 3) or values.shape[-2:] != s.shape:
        raise ArgumentError(
            f"fn returned shape {values.shape} for chip {i}; to write it as a COG it must be "
            f"(C, {s.height}, {s.width}) or ({s.height}, {s.width})"
        )
    fill = float("nan") if np.issubdtype(values.dtype, np.floating) else None
    return GeoTensor(values, transform=s.transform, crs=rasterio_crs(s.crs), fill_value_default=fill)


def _run_chip(
    catalog: Catalog,
    fn: Callable[[Any], Any],
    loader: Loader,
    i: int,
    s: GeoSlice,
    out_dir: str | None,
    total: int,
    skip_empty: bool,
) -> Any:
    """Load, apply, and (with ``out_dir``) write one chip; None for a skipped empty chip."""
    try:
        data = loader(catalog, s)
    except NoDataError:
        if skip_empty:
            return None
        raise
    result = fn(data)
    if out_dir is None:
        return result
    return save_cog(_as_tensor(result, s, i), Path(out_dir) / chip_name(i, total))


def run_batch(
    catalog: Catalog,
    fn: Callable[[Any], Any],
    loader: Loader,
    batch: list[tuple[int, GeoSlice]],
    out_dir: str | None,
    total: int,
    skip_empty: bool,
) -> list[Any]:
    """One cluster task: :func:`_run_chip` over ``batch`` (GeoTensor results packed for transport)."""
    return [_Tensor.pack(_run_chip(catalog, fn, loader, i, s, out_dir, total, skip_empty)) for i, s in batch]


def map_chips(
    catalog: Catalog,
    slices: Sequence[GeoSlice],
    fn: Callable[[Any], Any],
    *,
    loader: Loader = load_raster,
    client: Any = None,
    mode: Mode = "results",
    out: str | os.PathLike[str] | None = None,
    method: Method = "average",
    fill_value: float | None = None,
    skip_empty: bool = True,
    chips_per_task: int = 8,
    max_in_flight: int | None = None,
    progress: bool = True,
) -> list[Any] | Path | list[Path | None]:
    """Load each chip of ``slices`` from ``catalog``, apply ``fn``, and collect or write the results.

    Args:
        catalog: the catalog (or a query of it) the chips are loaded from.
        slices: the chips, e.g. from :func:`geoduck.grid_sampler`.
        fn: called with each loaded chip (a GeoTensor with the default loader); returns an array
            (C, h, w) / (h, w) on the chip's grid, or a GeoTensor (anything, with ``out=None``).
            With a client it must be picklable (cloudpickle: lambdas and closures are fine).
        loader: ``loader(catalog, slice)``; default :func:`geoduck.load_raster` (with its defaults).
        client: a ``dask.distributed.Client``: chips run on its cluster (see the module doc);
            default: one by one in this process.
        mode: ``"results"``: return the results (``out`` must be None); ``"stitch"``: stitch them
            (:class:`~geoduck.stitch.Stitcher`, ``method``/``fill_value`` as in
            :func:`geoduck.stitch`) into the COG at ``out``; ``"chips"``: write one COG per chip
            into the directory ``out`` (created), named by its index in ``slices``
            (:func:`chip_name`).
        out: the COG path (``mode="stitch"``) or the directory (``mode="chips"``); any name.
        skip_empty: a chip under no catalog row (the loader raises
            :class:`~geoduck.errors.NoDataError`) gives None, is left out of the stitch, and writes
            no file; with False the error propagates.
        chips_per_task: chips per cluster task.
        max_in_flight: cluster tasks submitted and not yet collected (default: 2 per worker
            thread); bounds the driver's memory.
        progress: show a tqdm progress bar (chips done).

    Returns:
        ``"results"``: the list of ``fn`` results in slice order; ``"stitch"``: the COG's path;
        ``"chips"``: the list of per-chip COG paths (None for skipped chips).

    Raises:
        ArgumentError: bad arguments, or results that cannot be stitched/written.
        NoDataError: every chip was empty (stitching), or one was and ``skip_empty`` is False.
        Any exception of ``fn`` or the loader, as raised (remaining cluster tasks are cancelled).
    """
    chips = list(slices)
    for i, s in enumerate(chips):
        if not isinstance(s, GeoSlice):
            raise ArgumentError(f"slices[{i}] is a {type(s).__name__}, not a GeoSlice")
    if not callable(fn) or not callable(loader):
        raise ArgumentError("fn and loader must be callables (fn(chip), loader(catalog, slice))")
    if isinstance(chips_per_task, bool) or not isinstance(chips_per_task, int) or chips_per_task < 1:
        raise ArgumentError(f"chips_per_task={chips_per_task!r} must be a positive integer")
    if max_in_flight is not None and (
        isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
    ):
        raise ArgumentError(f"max_in_flight={max_in_flight!r} must be a positive integer or None")

    target = _check_out(mode, out)
    stitcher: Stitcher | None = None
    out_dir: str | None = None
    if mode == "stitch":
        if not chips:
            raise ArgumentError("map_chips needs at least one slice to stitch")
        if not target.parent.is_dir():
            raise ArgumentError(f"out={str(out)!r}: directory {str(target.parent)!r} does not exist")
        if method not in METHODS:
            raise ArgumentError(f"method={method!r} is not one of {METHODS}")
        stitcher = Stitcher(chips, method=method, fill_value=fill_value)
    elif mode == "chips":
        if target.exists() and not target.is_dir():
            raise ArgumentError(f"out={str(out)!r} exists and is not a directory (mode='chips' writes into one)")
        target.mkdir(parents=True, exist_ok=True)
        out_dir = str(target.resolve())

    results: list[Any] = []
    fed = 0

    def take(result: Any) -> None:
        nonlocal fed
        result = _Tensor.unpack(result)
        if stitcher is None:
            results.append(result)
        elif result is None:
            stitcher.skip()
        else:
            stitcher.feed(result)
            fed += 1

    bar = tqdm(total=len(chips), unit="chip", desc="map_chips", disable=not progress or not chips)
    try:
        if client is None:
            for i, s in enumerate(chips):
                take(_run_chip(catalog, fn, loader, i, s, out_dir, len(chips), skip_empty))
                bar.update(1)
        else:
            batches = [list(enumerate(chips))[k : k + chips_per_task] for k in range(0, len(chips), chips_per_task)]
            _run_on_cluster(
                client, batches, (catalog, fn, loader), out_dir, len(chips), skip_empty, max_in_flight, take, bar
            )
    finally:
        bar.close()

    if stitcher is None:
        return results
    if fed == 0:
        raise NoDataError(f"none of the {len(chips)} chips has catalog data: nothing to stitch")
    return save_cog(stitcher.result(), target)


def _check_out(mode: Mode, out: str | os.PathLike[str] | None) -> Path:
    """``out`` as a Path when ``mode`` writes files (``Path()`` for ``"results"``); raises
    :class:`ArgumentError` for an unknown mode or an ``out`` that does not fit it."""
    if mode not in MODES:
        raise ArgumentError(f"mode={mode!r} is not one of {MODES}")
    if mode == "results":
        if out is not None:
            raise ArgumentError(
                f"out={str(out)!r} needs mode='stitch' (one COG at out) or mode='chips' (a directory of "
                "per-chip COGs); mode='results' returns the results"
            )
        return Path()
    if out is None:
        raise ArgumentError(f"mode={mode!r} writes files: pass out= (the COG path or the directory)")
    return Path(out)


def _run_on_cluster(
    client: Any,
    batches: list[list[tuple[int, GeoSlice]]],
    shared: tuple[Any, ...],
    out_dir: str | None,
    total: int,
    skip_empty: bool,
    max_in_flight: int | None,
    take: Callable[[Any], None],
    bar: tqdm,
) -> None:
    """Submit :func:`run_batch` tasks in order, at most ``max_in_flight`` beyond the first not yet
    taken, and hand their results to ``take`` in slice order."""
    from distributed import wait

    try:
        threads = max(1, sum(client.nthreads().values()))
    except Exception as exc:  # noqa: BLE001 - anything but a working Client
        raise ArgumentError(f"client={client!r} is not a connected dask.distributed.Client: {exc}") from None
    window = max_in_flight or 2 * threads
    catalog_f, fn_f, loader_f = client.scatter(list(shared), broadcast=True, hash=False)
    inflight: dict[int, Any] = {}
    ready: dict[int, list[Any]] = {}
    submitted = taken = 0
    try:
        while taken < len(batches):
            while submitted < len(batches) and submitted < taken + window:
                inflight[submitted] = client.submit(
                    run_batch, catalog_f, fn_f, loader_f, batches[submitted], out_dir, total, skip_empty, pure=False
                )
                submitted += 1
            done = wait(list(inflight.values()), return_when="FIRST_COMPLETED").done
            for k in [k for k, f in inflight.items() if f in done]:
                fut = inflight.pop(k)
                ready[k] = fut.result()  # re-raises a task's exception here
                fut.release()
            while taken in ready:
                for result in ready.pop(taken):
                    take(result)
                bar.update(len(batches[taken]))
                taken += 1
    finally:
        if inflight:
            client.cancel(list(inflight.values()))
        client.cancel([catalog_f, fn_f, loader_f])
