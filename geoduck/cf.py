"""Reading CF-convention NetCDF/Zarr metadata with xarray: engines, x/y grids (1-D and curvilinear),
their cell edges and CRS, and time cells (CF ``bounds``/``climatology``, non-standard calendars).

Shared by the xarray builder (:mod:`geoduck.builders.xarray`, which turns this into catalog rows)
and the xarray loader (:mod:`geoduck.loaders.xarray`). Only coordinates and attributes are read,
never data. See the builder's module doc for the CRS order and the calendar rules.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyproj
import xarray as xr
from pyproj.exceptions import CRSError as _PyprojCRSError

from .errors import ArgumentError, CRSError, FootprintError, TimeParseError, VariableError
from .geo import crs_to_string, norm_crs, unwrap_longitudes
from .intervals import Overlap

NETCDF_EXTENSIONS = (".nc", ".nc4", ".h5")
"""File suffixes indexed (read with the ``netcdf4`` engine unless ``engine`` is given)."""

ZARR_SUFFIXES = (".zarr",)
"""Directory suffixes of Zarr stores (v2 or v3), each one item (read with the ``zarr`` engine)."""

ENGINES = ("netcdf4", "h5netcdf", "zarr")
"""xarray engines geoduck indexes and loads with."""

_X_NAMES = frozenset({"x", "lon", "longitude"})
_Y_NAMES = frozenset({"y", "lat", "latitude"})
_X_STANDARD_NAMES = frozenset({"projection_x_coordinate", "longitude", "grid_longitude"})
_Y_STANDARD_NAMES = frozenset({"projection_y_coordinate", "latitude", "grid_latitude"})
_LON_UNITS = frozenset({"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"})
_LAT_UNITS = frozenset({"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"})


# -- opening ------------------------------------------------------------------------------------


def infer_engine(path: str) -> str:
    """``zarr`` for ``*.zarr`` (or a directory holding Zarr metadata), ``netcdf4`` for
    ``.nc/.nc4/.h5``; else :class:`ArgumentError` asking for ``engine=``."""
    name = path.rstrip("/").lower()
    if name.endswith(ZARR_SUFFIXES):
        return "zarr"
    if name.endswith(NETCDF_EXTENSIONS):
        return "netcdf4"
    if (
        "://" not in path
        and os.path.isdir(path)
        and any(os.path.exists(os.path.join(path, m)) for m in ("zarr.json", ".zgroup", ".zarray"))
    ):
        return "zarr"
    raise ArgumentError(
        f"cannot tell the xarray engine of {path!r} from its name "
        f"(expected {', '.join(NETCDF_EXTENSIONS + ZARR_SUFFIXES)}); pass engine= "
        f"(one of {ENGINES})"
    )


def check_engine(engine: str | None) -> str | None:
    if engine is not None and engine not in ENGINES:
        raise ArgumentError(f"engine={engine!r} is not one of {ENGINES}")
    return engine


def open_dataset(path: str, engine: str) -> xr.Dataset:
    """Open lazily (no data read), CF-decoded: masked and scaled, times decoded (cftime for
    non-standard calendars)."""
    kwargs: dict[str, Any] = {"engine": engine, "cache": False, "decode_coords": True}
    if engine == "zarr":
        kwargs["consolidated"] = None  # use consolidated metadata when there is some
    with warnings.catch_warnings():
        # Zarr v3 consolidated metadata and undecodable time units warn; both are handled here.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", category=xr.SerializationWarning)
        return xr.open_dataset(path, **kwargs)


# -- grid ---------------------------------------------------------------------------------------


def _axis_of(ds: xr.Dataset, dim: Hashable) -> Literal["X", "Y"] | None:
    """X or Y when the dimension's coordinate says so by CF attributes (``axis``, ``standard_name``,
    ``units``) or, lacking those, by a common name (x/lon/longitude, y/lat/latitude)."""
    attrs = ds.variables[dim].attrs if dim in ds.variables else {}
    axis = str(attrs.get("axis", "")).upper()
    if axis in ("X", "Y"):
        return axis  # type: ignore[return-value]
    standard = attrs.get("standard_name")
    units = str(attrs.get("units", "")).lower()
    if standard in _X_STANDARD_NAMES or units in _LON_UNITS:
        return "X"
    if standard in _Y_STANDARD_NAMES or units in _LAT_UNITS:
        return "Y"
    name = str(dim).lower()
    return "X" if name in _X_NAMES else "Y" if name in _Y_NAMES else None


def lonlat_kind(attrs: dict[Hashable, Any]) -> Literal["lon", "lat"] | None:
    """``lon``/``lat`` for a CF longitude/latitude variable (by ``standard_name`` or ``units``)."""
    standard, units = attrs.get("standard_name"), str(attrs.get("units", "")).lower()
    if standard == "longitude" or units in _LON_UNITS:
        return "lon"
    if standard == "latitude" or units in _LAT_UNITS:
        return "lat"
    return None


def is_cf_lonlat(ds: xr.Dataset, x_dim: Hashable, y_dim: Hashable) -> bool:
    """True when x/y are CF longitude/latitude coordinates (by ``standard_name`` or ``units``)."""

    def kind(dim: Hashable) -> str | None:
        return lonlat_kind(ds.variables[dim].attrs) if dim in ds.variables else None

    return kind(x_dim) == "lon" and kind(y_dim) == "lat"


def spatial_dims(ds: xr.Dataset, variable: Hashable) -> tuple[Hashable, Hashable] | None:
    """(x dim, y dim) of a data variable, None when it lacks one; raises when ambiguous."""
    dims = ds[variable].dims
    xs = [d for d in dims if _axis_of(ds, d) == "X"]
    ys = [d for d in dims if _axis_of(ds, d) == "Y"]
    if len(xs) > 1 or len(ys) > 1:
        raise VariableError(
            f"variable {variable!r} has several x or y dimensions {tuple(dims)}; "
            "mark the spatial ones with CF axis='X'/'Y' attributes"
        )
    return (xs[0], ys[0]) if xs and ys else None


@dataclass(frozen=True)
class Grid:
    """Where a data variable's cells are: its x and y dimensions and, on a curvilinear grid, the
    names of its 2-D CF longitude/latitude coordinate variables (dims ``(y, x)``)."""

    x_dim: Hashable
    y_dim: Hashable
    lon: Hashable | None = None
    lat: Hashable | None = None

    @property
    def curvilinear(self) -> bool:
        return self.lon is not None


def _has_1d_coordinate(ds: xr.Dataset, dim: Hashable) -> bool:
    return dim in ds.variables and ds.variables[dim].dims == (dim,)


def _curvilinear(ds: xr.Dataset, variable: Hashable) -> Grid | None:
    """The curvilinear grid of ``variable``: a pair of 2-D CF lon/lat variables on two of its dims."""
    dims = ds[variable].dims
    found: dict[str, list[Hashable]] = {"lon": [], "lat": []}
    for name, v in ds.variables.items():
        if name != variable and v.ndim == 2 and set(v.dims) <= set(dims):
            kind = lonlat_kind(v.attrs)
            if kind is not None:
                found[kind].append(name)
    pairs = [(lo, la) for lo in found["lon"] for la in found["lat"] if ds[lo].dims == ds[la].dims]
    if not pairs:
        return None
    if len(pairs) > 1:
        coords = str(ds[variable].attrs.get("coordinates", ds[variable].encoding.get("coordinates", ""))).split()
        pairs = [p for p in pairs if p[0] in coords and p[1] in coords] or pairs
    lon, lat = pairs[0]
    y_dim, x_dim = ds[lon].dims
    return Grid(x_dim, y_dim, lon, lat)


def grid_of(ds: xr.Dataset, variable: Hashable) -> Grid | None:
    """The grid of a data variable: x/y dimensions with 1-D coordinates (rectilinear), else 2-D CF
    longitude/latitude coordinates (curvilinear); None when it has neither."""
    dims = spatial_dims(ds, variable)
    if dims is not None and all(_has_1d_coordinate(ds, d) for d in dims):
        return Grid(*dims)
    curvi = _curvilinear(ds, variable)
    if curvi is not None:
        return curvi
    return Grid(*dims) if dims is not None else None


# -- coordinate units ---------------------------------------------------------------------------

_FOOT = 0.3048
LENGTH_UNITS: dict[str, float] = {
    "m": 1.0,
    "metre": 1.0,
    "meter": 1.0,
    "km": 1000.0,
    "kilometre": 1000.0,
    "kilometer": 1000.0,
    "hm": 100.0,
    "hectometre": 100.0,
    "hectometer": 100.0,
    "dam": 10.0,
    "decametre": 10.0,
    "decameter": 10.0,
    "dm": 0.1,
    "decimetre": 0.1,
    "decimeter": 0.1,
    "cm": 0.01,
    "centimetre": 0.01,
    "centimeter": 0.01,
    "mm": 0.001,
    "millimetre": 0.001,
    "millimeter": 0.001,
    "ft": _FOOT,
    "foot": _FOOT,
    "feet": _FOOT,
    "international_foot": _FOOT,
    "international_feet": _FOOT,
    "us_survey_foot": 1200.0 / 3937.0,
    "us_survey_feet": 1200.0 / 3937.0,
    "survey_foot": 1200.0 / 3937.0,
    "us_foot": 1200.0 / 3937.0,
    "ftus": 1200.0 / 3937.0,
    "yd": 0.9144,
    "yard": 0.9144,
    "mi": 1609.344,
    "mile": 1609.344,
    "nmi": 1852.0,
    "nautical_mile": 1852.0,
}
"""Metres per CF/udunits length unit (lower case; plurals ``metres``, ``kilometers`` … and a
leading factor as in ``"1000 m"`` or ``"1e3 m"`` are accepted too)."""

_UNIT_RE = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)?\s*\*?\s*([a-z][a-z_\s\-]*)$")


def length_unit_metres(units: str) -> float | None:
    """Metres per ``units`` (a CF/udunits length unit, e.g. ``"km"``, ``"US survey foot"``,
    ``"1000 m"``), or None when it is not one of :data:`LENGTH_UNITS`."""
    m = _UNIT_RE.match(units.strip().lower())
    if m is None:
        return None
    name = re.sub(r"[\s\-]+", "_", m.group(2).strip())
    metres = LENGTH_UNITS.get(name)
    if metres is None and len(name) > 2 and name.endswith("s"):  # metres, kilometers, miles
        metres = LENGTH_UNITS.get(name[:-1])
    return None if metres is None else (float(m.group(1)) if m.group(1) else 1.0) * metres


def coordinate_scale(ds: xr.Dataset, dim: Hashable, crs: pyproj.CRS) -> float:
    """Factor taking the values of projected coordinate ``dim`` (in its CF ``units``) to the units
    of ``crs`` (1 for geographic CRSs and for coordinates without units); raises
    :class:`CRSError` for units that are not a length."""
    if crs.is_geographic:
        return 1.0
    units = ds.variables[dim].attrs.get("units") if dim in ds.variables else None
    if not isinstance(units, str) or not units.strip():
        return 1.0
    metres = length_unit_metres(units)
    if metres is None:
        raise CRSError(
            f"coordinate {dim!r} has units {units!r}, which is not a length unit geoduck knows "
            f"(e.g. m, km, ft, US_survey_foot); fix its 'units' attribute"
        )
    crs_metres = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return metres / (crs_metres or 1.0)


# -- coordinate values --------------------------------------------------------------------------


def centres(
    ds: xr.Dataset, dim: Hashable, crs: pyproj.CRS | None = None, axis: Literal["X", "Y"] | None = None
) -> np.ndarray:
    """The 1-D cell-centre coordinate of a spatial dimension (float, strictly monotonic).

    With ``crs``: in the units of ``crs`` (see :func:`coordinate_scale`); with ``axis="X"`` and a
    geographic ``crs``, longitudes that wrap inside the file are unwrapped.
    """
    if dim not in ds.coords or ds[dim].ndim != 1:
        raise FootprintError(f"spatial dimension {dim!r} has no coordinate values")
    values = np.asarray(ds[dim].values, dtype=float)
    if not np.isfinite(values).all():
        raise FootprintError(f"coordinate {dim!r} has NaN or infinite values")
    if crs is not None:
        if crs.is_geographic and axis == "X":
            values = unwrap_longitudes(values)
        else:
            values = values * coordinate_scale(ds, dim, crs)
    if values.size > 1:
        d = np.diff(values)
        if not ((d > 0).all() or (d < 0).all()):
            raise FootprintError(f"coordinate {dim!r} is not strictly monotonic")
    return values


def bounds_name(ds: xr.Dataset, name: Hashable, key: str = "bounds") -> Hashable | None:
    """The CF ``bounds`` (or ``climatology``) variable of ``name`` when it is in the file."""
    if name not in ds.variables:
        return None
    var = ds.variables[name]
    text = var.attrs.get(key, var.encoding.get(key))
    return text if isinstance(text, str) and text in ds.variables else None


def cell_edges(
    ds: xr.Dataset, dim: Hashable, crs: pyproj.CRS | None = None, axis: Literal["X", "Y"] | None = None
) -> tuple[float, float]:
    """(lowest, highest) cell edge along ``dim`` (units as :func:`centres`): from its CF ``bounds``
    variable when there is one, else half a cell beyond the outer centres. Longitude bounds are
    moved by whole turns next to their (unwrapped) centres."""
    values = centres(ds, dim, crs, axis)
    bname = bounds_name(ds, dim)
    if bname is not None and ds[bname].shape == (values.size, 2):
        b = np.asarray(ds[bname].values, dtype=float)
        if crs is not None and crs.is_geographic and axis == "X":
            b = b + 360.0 * np.round((values[:, None] - b) / 360.0)
        elif crs is not None:
            b = b * coordinate_scale(ds, dim, crs)
        if np.isfinite(b).all():
            return float(b.min()), float(b.max())
    if values.size < 2:
        raise FootprintError(f"coordinate {dim!r} has a single value and no CF bounds: the cell size is unknown")
    lo, hi = (values, values) if values[0] < values[-1] else (values[::-1], values[::-1])
    return float(lo[0] - (lo[1] - lo[0]) / 2), float(hi[-1] + (hi[-1] - hi[-2]) / 2)


# -- curvilinear grids --------------------------------------------------------------------------


def _to_xyz(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lo, la = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def _to_lonlat(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    return np.degrees(np.arctan2(y, x)), np.degrees(np.arctan2(z, np.hypot(x, y)))


def curvilinear_corners(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell corners ``(ny + 1, nx + 1)`` of a curvilinear grid from its 2-D centres (degrees):
    the mean of the four centres around each inner corner, outer ones extrapolated linearly from
    the two outer rows/columns — worked out on the unit sphere, so grids across ±180° or around a
    pole come out right."""
    xyz = _to_xyz(lon, lat)
    if xyz.shape[0] < 2 or xyz.shape[1] < 2:
        raise FootprintError("a curvilinear grid needs at least 2 × 2 cells to tell where its cells end")
    xyz = np.concatenate([2 * xyz[:1] - xyz[1:2], xyz, 2 * xyz[-1:] - xyz[-2:-1]], axis=0)
    xyz = np.concatenate([2 * xyz[:, :1] - xyz[:, 1:2], xyz, 2 * xyz[:, -1:] - xyz[:, -2:-1]], axis=1)
    corners = (xyz[:-1, :-1] + xyz[1:, :-1] + xyz[:-1, 1:] + xyz[1:, 1:]) / 4.0
    return _to_lonlat(corners)


def _corners_from_bounds(b: np.ndarray) -> np.ndarray:
    """Corner array ``(ny + 1, nx + 1)`` from CF vertex bounds ``(ny, nx, 4)`` (counterclockwise
    from the lower-left vertex, in index space)."""
    ny, nx = b.shape[:2]
    out = np.empty((ny + 1, nx + 1), dtype=float)
    out[:ny, :nx] = b[:, :, 0]
    out[:ny, nx] = b[:, -1, 1]
    out[ny, nx] = b[-1, -1, 2]
    out[ny, :nx] = b[-1, :, 3]
    return out


def curvilinear_grid_corners(ds: xr.Dataset, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Cell corners ``(ny + 1, nx + 1)`` (lon, lat in degrees; row 0 = index 0 of ``y_dim``) of a
    curvilinear grid: the vertices of the CF ``bounds`` of its 2-D lon/lat when present, else
    estimated from the centres (:func:`curvilinear_corners`)."""
    order = (grid.y_dim, grid.x_dim)
    lon = np.asarray(ds[grid.lon].transpose(*order).values, dtype=float)
    lat = np.asarray(ds[grid.lat].transpose(*order).values, dtype=float)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise FootprintError(
            f"curvilinear coordinates {grid.lon!r}/{grid.lat!r} have NaN or infinite "
            "values (masked cells); geoduck needs every cell's position"
        )
    blon, blat = bounds_name(ds, grid.lon), bounds_name(ds, grid.lat)
    if blon is not None and blat is not None and ds[grid.lon].dims == order:
        shape = (*lon.shape, 4)
        if ds[blon].shape == shape and ds[blat].shape == shape:
            return (
                _corners_from_bounds(np.asarray(ds[blon].values, dtype=float)),
                _corners_from_bounds(np.asarray(ds[blat].values, dtype=float)),
            )
    return curvilinear_corners(lon, lat)


def curvilinear_outline(ds: xr.Dataset, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The closed lon/lat ring (degrees) of a curvilinear grid's outer cell edges."""
    clon, clat = curvilinear_grid_corners(ds, grid)
    ring_lon = np.concatenate([clon[0, :], clon[1:, -1], clon[-1, -2::-1], clon[-2::-1, 0]])
    ring_lat = np.concatenate([clat[0, :], clat[1:, -1], clat[-1, -2::-1], clat[-2::-1, 0]])
    return ring_lon, ring_lat


# -- CRS ----------------------------------------------------------------------------------------


def _grid_mapping_name(var: xr.DataArray) -> str | None:
    """The grid-mapping variable a data variable names (first one of CF's extended form)."""
    text = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
    if not isinstance(text, str) or not text.strip():
        return None
    return text.split()[0].rstrip(":")


def file_crs(ds: xr.Dataset, variable: Hashable) -> pyproj.CRS | None:
    """The CRS a file declares for ``variable`` (steps 1 of the module doc), or None."""
    var = ds[variable]
    gm_name = _grid_mapping_name(var)
    if gm_name is not None and gm_name not in ds.variables:
        raise CRSError(f"variable {variable!r} names grid_mapping {gm_name!r}, which is not in the file")
    if gm_name is None and "spatial_ref" in ds.variables:
        gm_name = "spatial_ref"
    gm_attrs = ds.variables[gm_name].attrs if gm_name is not None else {}
    candidates = [(gm_attrs, ("crs_wkt", "spatial_ref")), (var.attrs, ("crs_wkt",)), (ds.attrs, ("crs_wkt",))]
    for attrs, keys in candidates:
        for key in keys:
            text = attrs.get(key)
            if isinstance(text, str) and text.strip():
                return norm_crs(text, argument=f"the {key!r} attribute")
    if "grid_mapping_name" in gm_attrs:
        try:
            return pyproj.CRS.from_cf(dict(gm_attrs))
        except (_PyprojCRSError, KeyError, ValueError) as exc:
            raise CRSError(f"grid_mapping variable {gm_name!r} has CF attributes pyproj cannot read: {exc}") from None
    return None


def variable_crs(
    ds: xr.Dataset, variable: Hashable, x_dim: Hashable, y_dim: Hashable, default_wkt: str | None
) -> pyproj.CRS:
    """The CRS of ``variable``: file, else ``default_wkt`` (the ``crs`` argument), else CF lon/lat
    ⇒ EPSG:4326; raises :class:`CRSError` when there is none."""
    crs = file_crs(ds, variable)
    if crs is not None:
        return crs
    lonlat = is_cf_lonlat(ds, x_dim, y_dim)
    if default_wkt is not None:
        crs = norm_crs(default_wkt)
        if lonlat and not crs.is_geographic:
            raise CRSError(
                f"variable {variable!r} has longitude/latitude coordinates but crs= is the "
                f"projected {crs_to_string(crs)!r}"
            )
        return crs
    if lonlat:
        return norm_crs("EPSG:4326")
    raise CRSError(
        f"variable {variable!r} has no CRS (no grid_mapping, spatial_ref or crs_wkt, and "
        f"{x_dim!r}/{y_dim!r} are not CF longitude/latitude); pass crs= (e.g. "
        "crs='EPSG:32630') or add a CF grid_mapping"
    )


def grid_crs(ds: xr.Dataset, variable: Hashable, grid: Grid, default_wkt: str | None) -> pyproj.CRS:
    """The CRS of ``variable`` on ``grid``: :func:`variable_crs` for rectilinear grids; for curvilinear
    ones the geographic CRS of their 2-D lon/lat (the file's grid mapping's datum, else the ``crs``
    argument when geographic, else EPSG:4326)."""
    if not grid.curvilinear:
        return variable_crs(ds, variable, grid.x_dim, grid.y_dim, default_wkt)
    crs = file_crs(ds, variable)
    if crs is None and default_wkt is not None:
        crs = norm_crs(default_wkt)
    if crs is None:
        return norm_crs("EPSG:4326")
    geographic = crs if crs.is_geographic else crs.geodetic_crs
    return norm_crs(geographic.to_wkt()) if geographic is not None else norm_crs("EPSG:4326")


# -- time ---------------------------------------------------------------------------------------


def to_utc(values: np.ndarray, *, what: str) -> pd.DatetimeIndex:
    """Decoded time values (datetime64 or cftime) as a UTC, microsecond DatetimeIndex.

    cftime dates are taken by their labels (see the module doc); raises :class:`TimeParseError`
    naming ``what`` for values that are not dates or labels that do not exist in the Gregorian
    calendar.
    """
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return pd.DatetimeIndex(values).tz_localize("UTC").as_unit("us")
    if values.dtype.kind == "O" and all(hasattr(v, "calendar") for v in values.flat):
        stamps = []
        for v in values.flat:
            try:
                stamps.append(pd.Timestamp(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond))
            except ValueError:
                raise TimeParseError(
                    f"{what}: date {v} of the {v.calendar!r} calendar does not exist in the standard "
                    "calendar; convert it first (xarray's Dataset.convert_calendar)"
                ) from None
        return pd.DatetimeIndex(stamps).tz_localize("UTC").as_unit("us")
    raise TimeParseError(
        f"{what} holds {values.dtype} values, not dates; check its CF 'units' attribute (e.g. 'days since 2000-01-01')"
    )


def time_index(ds: xr.Dataset, time_var: str, *, where: str) -> pd.DatetimeIndex:
    """The UTC timestamps of the ``time_var`` coordinate of ``ds``."""
    if time_var not in ds.coords:
        raise TimeParseError(f"{where}: time dimension {time_var!r} has no coordinate values")
    return to_utc(ds[time_var].values, what=f"{where}: time coordinate {time_var!r}")


@dataclass(frozen=True)
class TimeCells:
    """The steps of a time coordinate: their labels and the closed interval each one covers
    (UTC, µs). From the CF ``climatology`` or ``bounds`` variable, a cell ``[t0, t1]`` covers
    ``[t0, t1 − 1 µs]`` (back-to-back cells never overlap; a zero-length cell is the instant);
    without one each step is the instant of its label."""

    labels: pd.DatetimeIndex
    starts: pd.DatetimeIndex
    ends: pd.DatetimeIndex
    bounds: str | None = None
    """Name of the bounds (or climatology) variable used, None without one."""

    def overlapping(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> np.ndarray:
        """Indexes of the valid steps whose cell overlaps the closed interval ``[start, end]``."""
        valid = ~(self.labels.isna() | self.starts.isna() | self.ends.isna())
        static = np.zeros(len(self.starts), dtype=bool)  # a cell's start and end are never NULL here
        keep = Overlap(start, end).mask(self.starts, static, self.ends, static)  # the catalog's rule
        return np.flatnonzero(valid & keep)


def _decoded_bounds(ds: xr.Dataset, name: Hashable, time_var: str) -> np.ndarray:
    """The values of the time bounds variable ``name``, decoded as dates: xarray decodes ``bounds``
    variables but not ``climatology`` ones, which CF lets inherit the time coordinate's units."""
    var = ds[name]
    values = var.values
    if values.dtype.kind in "iuf":
        units = var.attrs.get("units") or ds[time_var].encoding.get("units")
        calendar = var.attrs.get("calendar") or ds[time_var].encoding.get("calendar", "standard")
        if isinstance(units, str) and "since" in units:
            raw = xr.Dataset({"b": xr.Variable(var.dims, values, {"units": units, "calendar": calendar})})
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=xr.SerializationWarning)
                values = xr.decode_cf(raw, use_cftime=None)["b"].values
    return values


def time_cells(ds: xr.Dataset, time_var: str, *, where: str) -> TimeCells:
    """The :class:`TimeCells` of the ``time_var`` coordinate of ``ds`` (a dimension or a scalar)."""
    labels = time_index(ds, time_var, where=where)
    name = bounds_name(ds, time_var, "climatology") or bounds_name(ds, time_var)
    if name is None or ds[name].shape != (*ds[time_var].shape, 2):
        return TimeCells(labels, labels, labels)
    values = _decoded_bounds(ds, name, time_var).reshape(-1, 2)
    what = f"{where}: time bounds {name!r}"
    lo, hi = to_utc(values[:, 0], what=what), to_utc(values[:, 1], what=what)
    first, last = lo.where(lo <= hi, hi), hi.where(lo <= hi, lo)
    tick = pd.Timedelta(1, "us")
    ends = last.where(last <= first, last - tick)
    return TimeCells(labels, first, ends, str(name))


def is_time_like(ds: xr.Dataset, dim: Hashable) -> bool:
    if dim not in ds.coords:
        return False
    values = ds[dim].values
    return values.dtype.kind == "M" or (
        values.dtype.kind == "O" and values.size > 0 and hasattr(values.flat[0], "calendar")
    )
