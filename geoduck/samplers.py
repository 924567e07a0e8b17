"""Samplers: catalog rows → :class:`GeoSlice` chips (random, grid, temporal pairs), spatial-block
folds, and chips as GeoParquet data.

Resolution: ``resolution=None`` is the finest pixel size of the rows in their sampling CRS
(``res_x``/``res_y`` of rows sampled natively, else a row's pixel counts over its extent there);
rows without a pixel grid (cubes, vector layers) need ``resolution=``.

Units: chip sizes and strides are pixels, ``(rows, cols)`` or one int; resolutions are in the
sampling CRS's units, one number or ``(x, y)`` (as TorchGeo's ``res``): metres for UTM, degrees
for a lon/lat CRS. Rows whose sampling CRSs have different units (e.g. EPSG:4326 and UTM files
sampled natively) are refused with :class:`CRSError`: pass ``crs="utm"`` to give metres for all.

Sampling CRS of a row (``crs=`` of the samplers; :func:`grid_sampler`'s default ``None`` instead
picks one CRS for the whole catalog, see there):

- ``None`` or ``"native"``: the row's native CRS (column ``crs``; ``left_crs`` for an ``intersect`` result), so a
  catalog spanning several UTM zones is sampled zone by zone, each chip on its own row's grid;
- ``"utm"``: the WGS 84 UTM zone (EPSG:326xx north / 327xx south) of the centre of the row's
  lon/lat bbox, e.g. for lon/lat or mixed-unit catalogs sampled at a resolution in metres;
- any CRS: every row in that CRS.

A row's extent in its sampling CRS is its ``native_bounds`` when sampled natively, else the
envelope of its lon/lat footprint reprojected (footprints are densified, 21 points per edge) and,
in a projected CRS, rounded to 1e-6 CRS units (the grid sampler's extents). The random sampler
places chips in the row's *region* instead: the native bounds' edges (densified) in the sampling
CRS, in two parts where the sampling CRS's edge cuts the row (e.g. EPSG:3857 at ±180°), and keeps
a chip only where its outline, transformed to the native CRS, lies inside the native bounds.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import shapely
import shapely.affinity
from shapely.geometry.base import BaseGeometry
from sqlglot import exp

from . import compiler, schema, store
from .catalog import Catalog
from .errors import ArgumentError, ChipIndexError, CRSError, NoDataError, SchemaError
from .geo import (
    WGS84,
    Bounds,
    aoi_to_wgs84,
    crs_key,
    densified_ring,
    footprint_wgs84,
    norm_crs,
    rejoin_antimeridian,
    transformer,
    unwrapped_bounds,
    validate_bounds,
    wrap_longitudes,
)
from .intervals import epoch_us
from .slices import GeoSlice, _pixel_pair, _pixels, reproject_bounds

T = TypeVar("T")
log = logging.getLogger("geoduck.samplers")

EQUAL_AREA_CRS = "EPSG:6933"
"""WGS 84 / NSIDC EASE-Grid 2.0 Global: cylindrical equal-area, where row weights are measured."""
_EPS = 1e-6  # pixel-count tolerance of floor/ceil on grid positions


# -- rows of a catalog in their sampling CRS ---------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """Catalog rows prepared for sampling: everything indexed by row position (sorted by id)."""

    ids: tuple[str, ...]
    crs: tuple[str, ...]  # sampling CRS of each row
    bounds: np.ndarray  # (n, 4) extent of each row in its sampling CRS
    starts: tuple[pd.Timestamp | None, ...]
    ends: tuple[pd.Timestamp | None, ...]
    footprints: np.ndarray  # lon/lat footprint of each row (shapely)
    native: tuple[bool, ...]  # bounds are exact native bounds (footprint is that box)
    native_crs: tuple[str | None, ...] = ()  # the row's own CRS (canonical string), None if unknown
    native_bounds: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))  # (n, 4), NaN if unknown
    scenes: tuple[str | None, ...] = ()  # scene_id of each row (band-file catalogs), else empty
    res: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))  # (n, 2) pixel size in sampling CRS, NaN unknown


def _resolution(value: Any) -> tuple[float, float]:
    res = (value, value) if isinstance(value, int | float) else tuple(value)
    if len(res) != 2 or not all(isinstance(r, int | float) and math.isfinite(r) and r > 0 for r in res):
        raise ArgumentError(f"resolution={value!r} must be one or two positive numbers (CRS units)")
    return float(res[0]), float(res[1])


def _positive_pixels(value: Any, argument: str) -> tuple[int, int]:
    pair = _pixel_pair(value, argument)
    if min(pair) < 1:
        raise ArgumentError(f"{argument}={value!r} must be positive pixel counts")
    return pair


def _timestamp(value: Any) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC").as_unit("us")


def _timestamps(column: pa.ChunkedArray) -> tuple[pd.Timestamp | None, ...]:
    """A timestamp column as UTC µs Timestamps (None for null), converting each distinct value once."""
    codes, uniques = pd.factorize(column.to_pandas())
    values = [_timestamp(v) for v in uniques]
    return tuple(None if c < 0 else values[c] for c in codes.tolist())


def _struct_bounds(column: pa.ChunkedArray) -> np.ndarray:
    """A bbox struct column as an (n, 4) float array (NaN for null)."""
    arr = column.combine_chunks()
    out = np.column_stack([arr.field(k).to_numpy(zero_copy_only=False) for k in schema.BBOX_KEYS])
    out = out.astype(float)
    out[~arr.is_valid().to_numpy(zero_copy_only=False)] = np.nan
    return out


def _fetch(catalog: Catalog) -> pa.Table:
    """id, geometry (WKB lon/lat), start, end, native crs, native bounds of every row, by id."""
    if not isinstance(catalog, Catalog):
        raise ArgumentError(f"expected a geoduck.Catalog, got {type(catalog).__name__}")
    columns = catalog.columns
    crs_col = next((c for c in (schema.CRS, "left_crs") if c in columns), None)
    selects: list[str | exp.Expr] = [schema.ID, schema.GEOMETRY, schema.START, schema.END]
    if crs_col is not None:
        selects.append(compiler.col(crs_col).as_("native_crs"))
    if schema.NATIVE_BOUNDS in columns:
        selects.append(schema.NATIVE_BOUNDS)
    if schema.SCENE_ID in columns:
        selects.append(schema.SCENE_ID)
    selects += [c for c in ("res_x", "res_y", "width", "height") if c in columns]
    # an intersect result: the left rows' pixel size (its width/height are those of the whole left
    # file, not of the intersection footprint, so they are not used)
    selects += [
        compiler.col(f"left_{c}").as_(c) for c in ("res_x", "res_y") if c not in columns and f"left_{c}" in columns
    ]
    table = catalog.fetch(
        *selects, order_by=[c for c in (schema.ID, schema.START, schema.END, "source") if c in columns]
    )
    if table.num_rows == 0:
        raise NoDataError("the catalog has no rows to sample from")
    return table


def _unwrapped_lonlat_bounds(geoms: np.ndarray) -> np.ndarray:
    """lon/lat bounds (n, 4); a footprint split at the antimeridian gets ``xmax > 180``."""
    bounds = shapely.bounds(geoms)
    for i in np.flatnonzero((bounds[:, 0] <= -179.999) & (bounds[:, 2] >= 179.999)):
        bounds[i] = unwrapped_bounds(geoms[i])
    return bounds


def utm_crs(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone (``"EPSG:326zz"`` north, ``"EPSG:327zz"`` south) of a lon/lat point."""
    zone = int(math.floor(((lon + 180.0) % 360.0) / 6.0)) + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + min(zone, 60)}"


_HEADERS_FIX = (
    "rebuild the catalog with the grids read from the asset headers: from_stac(..., read_headers=True) / "
    "`geoduck build stac ... --read-headers`"
)
"""The fix for STAC-built rows without native grid columns (items lacking the projection extension)."""


def _is_native(crs: Any) -> bool:
    return crs is None or (isinstance(crs, str) and crs.strip().lower() == "native")


def _units(crs_text: str) -> str:
    """The unit of a CRS's first axis (``"metre"``, ``"degree"``, ``"US survey foot"`` …)."""
    axes = norm_crs(crs_text).axis_info
    return axes[0].unit_name if axes else "unknown"


def _check_one_unit(crs_of: Sequence[str], argument: Any) -> None:
    """Refuse sampling CRSs of different units: one ``resolution`` cannot be metres and degrees."""
    units: dict[str, str] = {}
    for text in sorted(set(crs_of)):
        units.setdefault(_units(text), text)
    if len(units) > 1:
        found = ", ".join(f"{u} ({c if len(c) < 40 else 'WKT'})" for u, c in units.items())
        raise CRSError(
            f"crs={argument!r} samples rows in CRSs of different units: {found}; one resolution "
            "cannot be read in all of them: pass crs='utm' (resolution in metres) or one CRS"
        )


def _is_auto(crs: Any) -> bool:
    return isinstance(crs, str) and crs.strip().lower() == "auto"


def _majority_crs(native: list[str | None], geoms: np.ndarray, lonlat: np.ndarray) -> str:
    """The CRS covering most of the catalog's area: the native CRS (or, for rows without one, the
    UTM zone of the footprint's centre) whose rows' footprints sum to the largest area on the
    ellipsoid (m² in :data:`EQUAL_AREA_CRS`; rows counted once per acquisition); ties: the
    smallest CRS string."""
    cx, cy = (lonlat[:, 0] + lonlat[:, 2]) / 2, (lonlat[:, 1] + lonlat[:, 3]) / 2
    keys = [
        crs_key(c) if c is not None else utm_crs(float(x), float(y)) for c, x, y in zip(native, cx, cy, strict=True)
    ]
    areas = np.nan_to_num(shapely.area(_project_geoms(geoms, norm_crs(EQUAL_AREA_CRS))))
    total: dict[str, float] = {}
    for k, a in zip(keys, areas.tolist(), strict=True):
        total[k] = total.get(k, 0.0) + a
    return min(total, key=lambda k: (-total[k], k))


def _sampling_crs(crs: Any, native: list[str | None], ids: Sequence[str], lonlat: np.ndarray) -> list[str]:
    n = len(native)
    if _is_native(crs):
        missing = [ids[i] for i, c in enumerate(native) if c is None]
        if missing:
            raise CRSError(
                f"row {missing[0]!r} has no native crs: pass crs= (a CRS or 'utm') to sample it, or, for "
                f"STAC items without proj:* fields, {_HEADERS_FIX}"
            )
        keys = {c: crs_key(c) for c in set(native)}
        return [keys[c] for c in native]
    if isinstance(crs, str) and crs.lower() == "utm":
        cx, cy = (lonlat[:, 0] + lonlat[:, 2]) / 2, (lonlat[:, 1] + lonlat[:, 3]) / 2
        return [utm_crs(float(x), float(y)) for x, y in zip(cx, cy, strict=True)]
    return [crs_key(crs)] * n


def _project_geoms(geoms: np.ndarray, dst: pyproj.CRS) -> np.ndarray:
    """lon/lat geometries reprojected vertex by vertex to ``dst`` (they are densified already)."""
    fwd = transformer(WGS84, dst)

    def fn(xy: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            x, y = fwd.transform(xy[:, 0], xy[:, 1], errcheck=False)
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


def _prepare(catalog: Catalog, crs: Any) -> _Rows:
    table = _fetch(catalog)
    ids = tuple(table.column(schema.ID).to_pylist())
    geoms = shapely.from_wkb(table.column(schema.GEOMETRY).to_pylist())
    n = len(ids)
    native_crs = table.column("native_crs").to_pylist() if "native_crs" in table.column_names else [None] * n
    nb = (
        _struct_bounds(table.column(schema.NATIVE_BOUNDS))
        if schema.NATIVE_BOUNDS in table.column_names
        else np.full((n, 4), np.nan)
    )
    lonlat = _unwrapped_lonlat_bounds(geoms)
    if _is_auto(crs):
        crs = _majority_crs(native_crs, geoms, lonlat)
    crs_of = _sampling_crs(crs, native_crs, ids, lonlat)
    _check_one_unit(crs_of, crs)
    keys = {c: crs_key(c) for c in set(native_crs) if c is not None}
    native_key = np.array([keys.get(c) for c in native_crs], dtype=object)
    crs_arr = np.array(crs_of, dtype=object)
    # sampled in its own CRS with known native bounds: the exact native extent
    is_native = (native_key == crs_arr) & np.isfinite(nb).all(axis=1)
    bounds = np.where(is_native[:, None], nb, np.nan)
    for dst_text in sorted(set(crs_of)):
        rest_idx = np.flatnonzero((crs_arr == dst_text) & ~is_native)
        if not len(rest_idx):
            continue
        dst = norm_crs(dst_text)
        if dst.is_geographic:
            for i in rest_idx:
                bounds[i] = reproject_bounds(tuple(lonlat[i]), WGS84, dst)
            continue
        # rounded to µm (for metres) so float noise does not move chips off round grids
        bounds[rest_idx] = np.round(shapely.bounds(_project_geoms(geoms[rest_idx], dst)), 6)
        bad = ~np.isfinite(bounds[rest_idx]).all(axis=1)
        if bad.any():
            raise CRSError(
                f"the footprint of row {ids[rest_idx[bad][0]]!r} does not project to "
                f"{dst_text} (outside its area of use); pass another crs="
            )
    rows = _Rows(
        ids=ids,
        crs=tuple(crs_of),
        bounds=bounds,
        res=_row_res(table, bounds, nb, native_key == crs_arr),
        starts=_timestamps(table.column(schema.START)),
        ends=_timestamps(table.column(schema.END)),
        footprints=geoms,
        native=tuple(is_native.tolist()),
        native_crs=tuple(native_key.tolist()),
        native_bounds=nb,
    )
    if schema.SCENE_ID in table.column_names:
        rows = _by_scene(rows, table.column(schema.SCENE_ID).to_pylist())
    return rows


def _row_res(table: pa.Table, bounds: np.ndarray, nb: np.ndarray, is_native: np.ndarray) -> np.ndarray:
    """(n, 2) pixel size of each row in its sampling CRS: ``res_x``/``res_y`` when sampled in its
    native CRS (``is_native``; for an ``intersect`` result, the left row's), else the row's pixel
    counts spread over its extent there (``extent / width``, ``extent / height``, as
    :meth:`GeoSlice.to_crs`); NaN for rows without a pixel grid (cubes, vectors)."""
    n = table.num_rows

    def column(name: str) -> np.ndarray:
        if name not in table.column_names:
            return np.full(n, np.nan)
        return np.array([np.nan if v is None else float(v) for v in table.column(name).to_pylist()])

    rx, ry, w, h = column("res_x"), column("res_y"), column("width"), column("height")
    with np.errstate(all="ignore"):
        other = np.column_stack([(bounds[:, 2] - bounds[:, 0]) / w, (bounds[:, 3] - bounds[:, 1]) / h])
    return np.where(is_native[:, None], np.column_stack([rx, ry]), other)


def _default_resolution(rows: _Rows, argument: str) -> tuple[float, float]:
    """The finest pixel size of the rows in their sampling CRS (x and y separately)."""
    res = rows.res if len(rows.res) else np.full((len(rows.ids), 2), np.nan)
    known = np.isfinite(res).all(axis=1) & (res > 0).all(axis=1)
    if not known.any():
        raise ArgumentError(
            f"{argument}: the catalog rows have no pixel size (cube or vector rows, or STAC items without "
            f"proj:* fields): pass resolution= (units of the sampling CRS), or {_HEADERS_FIX}"
        )
    return float(res[known, 0].min()), float(res[known, 1].min())


def _by_scene(rows: _Rows, scenes: list[str | None]) -> _Rows:
    """One sampling row per scene: the band files of a scene (same ``scene_id``, interval and
    sampling CRS) become one row whose extent is the union of theirs (its id: the first band
    file's), so a scene counts once however many band files it has; other rows are kept."""
    first: dict[tuple, int] = {}
    members: list[list[int]] = []
    for i, scene in enumerate(scenes):
        if scene is None:
            members.append([i])
            continue
        key = (scene, rows.starts[i], rows.ends[i], rows.crs[i], rows.native_crs[i])
        if key in first:
            members[first[key]].append(i)
        else:
            first[key] = len(members)
            members.append([i])
    if len(members) == len(scenes):
        return dataclasses.replace(rows, scenes=tuple(scenes))
    heads = [m[0] for m in members]

    def union(b: np.ndarray) -> np.ndarray:  # per scene, the envelope of its members' boxes
        return np.array([[b[m, 0].min(), b[m, 1].min(), b[m, 2].max(), b[m, 3].max()] for m in members]).reshape(-1, 4)

    footprints = np.array(
        [rows.footprints[m[0]] if len(m) == 1 else shapely.union_all(rows.footprints[m]) for m in members], dtype=object
    )
    pick = lambda values: tuple(values[h] for h in heads)  # noqa: E731
    return _Rows(
        ids=pick(rows.ids),
        crs=pick(rows.crs),
        bounds=union(rows.bounds),
        starts=pick(rows.starts),
        ends=pick(rows.ends),
        footprints=footprints,
        native=tuple(all(rows.native[i] for i in m) for m in members),
        native_crs=pick(rows.native_crs),
        native_bounds=union(rows.native_bounds),
        scenes=pick(scenes),
        res=np.array([np.fmin.reduce(rows.res[m], axis=0) for m in members]).reshape(-1, 2),
    )


def _roi_parts(roi: Any) -> tuple[BaseGeometry, Any]:
    """``roi`` → (geometry, crs); a bare geometry is EPSG:4326 lon/lat."""
    if isinstance(roi, tuple) and len(roi) == 2 and not isinstance(roi[0], int | float):
        return roi[0], roi[1]
    return roi, None


def _roi_in(roi_lonlat: BaseGeometry, roi_geom: BaseGeometry, roi_crs: str | None, dst_text: str) -> BaseGeometry:
    """The roi in ``dst_text`` (reprojected from lon/lat, densified ~50 points per edge)."""
    if roi_crs is not None and roi_crs == dst_text:
        return roi_geom
    dst = norm_crs(dst_text)
    if dst.equals(WGS84):
        return roi_lonlat
    xmin, ymin, xmax, ymax = roi_lonlat.bounds
    seg = max(min(xmax - xmin, ymax - ymin) / 50.0, 1e-6)
    return _project_geoms(np.array([shapely.segmentize(roi_lonlat, seg)]), dst)[0]


# -- where a row's chips may go ---------------------------------------------------------------------

_MAX_TRIES = 64
"""Positions tried for one chip in one row before that row is given up (if it never gave a chip)."""


@dataclass(frozen=True)
class _Parts:
    """The region of each row in its sampling CRS, as one or more parts: a row cut by the sampling
    CRS's edge (e.g. EPSG:3857 at ±180°) has one part on each side."""

    row: np.ndarray  # (k,) row index of each part
    bounds: np.ndarray  # (k, 4) envelope of the part in the row's sampling CRS
    share: np.ndarray  # (k,) the part's share of its row's area


def _wrapped(x: np.ndarray, y: np.ndarray) -> bool:
    """A projected ring that jumps across its CRS's edge (e.g. ±20037508 m in EPSG:3857): one step
    much longer than the others (the ring is densified, so steps are ~1/20 of an edge)."""
    step = np.hypot(np.diff(x), np.diff(y))
    return bool(step.max() > 0.25 * max(np.ptp(x), np.ptp(y)) and step.max() > 20 * np.median(step))


def _region_pieces(rows: _Rows, i: int) -> list[tuple[Bounds, float]]:
    """(envelope, area) of each part of row ``i``'s region in its sampling CRS (not native)."""
    dst_text = rows.crs[i]
    dst = norm_crs(dst_text)
    if dst.is_geographic:  # lon/lat: the unwrapped envelope (xmax > 180 across the antimeridian)
        return [(tuple(rows.bounds[i]), 1.0)]
    src_text, nb = rows.native_crs[i], rows.native_bounds[i]
    if src_text is not None and np.isfinite(nb).all():  # the native rectangle's edges, densified
        xs, ys = densified_ring(tuple(nb))
        with np.errstate(all="ignore"):
            x, y = transformer(src_text, dst).transform(xs, ys, errcheck=False)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if np.isfinite(x).all() and np.isfinite(y).all() and not _wrapped(x, y):
            return [((float(x.min()), float(y.min()), float(x.max()), float(y.max())), 1.0)]
    geom = _project_geoms(np.array([rows.footprints[i]], dtype=object), dst)[0]
    pieces = [
        p for p in getattr(geom, "geoms", [geom]) if not p.is_empty and np.isfinite(p.bounds).all() and p.area > 0
    ]
    return [(p.bounds, p.area) for p in pieces]


def _parts(rows: _Rows) -> _Parts:
    row_i: list[int] = []
    bounds: list[Bounds] = []
    share: list[float] = []
    for i in range(len(rows.ids)):
        pieces = [(tuple(rows.bounds[i]), 1.0)] if rows.native[i] else _region_pieces(rows, i)
        total = sum(a for _, a in pieces)
        for b, a in pieces:
            row_i.append(i)
            bounds.append(b)
            share.append(a / total)
    return _Parts(
        row=np.array(row_i, dtype=np.int64),
        bounds=np.array(bounds, dtype=float).reshape(-1, 4),
        share=np.array(share),
    )


_UNIT_RING = densified_ring((0.0, 0.0, 1.0, 1.0))


def _on_data(
    rows: _Rows,
    parts: _Parts,
    part: np.ndarray,
    x0: np.ndarray,
    y1: np.ndarray,
    size: tuple[int, int],
    res: tuple[float, float],
) -> np.ndarray:
    """Mask of chips (top-left ``x0, y1`` in their row's sampling CRS) that lie on their row's data.

    A natively sampled row's chips were placed inside its native bounds. Other chips: the outline
    (21 points per edge) transformed to the row's native CRS lies inside its native bounds (lon/lat
    taken modulo 360 from ``xmin``), or, for rows without native bounds, the chip's lon/lat
    footprint is covered by the row's footprint.
    """
    # a natively sampled row's envelope is its data
    ok = np.fromiter((rows.native[i] for i in parts.row[part].tolist()), dtype=bool, count=len(part))
    todo = np.flatnonzero(~ok)
    if not len(todo):
        return ok
    (h, w), (rx, ry) = size, res
    r = parts.row[part[todo]]
    nb_known = np.isfinite(rows.native_bounds[r]).all(axis=1) & np.array(
        [rows.native_crs[i] is not None for i in r], dtype=bool
    )
    codes: dict[tuple[str, str | None], int] = {}
    group = np.array(
        [
            codes.setdefault((rows.crs[i], rows.native_crs[i] if known else None), len(codes))
            for i, known in zip(r.tolist(), nb_known.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    for (dst_text, src_text), code in codes.items():
        sel = group == code
        k, rr = todo[sel], r[sel]
        if src_text is None:  # no native bounds: the lon/lat footprints
            dst = norm_crs(dst_text)
            chips = [footprint_wgs84((a, b - h * ry, a + w * rx, b), dst) for a, b in zip(x0[k], y1[k], strict=True)]
            ok[k] = shapely.covers(shapely.buffer(rows.footprints[rr], 1e-9), np.array(chips, dtype=object))
            continue
        xs = x0[k, None] + _UNIT_RING[0][None, :] * (w * rx)
        ys = (y1[k] - h * ry)[:, None] + _UNIT_RING[1][None, :] * (h * ry)
        src = norm_crs(src_text)
        with np.errstate(all="ignore"):
            x, y = transformer(dst_text, src).transform(xs.ravel(), ys.ravel(), errcheck=False)
        x, y = np.asarray(x, dtype=float).reshape(xs.shape), np.asarray(y, dtype=float).reshape(ys.shape)
        nb = rows.native_bounds[rr]
        if src.is_geographic:
            x = wrap_longitudes(x, nb[:, :1])
        tol = 1e-9 * np.maximum(nb[:, 2] - nb[:, 0], nb[:, 3] - nb[:, 1])[:, None]
        with np.errstate(invalid="ignore"):
            ok[k] = (
                (x >= nb[:, :1] - tol) & (x <= nb[:, 2:3] + tol) & (y >= nb[:, 1:2] - tol) & (y <= nb[:, 3:4] + tol)
            ).all(axis=1)
    return ok


# -- random sampler ---------------------------------------------------------------------------------


class RandomSampler(Sequence[GeoSlice]):
    """``length`` random chips, reproducible from ``seed`` (see :func:`random_sampler`).

    A re-iterable sequence: ``len()``, indexing and iteration give the same chips every time;
    :attr:`row_ids` says which catalog row each chip was drawn from, :attr:`skipped_ids` which rows
    were found to hold no chip.
    """

    def __init__(
        self,
        rows: _Rows,
        *,
        chip_size: tuple[int, int],
        resolution: tuple[float, float],
        length: int,
        seed: int,
        roi: tuple[BaseGeometry, BaseGeometry, str | None] | None,
        parts: _Parts | None = None,
    ) -> None:
        self._rows = rows
        self._parts = _parts(rows) if parts is None else parts
        self.chip_size = chip_size
        self.resolution = resolution
        self.length = length
        self.seed = seed
        self._roi = roi
        self._roi_cache: dict[str, BaseGeometry] = {}
        self._skipped: tuple[int, ...] = ()
        self._row, self._x0, self._y1 = self._draw()

    def reseed(self, seed: int) -> RandomSampler:
        """The same sampler with another seed (e.g. ``seed + epoch``); the catalog is not re-read."""
        return RandomSampler(
            self._rows,
            chip_size=self.chip_size,
            resolution=self.resolution,
            length=self.length,
            seed=seed,
            roi=self._roi,
            parts=self._parts,
        )

    @property
    def row_ids(self) -> list[str]:
        """The catalog ``id`` of the row each chip was drawn from, in chip order (for a scene of
        band files: its first band file's)."""
        return [self._rows.ids[r] for r in self._row]

    @property
    def skipped_ids(self) -> tuple[str, ...]:
        """Rows found to hold no chip, by id: smaller than the chip at this resolution in their
        sampling CRS, or no position on their data found in 64 tries. No chip comes from them."""
        return tuple(self._rows.ids[i] for i in self._skipped)

    @property
    def scene_ids(self) -> list[str | None]:
        """The ``scene_id`` of the scene each chip was drawn from (None: not a band-file row)."""
        if not self._rows.scenes:
            return [None] * self.length
        return [self._rows.scenes[r] for r in self._row]

    # geometry of the chip positions of every row part ---------------------------------------------
    def _positions(self) -> tuple[np.ndarray, ...]:
        """Per part: x anchor, y anchor and the inclusive ranges of whole-pixel steps of the chip
        (empty, ``lo > hi``, where the chip does not fit)."""
        parts, (h, w), (rx, ry) = self._parts, self.chip_size, self.resolution
        b = parts.bounds
        cw, ch = w * rx, h * ry
        ax, ay = b[:, 0], b[:, 3]
        with np.errstate(invalid="ignore"):
            hi_x = np.floor((b[:, 2] - b[:, 0] - cw) / rx + _EPS)
            hi_y = np.floor((b[:, 3] - b[:, 1] - ch) / ry + _EPS)
        hi_x = np.where(np.isfinite(hi_x), hi_x, -1).astype(np.int64)
        hi_y = np.where(np.isfinite(hi_y), hi_y, -1).astype(np.int64)
        lo_x, lo_y = np.zeros_like(hi_x), np.zeros_like(hi_y)
        if self._roi is not None:  # only steps whose chip lies inside the roi's envelope
            crs_arr = np.array(self._rows.crs, dtype=object)[parts.row]
            for dst_text in set(crs_arr):
                idx = np.flatnonzero(crs_arr == dst_text)
                rb = self._roi_geom(dst_text).bounds
                lo_x[idx] = np.maximum(lo_x[idx], np.ceil((rb[0] - ax[idx]) / rx - _EPS))
                hi_x[idx] = np.minimum(hi_x[idx], np.floor((rb[2] - cw - ax[idx]) / rx + _EPS))
                lo_y[idx] = np.maximum(lo_y[idx], np.ceil((ay[idx] - rb[3]) / ry - _EPS))
                hi_y[idx] = np.minimum(hi_y[idx], np.floor((ay[idx] - ch - rb[1]) / ry + _EPS))
        return ax, ay, lo_x, hi_x, lo_y, hi_y

    def _roi_geom(self, dst_text: str) -> BaseGeometry:
        assert self._roi is not None
        if dst_text not in self._roi_cache:
            roi_lonlat, roi_geom, roi_crs = self._roi
            geom = _roi_in(roi_lonlat, roi_geom, roi_crs, dst_text)
            shapely.prepare(geom)
            self._roi_cache[dst_text] = geom
        return self._roi_cache[dst_text]

    def _weights(self) -> np.ndarray:
        """Area (m² on the WGS 84 ellipsoid) of each row's footprint (∩ roi), measured in the
        equal-area :data:`EQUAL_AREA_CRS` (footprints are densified, so edges follow the ellipsoid)."""
        geoms = self._rows.footprints
        if self._roi is not None:
            geoms = shapely.intersection(geoms, self._roi[0])
        return np.nan_to_num(shapely.area(_project_geoms(geoms, norm_crs(EQUAL_AREA_CRS))))

    def _no_chip(self, fits: np.ndarray) -> NoDataError:
        where = "inside the roi" if self._roi is not None else "in any row"
        small = len(set(self._parts.row.tolist()) - set(self._parts.row[fits].tolist()))
        hint = ""
        degrees = sorted({c for c in self._rows.crs if norm_crs(c).is_geographic})
        if degrees:
            hint = (
                f"; resolution is in the sampling CRS's units, degrees for {degrees[0]}: to give it "
                "in metres pass crs='utm'"
            )
        return NoDataError(
            f"no chip of {self.chip_size} px at resolution {self.resolution} fits {where} "
            f"({small} of {len(self._rows.ids)} rows are smaller than the chip){hint}"
        )

    def _draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ax, ay, lo_x, hi_x, lo_y, hi_y = self._positions()
        parts = self._parts
        fits = (lo_x <= hi_x) & (lo_y <= hi_y)
        weights = np.where(fits, self._weights()[parts.row] * parts.share, 0.0)
        if not weights.sum() > 0:
            raise self._no_chip(fits)
        rng = np.random.default_rng(self.seed)
        (h, w), (rx, ry) = self.chip_size, self.resolution
        found = np.zeros(len(weights), dtype=bool)  # parts that gave a chip
        rows_out, x_out, y_out = [], [], []
        need, barren = self.length, 0

        def place(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (
                ax[r] + rng.integers(lo_x[r], hi_x[r], endpoint=True) * rx,
                ay[r] - rng.integers(lo_y[r], hi_y[r], endpoint=True) * ry,
            )

        while need > 0:
            if not weights.sum() > 0:
                raise self._no_chip(fits & (weights > 0))
            m = need if self._roi is None else max(2 * need, 1024)
            r = rng.choice(len(weights), size=m, p=weights / weights.sum())
            x0, y1 = place(r)
            ok = _on_data(self._rows, parts, r, x0, y1, self.chip_size, self.resolution)
            for _ in range(_MAX_TRIES - 1):  # a chip off its row's data: another position in that row
                bad = np.flatnonzero(~ok)
                if not len(bad):
                    break
                x0[bad], y1[bad] = place(r[bad])
                ok[bad] = _on_data(self._rows, parts, r[bad], x0[bad], y1[bad], self.chip_size, self.resolution)
            found[r[ok]] = True
            hopeless = np.unique(r[~ok])
            weights[hopeless[~found[hopeless]]] = 0.0
            r, x0, y1 = r[ok], x0[ok], y1[ok]
            if self._roi is not None:
                inside = np.zeros(len(r), dtype=bool)
                crs_of = np.array(self._rows.crs, dtype=object)[parts.row[r]]
                for dst_text in set(crs_of):
                    sel = crs_of == dst_text
                    boxes = shapely.box(x0[sel], y1[sel] - h * ry, x0[sel] + w * rx, y1[sel])
                    inside[sel] = shapely.contains(self._roi_geom(dst_text), boxes)
                r, x0, y1 = r[inside][:need], x0[inside][:need], y1[inside][:need]
                barren = 0 if len(r) else barren + 1
                if barren >= 50:  # ≥ 51200 candidates in a row, none inside the roi
                    raise NoDataError(
                        f"no chip of {self.chip_size} px at {self.resolution} fits inside "
                        "the roi; use a larger roi or smaller chips"
                    )
            rows_out.append(parts.row[r])
            x_out.append(x0)
            y_out.append(y1)
            need -= len(r)
        live = set(parts.row[weights > 0].tolist())
        self._skipped = tuple(sorted(set(range(len(self._rows.ids))) - live))
        if self._skipped:
            log.warning(
                "random_sampler: %d of %d rows hold no chip of %s px at resolution %s (e.g. %s); "
                "they are skipped (see RandomSampler.skipped_ids)",
                len(self._skipped),
                len(self._rows.ids),
                self.chip_size,
                self.resolution,
                self._rows.ids[self._skipped[0]],
            )
        return np.concatenate(rows_out), np.concatenate(x_out), np.concatenate(y_out)

    # sequence protocol ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.length

    def _slice(self, i: int) -> GeoSlice:
        (h, w), (rx, ry) = self.chip_size, self.resolution
        r, x0, y1 = int(self._row[i]), float(self._x0[i]), float(self._y1[i])
        rows = self._rows
        return GeoSlice._make(
            (x0, y1 - h * ry, x0 + w * rx, y1), rows.crs[r], self.resolution, rows.starts[r], rows.ends[r]
        )

    @overload
    def __getitem__(self, i: int) -> GeoSlice: ...
    @overload
    def __getitem__(self, i: slice) -> list[GeoSlice]: ...

    def __getitem__(self, i: int | slice) -> GeoSlice | list[GeoSlice]:
        if isinstance(i, slice):
            return [self._slice(k) for k in range(*i.indices(self.length))]
        k = int(i) + self.length if int(i) < 0 else int(i)
        if not 0 <= k < self.length:
            raise ChipIndexError(f"chip index {i} out of range for {self.length} chips")
        return self._slice(k)

    def __iter__(self) -> Iterator[GeoSlice]:
        return (self._slice(k) for k in range(self.length))

    def __repr__(self) -> str:
        return (
            f"<RandomSampler {self.length} chips of {self.chip_size} px at {self.resolution}, "
            f"seed={self.seed}, {len(self._rows.ids)} rows>"
        )


def random_sampler(
    catalog: Catalog,
    *,
    chip_size: int | tuple[int, int],
    resolution: float | tuple[float, float] | None = None,
    crs: Any = None,
    length: int,
    seed: int = 0,
    roi: Any = None,
) -> RandomSampler:
    """``length`` random chips from ``catalog``, the same ones for the same ``seed``.

    Each chip: a row is chosen with probability proportional to its footprint's area on the
    WGS 84 ellipsoid (the band files of a scene, same ``scene_id``, count as one row: the scene)
    (m², measured in the equal-area EPSG:6933; with ``roi``, the area of footprint ∩ roi), so every
    part of the ground is equally likely whatever the rows' CRSs (each
    row counts: a place acquired 8 times is drawn 8 times as often). The chip is then placed
    uniformly inside the row's extent in its sampling CRS (see the module doc for ``crs``), at
    whole-pixel steps from the extent's top-left corner, so natively sampled rows at their native
    resolution give chips on the file's own pixel grid. In another CRS the row's region there is
    used and every chip lies on the row's data: a position whose chip outline, transformed to the
    row's native CRS, leaves the native bounds is redrawn in the same row (the lon/lat footprint
    stands in for rows without native bounds). A row that cannot hold the chip (smaller than it
    at this resolution, or no position found in 64 tries) is skipped: no chip comes from it, it is
    listed in :attr:`RandomSampler.skipped_ids` and logged; if no row holds one, ``NoDataError``.
    The chip's interval is the row's (None for static rows).
    With ``roi``, a (row, position) draw whose chip is not inside the roi is redrawn.

    Args:
        catalog: a catalog or any relation of it (``intersect`` results included).
        chip_size: pixels, ``(rows, cols)`` or one int.
        resolution: pixel size in the sampling CRS's units (degrees for a lon/lat CRS), one number
            or ``(x, y)``; for metres on lon/lat rows pass ``crs="utm"``. Default: the finest
            pixel size of the rows (see the module doc).
        crs: ``None``/``"native"`` (each row's native CRS), ``"utm"`` or a CRS (module doc).
        length: number of chips.
        seed: seed of the ``numpy.random.Generator`` that draws rows and positions.
        roi: a shapely geometry in EPSG:4326, or ``(geometry, crs)``: only rows intersecting it
            are used and every chip lies inside it (checked in the chip's CRS; rejection sampling).

    Returns:
        A :class:`RandomSampler`: a re-iterable sequence of ``length`` GeoSlices.
    """
    if not isinstance(length, int | np.integer) or isinstance(length, bool) or length < 1:
        raise ArgumentError(f"length={length!r} must be a positive int")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise ArgumentError(f"seed={seed!r} must be an int")
    size = _positive_pixels(chip_size, "chip_size")
    res = None if resolution is None else _resolution(resolution)
    roi_parts = None
    if roi is not None:
        geom, roi_crs = _roi_parts(roi)
        if not isinstance(geom, BaseGeometry):
            raise ArgumentError(f"roi must be a shapely geometry or (geometry, crs), got {type(geom).__name__}")
        roi_lonlat = aoi_to_wgs84(geometry=geom, crs=roi_crs)
        catalog = catalog.query(geometry=geom, crs=roi_crs)
        roi_parts = (roi_lonlat, geom, None if roi_crs is None else crs_key(roi_crs))
    rows = _prepare(catalog, crs)
    if res is None:
        res = _default_resolution(rows, "random_sampler")
    return RandomSampler(rows, chip_size=size, resolution=res, length=int(length), seed=int(seed), roi=roi_parts)


# -- grid sampler -----------------------------------------------------------------------------------


def _offsets(n: int, chip: int, stride: int) -> np.ndarray:
    """Pixel offsets of chips along an axis of ``n`` pixels; the last one shifted to end at ``n``."""
    if n <= chip:
        return np.zeros(1, dtype=np.int64)
    offs = np.arange(0, n - chip + 1, stride, dtype=np.int64)
    return offs if offs[-1] == n - chip else np.append(offs, n - chip)


def _grid(
    bounds: Bounds, res: tuple[float, float], size: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (x0, y1) of the chips covering ``bounds``' pixel grid, row-major."""
    if not (bounds[0] < bounds[2] and bounds[1] < bounds[3]):
        raise ArgumentError(f"bounds={tuple(bounds)} must have xmin < xmax and ymin < ymax")
    rows = _offsets(_pixels(bounds[3] - bounds[1], res[1]), size[0], stride[0])  # GeoSlice's ceil rule
    cols = _offsets(_pixels(bounds[2] - bounds[0], res[0]), size[1], stride[1])
    oy, ox = np.meshgrid(rows, cols, indexing="ij")
    return bounds[0] + ox.ravel() * res[0], bounds[3] - oy.ravel() * res[1]


def _pieces_of(rows: _Rows, idx: np.ndarray) -> np.ndarray:
    """(k, 4) extents covering rows ``idx`` in their sampling CRS: the row extent, or, for a row
    whose footprint is split at the antimeridian and sampled in a projected CRS (where it lands
    at both edges of the world), the extent of each part of its region (:func:`_region_pieces`)."""
    out: list[np.ndarray] = []
    for i in idx.tolist():
        split = not rows.native[i] and rows.footprints[i].geom_type == "MultiPolygon"
        if split and not norm_crs(rows.crs[i]).is_geographic:
            out += [np.asarray(b, dtype=float) for b, _ in _region_pieces(rows, i)]
        else:
            out.append(rows.bounds[i])
    return np.array(out, dtype=float).reshape(-1, 4)


def _grid_over(
    union: Bounds,
    pieces: np.ndarray,
    res: tuple[float, float],
    size: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of the chips of ``union``'s grid (:func:`_grid`) that overlap some of the
    ``pieces`` (extents inside the union), row-major; only those chips are built, so far-apart
    pieces (e.g. both sides of EPSG:3857 at ±180°) do not make a world-wide grid."""
    if not (union[0] < union[2] and union[1] < union[3]):
        raise ArgumentError(f"bounds={tuple(union)} must have xmin < xmax and ymin < ymax")
    (h, w), (rx, ry) = size, res
    rows = _offsets(_pixels(union[3] - union[1], ry), h, stride[0])
    cols = _offsets(_pixels(union[2] - union[0], rx), w, stride[1])
    x_lo, y_hi = union[0] + cols * rx, union[3] - rows * ry  # chip left / top edges
    picked: set[tuple[int, int]] = set()
    for xmin, ymin, xmax, ymax in pieces.tolist():
        ci = np.flatnonzero((x_lo < xmax) & (x_lo + w * rx > xmin))
        ri = np.flatnonzero((y_hi > ymin) & (y_hi - h * ry < ymax))
        picked.update(itertools.product(ri.tolist(), ci.tolist()))
    order = np.array(sorted(picked), dtype=np.int64).reshape(-1, 2)
    return x_lo[order[:, 1]], y_hi[order[:, 0]]


GridBy = Literal[None, "interval"]


def grid_sampler(
    catalog_or_bounds: Catalog | Sequence[float],
    *,
    chip_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    resolution: float | tuple[float, float] | None = None,
    crs: Any = None,
    by: GridBy = None,
) -> list[GeoSlice]:
    """Chips on a regular grid covering a catalog's footprints (or given bounds).

    CRS of the grid (``crs``):

    - ``None`` (default): **one** CRS for the whole catalog, so the chips stitch into one raster:
      the CRS covering most of the area, i.e. the native CRS whose rows' footprints sum to the
      largest area on the ellipsoid (rows without a native CRS count for the UTM zone of their
      centre; ties: the smallest CRS string). A catalog in one CRS is gridded in it; one spanning
      UTM zones 29–31 is gridded in the zone holding most of it (rows of the other zones are
      reprojected there).
    - ``"native"``: one grid per native CRS (e.g. per UTM zone), each chip in its rows' CRS;
      ``"utm"`` or any CRS: as in the module doc (one grid per distinct sampling CRS).

    Each CRS group gets a grid anchored at the top-left corner of the union of its rows' extents,
    in whole pixels of ``resolution``. Chips step by ``stride`` pixels; where the last step would
    leave a strip uncovered, the last row/column of chips is shifted inward to end exactly at the
    grid's edge, so every pixel is covered and no chip reaches past the union's pixel grid (the
    union's bounds extended to whole pixels). An axis shorter than the chip gets one chip
    anchored at the top-left corner. Chips under no footprint of their group are skipped; none is
    repeated. A row split at the antimeridian counts with each of its parts (so in EPSG:3857 it
    does not cover the world).

    Time (``by``):

    - ``None``: one grid over all rows; chips are static (no interval: ``load_raster`` then
      merges every date under the chip) unless every row has the same interval, which they carry.
    - ``"interval"``: one grid per distinct row interval ``[start, end]`` (time-stacked catalogs),
      each chip carrying its interval, so it loads that acquisition only. All intervals share the
      CRS group's grid, so chips of different dates align pixel for pixel; a chip is kept for an
      interval when a row of that interval lies under it.

    Order: groups by CRS string, then intervals in time order (static rows first), then row-major
    (north to south, west to east). With a bounds tuple, ``crs`` (a CRS) and ``resolution`` are
    required and the bounds are covered the same way.

    Args:
        chip_size, stride: pixels, ``(rows, cols)`` or one int; ``stride`` defaults to ``chip_size``.
        resolution: pixel size in the grid CRS's units (see the module doc; one unit for all
            rows). Default: the finest pixel size of the rows there (``res_x``/``res_y`` of rows in
            their native CRS, else the row's pixel counts over its extent in the grid CRS).
        crs: see above.
        by: ``None`` or ``"interval"`` (see above).
    """
    size = _positive_pixels(chip_size, "chip_size")
    step = size if stride is None else _positive_pixels(stride, "stride")
    if by not in (None, "interval"):
        raise ArgumentError(f"by={by!r} must be None or 'interval'")
    if not isinstance(catalog_or_bounds, Catalog):
        if crs is None or _is_native(crs) or (isinstance(crs, str) and crs.strip().lower() in ("utm", "auto")):
            raise CRSError("grid_sampler(bounds, ...) needs the bounds' crs=, e.g. crs='EPSG:32630'")
        if resolution is None:
            raise ArgumentError("grid_sampler(bounds, ...) needs resolution= (units of crs)")
        res = _resolution(resolution)
        bounds = validate_bounds(catalog_or_bounds, argument="bounds")
        text = crs_key(crs)
        x0, y1 = _grid(bounds, res, size, step)
        return _chips(x0, y1, size, res, text, None, None)

    rows = _prepare(catalog_or_bounds, "auto" if crs is None else crs)
    res = _default_resolution(rows, "grid_sampler") if resolution is None else _resolution(resolution)
    intervals = list(zip(rows.starts, rows.ends, strict=True))
    if by is None:
        keys = [(None, None)] * len(intervals)
        same = len(set(intervals)) == 1
        stamp = {(None, None): intervals[0] if same else (None, None)}
    else:
        keys, stamp = intervals, {k: k for k in set(intervals)}
    out: list[GeoSlice] = []
    crs_arr = np.array(rows.crs, dtype=object)
    for text in sorted(set(rows.crs)):
        idx = np.flatnonzero(crs_arr == text)
        pieces = _pieces_of(rows, idx)
        union = (pieces[:, 0].min(), pieces[:, 1].min(), pieces[:, 2].max(), pieces[:, 3].max())
        for key in sorted({keys[i] for i in idx}, key=_interval_order):
            sub = np.array([i for i in idx.tolist() if keys[i] == key], dtype=np.int64)
            x0, y1 = _grid_over(union, pieces if len(sub) == len(idx) else _pieces_of(rows, sub), res, size, step)
            keep = _under_footprints(x0, y1, size, res, _footprints_in(rows, sub, text))
            start, end = stamp[key]
            out += _chips(x0[keep], y1[keep], size, res, text, start, end)
    return out


def _interval_order(key: tuple[pd.Timestamp | None, pd.Timestamp | None]) -> tuple:
    """Sort key of intervals: static first, then by start, then by end."""
    start, end = key
    return (start is not None, start or pd.Timestamp(0, tz="UTC"), end or pd.Timestamp(0, tz="UTC"))


def _footprints_in(rows: _Rows, idx: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Distinct footprints of rows ``idx`` in their (common) sampling CRS ``text``: (native extents
    as an (m, 4) bounds array, other footprints as reprojected polygons)."""
    native = np.array([rows.native[i] for i in idx], dtype=bool)
    boxes = np.unique(rows.bounds[idx[native]], axis=0) if native.any() else np.empty((0, 4))
    others = idx[~native]
    if not len(others):
        return boxes, np.empty(0, dtype=object)
    dst = norm_crs(text)
    geoms = rows.footprints[others]
    if dst.is_geographic:  # lon/lat footprints, unwrapped like the row bounds
        geoms = np.array([rejoin_antimeridian(g) for g in geoms], dtype=object)
        if not dst.equals(WGS84):
            geoms = shapely.transform(
                geoms, lambda xy: np.column_stack(transformer(WGS84, dst).transform(xy[:, 0], xy[:, 1]))
            )
    else:
        geoms = _project_geoms(geoms, dst)
    _, first = np.unique(shapely.to_wkb(geoms), return_index=True)
    return boxes, geoms[np.sort(first)]


def _under_footprints(
    x0: np.ndarray,
    y1: np.ndarray,
    size: tuple[int, int],
    res: tuple[float, float],
    footprints: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Mask of chips that overlap some footprint with positive area."""
    (h, w), (rx, ry) = size, res
    chips = np.column_stack([x0, y1 - h * ry, x0 + w * rx, y1])
    keep = np.zeros(len(chips), dtype=bool)
    extents, polys = footprints
    if len(extents):  # axis-aligned extents: a strict overlap on both axes
        tree = shapely.STRtree(shapely.box(*extents.T))
        chip_i, ext_i = tree.query(shapely.box(*chips.T))
        a, b = chips[chip_i], extents[ext_i]
        ox = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
        oy = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
        keep[chip_i[(ox > 1e-9 * rx) & (oy > 1e-9 * ry)]] = True
    if len(polys):
        rest = np.flatnonzero(~keep)
        boxes = shapely.box(*chips[rest].T)
        chip_i, poly_i = shapely.STRtree(polys).query(boxes, predicate="intersects")
        area = shapely.area(shapely.intersection(boxes[chip_i], polys[poly_i]))
        keep[rest[chip_i[area > 1e-9 * w * rx * h * ry]]] = True
    return keep


def _chips(
    x0: np.ndarray,
    y1: np.ndarray,
    size: tuple[int, int],
    res: tuple[float, float],
    crs: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
) -> list[GeoSlice]:
    (h, w), (rx, ry) = size, res
    return [
        GeoSlice._make((x, y - h * ry, x + w * rx, y), crs, res, start, end)
        for x, y in zip(x0.tolist(), y1.tolist(), strict=True)
    ]


# -- temporal pairs (self-supervised positives) ------------------------------------------------------


def _take(rows: _Rows, idx: np.ndarray) -> _Rows:
    """The rows ``idx`` of ``rows`` (every per-row field indexed)."""
    pick = lambda values: tuple(values[i] for i in idx.tolist())  # noqa: E731
    return _Rows(
        ids=pick(rows.ids),
        crs=pick(rows.crs),
        bounds=rows.bounds[idx],
        starts=pick(rows.starts),
        ends=pick(rows.ends),
        footprints=rows.footprints[idx],
        native=pick(rows.native),
        native_crs=pick(rows.native_crs) if rows.native_crs else (),
        native_bounds=rows.native_bounds[idx] if len(rows.native_bounds) else rows.native_bounds,
        scenes=pick(rows.scenes) if rows.scenes else (),
        res=rows.res[idx] if len(rows.res) else rows.res,
    )


def _covers(
    rows: _Rows, row: np.ndarray, x0: np.ndarray, y1: np.ndarray, size: tuple[int, int], res: tuple[float, float]
) -> np.ndarray:
    """Mask of chips (top-left ``x0, y1`` in the sampling CRS of rows ``row``) lying on those rows'
    data: inside the native extent of a natively sampled row, else as :func:`_on_data`."""
    (h, w), (rx, ry) = size, res
    b = rows.bounds[row]
    tol = 1e-9 * np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    inside = (
        (x0 >= b[:, 0] - tol) & (x0 + w * rx <= b[:, 2] + tol) & (y1 - h * ry >= b[:, 1] - tol) & (y1 <= b[:, 3] + tol)
    )
    native = np.fromiter((rows.native[i] for i in row.tolist()), dtype=bool, count=len(row))
    out = native & inside
    other = np.flatnonzero(~native)
    if len(other):
        parts = _Parts(row=row[other], bounds=b[other], share=np.ones(len(other)))
        out[other] = _on_data(rows, parts, np.arange(len(other)), x0[other], y1[other], size, res)
    return out


def _gap_us(min_gap: Any) -> int:
    try:
        gap = pd.Timedelta(min_gap)
    except (TypeError, ValueError):
        gap = pd.NaT
    if gap is pd.NaT or gap <= pd.Timedelta(0):
        raise ArgumentError(f"min_gap={min_gap!r} must be a positive timedelta (e.g. datetime.timedelta(days=30))")
    return int(gap / pd.Timedelta(microseconds=1))


class TemporalPairs(Sequence[tuple[GeoSlice, GeoSlice]]):
    """``length`` (anchor, positive) chip pairs, reproducible from ``seed`` (see
    :func:`temporal_pair_sampler`); :attr:`row_ids` gives the two rows of each pair."""

    def __init__(
        self,
        rows: _Rows,
        *,
        chip_size: tuple[int, int],
        resolution: tuple[float, float],
        length: int,
        gap_us: int,
        seed: int,
    ) -> None:
        self.chip_size, self.resolution, self.length, self.seed = chip_size, resolution, length, seed
        self._rows = rows
        self._pairs = self._draw(gap_us)

    def _partners(self, gap_us: int) -> list[np.ndarray]:
        """For each row, the rows that may give its positive: same sampling CRS, start at least
        ``gap_us`` away, footprints overlapping with positive area."""
        rows, n = self._rows, len(self._rows.ids)
        start = np.array([np.nan if t is None else epoch_us(t) for t in rows.starts], dtype=float)
        a, b = shapely.STRtree(rows.footprints).query(rows.footprints, predicate="intersects")
        crs = np.array(rows.crs, dtype=object)
        with np.errstate(invalid="ignore"):
            ok = (np.abs(start[a] - start[b]) >= gap_us) & (crs[a] == crs[b])
        a, b = a[ok], b[ok]
        ok = shapely.area(shapely.intersection(rows.footprints[a], rows.footprints[b])) > 0
        a, b = a[ok], b[ok]
        order = np.lexsort((b, a))
        a, b = a[order], b[order]
        cuts = np.searchsorted(a, np.arange(n + 1))
        return [b[cuts[i] : cuts[i + 1]] for i in range(n)]

    def _draw(self, gap_us: int) -> tuple[np.ndarray, ...]:
        rows = self._rows
        partners = self._partners(gap_us)
        anchors = np.flatnonzero([len(p) > 0 for p in partners])
        if not len(anchors):
            raise NoDataError(
                "no two acquisitions of the same place are min_gap apart (rows need a time, the same "
                "sampling CRS and overlapping footprints); lower min_gap"
            )
        sub = _take(rows, anchors)
        parts = _parts(sub)
        rng = np.random.default_rng(self.seed)
        out_a: list[np.ndarray] = []
        out_p: list[np.ndarray] = []
        out_x: list[np.ndarray] = []
        out_y: list[np.ndarray] = []
        need, barren = self.length, 0
        while need > 0:
            base = RandomSampler(
                sub,
                chip_size=self.chip_size,
                resolution=self.resolution,
                length=max(2 * need, 256),
                seed=int(rng.integers(2**62)),
                roi=None,
                parts=parts,
            )
            ra, x0, y1 = anchors[base._row], base._x0, base._y1
            # every (chip, candidate partner) pair; keep those whose partner's data covers the chip
            counts = np.array([len(partners[r]) for r in ra.tolist()])
            chip = np.repeat(np.arange(len(ra)), counts)
            cand = np.concatenate([partners[r] for r in ra.tolist()])
            ok = _covers(rows, cand, x0[chip], y1[chip], self.chip_size, self.resolution)
            chip, cand = chip[ok], cand[ok]
            firsts = np.searchsorted(chip, np.arange(len(ra) + 1))
            n_ok = np.diff(firsts)
            has = np.flatnonzero(n_ok > 0)[:need]
            pick = firsts[has] + (rng.random(len(has)) * n_ok[has]).astype(np.int64)
            out_a.append(ra[has])
            out_p.append(cand[pick])
            out_x.append(x0[has])
            out_y.append(y1[has])
            need -= len(has)
            barren = 0 if len(has) else barren + 1
            if barren >= 20:
                raise NoDataError(
                    f"no chip of {self.chip_size} px at {self.resolution} lies on two acquisitions "
                    "min_gap apart; use smaller chips or a smaller min_gap"
                )
        return tuple(np.concatenate(v) for v in (out_a, out_p, out_x, out_y))

    @property
    def row_ids(self) -> list[tuple[str, str]]:
        """(anchor row id, positive row id) of each pair, in pair order."""
        ids = self._rows.ids
        return [(ids[a], ids[p]) for a, p in zip(self._pairs[0].tolist(), self._pairs[1].tolist(), strict=True)]

    def _pair(self, k: int) -> tuple[GeoSlice, GeoSlice]:
        (h, w), (rx, ry) = self.chip_size, self.resolution
        a, p = int(self._pairs[0][k]), int(self._pairs[1][k])
        x0, y1 = float(self._pairs[2][k]), float(self._pairs[3][k])
        bounds, rows = (x0, y1 - h * ry, x0 + w * rx, y1), self._rows
        return (
            GeoSlice._make(bounds, rows.crs[a], self.resolution, rows.starts[a], rows.ends[a]),
            GeoSlice._make(bounds, rows.crs[a], self.resolution, rows.starts[p], rows.ends[p]),
        )

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, i: int) -> tuple[GeoSlice, GeoSlice]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[GeoSlice, GeoSlice]]: ...

    def __getitem__(self, i: int | slice) -> tuple[GeoSlice, GeoSlice] | list[tuple[GeoSlice, GeoSlice]]:
        if isinstance(i, slice):
            return [self._pair(k) for k in range(*i.indices(self.length))]
        k = int(i) + self.length if int(i) < 0 else int(i)
        if not 0 <= k < self.length:
            raise ChipIndexError(f"pair index {i} out of range for {self.length} pairs")
        return self._pair(k)

    def __iter__(self) -> Iterator[tuple[GeoSlice, GeoSlice]]:
        return (self._pair(k) for k in range(self.length))

    def __repr__(self) -> str:
        return f"<TemporalPairs {self.length} pairs of {self.chip_size} px at {self.resolution}, seed={self.seed}>"


def temporal_pair_sampler(
    catalog: Catalog,
    *,
    chip_size: int | tuple[int, int],
    length: int,
    min_gap: Any,
    resolution: float | tuple[float, float] | None = None,
    crs: Any = None,
    seed: int = 0,
) -> TemporalPairs:
    """``length`` (anchor, positive) pairs: the same chip (bounds, CRS, grid) at two acquisitions
    whose ``start_datetime`` are at least ``min_gap`` apart, for self-supervised learning
    (SimCLR-style temporal positives); the same pairs for the same ``seed``.

    The anchor is drawn as by :func:`random_sampler` (row by footprint area, position uniform on
    the row's data, at whole pixels of its grid) among rows that have a partner: a row in the same
    sampling CRS whose footprint overlaps it and whose start is ``min_gap`` or more away (either
    direction). The positive's row is then drawn uniformly among the partners whose data covers
    the whole chip too (anchors no partner covers are redrawn). Each slice carries its own row's
    interval, so ``load_raster`` on it loads that acquisition. Static rows never take part.

    Args:
        chip_size: pixels, ``(rows, cols)`` or one int.
        length: number of pairs.
        min_gap: a positive ``datetime.timedelta`` / ``pandas.Timedelta`` (or a string such as
            ``"30D"``).
        resolution, crs: as in :func:`random_sampler` (default: each row's native CRS and the finest
            native pixel size).
        seed: seed of the ``numpy.random.Generator`` drawing anchors, positions and positives.

    Returns:
        A :class:`TemporalPairs` sequence of ``(anchor, positive)`` GeoSlice tuples.
    """
    if not isinstance(length, int | np.integer) or isinstance(length, bool) or length < 1:
        raise ArgumentError(f"length={length!r} must be a positive int")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise ArgumentError(f"seed={seed!r} must be an int")
    gap = _gap_us(min_gap)
    size = _positive_pixels(chip_size, "chip_size")
    rows = _prepare(catalog, crs)
    dated = np.flatnonzero([t is not None for t in rows.starts])
    if not len(dated):
        raise NoDataError("temporal_pair_sampler: the catalog has no dated rows")
    rows = _take(rows, dated)
    res = _default_resolution(rows, "temporal_pair_sampler") if resolution is None else _resolution(resolution)
    return TemporalPairs(rows, chip_size=size, resolution=res, length=int(length), gap_us=gap, seed=int(seed))


# -- spatial-block folds (leakage-safe cross-validation) ----------------------------------------------


def kmeans(points: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 100) -> np.ndarray:
    """Cluster labels (n,) of ``points`` (n, d) by k-means (Lloyd's iterations from a k-means++
    start, seeded): at return every point is labelled with its nearest cluster mean. NumPy only."""
    n = len(points)
    if not 1 <= k <= n:
        raise ArgumentError(f"n_clusters={k} must be between 1 and the number of items ({n})")
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(n)]]
    d2 = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):  # k-means++: the next centre with probability ∝ squared distance
        nxt = points[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else points[rng.integers(n)]
        centres.append(nxt)
        d2 = np.minimum(d2, ((points - nxt) ** 2).sum(axis=1))
    c = np.array(centres, dtype=float)
    labels = np.full(n, -1)
    for _ in range(max_iter):
        dist = ((points[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = points[labels == j]
            # an emptied cluster takes the point farthest from its own centre
            c[j] = members.mean(axis=0) if len(members) else points[dist[np.arange(n), labels].argmax()]
    return labels


def _items_lonlat(items: Catalog | Iterable[GeoSlice]) -> tuple[str, list[Any], np.ndarray]:
    """(key column, keys, lon/lat footprints) of a catalog's rows (by id) or of chips (by index)."""
    if isinstance(items, Catalog):
        table = items.fetch(schema.ID, schema.GEOMETRY, order_by=[schema.ID])
        return (
            schema.ID,
            table.column(schema.ID).to_pylist(),
            shapely.from_wkb(table.column(schema.GEOMETRY).to_pylist()),
        )
    chips = list(items)
    bad = next((i for i, s in enumerate(chips) if not isinstance(s, GeoSlice)), None)
    if bad is not None:
        raise ArgumentError(f"items[{bad}] is a {type(chips[bad]).__name__}: expected a Catalog or GeoSlices")
    return "chip", list(range(len(chips))), np.array([s.footprint() for s in chips], dtype=object)


def spatial_folds(
    items: Catalog | Iterable[GeoSlice],
    *,
    n_folds: int = 5,
    block_size: float | None = None,
    n_clusters: int | None = None,
    buffer: float = 0.0,
    crs: Any = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Assign catalog rows or chips to cross-validation folds by spatial block, never one by one,
    so train and validation do not share places (leakage-safe CV in one call).

    Each item (a row's footprint, or a chip's grid footprint) is placed by its centroid in ``crs``
    (a projected CRS in metres; default: the UTM zone of the centre of all items' lon/lat bounds;
    for continental extents pass an equal-area CRS such as EPSG:6933), into

    - a square block of ``block_size`` metres (blocks ``floor(x / size), floor(y / size)`` of the
      CRS's own origin), or
    - one of ``n_clusters`` k-means clusters of the centroids (:func:`kmeans`, seeded).

    Whole blocks go to folds: blocks in a seeded random order, each to the fold holding the fewest
    items so far (ties: the lowest fold), so folds are balanced by item count. With ``buffer``
    (metres) > 0, an item whose footprint comes within ``buffer`` of an item of another fold gets
    fold ``-1`` (left out), so any two items kept in different folds are more than ``buffer``
    apart (e.g. ``buffer=block_size``).

    Returns:
        A DataFrame, one row per item: ``id`` (catalog rows, in id order) or ``chip`` (index in
        ``items``), ``block`` (0-based block or cluster label) and ``fold`` (0 … n_folds-1, or -1).
        Save chip folds with ``samples_to_parquet(chips, path, columns={"fold": folds["fold"]})``.
    """
    if (block_size is None) == (n_clusters is None):
        raise ArgumentError("give exactly one of block_size= (metres) or n_clusters=")
    if not isinstance(n_folds, int | np.integer) or isinstance(n_folds, bool) or n_folds < 2:
        raise ArgumentError(f"n_folds={n_folds!r} must be an int ≥ 2")
    if block_size is not None and not (
        isinstance(block_size, int | float) and math.isfinite(block_size) and block_size > 0
    ):
        raise ArgumentError(f"block_size={block_size!r} must be a positive number of metres")
    if not (isinstance(buffer, int | float) and math.isfinite(buffer) and buffer >= 0):
        raise ArgumentError(f"buffer={buffer!r} must be a number of metres ≥ 0")
    key, keys, lonlat = _items_lonlat(items)
    if not keys:
        raise NoDataError("spatial_folds: no items to split")
    if crs is None:
        lb = _unwrapped_lonlat_bounds(lonlat)
        crs = utm_crs(float((lb[:, 0].min() + lb[:, 2].max()) / 2), float((lb[:, 1].min() + lb[:, 3].max()) / 2))
    text = crs_key(crs)
    if _units(text) != "metre":
        raise CRSError(f"crs={crs!r} is in {_units(text)}s: spatial_folds needs a projected CRS in metres")
    geoms = _project_geoms(lonlat, norm_crs(text))
    cents = shapely.get_coordinates(shapely.centroid(geoms))
    if not np.isfinite(cents).all():
        raise CRSError(f"some items do not project to {text}: pass another crs=")
    if block_size is not None:
        cells = np.floor(cents / float(block_size)).astype(np.int64)
        _, block = np.unique(cells, axis=0, return_inverse=True)
        block = block.ravel()
    else:
        block = kmeans(cents, int(n_clusters), seed=seed)  # type: ignore[arg-type]
    n_blocks = int(block.max()) + 1
    if n_blocks < n_folds:
        raise ArgumentError(f"{n_blocks} blocks cannot fill n_folds={n_folds}: use smaller blocks or more clusters")
    sizes = np.bincount(block, minlength=n_blocks)
    fold_of = np.empty(n_blocks, dtype=np.int64)
    load = np.zeros(n_folds, dtype=np.int64)
    for b in np.random.default_rng(seed).permutation(n_blocks).tolist():
        f = int(load.argmin())
        fold_of[b] = f
        load[f] += sizes[b]
    fold = fold_of[block]
    if buffer > 0:
        fold = _left_out_near_other_folds(geoms, fold, n_folds, float(buffer))
    out = pd.DataFrame({key: keys, "block": block.astype(np.int64), "fold": fold})
    out.attrs["crs"] = text
    return out


def _left_out_near_other_folds(geoms: np.ndarray, fold: np.ndarray, n_folds: int, buffer: float) -> np.ndarray:
    """``fold`` with -1 for each item within ``buffer`` (CRS units) of an item of another fold.

    Items are tested against the connected pieces of each fold's union, not against each other:
    the distance to a piece is the least distance to the items merged into it, and overlapping
    chips (a grid with a stride below the chip size) merge into few pieces, where item pairs grow
    quadratically (3,000 overlapping chips: 0.1 s instead of 4.3 s)."""
    pieces, owner = [], []
    for g in range(n_folds):
        members = fold == g
        if members.any():
            merged = shapely.get_parts(shapely.union_all(geoms[members]))
            pieces.append(merged)
            owner.append(np.full(len(merged), g))
    i, j = shapely.STRtree(np.concatenate(pieces)).query(geoms, predicate="dwithin", distance=buffer)
    out = fold.copy()
    out[i[fold[i] != np.concatenate(owner)[j]]] = -1
    return out


# -- sharding -----------------------------------------------------------------------------------------


def shard(items: Iterable[T], worker_id: int, num_workers: int) -> Iterator[T]:
    """Items ``worker_id, worker_id + num_workers, …``: ``num_workers`` shards that together hold
    every item exactly once (round-robin). A sequence is indexed directly (others are not built)."""
    if not (isinstance(num_workers, int) and num_workers >= 1):
        raise ArgumentError(f"num_workers={num_workers!r} must be a positive int")
    if not (isinstance(worker_id, int) and 0 <= worker_id < num_workers):
        raise ArgumentError(f"worker_id={worker_id!r} must be in 0..{num_workers - 1}")
    if isinstance(items, Sequence):
        return (items[i] for i in range(worker_id, len(items), num_workers))
    return itertools.islice(items, worker_id, None, num_workers)


# -- samples as GeoParquet ---------------------------------------------------------------------------

SAMPLE_COLUMNS: tuple[str, ...] = (
    "chip",
    schema.GEOMETRY,
    schema.BBOX,
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "crs",
    "res_x",
    "res_y",
    schema.START,
    schema.END,
)
"""Columns of a samples file, in order (extra columns follow)."""


def samples_to_parquet(
    slices: Iterable[GeoSlice], path: str | os.PathLike[str], *, columns: Mapping[str, Sequence[Any]] | None = None
) -> Path:
    """Write chips as a GeoParquet 1.1 file, one row per chip, so splits can be audited in SQL.

    Columns: ``chip`` (index in ``slices``), ``geometry`` (the chip's pixel-grid footprint in
    EPSG:4326, WKB; see :meth:`GeoSlice.footprint`) with its ``bbox`` covering, ``xmin … ymax``
    (``GeoSlice.bounds`` in the slice CRS), ``crs``, ``res_x``, ``res_y``, ``start_datetime``,
    ``end_datetime`` (UTC µs, null = static), then ``columns`` (name → one value per chip, e.g.
    ``{"split": [...], "row_id": sampler.row_ids}``). :func:`samples_from_parquet` reads the slices
    back exactly. The file appears atomically (written to a temporary name, then renamed).
    """
    chips = list(slices)
    if not chips:
        raise ArgumentError("slices is empty: nothing to write")
    bad = next((i for i, s in enumerate(chips) if not isinstance(s, GeoSlice)), None)
    if bad is not None:
        raise ArgumentError(f"slices[{bad}] is a {type(chips[bad]).__name__}, not a GeoSlice")
    extra = dict(columns or {})
    for name, values in extra.items():
        if name in SAMPLE_COLUMNS:
            raise ArgumentError(f"columns: {name!r} is a reserved samples column")
        if len(values) != len(chips):
            raise ArgumentError(f"columns[{name!r}] has {len(values)} values for {len(chips)} chips")
    geoms = np.array([s.footprint() for s in chips], dtype=object)
    gb = shapely.bounds(geoms)
    bounds = np.array([s.bounds for s in chips])
    box = pa.StructArray.from_arrays([pa.array(gb[:, k]) for k in range(4)], names=list(schema.BBOX_KEYS))
    data: dict[str, pa.Array] = {
        "chip": pa.array(np.arange(len(chips), dtype=np.int64)),
        schema.GEOMETRY: pa.array(shapely.to_wkb(geoms), pa.binary()),
        schema.BBOX: box,
        **{k: pa.array(bounds[:, i]) for i, k in enumerate(schema.BBOX_KEYS)},
        "crs": pa.array([s.crs for s in chips], pa.string()),
        "res_x": pa.array([s.resolution[0] for s in chips], pa.float64()),
        "res_y": pa.array([s.resolution[1] for s in chips], pa.float64()),
        schema.START: pa.array([s.start for s in chips], schema.TIMESTAMP),
        schema.END: pa.array([s.end for s in chips], schema.TIMESTAMP),
    }
    table = pa.table({**data, **{k: pa.array(list(v)) for k, v in extra.items()}})
    total = (float(gb[:, 0].min()), float(gb[:, 1].min()), float(gb[:, 2].max()), float(gb[:, 3].max()))
    geo = schema.geo_metadata({g.geom_type for g in geoms}, total)
    table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with store.replacing(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return out


def samples_from_parquet(path: str | os.PathLike[str]) -> list[GeoSlice]:
    """The chips of a :func:`samples_to_parquet` file, in ``chip`` order, equal to those written."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SchemaError(f"{os.fspath(path)!r} is not a readable Parquet file: {exc}") from None
    missing = [
        c
        for c in ("chip", "xmin", "ymin", "xmax", "ymax", "crs", "res_x", "res_y", schema.START, schema.END)
        if c not in table.column_names
    ]
    if missing:
        raise SchemaError(f"{os.fspath(path)!r} is not a samples file: missing column(s) {missing}")
    table = table.sort_by("chip")
    cols = {c: table.column(c).to_pylist() for c in ("xmin", "ymin", "xmax", "ymax", "crs", "res_x", "res_y")}
    starts = [_timestamp(v) for v in table.column(schema.START).to_pylist()]
    ends = [_timestamp(v) for v in table.column(schema.END).to_pylist()]
    out = []
    for i in range(table.num_rows):
        b = validate_bounds([cols[k][i] for k in ("xmin", "ymin", "xmax", "ymax")], argument="bounds")
        out.append(GeoSlice._make(b, cols["crs"][i], (cols["res_x"][i], cols["res_y"][i]), starts[i], ends[i]))
    return out
