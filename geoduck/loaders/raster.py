"""Raster loader: catalog rows → one GeoTensor mosaic (or an xarray time series) on a GeoSlice grid.

Each source is read only where it overlaps the slice, by the cheapest exact route:

1. same CRS and the slice grid is the source grid shifted by whole pixels: a plain windowed read;
2. same CRS, other resolution or sub-pixel offset, slice inside the source: one windowed read with
   ``out_shape`` and ``resampling`` (GDAL's resampled RasterIO, nodata-aware);
3. otherwise (another CRS, a rotated source, a slice past the source's edge): GDAL's warper onto
   the slice grid — in memory from one windowed read when every source pixel it needs is valid,
   else through a ``WarpedVRT`` (GDAL reads just the source blocks it needs).

Invalid pixels (nodata, NaN, outside the source, masked) never contribute; validity derived from
nodata is computed only if a merge needs it. Sources are folded by a merge strategy
(:mod:`geoduck.loaders.merge`) in time order. Which rows a slice reads comes from an in-memory
index of the catalog (:mod:`geoduck.loaders.sources`). Several files of one slice are read
concurrently by a thread pool (GDAL releases the GIL) and merged in the deterministic order
whatever the completion order. Open datasets are cached per thread and per process: a forked child
(e.g. a DataLoader worker) never reuses its parent's file handles or threads.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, overload

import numpy as np
import pandas as pd
import pyproj
import rasterio
from georeader.geotensor import GeoTensor
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject
from rasterio.windows import Window

from .. import schema
from ..catalog import Catalog
from ..errors import ArgumentError, NoDataError
from ..geo import crs_key, norm_crs, rasterio_crs, transformer
from ..header import RasterHeader, open_dataset, wrapped_gdal_errors
from ..slices import GeoSlice
from .masks import QualityMask, RejectFn, quality_mask
from .merge import Mask, Merger, Validity, as_array, merger_class
from .sources import Source, sources_for

if TYPE_CHECKING:
    import xarray as xr

MergeMethod = Literal["first", "last", "min", "max", "sum", "count", "mean", "median"]
BandSpec = int | str
"""A 1-based band index or a band description (GDAL ``src.descriptions``, e.g. ``"B04"``)."""

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads reading the files of one slice concurrently (``max_workers=None``)."""

MAX_OPEN_PER_THREAD = 64
"""Open datasets kept per thread (least recently used closed first)."""


def resampling_of(value: str | Resampling) -> Resampling:
    """``"bilinear"`` or ``Resampling.bilinear`` → ``Resampling``; clear error otherwise."""
    if isinstance(value, Resampling):
        return value
    try:
        return Resampling[str(value)]
    except KeyError:
        names = ", ".join(r.name for r in Resampling)
        raise ArgumentError(f"resampling={value!r} is not one of: {names}") from None


# -- open datasets: cached per thread, never across fork ------------------------------------------


@dataclass(eq=False)
class OpenRaster:
    """An open dataset and the header facts the readers need (read once at open)."""

    path: str
    ds: rasterio.DatasetReader
    crs: str | None
    transform: Affine
    width: int
    height: int
    count: int
    nodata: tuple[float | None, ...]
    descriptions: tuple[str | None, ...]
    simple_masks: bool
    """Every band's validity follows from its values (no mask band, no alpha): all valid or nodata."""
    bands: dict[tuple[BandSpec, ...] | None, list[int]] = field(default_factory=dict)


class _Handles(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lru: OrderedDict[tuple[str, int | None], OpenRaster] = OrderedDict()


_handles = _Handles()
_inherited: list[OpenRaster] = []
"""The forking thread's handles, in a forked child: never used again (their file offsets are
shared with the parent) nor closed (no call into GDAL state copied mid-flight). The parent's other
threads' handles go with those threads' state when Python cleans up after ``fork``."""


def open_raster(path: str, *, mtime: int | None = None, crs: str | None = None) -> OpenRaster:
    """The calling thread's open dataset of ``path`` (opened on first use in this process), read
    through :mod:`geoduck.header` as the builder reads it (same sidecars, nodata, masks).

    ``mtime`` (from the catalog) is part of the cache key, so a rebuilt file is reopened; ``crs``
    is the catalogued native CRS string (computed from the file when None).
    """
    h = _handles
    if h.pid != os.getpid():  # a forked child: drop the parent's handles
        _inherited.extend(h.lru.values())
        h.lru = OrderedDict()
        h.pid = os.getpid()
    key = (path, mtime)
    hit = h.lru.get(key)
    if hit is not None:
        h.lru.move_to_end(key)
        return hit
    ds = open_dataset(path)
    try:
        with wrapped_gdal_errors(path, "reading the header of"):
            hdr = RasterHeader.of(ds, path)
        opened = OpenRaster(
            path=path,
            ds=ds,
            crs=crs if crs is not None else _crs_string(ds.crs),
            transform=hdr.transform,
            width=hdr.width,
            height=hdr.height,
            count=hdr.count,
            nodata=hdr.nodata,
            descriptions=hdr.descriptions,
            simple_masks=hdr.simple_masks,
        )
    except Exception:
        ds.close()
        raise
    h.lru[key] = opened
    while len(h.lru) > MAX_OPEN_PER_THREAD:
        h.lru.popitem(last=False)[1].ds.close()
    return opened


def _crs_string(crs: rasterio.crs.CRS | None) -> str | None:
    return None if crs is None else crs_key(crs)


# -- bands ----------------------------------------------------------------------------------------


def _band_spec(bands: Sequence[BandSpec] | BandSpec | None) -> tuple[BandSpec, ...] | None:
    """Normalise ``bands`` to a tuple of ints / strings (None = all bands)."""
    if bands is None:
        return None
    items = [bands] if isinstance(bands, int | str | np.integer) else list(bands)
    spec: list[BandSpec] = []
    for b in items:
        if isinstance(b, bool) or not isinstance(b, int | str | np.integer):
            raise ArgumentError(f"bands={bands!r}: each band is a 1-based index or a band description, got {b!r}")
        spec.append(b if isinstance(b, str) else int(b))
    return tuple(spec)


def band_indexes(spec: tuple[BandSpec, ...] | None, r: OpenRaster) -> list[int]:
    """1-based band indexes of ``spec`` in ``r`` (names matched to band descriptions, exactly,
    else case-insensitively); ArgumentError naming the file and what it offers otherwise."""
    hit = r.bands.get(spec)
    if hit is not None:
        return hit
    if spec is None:
        out = list(range(1, r.count + 1))
    else:
        out = []
        for b in spec:
            out.append(_band_index(b, spec, r))
        if not out:
            raise ArgumentError(
                f"bands=[] must be 1-based band indexes in 1..{r.count} ({r.path} has {r.count} band(s))"
            )
    r.bands[spec] = out
    return out


def _band_index(b: BandSpec, spec: tuple[BandSpec, ...], r: OpenRaster) -> int:
    if isinstance(b, int):
        if 1 <= b <= r.count:
            return b
        raise ArgumentError(
            f"bands={list(spec)!r} must be 1-based band indexes in 1..{r.count} "
            f"({r.path} has {r.count} band(s)) or band descriptions"
        )
    names = r.descriptions
    for matches in (
        [i for i, d in enumerate(names) if d == b],
        [i for i, d in enumerate(names) if d is not None and d.lower() == b.lower()],
    ):
        if len(matches) == 1:
            return matches[0] + 1
    offered = ", ".join(f"{i} {d!r}" for i, d in enumerate(names, start=1) if d)
    if not offered:
        raise ArgumentError(
            f"bands: no band named {b!r}: {r.path} has no band descriptions; use 1-based indexes 1..{r.count}"
        )
    raise ArgumentError(
        f"bands: no band named {b!r} in {r.path}; available: {offered} (or 1-based indexes 1..{r.count})"
    )


# -- reading one source onto the slice grid --------------------------------------------------------


def _validity(r: OpenRaster, values: np.ndarray, idx: Sequence[int], masks: Callable[[], np.ndarray]) -> Mask:
    """Validity of ``values`` read from bands ``idx``: lazily from nodata (and NaN) when the bands
    have no mask band, else at once from ``masks()`` (GDAL's mask bands: an internal mask or an
    alpha band) and, where declared, nodata too."""
    floats = values.dtype.kind in "fc"
    if not r.simple_masks:
        valid = masks() > 0
        for k, i in enumerate(idx):
            if r.nodata[i - 1] is not None:
                valid[k] &= _not_nodata(values[k], r.nodata[i - 1])
        return _finite(values, valid)
    nodata = {r.nodata[i - 1] for i in idx}
    if len(nodata) > 1:
        return Validity(
            lambda: _finite(
                values, np.stack([_not_nodata(v, r.nodata[i - 1]) for v, i in zip(values, idx, strict=True)])
            )
        )
    (nd,) = nodata
    if nd is None and not floats:
        return Validity(lambda: np.ones(values.shape, bool), all_valid=True)
    holds = nd if nd is not None and (not floats or math.isnan(nd)) else None
    return Validity(lambda: _finite(values, _not_nodata(values, nd)), holds=holds)


def _finite(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "fc":
        valid &= ~np.isnan(values)
    return valid


def _not_nodata(values: np.ndarray, nodata: float | None) -> np.ndarray:
    if nodata is None or math.isnan(nodata):  # NaN is handled with every float array
        return np.ones(values.shape, bool)
    if values.dtype.kind in "iu":
        lo, hi = _int_range(values.dtype)
        if not (float(nodata).is_integer() and lo <= nodata <= hi):
            return np.ones(values.shape, bool)  # the dtype cannot hold it: no pixel has it
    return values != values.dtype.type(nodata)  # in the array's dtype (a float would upcast it)


@dataclass(frozen=True, slots=True)
class Grid:
    """A GeoSlice's pixel grid, derived once per load (a GeoSlice derives it on every access)."""

    crs: str
    transform: Affine
    height: int
    width: int

    @classmethod
    def of(cls, s: GeoSlice) -> Grid:
        h, w = s.shape
        return cls(s.crs, s.transform, h, w)


@lru_cache(maxsize=32)
def _int_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _source_window(r: OpenRaster, g: Grid) -> Window | None:
    """The slice grid in source pixel coordinates, if both are north-up in the same CRS."""
    t, d = r.transform, g.transform
    if r.crs != g.crs or t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        return None
    return Window((d.c - t.c) / t.a, (t.f - d.f) / -t.e, g.width * d.a / t.a, g.height * d.e / t.e)


def _is_whole(v: float) -> bool:
    return abs(v - round(v)) <= 1e-6


def read_on_grid(r: OpenRaster, g: Grid, idx: list[int], resampling: Resampling) -> tuple[np.ndarray, Mask]:
    """(values (b, h, w) in the source dtype, valid (b, h, w)) of bands ``idx`` on grid ``g``."""
    h, w = g.height, g.width
    win = _source_window(r, g)
    if (
        win is not None
        and math.isclose(win.width, w, rel_tol=1e-9)
        and math.isclose(win.height, h, rel_tol=1e-9)
        and _is_whole(win.col_off)
        and _is_whole(win.row_off)
    ):
        return _read_aligned(r, idx, round(win.col_off), round(win.row_off), h, w)
    eps = 1e-6
    if (
        win is not None
        and win.col_off >= -eps
        and win.row_off >= -eps
        and win.col_off + win.width <= r.width + eps
        and win.row_off + win.height <= r.height + eps
    ):
        win = Window(
            max(win.col_off, 0.0),
            max(win.row_off, 0.0),
            min(win.width, r.width - max(win.col_off, 0.0)),
            min(win.height, r.height - max(win.row_off, 0.0)),
        )
        shape = (len(idx), h, w)
        values = r.ds.read(idx, window=win, out_shape=shape, resampling=resampling)
        return values, _validity(
            r, values, idx, lambda: r.ds.read_masks(idx, window=win, out_shape=shape, resampling=Resampling.nearest)
        )
    return _read_warped(r, g, idx, resampling)


def _read_aligned(r: OpenRaster, idx: list[int], col: int, row: int, h: int, w: int) -> tuple[np.ndarray, Mask]:
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + w, r.width), min(row + h, r.height)
    if c0 == col and r0 == row and c1 == col + w and r1 == row + h:  # inside the source
        win = Window(col, row, w, h)
        values = r.ds.read(idx, window=win)
        return values, _validity(r, values, idx, lambda: r.ds.read_masks(idx, window=win))
    values = np.zeros((len(idx), h, w), dtype=r.ds.dtypes[idx[0] - 1])
    valid = np.zeros((len(idx), h, w), dtype=bool)
    if c0 < c1 and r0 < r1:
        win = Window(c0, r0, c1 - c0, r1 - r0)
        part = np.s_[:, r0 - row : r1 - row, c0 - col : c1 - col]
        values[part] = v = r.ds.read(idx, window=win)
        valid[part] = as_array(_validity(r, v, idx, lambda: r.ds.read_masks(idx, window=win)))
    return values, valid


_KERNEL_RADIUS = {
    Resampling.nearest: 1,
    Resampling.bilinear: 1,
    Resampling.cubic: 2,
    Resampling.cubic_spline: 2,
    Resampling.lanczos: 3,
}
"""Source pixels each resampling kernel reaches from a sample point at 1:1 scale (others: 1 per
scale step, e.g. average over the destination pixel's footprint)."""


def _to_source(g: Grid, r: OpenRaster) -> pyproj.Transformer:
    return transformer(g.crs, r.crs)


def _covering_window(r: OpenRaster, g: Grid, resampling: Resampling) -> Window | None:
    """The source window (whole pixels) holding every source pixel the warp of grid ``g`` can
    use, if it lies inside the source (north-up sources only); else None.

    The grid's boundary (21 points per edge) is transformed to the source CRS; a smooth map takes
    the interior inside the image of the boundary. The window is padded by the kernel's reach,
    scaled by the downsampling ratio, plus 2 pixels for the edges' curvature between points."""
    t = r.transform
    if r.crs is None or t.b != 0 or t.d != 0:
        return None
    d = g.transform
    k = np.linspace(0.0, 1.0, 21)
    px = np.concatenate([k * g.width, np.full(21, g.width), k[::-1] * g.width, np.zeros(21)])
    py = np.concatenate([np.zeros(21), k * g.height, np.full(21, g.height), k[::-1] * g.height])
    with np.errstate(all="ignore"):
        sx, sy = _to_source(g, r).transform(d.c + px * d.a, d.f + py * d.e)
        cols, rows = (np.asarray(sx) - t.c) / t.a, (np.asarray(sy) - t.f) / t.e
    if not (np.isfinite(cols).all() and np.isfinite(rows).all()):
        return None
    scale = max(1.0, (cols.max() - cols.min()) / g.width, (rows.max() - rows.min()) / g.height)
    pad = math.ceil(_KERNEL_RADIUS.get(resampling, 1) * scale) + 2
    c0, r0 = math.floor(cols.min()) - pad, math.floor(rows.min()) - pad
    c1, r1 = math.ceil(cols.max()) + pad, math.ceil(rows.max()) + pad
    if c0 < 0 or r0 < 0 or c1 > r.width or r1 > r.height:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _read_warped(r: OpenRaster, g: Grid, idx: list[int], resampling: Resampling) -> tuple[np.ndarray, Mask]:
    """Warp onto ``g``. Fast route: when the source pixels the warp needs lie inside the source
    and are all valid, they are read once and warped in memory without masks (GDAL's unmasked
    kernels are ~2× faster than its masked general case for bilinear/cubic); results agree with
    the masked warp to GDAL's rounding (±1 for integers). Otherwise a ``WarpedVRT`` over the file."""
    if r.simple_masks and resampling != Resampling.nearest:
        win = _covering_window(r, g, resampling)
        if win is not None:
            block = r.ds.read(idx, window=win)
            if as_array(_validity(r, block, idx, lambda: np.ones(block.shape, np.uint8))).all():
                values = np.empty((len(idx), g.height, g.width), dtype=block.dtype)
                t = r.transform
                shifted = Affine(t.a, 0.0, t.c + win.col_off * t.a, 0.0, t.e, t.f + win.row_off * t.e)
                reproject(
                    block,
                    values,
                    src_transform=shifted,
                    src_crs=r.ds.crs,
                    dst_transform=g.transform,
                    dst_crs=rasterio_crs(g.crs),
                    resampling=resampling,
                    src_nodata=None,
                    dst_nodata=None,
                    init_dest_nodata=False,
                )
                return values, np.ones(values.shape, bool)
    opts = dict(crs=rasterio_crs(g.crs), transform=g.transform, width=g.width, height=g.height, resampling=resampling)
    has_nodata = all(r.nodata[i - 1] is not None for i in idx)
    if r.simple_masks and has_nodata:  # outside the source and invalid pixels warp to nodata
        with WarpedVRT(r.ds, **opts) as vrt:
            values = vrt.read(idx)
        return values, _validity(r, values, idx, lambda: np.ones(values.shape, np.uint8))
    with WarpedVRT(r.ds, add_alpha=True, **opts) as vrt:  # the alpha band says where the source is
        data = vrt.read([*idx, vrt.count])
        values, alpha = data[:-1], data[-1] > 0
        if r.simple_masks:
            valid = as_array(_validity(r, values, idx, lambda: np.ones(values.shape, np.uint8))) & alpha
        else:
            valid = _validity(r, values, idx, lambda: vrt.read_masks(idx)) & alpha
    return values, valid


# -- concurrency -------------------------------------------------------------------------------------

_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """A per-process pool (a forked child gets its own: the parent's threads do not exist there)."""
    pid = os.getpid()
    with _pools_lock:
        if any(p != pid for p, _ in _pools):
            _pools.clear()
        pool = _pools.get((pid, workers))
        if pool is None:
            pool = _pools[(pid, workers)] = ThreadPoolExecutor(workers, thread_name_prefix="geoduck-read")
        return pool


def _run_ordered(
    n: int,
    read: Callable[[int], tuple[np.ndarray, Mask]],
    feed: Callable[[int, tuple[np.ndarray, Mask]], None],
    skip: Callable[[int], bool],
    workers: int,
) -> None:
    """``feed(i, read(i))`` for i = 0..n-1 in order, skipping ``skip(i)``; with ``workers > 1``
    up to ``workers`` reads run ahead in a thread pool."""
    if workers <= 1 or n <= 1:
        for i in range(n):
            if not skip(i):
                feed(i, read(i))
        return
    pool = _pool(workers)
    pending: deque[tuple[int, Future]] = deque()
    nxt = 0
    try:
        while True:
            while nxt < n and len(pending) < workers:
                if not skip(nxt):
                    pending.append((nxt, pool.submit(read, nxt)))
                nxt += 1
            if not pending:
                return
            i, fut = pending.popleft()
            result = fut.result()
            if not skip(i):
                feed(i, result)
    finally:
        for _, fut in pending:
            fut.cancel()


# -- merging -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """What a merger is fed at once: one file, or the band files of one scene stacked in the
    requested band order (each file's bands resolved by ``spec``; None: all of its bands)."""

    key: str
    start: pd.Timestamp | None
    files: tuple[tuple[Source, tuple[BandSpec, ...] | None], ...]
    mask_file: Source | None = None
    """A scene's QA band file (the mask band of :class:`QualityMask`), read with its band 1."""

    @property
    def is_scene(self) -> bool:
        return self.files[0][0].scene is not None


def _unit_key(u: _Unit) -> tuple:
    return (u.start is not None, u.start.value if u.start is not None else 0, u.key)


def _match_band(name: str, files: dict[str, Source]) -> Source | None:
    """The band file of a scene named ``name``: by ``band`` exactly, else case-insensitively (if
    unambiguous), else by ``common_name`` (STAC ``eo:bands`` names such as ``red`` for ``B04``;
    case-insensitive, if unambiguous)."""
    if name in files:
        return files[name]
    hits = [src for band, src in files.items() if band.lower() == name.lower()]
    if not hits:
        hits = [
            src for src in files.values() if src.common_name is not None and src.common_name.lower() == name.lower()
        ]
    return hits[0] if len(hits) == 1 else None


def _units(
    sources: Sequence[Source], spec: tuple[BandSpec, ...] | None, mask_band: BandSpec | None = None
) -> tuple[list[_Unit], tuple[BandSpec, ...] | None]:
    """Sources as merge units, ordered by time then key: each file alone, except band files
    (``scene_id`` set), which form one unit per scene holding the requested bands' files in
    order. With ``spec`` None and scenes present, the bands are the earliest scene's, sorted by
    name. A scene lacking a file for a requested band (or for ``mask_band``, its QA file) under
    the slice is left out; a name no scene has is an :class:`ArgumentError` listing the bands
    there are."""
    singles: list[_Unit] = []
    scenes: dict[str, dict[str, Source]] = {}
    for src in sources:
        if src.scene is None or src.band is None:
            singles.append(_Unit(src.filepath, src.start, ((src, spec),)))
        else:
            scenes.setdefault(src.scene, {})[src.band] = src
    if not scenes:
        return sorted(singles, key=_unit_key), spec
    ordered = sorted(scenes.items(), key=lambda kv: _unit_key(_Unit(kv[0], next(iter(kv[1].values())).start, ())))
    if spec is None:
        spec = tuple(sorted(ordered[0][1]))
    ints = [b for b in spec if not isinstance(b, str)]
    if ints:
        raise ArgumentError(
            f"bands={list(spec)!r}: the catalog's rows under this slice are band files of "
            f"scenes ({schema.SCENE_ID}); name bands by their {schema.BAND!r} value, e.g. "
            f"{sorted(ordered[0][1])}"
        )
    if mask_band is not None and not isinstance(mask_band, str):
        raise ArgumentError(
            f"mask={mask_band!r}: the catalog's rows under this slice are band files of scenes "
            f"({schema.SCENE_ID}); name the QA file by its {schema.BAND!r} value, e.g. one of "
            f"{sorted(ordered[0][1])}"
        )
    units = list(singles)
    found: set[str] = set()
    for key, files in ordered:
        chosen = [_match_band(str(name), files) for name in spec]
        found.update(str(name) for name, src in zip(spec, chosen, strict=True) if src is not None)
        picked = [src for src in chosen if src is not None]
        qa = _match_band(mask_band, files) if mask_band is not None else None
        if qa is not None:
            found.add(mask_band)  # type: ignore[arg-type]
        if len(picked) == len(chosen) and (mask_band is None or qa is not None):
            units.append(_Unit(key, picked[0].start, tuple((src, None) for src in picked), qa))
    missing = [name for name in (*spec, *([mask_band] if mask_band is not None else [])) if str(name) not in found]
    if missing:
        offered = sorted(
            {band for _, files in ordered for band in files}
            | {s.common_name for _, files in ordered for s in files.values() if s.common_name is not None}
        )
        what = "mask" if missing[0] == mask_band and mask_band not in spec else "bands"
        raise ArgumentError(
            f"{what}: no band file named {missing[0]!r} in the scenes under this slice; their bands: {offered}"
        )
    return sorted(units, key=_unit_key), spec


@dataclass(frozen=True)
class _Plan:
    """What every source of one load shares: bands, output shape, dtype, nodata."""

    spec: tuple[BandSpec, ...]
    shape: tuple[int, int, int]
    dtype: np.dtype
    nodata: float | None


def _file_count(src: Source) -> int:
    """Bands of a file: as catalogued, else from the file."""
    if src.count is not None:
        return int(src.count)
    return open_raster(src.filepath, mtime=src.mtime, crs=src.crs).count


def _plan(units: Sequence[_Unit], g: Grid, spec: tuple[BandSpec, ...] | None) -> _Plan:
    """Bands resolved on the earliest unit (all bands of its file, or its scene's band files, by
    default); dtype = the files' common dtype, nodata = the earliest file's (as catalogued; from
    the file when missing)."""
    first = units[0]
    files = [src for u in units for src, _ in u.files]
    dtypes = {src.dtype for src in files if src.dtype is not None}
    nodata = next((src.nodata for src in files if src.nodata is not None), None)
    src0 = first.files[0][0]
    if first.is_scene:
        assert spec is not None
        n_bands = sum(_file_count(src) for src, _ in first.files)
    else:
        r = open_raster(src0.filepath, mtime=src0.mtime, crs=src0.crs)
        idx = band_indexes(spec, r)
        if spec is None:
            spec = tuple(idx)
        n_bands = len(idx)
    if src0.dtype is None:  # a catalog without the raster columns: ask the file
        r = open_raster(src0.filepath, mtime=src0.mtime, crs=src0.crs)
        dtypes.add(r.ds.dtypes[0])
        nodata = r.nodata[0] if nodata is None else nodata
    return _Plan(spec, (n_bands, g.height, g.width), _result_type(tuple(sorted(dtypes))), nodata)


@lru_cache(maxsize=64)
def _result_type(dtypes: tuple[str, ...]) -> np.dtype:
    return np.result_type(*dtypes)


def _stack_scene(u: _Unit, parts: list[tuple[np.ndarray, Mask]], plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """A scene's band files read on the grid → (values, valid) of the whole stack. A pixel is
    valid only where every band is, so no pixel mixes bands of different scenes in a mosaic."""
    values = np.concatenate([v.astype(plan.dtype, copy=False) for v, _ in parts])
    if values.shape[0] != plan.shape[0]:
        raise ArgumentError(
            f"scene {u.key!r} gives {values.shape[0]} bands for bands={list(plan.spec)!r}, "
            f"the first scene {plan.shape[0]} (its band files hold different band counts)"
        )
    valid = np.concatenate([as_array(m) for _, m in parts]).all(axis=0)
    return values, np.broadcast_to(valid, values.shape).copy()


@dataclass
class _Merged:
    """The mergers of a load (one per group) and the units each was fed, in feeding order."""

    mergers: list[Merger]
    order: list[list[_Unit]]
    """Every unit of each group in the merger's order (fed or skipped once the result was full)."""
    fed: list[list[_Unit]]


def _merge(
    groups: list[list[_Unit]],
    plan: _Plan,
    method: type[Merger],
    g: Grid,
    resampling: Resampling,
    workers: int,
    mask: QualityMask | None = None,
    track: bool = False,
) -> _Merged:
    """One merger per group, fed its units (in the merger's order) read on grid ``g``; the band
    files of a scene are read as separate tasks and stacked before the merger sees them. With
    ``mask``, each unit's mask array (its mask band read with nearest resampling, or its data)
    is tested and the rejected pixels are made invalid before the merger sees the unit."""
    n_max = max((len(group) for group in groups), default=1)
    mergers = [method(plan.shape, plan.dtype, plan.nodata, n_sources=n_max) for _ in groups]
    if track:
        for m in mergers:
            m.track()
    order = [sorted(group, key=_unit_key, reverse=method.newest_first) for group in groups]
    fed: list[list[_Unit]] = [[] for _ in groups]
    mask_read = mask is not None and mask.band is not None
    tasks = [(k, u, j) for k, units in enumerate(order) for u in units for j in range(len(u.files) + mask_read)]
    pending: list[tuple[np.ndarray, Mask]] = []

    def read(i: int) -> tuple[np.ndarray, Mask]:
        _, u, j = tasks[i]
        if j == len(u.files):  # the mask band
            return _read_mask_band(u, g, mask)
        src, spec = u.files[j]
        r = open_raster(src.filepath, mtime=src.mtime, crs=src.crs)
        with wrapped_gdal_errors(src.filepath):
            return read_on_grid(
                r, g, band_indexes(plan.spec if spec is None and not u.is_scene else spec, r), resampling
            )

    def feed(i: int, res: tuple[np.ndarray, Mask]) -> None:
        k, u, j = tasks[i]
        if len(u.files) == 1 and not u.is_scene and mask is None:
            mergers[k].feed(*res)
            fed[k].append(u)
            return
        if j == 0:
            pending.clear()
        pending.append(res)
        if j < len(u.files) + mask_read - 1:
            return
        data = pending[: len(u.files)]
        values, valid = _stack_scene(u, data, plan) if u.is_scene else data[0]
        if mask is not None:
            reject = mask.reject(
                pending[-1][0][0] if mask_read else values, (g.height, g.width), where=_mask_name(u, mask)
            )
            valid = as_array(valid) & ~reject
        mergers[k].feed(values, valid)
        fed[k].append(u)
        pending.clear()

    _run_ordered(len(tasks), read, feed, lambda i: mergers[tasks[i][0]].is_done, workers)
    return _Merged(mergers, order, fed)


def _mask_name(u: _Unit, mask: QualityMask) -> str:
    if mask.band is None:
        return f"the data of {u.key}"
    src = u.mask_file if u.mask_file is not None else u.files[0][0]
    return f"mask band {mask.band!r} of {src.filepath}"


def _read_mask_band(u: _Unit, g: Grid, mask: QualityMask | None) -> tuple[np.ndarray, Mask]:
    """The mask band of unit ``u`` on grid ``g`` (nearest resampling, nodata not applied: the
    values as stored; pixels outside the file hold 0 or its nodata, where the data are invalid
    anyway). A scene's QA file gives its band 1; a single file the band ``mask.band`` names."""
    assert mask is not None and mask.band is not None
    src = u.mask_file if u.mask_file is not None else u.files[0][0]
    r = open_raster(src.filepath, mtime=src.mtime, crs=src.crs)
    idx = [1] if u.mask_file is not None else band_indexes((mask.band,), r)
    with wrapped_gdal_errors(src.filepath):
        values, _ = read_on_grid(r, g, idx, Resampling.nearest)
    return values, np.ones(values.shape, bool)


def _provenance(merged: _Merged, plan: _Plan) -> pd.DataFrame:
    """The catalog rows of a single-group load in merge order, with the output values each won
    (or contributed to, for accumulating methods) and their share of the output."""
    (merger,) = merged.mergers
    counts = dict(zip((id(u) for u in merged.fed[0]), merger.source_counts(), strict=True))
    total = int(np.prod(plan.shape))
    rows = []
    for u in merged.order[0]:
        n = counts.get(id(u), 0)
        for src, _ in u.files:
            rows.append(
                {
                    schema.ID: src.id,
                    schema.FILEPATH: src.filepath,
                    schema.SCENE_ID: src.scene,
                    schema.BAND: src.band,
                    schema.START: src.start,
                    "pixels": n,
                    "share": n / total if total else 0.0,
                }
            )
    return pd.DataFrame(
        rows, columns=[schema.ID, schema.FILEPATH, schema.SCENE_ID, schema.BAND, schema.START, "pixels", "share"]
    ).astype({"pixels": "int64", "share": "float64"})


def _workers(max_workers: int | None) -> int:
    if max_workers is None:
        return DEFAULT_WORKERS
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ArgumentError(f"max_workers={max_workers!r} must be a positive integer or None")
    return max_workers


def _no_rows(s: GeoSlice, extra: str = "") -> NoDataError:
    return NoDataError(
        f"no catalog row intersects the slice bounds={s.bounds} crs={s.crs} interval=[{s.start}, {s.end}]{extra}"
    )


MaskSpec = QualityMask | BandSpec | RejectFn | None
"""``mask=``: a :class:`QualityMask`, a mask band (tested by ``mask_bits``/``mask_values``/
``mask_range``) or a callable on each source's data bands."""


@overload
def load_raster(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    bands: Sequence[BandSpec] | BandSpec | None = ...,
    resampling: str | Resampling = ...,
    merge: MergeMethod = ...,
    max_workers: int | None = ...,
    mask: MaskSpec = ...,
    mask_bits: Sequence[int] | int | None = ...,
    mask_values: Iterable[float] | float | None = ...,
    mask_range: tuple[float, float] | None = ...,
    return_sources: Literal[False] = ...,
) -> GeoTensor: ...


@overload
def load_raster(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    bands: Sequence[BandSpec] | BandSpec | None = ...,
    resampling: str | Resampling = ...,
    merge: MergeMethod = ...,
    max_workers: int | None = ...,
    mask: MaskSpec = ...,
    mask_bits: Sequence[int] | int | None = ...,
    mask_values: Iterable[float] | float | None = ...,
    mask_range: tuple[float, float] | None = ...,
    return_sources: Literal[True],
) -> tuple[GeoTensor, pd.DataFrame]: ...


def load_raster(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    bands: Sequence[BandSpec] | BandSpec | None = None,
    resampling: str | Resampling = "bilinear",
    merge: MergeMethod = "first",
    max_workers: int | None = None,
    mask: MaskSpec = None,
    mask_bits: Sequence[int] | int | None = None,
    mask_values: Iterable[float] | float | None = None,
    mask_range: tuple[float, float] | None = None,
    return_sources: bool = False,
) -> GeoTensor | tuple[GeoTensor, pd.DataFrame]:
    """Mosaic the catalog's rasters under ``slice`` onto its grid.

    Args:
        catalog: a catalog (or a query of one) of raster rows.
        slice: the output grid (bounds and resolution in ``slice.crs`` units) and time interval.
        bands: 1-based band indexes and/or band descriptions (``"B04"``, ``"QA60"``), mixed
            allowed, resolved in each file; default: all bands of the earliest source.
        resampling: GDAL resampling name or ``rasterio.enums.Resampling``, used when the source
            grid is not the slice grid (other CRS or resolution, sub-pixel offset).
        merge: how overlapping valid observations combine, in time order (``start_datetime``,
            static rows first, ties by path): ``"first"`` / ``"last"`` (earliest / latest wins;
            reading stops once every pixel is filled), ``"min"``, ``"max"``, ``"sum"``,
            ``"count"`` (valid observations per pixel), ``"mean"``, ``"median"``. Invalid pixels
            never count. Output dtypes and fill values: see :mod:`geoduck.loaders.merge`.
        max_workers: threads reading the slice's files concurrently (default
            :data:`DEFAULT_WORKERS`; 1 reads sequentially in the calling thread). The result does
            not depend on it.
        mask: quality mask applied to every source *before* merging, so masked pixels never win
            or count, whatever ``merge``: a mask band (1-based index or band description of the
            same file, e.g. ``"QA60"``; for band-file scenes the ``band`` name of the scene's QA
            file, e.g. ``"QA_PIXEL"``) tested by ``mask_bits``/``mask_values``/``mask_range``, a
            callable on each source's data ``(bands, h, w)`` returning True where rejected, or a
            :class:`~geoduck.loaders.masks.QualityMask`. Mask bands are read with nearest
            resampling and without their nodata (a QA 0 equal to nodata is just 0). Without
            ``mask``, the ``mask_*`` tests apply to the data bands. See
            :mod:`geoduck.loaders.masks`.
        mask_bits: bit positions (0 = least significant) that reject a pixel when set.
        mask_values: values that reject a pixel.
        mask_range: ``(lo, hi)``: values outside this closed range (and NaN) reject a pixel.
        return_sources: also return the mosaic's provenance (below).

    Returns:
        GeoTensor (bands, height, width) with ``slice.transform`` and ``slice.crs``; pixels with
        no valid observation hold ``fill_value_default`` (first/last/min/max: the sources' nodata,
        else 0; count and integer sums: 0; mean, median and float sums: NaN).

        With ``return_sources=True``, ``(tensor, sources)``: a DataFrame of the catalog rows that
        took part, in merge order (``last``: newest first), one line per row (the band files of a
        scene consecutively, in band order), columns ``id``, ``filepath``, ``scene_id``, ``band``,
        ``start_datetime``, ``pixels`` and ``share``. ``pixels`` is the exact number of output
        values (band × row × col) the row's source won (``first``/``last``/``min``/``max``; ties
        go to the source merged first) or contributed to (``sum``/``count``/``mean``/
        ``median``); ``share`` = ``pixels`` / output size. Rows that won nothing — fully masked,
        or not read because the mosaic was already full — are listed with 0. A scene wins as a
        whole, so each of its band rows carries the scene's count.

    Raises:
        NoDataError: no catalog row intersects the slice (space and time).
        ArgumentError: unknown merge method, resampling or band (the message lists what exists).
    """
    method = merger_class(merge)
    rs = resampling_of(resampling)
    workers = _workers(max_workers)
    qmask = quality_mask(mask, mask_bits, mask_values, mask_range)
    sources = sources_for(catalog, slice)
    if not sources:
        raise _no_rows(slice)
    grid = Grid.of(slice)
    units, spec = _units(sources, _band_spec(bands), qmask.band if qmask is not None else None)
    if not units:
        raise _no_rows(slice, f" with every requested band and the mask band {qmask.band!r}" if qmask else "")
    plan = _plan(units, grid, spec)
    merged = _merge([units], plan, method, grid, rs, workers, qmask, track=return_sources)
    (merger,) = merged.mergers
    crs = rasterio_crs(grid.crs)
    tensor = GeoTensor(merger.result(), transform=grid.transform, crs=crs, fill_value_default=merger.fill)
    if return_sources:
        return tensor, _provenance(merged, plan)
    return tensor


def load_raster_timeseries(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    bands: Sequence[BandSpec] | BandSpec | None = None,
    freq: str | None = None,
    aggregation: MergeMethod = "first",
    resampling: str | Resampling = "bilinear",
    max_workers: int | None = None,
    mask: MaskSpec = None,
    mask_bits: Sequence[int] | int | None = None,
    mask_values: Iterable[float] | float | None = None,
    mask_range: tuple[float, float] | None = None,
) -> xr.DataArray:
    """A (time, band, y, x) stack of the catalog's rasters under ``slice``, on its grid.

    Steps: one per distinct acquisition (``start_datetime``) or, with a pandas ``freq`` (``"D"``,
    ``"W"``, ``"MS"``, ``"QS"``, ``"YS"`` …), one per period from the first to the last
    acquisition (pandas ``resample`` bins and labels; periods without data are kept, all fill).
    Files of one step (several tiles of an acquisition, or the acquisitions of a period) are
    merged with ``aggregation`` (any ``load_raster`` merge method). Static rows (no time) take no
    part. Each file is read once; ``bands``, ``resampling``, ``max_workers`` and the quality mask
    (``mask``, ``mask_bits``, ``mask_values``, ``mask_range``: applied to each file before the
    files of a step are merged) as in :func:`load_raster`.

    Returns:
        ``xr.DataArray`` with dims ``(time, band, y, x)``; coords ``time`` (datetime64, UTC without
        time zone: the acquisition start or the period label), ``band`` (the requested bands,
        strings if any was a name; default 1-based indexes), ``y``/``x`` (pixel centres in
        ``slice.crs`` units) and ``spatial_ref`` (CRS and GeoTransform written as rioxarray's
        ``rio.write_crs``/``rio.write_transform`` do, so ``da.rio.crs`` works when rioxarray is
        installed); attrs ``crs``, ``transform`` (6 affine coefficients), ``res``, ``_FillValue``,
        ``aggregation``, ``freq``, ``resampling``. Values have the dtype and fill value of the
        ``aggregation`` method (see :mod:`geoduck.loaders.merge`).

    Raises:
        NoDataError: no dated catalog row intersects the slice.
        ArgumentError: unknown ``freq``, aggregation, resampling or band.
    """
    import xarray as xr

    method = merger_class(aggregation)
    rs = resampling_of(resampling)
    workers = _workers(max_workers)
    qmask = quality_mask(mask, mask_bits, mask_values, mask_range)
    found = sources_for(catalog, slice)
    dated = [src for src in found if src.start is not None]
    if not dated:
        raise _no_rows(slice, " with a start_datetime (static rows form no time step)" if found else "")
    units, spec = _units(dated, _band_spec(bands), qmask.band if qmask is not None else None)
    if not units:
        raise _no_rows(slice, f" with every requested band and the mask band {qmask.band!r}" if qmask else "")
    labels, groups = _time_groups(units, freq)
    grid = Grid.of(slice)
    plan = _plan(units, grid, spec)
    mergers = _merge(groups, plan, method, grid, rs, workers, qmask).mergers
    data = np.stack([m.result() for m in mergers])
    fill = mergers[0].fill
    t, h, w = grid.transform, grid.height, grid.width
    spec = plan.spec
    band = list(spec) if all(isinstance(b, int) for b in spec) else [str(b) for b in spec]
    time = pd.DatetimeIndex(labels).tz_convert("UTC").tz_localize(None)
    coords = {
        "time": time,
        "band": band,
        "y": t.f + (np.arange(h) + 0.5) * t.e,
        "x": t.c + (np.arange(w) + 0.5) * t.a,
        "spatial_ref": xr.Variable((), 0, attrs=_grid_mapping(slice)),
    }
    da = xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords=coords,
        attrs={
            "crs": slice.crs,
            "transform": tuple(t)[:6],
            "res": slice.resolution,
            "_FillValue": fill,
            "aggregation": method.name,
            "freq": freq or "acquisition",
            "resampling": rs.name,
        },
    )
    da.encoding["grid_mapping"] = "spatial_ref"
    return da


def _time_groups(units: list[_Unit], freq: str | None) -> tuple[list[pd.Timestamp], list[list[_Unit]]]:
    """(labels, units per step): by distinct start, or by pandas ``freq`` period."""
    ordered = sorted(units, key=_unit_key)
    starts = pd.DatetimeIndex([u.start for u in ordered])
    if freq is None:
        labels = list(starts.unique())
        groups: dict[pd.Timestamp, list[_Unit]] = {label: [] for label in labels}
        for ts, src in zip(starts, ordered, strict=True):
            groups[ts].append(src)
        return labels, list(groups.values())
    try:
        bins = pd.Series(np.arange(len(ordered)), index=starts).resample(freq)
        steps = [(label, [ordered[i] for i in members]) for label, members in bins]
    except (ValueError, TypeError) as exc:
        raise ArgumentError(
            f"freq={freq!r} is not a pandas frequency (e.g. 'D', 'W', 'MS', 'QS', 'YS'): {exc}"
        ) from None
    return [label for label, _ in steps], [group for _, group in steps]


def _grid_mapping(s: GeoSlice) -> dict[str, object]:
    """CF grid-mapping attributes as rioxarray writes them (``crs_wkt``, ``spatial_ref``,
    ``GeoTransform``)."""
    crs = norm_crs(s.crs)
    attrs: dict[str, object] = {}
    try:
        attrs.update(crs.to_cf())
    except Exception:  # noqa: BLE001 - some CRSs have no CF form; the WKT below is enough
        pass
    wkt = crs.to_wkt()
    attrs.update(crs_wkt=wkt, spatial_ref=wkt, GeoTransform=" ".join(repr(float(v)) for v in s.transform.to_gdal()))
    return attrs
