"""The spatial vocabulary of geoduck: the canonical CRS value (:func:`norm_crs`, :func:`crs_key`), the one
cached transformer factory (:func:`transformer`), the antimeridian/pole rule (:func:`unwrap_ring`),
footprints and query AOIs in EPSG:4326 (:func:`footprint_wgs84`, :func:`aoi_to_wgs84`), Hilbert keys.

Footprints are built by densifying native bounds (``densify`` points per edge), reprojecting them to
EPSG:4326 lon/lat with a cached transformer, unwrapping longitudes so the ring is continuous, closing
rings that enclose a pole through the pole, and splitting the result at ±180° into a MultiPolygon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING

import numpy as np
import shapely
import shapely.affinity
import shapely.errors
import shapely.geometry
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from .errors import ArgumentError, CRSError, FootprintError

if TYPE_CHECKING:
    import pyproj
    import rasterio.crs

Bounds = tuple[float, float, float, float]
"""(xmin, ymin, xmax, ymax) in the units of some CRS."""

DENSIFY_POINTS = 21
"""Points per edge when densifying bounds before reprojection."""

# pyproj is imported on first use: a lon/lat query (``geoduck query --bbox``) never needs it.


@cache
def wgs84() -> pyproj.CRS:
    """EPSG:4326 (lon/lat in degrees), the catalog's CRS, as a pyproj CRS."""
    import pyproj

    return pyproj.CRS.from_epsg(4326)


def __getattr__(name: str) -> object:
    if name == "WGS84":  # geo.WGS84: the value of wgs84(), created on first use
        return wgs84()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _pyproj_errors() -> tuple[type[Exception], ...]:
    """What a pyproj CRS parse raises for an input that is not a CRS."""
    from pyproj.exceptions import CRSError

    return (CRSError, TypeError, ValueError)


@lru_cache(maxsize=256)
def _crs_from_string(text: str) -> pyproj.CRS:
    import pyproj

    return pyproj.CRS.from_user_input(text)


def norm_crs(crs: object, *, argument: str = "crs") -> pyproj.CRS:
    """Normalise any CRS-like input (``"EPSG:32630"``, WKT, int, pyproj/rasterio CRS) to pyproj.

    Raises :class:`CRSError` naming ``argument`` when the input is not a CRS.
    """
    import pyproj

    if crs is None:
        raise CRSError(f"{argument} is required (e.g. 'EPSG:32630'), got None")
    if isinstance(crs, pyproj.CRS):
        return crs
    try:
        if isinstance(crs, str):
            return _crs_from_string(crs)
        if hasattr(crs, "to_wkt"):  # rasterio.crs.CRS and friends
            return _crs_from_string(crs.to_wkt())
        return pyproj.CRS.from_user_input(crs)
    except _pyproj_errors() as exc:
        raise CRSError(f"{argument}={crs!r} is not a valid CRS: {exc}") from None


def crs_to_string(crs: pyproj.CRS) -> str:
    """Authority code (``"EPSG:32630"``) where one exists exactly, else WKT2."""
    auth = crs.to_authority(min_confidence=100)
    if auth is not None:
        return f"{auth[0]}:{auth[1]}"
    return crs.to_wkt()


@lru_cache(maxsize=256)
def _crs_text(text: str) -> str:
    return crs_to_string(_crs_from_string(text))


def crs_key(crs: object, *, argument: str = "crs") -> str:
    """The canonical string of a CRS-like value (authority code, else WKT2): the catalog's ``crs``
    column and ``GeoSlice.crs``. Raises :class:`CRSError` naming ``argument``."""
    if isinstance(crs, str):
        try:
            return _crs_text(crs)
        except _pyproj_errors():
            pass  # let norm_crs raise the error naming the argument
    return crs_to_string(norm_crs(crs, argument=argument))


@lru_cache(maxsize=256)
def _rasterio_crs(text: str) -> rasterio.crs.CRS:
    import rasterio.crs  # loaders only: `import geoduck` and the query CLI stay free of rasterio

    return rasterio.crs.CRS.from_user_input(text)


def rasterio_crs(crs: object, *, argument: str = "crs") -> rasterio.crs.CRS:
    """The rasterio CRS of a CRS-like value, for rasterio/GDAL calls and GeoTensors (cached by text:
    the catalog's ``crs`` column, ``GeoSlice.crs``, WKT). Raises :class:`CRSError` naming
    ``argument``."""
    text = crs if isinstance(crs, str) else norm_crs(crs, argument=argument).to_wkt()
    import rasterio.errors

    try:
        return _rasterio_crs(text)
    except rasterio.errors.CRSError as exc:
        raise CRSError(f"{argument}={crs!r} is not a valid CRS: {exc}") from None


_TRANSFORMERS: dict[tuple[str, str], pyproj.Transformer] = {}
_MAX_TRANSFORMERS = 1024


def _cache_key(crs: pyproj.CRS) -> str:
    return crs.srs or crs.to_wkt()


def transformer(src: object, dst: object) -> pyproj.Transformer:
    """The cached always-xy (x/lon first) transformer from ``src`` to ``dst``, both CRS-like
    (normalised with :func:`norm_crs`). The one transformer factory of geoduck."""
    s, d = norm_crs(src, argument="src"), norm_crs(dst, argument="dst")
    key = (_cache_key(s), _cache_key(d))
    found = _TRANSFORMERS.get(key)
    if found is None:
        if len(_TRANSFORMERS) >= _MAX_TRANSFORMERS:
            _TRANSFORMERS.clear()
        import pyproj

        found = _TRANSFORMERS[key] = pyproj.Transformer.from_crs(s, d, always_xy=True)
    return found


@lru_cache(maxsize=16)
def _edge_steps(n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:-1]
    t.flags.writeable = False
    return t


def densified_ring(bounds: Bounds, n: int = DENSIFY_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The closed boundary of ``bounds`` with ``n`` points per edge (counter-clockwise)."""
    xmin, ymin, xmax, ymax = bounds
    t = _edge_steps(n)
    m = len(t)
    dx, dy = (xmax - xmin) * t, (ymax - ymin) * t
    xs, ys = np.empty(4 * m + 1), np.empty(4 * m + 1)
    xs[:m], xs[m : 2 * m], xs[2 * m : 3 * m], xs[3 * m :] = xmin + dx, xmax, xmax - dx, xmin
    ys[:m], ys[m : 2 * m], ys[2 * m : 3 * m], ys[3 * m : 4 * m], ys[4 * m] = ymin, ymin + dy, ymax, ymax - dy, ymin
    return xs, ys


def densified_polygon(corners: Sequence[tuple[float, float]], n: int = DENSIFY_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The closed ring through ``corners`` (in order) with ``n`` points per edge."""
    t = _edge_steps(n)
    pts = np.asarray(corners, dtype=float)
    nxt = np.roll(pts, -1, axis=0)
    xs = np.concatenate([p[0] + t * (q[0] - p[0]) for p, q in zip(pts, nxt, strict=True)] + [pts[:1, 0]])
    ys = np.concatenate([p[1] + t * (q[1] - p[1]) for p, q in zip(pts, nxt, strict=True)] + [pts[:1, 1]])
    return xs, ys


def unwrap_longitudes(lon: np.ndarray) -> np.ndarray:
    """Longitudes (degrees) with ±360° jumps between neighbours removed: whole turns are added, so
    ``… 359.55, 0.05, 0.55 …`` reads ``… 359.55, 360.05, 360.55 …`` and the first value, and every
    value before a jump, is kept exactly. The one unwrapping routine of geoduck (footprint rings,
    CF grid coordinates)."""
    lon = np.asarray(lon, dtype=float)
    if lon.size < 2:
        return lon
    d = np.diff(lon)
    turns = np.where(np.abs(d) > 180.0, -np.round(d / 360.0), 0.0)
    if not turns.any():
        return lon
    return lon + 360.0 * np.concatenate([[0.0], np.cumsum(turns)])  # whole turns: a closed ring stays closed


def wrap_longitudes(lon: np.ndarray, west: float | np.ndarray) -> np.ndarray:
    """Longitudes (degrees) moved by whole turns into ``[west, west + 360)`` (``west`` broadcasts,
    e.g. one value per row), e.g. a 0…360 grid's columns seen from a window starting at -10°."""
    return west + np.mod(np.asarray(lon, dtype=float) - west, 360.0)


def unwrap_ring(lon: np.ndarray, lat: np.ndarray, *, pole_hint: float | None = None) -> tuple[np.ndarray, float | None]:
    """The antimeridian/pole rule of geoduck, for a closed lon/lat ring (degrees): longitudes
    unwrapped (±360° jumps removed, so a ring across ±180° reads e.g. 170 … 190), and the pole
    the ring encloses (+90/-90) or None. A ring encloses a pole when its unwrapped longitudes
    wind once round the globe, or when ``pole_hint`` (a pole known to lie inside) says so; the
    pole of a winding ring without a hint is the sign of its mean latitude."""
    ulon = unwrap_longitudes(lon)
    if pole_hint is None and abs(ulon[-1] - ulon[0]) > 180.0:
        pole_hint = math.copysign(90.0, float(np.mean(lat)))
    return ulon, pole_hint


def wrap_shift(xmin: float) -> float:
    """The multiple of 360° to subtract from unwrapped longitudes so that ``xmin`` falls in
    [-180, 180)."""
    return 360.0 * math.floor((xmin + 180.0) / 360.0)


def _is_split(geom: BaseGeometry) -> bool:
    """Whether a lon/lat footprint is one split at ±180° (several parts reaching both edges)."""
    xmin, _, xmax, _ = geom.bounds
    return len(getattr(geom, "geoms", ())) >= 2 and xmin <= -179.999 and xmax >= 179.999


def _rejoined_parts(geom: BaseGeometry) -> list[BaseGeometry]:
    parts = list(getattr(geom, "geoms", [geom]))
    if not _is_split(geom):
        return parts
    return [shapely.affinity.translate(p, xoff=360.0) if p.bounds[2] <= 0 else p for p in parts]


def rejoin_antimeridian(geom: BaseGeometry) -> BaseGeometry:
    """The inverse of the split at ±180°: a footprint split there, with its western parts moved
    east by 360° (longitudes then run e.g. 170 … 190); other geometries unchanged."""
    return shapely.union_all(_rejoined_parts(geom)) if _is_split(geom) else geom


def unwrapped_bounds(geom: BaseGeometry) -> Bounds:
    """Lon/lat bounds of :func:`rejoin_antimeridian` ``(geom)`` (``xmax > 180`` across ±180°)."""
    b = np.array([p.bounds for p in _rejoined_parts(geom)])
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def geojson_bbox(geom: BaseGeometry) -> Bounds:
    """GeoJSON/STAC bbox of a lon/lat footprint (degrees): ``xmin > xmax`` when it crosses ±180°
    (a footprint split there is rejoined first)."""
    xmin, ymin, xmax, ymax = unwrapped_bounds(geom)
    return _geojson_lon_span(xmin, xmax, ymin, ymax)


def _geojson_lon_span(west: float, east: float, ymin: float, ymax: float) -> Bounds:
    if east - west >= 360.0:
        return -180.0, ymin, 180.0, ymax
    shift = wrap_shift(west)
    west, east = west - shift, east - shift
    return west, ymin, (east - 360.0 if east > 180.0 else east), ymax


def geojson_bbox_union(boxes: Sequence[Bounds]) -> Bounds:
    """The smallest GeoJSON/STAC bbox (degrees) covering lon/lat ``boxes`` given in the same
    convention (``xmin > xmax`` across ±180°): the longitude arcs are merged on the circle and the
    largest gap left out, so boxes on both sides of ±180° give ``xmin > xmax``, not the whole globe."""
    if not boxes:
        raise ArgumentError("no bounding boxes to combine")
    arcs = [(w - wrap_shift(w), (e if e >= w else e + 360.0) - wrap_shift(w)) for w, _, e, _ in boxes]
    ymin, ymax = min(b[1] for b in boxes), max(b[3] for b in boxes)
    # merge the arcs with their copies one turn west and east: every gap whose east side starts
    # in [-180, 180) then lies between two complete merged arcs
    merged: list[list[float]] = []
    for w, e in sorted((w + k, e + k) for w, e in arcs for k in (-360.0, 0.0, 360.0)):
        if merged and w <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([w, e])
    best: tuple[float, float, float] | None = None  # (gap, west after the gap, east before it)
    for before, after in zip(merged, merged[1:], strict=False):
        if -180.0 <= after[0] < 180.0 and (best is None or after[0] - before[1] > best[0]):
            best = (after[0] - before[1], after[0], before[1])
    if best is None:  # no gap: the arcs cover the globe
        return -180.0, ymin, 180.0, ymax
    _, west, east_before = best
    xmin, _, xmax, _ = _geojson_lon_span(west, east_before + 360.0, ymin, ymax)
    # the ends are some boxes' own ends: take those values, not ones shifted by 360° and back
    xmin = min((b[0] for b in boxes), key=lambda v: abs(v - xmin))
    xmax = min((b[2] for b in boxes), key=lambda v: abs(v - xmax))
    return xmin, ymin, xmax, ymax


def _split_antimeridian(poly: Polygon) -> Polygon | MultiPolygon:
    """Cut a polygon with continuous (possibly out-of-range) longitudes into [-180, 180] pieces."""
    xmin, _, xmax, _ = poly.bounds
    if xmin >= -180.0 and xmax <= 180.0:
        return poly
    pieces: list[BaseGeometry] = []
    for k in range(math.floor((xmin + 180.0) / 360.0), math.floor((xmax + 180.0) / 360.0) + 1):
        window = box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0)
        piece = poly.intersection(window)
        if not piece.is_empty:
            pieces.append(shapely.affinity.translate(piece, xoff=-360.0 * k))
    merged = shapely.union_all(pieces)
    return _polygonal(merged)


def _polygonal(geom: BaseGeometry) -> Polygon | MultiPolygon:
    """Keep only the polygonal parts of ``geom`` (intersections may add slivers of lines)."""
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    flat: list[Polygon] = []
    for p in polys:
        flat.extend(p.geoms if isinstance(p, MultiPolygon) else [p])
    return flat[0] if len(flat) == 1 else MultiPolygon(flat)


def ring_to_wgs84(lon: np.ndarray, lat: np.ndarray, *, pole_hint: float | None = None) -> Polygon | MultiPolygon:
    """Build an antimeridian-safe lon/lat polygon from a closed ring already in degrees.

    A ring whose unwrapped longitudes wind once around the globe encloses a pole; it is closed
    through that pole (``pole_hint`` = +90 or -90 when known, else the sign of the mean latitude).
    """
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise CRSError(
            "footprint reprojection to EPSG:4326 gave non-finite coordinates "
            "(the bounds lie outside the CRS's area of use)"
        )
    ulon, pole = unwrap_ring(lon, lat, pole_hint=pole_hint)
    if pole is not None and abs(ulon[-1] - ulon[0]) > 180.0:  # winds round the pole: close through it
        ulon = np.concatenate([ulon, [ulon[-1], ulon[0], ulon[0]]])
        lat = np.concatenate([lat, [pole, pole, lat[0]]])
    lat = np.clip(lat, -90.0, 90.0)
    poly = shapely.polygons(np.column_stack([ulon, lat]))
    if not poly.is_valid:
        poly = _polygonal(shapely.make_valid(poly))
    if poly.is_empty or poly.area == 0:  # collapsed (sub-nanodegree) ring: its widened bbox
        eps = 1e-9
        poly = box(ulon.min() - eps, max(lat.min() - eps, -90.0), ulon.max() + eps, min(lat.max() + eps, 90.0))
    return _lonlat_polygon(poly)


class Footprinter:
    """Footprints in EPSG:4326 of bounds in one CRS (see :func:`footprint_wgs84`).

    What depends only on the CRS (the transformer, where the poles project) is worked out once;
    get one with :func:`footprinter`, which caches them by CRS.
    """

    __slots__ = ("_geographic", "_poles", "_to_wgs84")

    def __init__(self, crs: pyproj.CRS) -> None:
        self._geographic = bool(crs.is_geographic)
        is_wgs84 = self._geographic and crs.equals(wgs84(), ignore_axis_order=True)
        self._to_wgs84 = None if is_wgs84 else transformer(crs, wgs84())
        self._poles = () if self._geographic else _pole_positions(crs)

    def __call__(self, bounds: Bounds, *, densify: int = DENSIFY_POINTS) -> Polygon | MultiPolygon:
        xs, ys = densified_ring(bounds, densify)
        pole = None if self._geographic else self._pole_inside(bounds)
        return self._ring(xs, ys, pole)

    def quad(self, corners: Sequence[tuple[float, float]], *, densify: int = DENSIFY_POINTS) -> Polygon | MultiPolygon:
        """Footprint of a quadrilateral (e.g. a rotated grid's four corners, in ring order, native
        CRS units): each edge densified with ``densify`` points, then as :meth:`__call__`."""
        xs, ys = densified_polygon(corners, densify)
        pole = None
        if not self._geographic:
            ring = Polygon(list(corners))
            pole = next((p for p, x, y in self._poles if ring.covers(shapely.Point(x, y))), None)
        return self._ring(xs, ys, pole)

    def _ring(self, xs: np.ndarray, ys: np.ndarray, pole: float | None) -> Polygon | MultiPolygon:
        """The native ring ``xs, ys`` transformed to lon/lat, then :func:`ring_to_wgs84`."""
        if self._to_wgs84 is None:
            lon, lat = xs, ys
        else:
            lon, lat = self._to_wgs84.transform(xs, ys, errcheck=False)
            lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        return ring_to_wgs84(lon, lat, pole_hint=pole)

    def _pole_inside(self, bounds: Bounds) -> float | None:
        """+90/-90 if that pole projects inside ``bounds``, else None."""
        xmin, ymin, xmax, ymax = bounds
        for pole, x, y in self._poles:
            if xmin <= x <= xmax and ymin <= y <= ymax:
                return pole
        return None


def _pole_positions(crs: pyproj.CRS) -> tuple[tuple[float, float, float], ...]:
    """(pole latitude, x, y) of the poles (north first) that project to finite points of ``crs``."""
    to_native = transformer(wgs84(), crs)
    out = []
    for pole in (90.0, -90.0):
        with np.errstate(all="ignore"):
            x, y = to_native.transform(0.0, pole, errcheck=False)
        if math.isfinite(x) and math.isfinite(y):
            out.append((pole, x, y))
    return tuple(out)


@lru_cache(maxsize=256)
def _footprinter(text: str) -> Footprinter:
    return Footprinter(norm_crs(text))


def footprinter(crs: object) -> Footprinter:
    """The cached :class:`Footprinter` of a CRS-like value (a string, e.g. a file's WKT or the
    catalog's ``crs``, is the cache key as it is: no parsing on a hit)."""
    return _footprinter(crs if isinstance(crs, str) else norm_crs(crs).to_wkt())


def pole_inside(bounds: Bounds, crs: pyproj.CRS) -> float | None:
    """+90/-90 if that pole projects inside native ``bounds`` of a projected ``crs``, else None
    (always None for a geographic ``crs``)."""
    return None if crs.is_geographic else footprinter(crs)._pole_inside(bounds)


def footprint_wgs84(bounds: Bounds, crs: pyproj.CRS, *, densify: int = DENSIFY_POINTS) -> Polygon | MultiPolygon:
    """Footprint of native ``bounds`` (in ``crs`` units) as a lon/lat (Multi)Polygon.

    Edges are densified with ``densify`` points before reprojection; the result is split at the
    antimeridian and closed through a pole the bounds contain.
    """
    return footprinter(crs)(bounds, densify=densify)


def _lonlat_polygon(poly: Polygon) -> Polygon | MultiPolygon:
    """A lon/lat polygon with straight (planar) edges, split at ±180°; longitudes may exceed ±180."""
    shift = wrap_shift(poly.bounds[0])
    if shift:
        poly = shapely.affinity.translate(poly, xoff=-shift)
    return shapely.orient_polygons(_split_antimeridian(poly))


def _ring_to_lonlat(ring: shapely.LinearRing, to_wgs: pyproj.Transformer, seg: float) -> tuple[np.ndarray, np.ndarray]:
    """Densify ``ring`` (segments of at most ``seg`` CRS units) and reproject it to lon/lat."""
    coords = shapely.get_coordinates(shapely.segmentize(ring, seg))
    lon, lat = to_wgs.transform(coords[:, 0], coords[:, 1], errcheck=False)
    return np.asarray(lon, float), np.asarray(lat, float)


def geometry_to_wgs84(
    geom: BaseGeometry, crs: pyproj.CRS | None, *, densify: int = DENSIFY_POINTS
) -> Polygon | MultiPolygon:
    """Reproject a polygonal AOI in ``crs`` (None: lon/lat) to lon/lat: every ring densified,
    antimeridian-safe.

    A lon/lat AOI is taken as drawn: its edges are straight in lon/lat (as in shapely/geopandas),
    never re-routed the short way round; to cross ±180° use longitudes beyond 180 (170 … 190).
    """
    if geom.is_empty:
        raise ArgumentError("geometry is empty")
    polys = polygon_parts(geom, eps=1e-9 if crs is None or crs.is_geographic else 1e-6)
    out: list[BaseGeometry] = []
    lonlat = crs is None or crs.equals(wgs84(), ignore_axis_order=True)
    to_wgs = None if lonlat else transformer(crs, wgs84())
    for p in polys:
        if to_wgs is None:  # lon/lat edges are already the catalog's (planar) edges
            out.append(_lonlat_polygon(p))
            continue
        seg = max(p.length / (4 * (densify - 1)), 1e-12)
        shell = ring_to_wgs84(*_ring_to_lonlat(p.exterior, to_wgs, seg))
        for hole in p.interiors:
            shell = shell.difference(ring_to_wgs84(*_ring_to_lonlat(hole, to_wgs, seg)))
        out.append(shell)
    if len(out) == 1 and isinstance(out[0], Polygon) and out[0].is_valid:  # its own union
        return out[0]
    return _polygonal(shapely.union_all(out))


def as_geometry(geometry: object, *, argument: str = "geometry") -> BaseGeometry:
    """A shapely geometry from shapely, WKT or a GeoJSON-like mapping (``__geo_interface__``)."""
    if isinstance(geometry, BaseGeometry):
        return geometry
    if isinstance(geometry, str):
        try:
            return shapely.from_wkt(geometry)
        except shapely.errors.ShapelyError as exc:
            raise ArgumentError(f"{argument} is not valid WKT: {exc}") from None
    if isinstance(geometry, Mapping) or hasattr(geometry, "__geo_interface__"):
        try:
            return shapely.geometry.shape(geometry)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise ArgumentError(f"{argument} is not a GeoJSON-like geometry: {exc}") from None
    raise ArgumentError(f"{argument} must be a shapely geometry, WKT or GeoJSON, got {type(geometry).__name__}")


def aoi_to_wgs84(bbox: object = None, geometry: object = None, crs: object = None) -> Polygon | MultiPolygon:
    """The AOI of a query as a lon/lat EPSG:4326 (Multi)Polygon (densified, antimeridian-safe).

    ``bbox`` is (xmin, ymin, xmax, ymax) and ``geometry`` a shapely geometry / WKT / GeoJSON, in
    ``crs`` units. Without ``crs`` the AOI must be lon/lat; a bbox whose numbers cannot be degrees
    is an error. A lon/lat bbox with ``xmin > xmax`` crosses the antimeridian.

    A bbox given as a tuple with a string (or no) ``crs`` — a slice grid: ``GeoSlice.grid_bounds``
    and ``GeoSlice.crs`` — is cached (:data:`AOI_CACHE_SIZE` grids): the loaders' row index and
    :meth:`Catalog.query` then share one AOI per grid.
    """
    if geometry is None and isinstance(bbox, tuple) and (crs is None or isinstance(crs, str)):
        try:
            return _cached_bbox_aoi(bbox, crs)
        except TypeError:  # unhashable values: checked (and refused) below
            pass
    return _aoi_to_wgs84(bbox, geometry, crs)


AOI_CACHE_SIZE = 4096
"""Slice grids (bbox + CRS text) whose lon/lat AOI :func:`aoi_to_wgs84` keeps."""


@lru_cache(maxsize=AOI_CACHE_SIZE)
def _cached_bbox_aoi(bbox: tuple, crs: str | None) -> Polygon | MultiPolygon:
    return _aoi_to_wgs84(bbox, None, crs)


def clear_aoi_cache() -> None:
    """Forget the cached AOIs of slice grids (:func:`aoi_to_wgs84`) and their probes (:func:`aoi_probe`)."""
    _cached_bbox_aoi.cache_clear()
    aoi_probe.cache_clear()


def _aoi_to_wgs84(bbox: object, geometry: object, crs: object) -> Polygon | MultiPolygon:
    if (bbox is None) == (geometry is None):
        raise ArgumentError("give exactly one of bbox= or geometry=")
    src = None if crs is None else norm_crs(crs)  # None: lon/lat (no pyproj needed)
    geographic = src is None or bool(src.is_geographic)
    if bbox is not None:
        b = validate_bounds(bbox)  # type: ignore[arg-type]
        if geographic:
            check_lonlat_bounds(b)
            if b[0] > b[2]:  # crosses the antimeridian (GeoJSON/STAC convention)
                b = (b[0], b[1], b[2] + 360.0, b[3])
        elif b[0] > b[2]:
            raise ArgumentError(f"bbox={tuple(b)}: xmin > xmax")
        eps = 1e-9 if geographic else 1e-6  # a point/line bbox becomes a sliver polygon
        dx, dy = (eps if b[0] == b[2] else 0.0), (eps if b[1] == b[3] else 0.0)
        geom: BaseGeometry = shapely.box(b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy)
    else:
        geom = as_geometry(geometry)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        if geographic and not geom.is_empty:
            check_lonlat_bounds(geom.bounds, argument="geometry bounds")
        if geom.area == 0 and not geom.is_empty:
            geom = geom.buffer(1e-9 if geographic else 1e-6)
    return geometry_to_wgs84(geom, src)


PROBE_MAX_DEGREES = 0.5
"""Largest lon/lat extent of a grid that :func:`aoi_probe` answers for (chips, not regions)."""

PROBE_MARGIN = 0.25
"""How far :func:`aoi_probe`'s box reaches beyond its sample points, as a fraction of its extent."""


@lru_cache(maxsize=AOI_CACHE_SIZE)
def aoi_probe(bounds: Bounds, crs: str) -> tuple[float, float, Bounds] | None:
    """Two certain facts about ``aoi_to_wgs84(bbox=bounds, crs=crs)`` of a small grid (a chip) in a
    projected CRS, without building it: a lon/lat point inside it (the grid's centre) and a lon/lat
    box containing it (the box of the corners and centre, grown on each side by
    :data:`PROBE_MARGIN` of its larger side: edges of a chip this small are straight to far
    better than that in lon/lat; ``tests/test_geo.py`` checks it on random grids in many CRSs).
    A footprint containing the point intersects the AOI; one whose bbox misses the box does not.
    None where either is not certain at a glance: a geographic ``crs`` (its AOI costs no
    reprojection), a pole inside, a non-finite point, an extent over :data:`PROBE_MAX_DEGREES`,
    a box reaching ±180° or ±80° latitude."""
    fp = footprinter(crs)
    if fp._to_wgs84 is None or fp._geographic or fp._pole_inside(bounds) is not None:
        return None
    x0, y0, x1, y1 = bounds
    to_wgs84 = fp._to_wgs84.transform  # scalar calls: 5 of them cost less than one array call
    cx, cy = to_wgs84((x0 + x1) / 2, (y0 + y1) / 2, errcheck=False)
    lons, lats = [cx], [cy]
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        lon, lat = to_wgs84(x, y, errcheck=False)
        lons.append(lon)
        lats.append(lat)
    if not all(map(math.isfinite, lons + lats)):
        return None
    lo0, lo1, la0, la1 = min(lons), max(lons), min(lats), max(lats)
    m = PROBE_MARGIN * max(lo1 - lo0, la1 - la0)
    box_ = (lo0 - m, la0 - m, lo1 + m, la1 + m)
    if (
        max(lo1 - lo0, la1 - la0) > PROBE_MAX_DEGREES
        or box_[0] < -180.0
        or box_[2] > 180.0
        or box_[1] < -80.0
        or box_[3] > 80.0
    ):
        return None
    return float(cx), float(cy), box_


def polygon_parts(geom: BaseGeometry, *, eps: float) -> list[Polygon]:
    """The polygons whose union is the AOI ``geom``: polygons as they are, points and lines widened
    by ``eps`` (CRS units), collections (GeometryCollection, Multi*) part by part, empty parts
    dropped. A collection is the union of its parts, never their hull."""
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if hasattr(geom, "geoms"):  # MultiPolygon, MultiPoint, MultiLineString, GeometryCollection
        return [p for part in geom.geoms for p in polygon_parts(part, eps=eps)]
    widened = geom.buffer(eps)  # Point, LineString, LinearRing
    return polygon_parts(widened, eps=eps) if not isinstance(widened, Polygon) else [widened]


def check_grid(transform: Sequence[float], width: int, height: int) -> None:
    """Raise :class:`FootprintError` when a geotransform ``(a, b, c, d, e, f)`` (GDAL order as in
    ``affine.Affine``: x = a·col + b·row + c, y = d·col + e·row + f) cannot place ``width`` ×
    ``height`` pixels: a non-finite coefficient or a zero resolution (the pixel grid collapses to
    a line or a point, whatever its bounds would say)."""
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    if not all(math.isfinite(v) for v in (a, b, c, d, e, f)):
        raise FootprintError(
            f"geotransform {(a, b, c, d, e, f)} has a NaN or infinite coefficient; "
            "fix the file's georeferencing (e.g. `gdal_edit.py -a_ullr`)"
        )
    if a * e - b * d == 0.0:
        raise FootprintError(
            f"geotransform {(a, b, c, d, e, f)} has zero resolution (pixel size 0: "
            f"the {width}x{height} grid collapses); fix the file's georeferencing "
            "(e.g. `gdal_edit.py -a_ullr`)"
        )


def pixel_extent(transform: Sequence[float]) -> float:
    """The larger of a pixel's x and y extents, in CRS units (``transform`` as in :func:`check_grid`)."""
    a, b, _, d, e, _ = (float(v) for v in transform[:6])
    return max(abs(a) + abs(b), abs(d) + abs(e))


def check_lonlat_extent(bounds: Bounds, *, tolerance: float = 0.0) -> None:
    """Raise :class:`FootprintError` when native ``bounds`` in a geographic CRS (degrees) cannot be
    lon/lat: a latitude beyond ±90°, a west edge beyond ±360° (grids in 0…360, or crossing 360 as
    350…370, are fine), or wider than 360°, each by more than ``tolerance`` degrees (one pixel, for
    grids registered at cell centres whose edges overshoot the pole or the globe by half a cell).
    Within the tolerance, footprints are clipped at the poles; beyond it they would be clamped or
    wrapped into a wrong footprint."""
    xmin, ymin, xmax, ymax = bounds
    tol = max(float(tolerance), 1e-9)
    if ymin < -90.0 - tol or ymax > 90.0 + tol:
        raise FootprintError(
            f"latitudes {ymin:.9g}..{ymax:.9g} lie beyond ±90°: the file's georeferencing (or its CRS) is wrong"
        )
    if not -360.0 - tol <= xmin <= 360.0 + tol:
        raise FootprintError(
            f"longitudes {xmin:.9g}..{xmax:.9g} start beyond ±360°: the file's georeferencing (or its CRS) is wrong"
        )
    if xmax - xmin > 360.0 + tol:
        raise FootprintError(
            f"longitudes {xmin:.9g}..{xmax:.9g} span {xmax - xmin:.9g}°, more than the "
            "globe's 360°: the file's georeferencing (or its CRS) is wrong"
        )


def check_lonlat_bounds(bounds: Sequence[float], *, argument: str = "bbox") -> None:
    """Raise :class:`CRSError` when ``bounds`` cannot be lon/lat degrees."""
    xmin, ymin, xmax, ymax = bounds
    if not all(-360.0 <= v <= 360.0 for v in (xmin, xmax)) or not all(-90.0 <= v <= 90.0 for v in (ymin, ymax)):
        raise CRSError(
            f"{argument}={tuple(bounds)} cannot be lon/lat degrees (|lon| <= 180, |lat| <= 90); "
            "it looks projected: pass its CRS, e.g. crs='EPSG:32630'"
        )


def validate_bounds(bounds: Sequence[float], *, argument: str = "bbox") -> Bounds:
    """Check a 4-tuple of finite numbers; returns it as floats."""
    try:
        values = tuple(float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ArgumentError(f"{argument} must be 4 numbers (xmin, ymin, xmax, ymax), got {bounds!r}") from None
    if len(values) != 4:
        raise ArgumentError(f"{argument} must be 4 numbers (xmin, ymin, xmax, ymax), got {bounds!r}")
    if not all(math.isfinite(v) for v in values):
        raise ArgumentError(f"{argument}={values} has a NaN or infinite value")
    if values[1] > values[3]:
        raise ArgumentError(f"{argument}={values}: ymin > ymax")
    return values


HILBERT_ORDER = 16
_HILBERT_MAX = (1 << HILBERT_ORDER) - 1


def hilbert_key(x: np.ndarray, y: np.ndarray, extent: Bounds = (-180.0, -90.0, 180.0, 90.0)) -> np.ndarray:
    """Hilbert curve index (order 16, uint64 in [0, 4**16)) of points, e.g. bbox centres in lon/lat
    degrees: the key of DuckDB's ``ST_Hilbert(x, y, extent)``, so numpy and SQL sort rows in one
    order. Each axis is quantised as ``floor((v - min) * (65535 / (max - min)))``, clipped to
    [0, 65535] (points outside ``extent`` fall in the border cells)."""
    n = 1 << HILBERT_ORDER
    xmin, ymin, xmax, ymax = extent
    with np.errstate(invalid="ignore"):
        fx = np.floor((np.asarray(x, float) - xmin) * (_HILBERT_MAX / (xmax - xmin)))
        fy = np.floor((np.asarray(y, float) - ymin) * (_HILBERT_MAX / (ymax - ymin)))
    xi = np.clip(np.nan_to_num(fx), 0, _HILBERT_MAX).astype(np.int64)
    yi = np.clip(np.nan_to_num(fy), 0, _HILBERT_MAX).astype(np.int64)
    d = np.zeros(xi.shape, dtype=np.uint64)
    s = n >> 1
    while s > 0:
        rx = (xi & s) > 0
        ry = (yi & s) > 0
        d += np.uint64(s) * np.uint64(s) * ((3 * rx) ^ ry).astype(np.uint64)
        # rotate the quadrant
        flip = ~ry
        swap_x = np.where(flip & rx, n - 1 - xi, xi)
        swap_y = np.where(flip & rx, n - 1 - yi, yi)
        xi, yi = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s >>= 1
    return d
