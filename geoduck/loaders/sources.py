"""Which catalog rows a slice reads: an in-memory row index for small catalogs, DuckDB otherwise.

Running the catalog query in DuckDB costs milliseconds per slice, too much when loading hundreds of
chips per second. So a catalog relation of at most :data:`INDEX_MAX_ROWS` rows is materialised once
per process (and re-read when a part file of its catalog directories changes) into numpy arrays,
and each slice is answered there with exactly the rule of :meth:`Catalog.query`: the slice's grid
rectangle as a lon/lat AOI (:func:`geoduck.geo.aoi_to_wgs84`, densified and split at the
antimeridian), the rows' ``bbox`` against the AOI parts' bounds (closed), then the exact
intersection of the AOI with the footprint (shapely, as ``ST_Intersects``: a footprint touching the
slice is selected; it contributes no pixel), and the time rule of
:class:`geoduck.intervals.Overlap` (closed intervals, static rows always match). So a slice reads
exactly the rows ``catalog.query(bbox=slice.grid_bounds, crs=slice.crs, start=…, end=…)`` returns
(``tests/test_row_index.py`` checks it on random catalogs).

Chips (small grids in a projected CRS) are answered without building that AOI where the answer is
certain: :func:`geoduck.geo.aoi_probe` gives a point inside the AOI and a box around it, so a row
whose bbox misses the box is out and a row whose footprint contains the point is in; only the rows
left (a footprint near the chip's edge) are tested against the AOI itself. The AOI, the probe and
the time rule are cached per slice (grid bounds, CRS, interval).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from shapely.geometry.base import BaseGeometry

from .. import geo, schema, store
from ..catalog import Catalog, _scan_roots
from ..geo import AOI_CACHE_SIZE, Bounds, aoi_probe, aoi_to_wgs84
from ..intervals import Overlap, epoch_us
from ..slices import GeoSlice

INDEX_MAX_ROWS = 250_000
"""Catalog relations up to this many rows are answered from an in-memory index."""

_COLUMNS = (
    schema.ID,
    schema.FILEPATH,
    schema.BACKEND,
    schema.START,
    schema.END,
    schema.CRS,
    schema.NATIVE_BOUNDS,
    schema.BBOX,
    schema.GEOMETRY,
    "dtype",
    "nodata",
    "count",
    schema.FILE_MTIME,
    schema.SCENE_ID,
    schema.BAND,
    schema.COMMON_NAME,
)


@dataclass(frozen=True)
class Source:
    """One catalog row to read for a slice (``crs``/``dtype``/``nodata``/``count`` as catalogued,
    None when the catalog lacks them)."""

    filepath: str
    start: pd.Timestamp | None = None
    crs: str | None = None
    dtype: str | None = None
    nodata: float | None = None
    count: int | None = None
    mtime: int | None = None
    """File modification time (µs) from the catalog: keys the open-dataset cache."""
    scene: str | None = None
    """``scene_id`` of a band file (None: the file is a scene of its own)."""
    band: str | None = None
    """The band a band file holds (its ``band`` column)."""
    id: str | None = None
    """The row's ``id`` (for provenance; None when the catalog lacks it)."""
    common_name: str | None = None
    """Second name of that band (``common_name`` column of STAC-built catalogs, e.g. ``red``)."""


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    return table.column(name) if name in table.column_names else None


def _list(table: pa.Table, name: str) -> list:
    col = _column(table, name)
    return [None] * table.num_rows if col is None else col.to_pylist()


def _times(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(µs int64 with 0 for nulls, null mask)."""
    col = _column(table, name)
    if col is None:
        return np.zeros(table.num_rows, np.int64), np.ones(table.num_rows, bool)
    if col.type.unit != "us":
        col = pc.cast(col, pa.timestamp("us", tz=col.type.tz))
    ints = pc.cast(col, pa.int64())
    return (
        pc.fill_null(ints, 0).to_numpy().astype(np.int64, copy=False),
        pc.is_null(col).to_numpy(zero_copy_only=False).astype(bool),
    )


def _boxes(table: pa.Table, name: str) -> np.ndarray:
    """(4, n) float64 of a bbox struct column; NaN for nulls (they never overlap)."""
    col = _column(table, name)
    out = np.full((4, table.num_rows), np.nan)
    if col is None:
        return out
    for k, key in enumerate(schema.BBOX_KEYS):
        field = pc.struct_field(col, key)
        out[k] = pc.fill_null(field, np.nan).to_numpy(zero_copy_only=False)
    return out


def _overlap(box: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Closed-interval overlap of (4, k) boxes with one box (NaN boxes never overlap), as the
    compiler's ``bbox_overlaps``."""
    return (box[0] <= x1) & (box[2] >= x0) & (box[1] <= y1) & (box[3] >= y0)


def _aoi_parts(slice: GeoSlice) -> tuple[BaseGeometry, tuple[Bounds, ...]]:
    """The slice's lon/lat AOI as :meth:`Catalog.query` builds it (:func:`geoduck.geo.aoi_to_wgs84`,
    cached per grid) and the bounds of its parts (split at ±180°)."""
    aoi = aoi_to_wgs84(bbox=slice.grid_bounds, crs=slice.crs)
    return aoi, _part_bounds(aoi)


@lru_cache(maxsize=AOI_CACHE_SIZE)
def _part_bounds(aoi: BaseGeometry) -> tuple[Bounds, ...]:
    return tuple(tuple(map(float, p.bounds)) for p in getattr(aoi, "geoms", [aoi]))  # type: ignore[misc]


@lru_cache(maxsize=256)
def _time_rule(start: pd.Timestamp | None, end: pd.Timestamp | None) -> Overlap:
    """The interval rule of a slice's ``[start, end]`` in µs."""
    return Overlap(epoch_us(start), epoch_us(end))


class RowIndex:
    """The raster rows of one catalog relation as numpy arrays, queried per slice (see module
    docstring); rows of other backends are left out."""

    def __init__(self, table: pa.Table) -> None:
        if schema.BACKEND in table.column_names:  # e.g. a union with vector rows: rasters only
            backend = table.column(schema.BACKEND)
            table = table.filter(pc.fill_null(pc.equal(backend, "raster"), True))
        n = table.num_rows
        self.paths: list[str] = _list(table, schema.FILEPATH)
        self.ids: list[str | None] = _list(table, schema.ID)
        start, start_null = _times(table, schema.START)
        end, end_null = _times(table, schema.END)
        bbox = _boxes(table, schema.BBOX)
        self.crs: list[str | None] = _list(table, schema.CRS)
        self.dtype = _list(table, "dtype")
        self.nodata = _list(table, "nodata")
        self.count = _list(table, "count")
        self.scene = _list(table, schema.SCENE_ID)
        self.band = _list(table, schema.BAND)
        self.common_name = _list(table, schema.COMMON_NAME)
        mtimes, mtime_null = _times(table, schema.FILE_MTIME)
        self.mtime = [None if null else int(t) for t, null in zip(mtimes, mtime_null, strict=True)]
        self.start, self.start_null = start, start_null
        self._wkb = _list(table, schema.GEOMETRY)
        self._geoms = np.empty(n, dtype=object)
        self._starts: dict[int, pd.Timestamp] = {}
        self.end, self.end_null = end, end_null
        self.bbox = bbox

    def __len__(self) -> int:
        return len(self.paths)

    def _geometries(self, idx: np.ndarray) -> np.ndarray:
        missing = idx[np.equal(self._geoms[idx], np.array(None, dtype=object))]
        if missing.size:
            self._geoms[missing] = shapely.from_wkb([self._wkb[i] for i in missing])
        return self._geoms[idx]

    def select(self, slice: GeoSlice) -> list[int]:
        """Indexes of the rows under ``slice`` (space and time), as ``Catalog.query`` selects
        them (see module docstring), ascending."""
        when = _time_rule(slice.start, slice.end)
        probe = aoi_probe(slice.grid_bounds, slice.crs)
        if probe is None:
            return self._exact(slice, self._candidates(_aoi_parts(slice)[1], when))
        px, py, envelope = probe  # a chip: most rows are decided without building the AOI
        cand = self._candidates((envelope,), when)
        if not cand.size:
            return []
        geoms = self._geometries(cand)
        inside = shapely.contains_xy(geoms, px, py)  # contains a point of the AOI: intersects it
        if inside.all():
            return cand.tolist()
        rest = self._exact(slice, cand[~inside])
        return sorted(cand[inside].tolist() + rest)

    def _candidates(self, boxes: tuple[Bounds, ...], when: Overlap) -> np.ndarray:
        """Rows whose bbox meets one of ``boxes`` (closed) and whose interval passes ``when``."""
        near = _overlap(self.bbox, *boxes[0])
        for b in boxes[1:]:
            near |= _overlap(self.bbox, *b)
        cand = np.flatnonzero(near)  # the time test on the bbox candidates only
        if when.t0 is None and when.t1 is None:
            return cand
        return cand[when.mask(self.start[cand], self.start_null[cand], self.end[cand], self.end_null[cand])]

    def _exact(self, slice: GeoSlice, cand: np.ndarray) -> list[int]:
        """Of rows ``cand``, those whose bbox meets a part of the slice's AOI and whose footprint
        intersects it: the rule of ``Catalog.query``."""
        if not cand.size:
            return []
        aoi, parts = _aoi_parts(slice)
        near = _overlap(self.bbox[:, cand], *parts[0])
        for b in parts[1:]:
            near |= _overlap(self.bbox[:, cand], *b)
        cand = cand[near]
        geoms = self._geometries(cand)
        hit = shapely.intersects(aoi, geoms) & ~shapely.is_missing(geoms)
        return cand[hit].tolist()

    def _start(self, i: int) -> pd.Timestamp | None:
        if self.start_null[i]:
            return None
        ts = self._starts.get(i)
        if ts is None:
            ts = self._starts[i] = pd.Timestamp(int(self.start[i]), unit="us", tz="UTC")
        return ts

    def sources(self, idx: list[int]) -> list[Source]:
        return [
            Source(
                self.paths[i],
                self._start(i),
                self.crs[i],
                self.dtype[i],
                self.nodata[i],
                self.count[i],
                self.mtime[i],
                self.scene[i],
                self.band[i] if self.scene[i] is not None else None,
                self.ids[i],
                self.common_name[i] if self.scene[i] is not None else None,
            )
            for i in idx
        ]


# -- the per-process cache of row indexes ---------------------------------------------------------


@dataclass
class _Entry:
    dirs: tuple
    parts: tuple
    index: RowIndex | None
    trusted: bool
    """The directory mtimes are older than ``store.LISTING_SETTLED_NS``: an unchanged directory mtime proves
    that no part was added, removed or renamed since (parts are never rewritten in place)."""


_lock = threading.Lock()
_indexes: OrderedDict[object, _Entry] = OrderedDict()
_MAX_INDEXES = 8


def _roots(catalog: Catalog) -> list[str]:
    return sorted(_scan_roots(catalog.node))


def _dir_stamp(roots: list[str]) -> tuple:
    out: list[tuple[str, int | None]] = []
    for root in roots:
        try:
            out.append((root, os.stat(root).st_mtime_ns))
        except FileNotFoundError:
            out.append((root, None))
    return tuple(out)


def _parts_stamp(roots: list[str]) -> tuple:
    """The files of the catalog folders (:func:`geoduck.store.folder_stamp`)."""
    return tuple((root, store.folder_stamp(root)) for root in roots)


def _trusted(dirs: tuple) -> bool:
    """Directory mtimes old enough that a later change would surely change them (no same-tick
    race with a writer, as git's "racy" index check; the rule of the store's listing reuse,
    :data:`geoduck.store.LISTING_SETTLED_NS`)."""
    newest = max((m for _, m in dirs if m is not None), default=0)
    return time.time_ns() - newest > store.LISTING_SETTLED_NS


def row_index(catalog: Catalog) -> RowIndex | None:
    """The cached :class:`RowIndex` of ``catalog``, or None when it has more than
    :data:`INDEX_MAX_ROWS` rows. Rebuilt when a part file of its catalog directories changes:
    per call one ``stat`` of each directory, a listing of its parts only while it changes."""
    key = catalog.node
    roots = _roots(catalog)
    dirs = _dir_stamp(roots)
    with _lock:
        hit = _indexes.get(key)
        if hit is not None and hit.trusted and hit.dirs == dirs:
            _indexes.move_to_end(key)
            return hit.index
    parts = _parts_stamp(roots)
    if hit is not None and hit.parts == parts:
        index = hit.index
    else:
        index = RowIndex(_select_columns(catalog)) if len(catalog) <= INDEX_MAX_ROWS else None
    with _lock:
        _indexes[key] = _Entry(dirs, parts, index, _trusted(dirs))
        _indexes.move_to_end(key)
        while len(_indexes) > _MAX_INDEXES:
            _indexes.popitem(last=False)
    return index


def _select_columns(catalog: Catalog, rel: Catalog | None = None) -> pa.Table:
    """The :data:`_COLUMNS` that ``catalog`` has, of the rows of ``rel`` (a query of it; default: all)."""
    available = set(catalog.columns)
    return (rel if rel is not None else catalog).fetch(*(c for c in _COLUMNS if c in available))


def _order(sources: list[Source], newest_first: bool) -> list[Source]:
    """By start time (static rows first), then by file path; reversed if ``newest_first``."""
    key = lambda s: (s.start is not None, s.start.value if s.start is not None else 0, s.filepath)  # noqa: E731
    return sorted(sources, key=key, reverse=newest_first)


def sources_for(catalog: Catalog, slice: GeoSlice, *, newest_first: bool = False) -> list[Source]:
    """Rows of ``catalog`` under ``slice`` (space and time), ordered by start time (static rows
    first) then path; ``newest_first`` reverses that order."""
    index = row_index(catalog)
    if index is not None:
        return _order(index.sources(index.select(slice)), newest_first)
    rel = catalog.query(bbox=slice.grid_bounds, crs=slice.crs, start=slice.start, end=slice.end)
    rows = RowIndex(_select_columns(catalog, rel))  # its raster rows only (the table may hold others)
    return _order(rows.sources(list(range(len(rows)))), newest_first)


def clear_cache() -> None:
    """Forget every cached row index (they are rebuilt on the next load) and every slice's cached
    AOI, probe and time rule."""
    with _lock:
        _indexes.clear()
    _part_bounds.cache_clear()
    _time_rule.cache_clear()
    geo.clear_aoi_cache()
