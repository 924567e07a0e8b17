"""Which catalog rows a slice reads: an in-memory row index for small catalogs, DuckDB otherwise.

Running the catalog query in DuckDB costs milliseconds per slice, too much when loading hundreds of
chips per second. So a catalog relation of at most :data:`INDEX_MAX_ROWS` rows is materialised once
per process (and re-read when a part file of its catalog directories changes) into numpy arrays,
grouped by native CRS, and each slice is answered there:

* rows in the slice's CRS: their native bounds against the slice's grid bounds;
* rows in another CRS: a cached lon/lat envelope of the slice prefilters them by ``bbox``, then the
  slice's grid rectangle (densified, 21 points per edge) mapped into their CRS is intersected with
  their native bounds;
* rows without a CRS or native bounds (and geographic-CRS rows seen across the antimeridian): the
  lon/lat query of :meth:`Catalog.query` — the densified AOI against the footprint (shapely).

Native tests are the exact question "does the file have pixels under the slice", of which the
lon/lat footprint is a densified approximation; they agree with ``Catalog.query`` except for
slivers along the edges, and intervals are closed (a row touching the slice is selected, as by
``ST_Intersects``; it contributes no pixel). Time filtering is the catalog's: closed intervals,
static rows always match.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import shapely
from shapely.geometry import MultiPolygon, Polygon

from .. import schema
from ..catalog import Catalog, _scan_roots, aoi_to_wgs84
from ..geo import WGS84
from ..slices import GeoSlice

INDEX_MAX_ROWS = 250_000
"""Catalog relations up to this many rows are answered from an in-memory index."""

_COLUMNS = (
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


def _micros(ts: pd.Timestamp | None) -> int | None:
    return None if ts is None else ts.value // 1000


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


@dataclass
class _Group:
    """Rows sharing one native CRS (with native bounds), or the rows lacking either (key None)."""

    key: str | None
    rows: np.ndarray
    native: np.ndarray
    bbox: np.ndarray
    start: np.ndarray
    start_null: np.ndarray
    end: np.ndarray
    end_null: np.ndarray
    envelope: tuple[float, float, float, float]
    """Lon/lat bounds of all the group's footprints."""

    def when(self, ok: np.ndarray, t0: int | None, t1: int | None) -> np.ndarray:
        """``ok`` restricted to rows overlapping ``[t0, t1]`` (µs; None: open)."""
        if t1 is not None:
            ok = ok & (self.start_null | (self.start <= t1))
        if t0 is not None:
            ok = ok & (self.end_null | (self.end >= t0))
        return ok


def _overlap(box: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Closed-interval overlap of (4, k) boxes with one box (NaN boxes never overlap)."""
    return (box[0] <= x1) & (box[2] >= x0) & (box[1] <= y1) & (box[3] >= y0)


class RowIndex:
    """The raster rows of one catalog relation as numpy arrays, queried per slice (see module
    docstring); rows of other backends are left out."""

    def __init__(self, table: pa.Table) -> None:
        if schema.BACKEND in table.column_names:  # e.g. a union with vector rows: rasters only
            backend = table.column(schema.BACKEND)
            table = table.filter(pc.fill_null(pc.equal(backend, "raster"), True))
        n = table.num_rows
        self.paths: list[str] = _list(table, schema.FILEPATH)
        start, start_null = _times(table, schema.START)
        end, end_null = _times(table, schema.END)
        bbox, native = _boxes(table, schema.BBOX), _boxes(table, schema.NATIVE_BOUNDS)
        self.crs: list[str | None] = _list(table, schema.CRS)
        self.dtype = _list(table, "dtype")
        self.nodata = _list(table, "nodata")
        self.count = _list(table, "count")
        self.scene = _list(table, schema.SCENE_ID)
        self.band = _list(table, schema.BAND)
        mtimes, mtime_null = _times(table, schema.FILE_MTIME)
        self.mtime = [None if null else int(t) for t, null in zip(mtimes, mtime_null, strict=True)]
        self.start, self.start_null = start, start_null
        self._wkb = _list(table, schema.GEOMETRY)
        self._geoms = np.empty(n, dtype=object)
        self._starts: dict[int, pd.Timestamp] = {}
        keys = [c if c is not None and not np.isnan(native[0, i]) else None for i, c in enumerate(self.crs)]
        members: dict[str | None, list[int]] = {}
        for i, key in enumerate(keys):
            members.setdefault(key, []).append(i)
        self.groups: dict[str | None, _Group] = {}
        for key, rows in members.items():
            r = np.asarray(rows, dtype=np.int64)
            b = bbox[:, r]
            self.groups[key] = _Group(
                key,
                r,
                native[:, r],
                b,
                start[r],
                start_null[r],
                end[r],
                end_null[r],
                (b[0].min(), b[1].min(), b[2].max(), b[3].max()),
            )

    def __len__(self) -> int:
        return len(self.paths)

    def _geometries(self, idx: np.ndarray) -> np.ndarray:
        missing = idx[np.equal(self._geoms[idx], None)]
        if missing.size:
            self._geoms[missing] = shapely.from_wkb([self._wkb[i] for i in missing])
        return self._geoms[idx]

    def select(self, slice: GeoSlice) -> list[int]:
        """Indexes of the rows under ``slice`` (space and time), unordered."""
        t0, t1 = _micros(slice.start), _micros(slice.end)
        bounds = slice.grid_bounds
        hits: list[np.ndarray] = []
        lonlat = _LonLatAOI(slice.crs, bounds)
        for key, g in self.groups.items():
            if key is not None and key == slice.crs:  # exact in the native CRS
                ok = _overlap(g.native, *bounds)
            else:
                ok = lonlat.intersects(self, g)
            if ok is not None and ok.any():
                hits.append(g.rows[g.when(ok, t0, t1)])
        return np.concatenate(hits).tolist() if hits else []

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
            )
            for i in idx
        ]


class _LonLatAOI:
    """A slice's grid rectangle, seen from rows in other CRSs: a cached lon/lat envelope to
    prefilter, then the rectangle mapped into a row group's CRS, or the lon/lat AOI as
    ``Catalog.query`` builds it (densified), each built only if needed."""

    def __init__(self, crs: str, bounds: tuple[float, float, float, float]) -> None:
        self.crs, self.bounds = crs, bounds
        self._envelope: tuple[float, float, float, float] | None | bool = False
        self._aoi: Polygon | MultiPolygon | None = None

    def in_crs(self, crs: str) -> Polygon | None:
        """The grid rectangle (21 points per edge) in ``crs``; None where that is unsafe
        (non-finite coordinates, or wrapping round a geographic CRS's antimeridian)."""
        tr = _TO_CRS.get((self.crs, crs))
        if tr is None:
            target = pyproj.CRS.from_user_input(crs)
            tr = _TO_CRS[(self.crs, crs)] = (
                pyproj.Transformer.from_crs(self.crs, target, always_xy=True),
                target.is_geographic,
            )
        x0, y0, x1, y1 = self.bounds
        k = _EDGE
        xs = np.concatenate([x0 + k * (x1 - x0), np.full(k.size, x1), x1 - k * (x1 - x0), np.full(k.size, x0)])
        ys = np.concatenate([np.full(k.size, y1), y1 - k * (y1 - y0), np.full(k.size, y0), y0 + k * (y1 - y0)])
        with np.errstate(all="ignore"):
            px, py = tr[0].transform(xs, ys, errcheck=False)
        px, py = np.asarray(px), np.asarray(py)
        if not (np.isfinite(px).all() and np.isfinite(py).all()):
            return None
        if tr[1] and (np.abs(np.diff(px)) > 180).any():
            return None
        return Polygon(np.column_stack([px, py]))

    def envelope(self) -> tuple[float, float, float, float] | None:
        if self._envelope is False:
            self._envelope = _quick_envelope(self.crs, self.bounds)
        return self._envelope  # type: ignore[return-value]

    def intersects(self, index: RowIndex, g: _Group) -> np.ndarray | None:
        """Which of ``g``'s rows intersect the slice (None: none can)."""
        env = self.envelope()
        ok = None
        if env is not None:
            ex0, ey0, ex1, ey1 = env
            gx0, gy0, gx1, gy1 = g.envelope
            if gx0 > ex1 or gx1 < ex0 or gy0 > ey1 or gy1 < ey0:
                return None
            ok = _overlap(g.bbox, *env)
            if not ok.any():
                return None
        poly = self.in_crs(g.key) if g.key is not None else None
        if poly is not None:  # exact in the rows' native CRS
            near = _overlap(g.native, *poly.bounds)
            cand = np.flatnonzero(near if ok is None else near & ok)
            out = np.zeros(g.rows.size, bool)
            if cand.size:
                boxes = shapely.box(*g.native[:, cand])
                out[cand[shapely.intersects(poly, boxes)]] = True
            return out
        if self._aoi is None:
            self._aoi = aoi_to_wgs84(bbox=self.bounds, crs=self.crs)
        aoi = self._aoi
        near = np.zeros(g.rows.size, bool)
        for p in aoi.geoms if isinstance(aoi, MultiPolygon) else [aoi]:
            near |= _overlap(g.bbox, *p.bounds)
        cand = np.flatnonzero(near if ok is None else near & ok)
        out = np.zeros(g.rows.size, bool)
        if cand.size:
            out[cand[shapely.intersects(aoi, index._geometries(g.rows[cand]))]] = True
        return out


_TO_WGS84: dict[str, pyproj.Transformer] = {}
_TO_CRS: dict[tuple[str, str], tuple[pyproj.Transformer, bool]] = {}
_EDGE = np.linspace(0.0, 1.0, 21)[:-1]


_ENVELOPES: dict[tuple, tuple[float, float, float, float] | None] = {}


def _quick_envelope(crs: str, bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float] | None:
    """A lon/lat box surely containing the densified AOI ``bounds`` in ``crs``, or None where the
    shortcut is unsafe (the caller then uses the full AOI). Computed for the enclosing block of a
    coarse power-of-two grid (cells ≥ the AOI's size) and cached, so nearby slices share it."""
    x0, y0, x1, y1 = bounds
    cell = 2.0 ** math.ceil(math.log2(max(x1 - x0, y1 - y0)))
    i0, j0, i1, j1 = (math.floor(v / cell) for v in (x0, y0, x1, y1))
    key = (crs, cell, i0, j0, i1, j1)
    if key not in _ENVELOPES:
        if len(_ENVELOPES) > 100_000:
            _ENVELOPES.clear()
        block = (i0 * cell, j0 * cell, (i1 + 1) * cell, (j1 + 1) * cell)
        _ENVELOPES[key] = _lonlat_envelope(crs, block)
    return _ENVELOPES[key]


def _lonlat_envelope(crs: str, bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float] | None:
    """Lon/lat box of ``bounds`` (12 boundary points, padded by half its size + 0.01°); None for
    a geographic CRS, near a pole or across the antimeridian."""
    to_wgs = _TO_WGS84.get(crs)
    if to_wgs is None:
        src = pyproj.CRS.from_user_input(crs)
        if src.is_geographic:
            return None
        to_wgs = _TO_WGS84[crs] = pyproj.Transformer.from_crs(src, WGS84, always_xy=True)
    x0, y0, x1, y1 = bounds
    t = np.array([0.0, 1 / 3, 2 / 3])
    xs = np.concatenate([x0 + t * (x1 - x0), np.full(3, x1), x1 - t * (x1 - x0), np.full(3, x0)])
    ys = np.concatenate([np.full(3, y1), y1 - t * (y1 - y0), np.full(3, y0), y0 + t * (y1 - y0)])
    lon, lat = to_wgs.transform(xs, ys)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        return None
    lo0, lo1, la0, la1 = lon.min(), lon.max(), lat.min(), lat.max()
    px, py = (lo1 - lo0) / 2 + 0.01, (la1 - la0) / 2 + 0.01
    box = (lo0 - px, la0 - py, lo1 + px, la1 + py)
    if box[0] < -180 or box[2] > 180 or box[1] < -80 or box[3] > 80 or lo1 - lo0 > 90:
        return None
    return box


# -- the per-process cache of row indexes ---------------------------------------------------------


@dataclass
class _Entry:
    dirs: tuple
    parts: tuple
    index: RowIndex | None
    trusted: bool
    """The directory mtimes are older than :data:`_RACY_NS`: an unchanged directory mtime proves
    that no part was added, removed or renamed since (parts are never rewritten in place)."""


_lock = threading.Lock()
_indexes: OrderedDict[object, _Entry] = OrderedDict()
_MAX_INDEXES = 8
_RACY_NS = 2_000_000_000


def _roots(catalog: Catalog) -> list[str]:
    return sorted(_scan_roots(catalog.node))


def _dir_stamp(roots: list[str]) -> tuple:
    out = []
    for root in roots:
        try:
            out.append((root, os.stat(root).st_mtime_ns))
        except FileNotFoundError:
            out.append((root, None))
    return tuple(out)


def _parts_stamp(roots: list[str]) -> tuple:
    """Names, sizes and mtimes of the files of the catalog directories (parts and the manifest
    that may hide replaced parts; temporary files are dot files)."""
    parts = []
    for root in roots:
        try:
            with os.scandir(root) as it:
                for e in it:
                    if not e.name.startswith("."):
                        st = e.stat()
                        parts.append((root, e.name, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            parts.append((root, "", -1, -1))
    return tuple(sorted(parts))


def _trusted(dirs: tuple) -> bool:
    """Directory mtimes old enough that a later change would surely change them (no same-tick
    race with a writer, as git's "racy" index check)."""
    newest = max((m for _, m in dirs if m is not None), default=0)
    return time.time_ns() - newest > _RACY_NS


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
    """Forget every cached row index (they are rebuilt on the next load)."""
    with _lock:
        _indexes.clear()
