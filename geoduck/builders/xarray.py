"""xarray builder: one catalog row per file × data variable of NetCDF files and Zarr stores.

A data variable is indexed when it has an x and a y dimension (see :func:`spatial_dims`). Its row
holds the footprint of its grid's cell *edges* (centres ± half a cell, or the CF ``bounds``
variable), the native CRS and the interval ``[first, last]`` of its time coordinate; a variable
without the time dimension is static. Only coordinates and attributes are read, never data.

CRS, in this order:

1. the file: the CF ``grid_mapping`` variable's ``crs_wkt`` / ``spatial_ref`` (GDAL, rioxarray)
   attributes or its CF grid-mapping parameters; a ``spatial_ref`` variable (rioxarray) when the
   data variable names none; a ``crs_wkt`` attribute of the variable or of the file;
2. the ``crs`` argument of :func:`build_xarray_catalog`;
3. CF longitude/latitude dimension coordinates (``units`` ``degrees_east``/``degrees_north`` or
   ``standard_name`` ``longitude``/``latitude``) without a grid mapping: EPSG:4326. CF leaves the
   datum of such coordinates unspecified; WGS 84 is what GDAL and CF tools assume, so it is used
   only when neither the file nor the caller says otherwise;
4. otherwise the file is reported as an error (never a guess).

Times: CF times are decoded by xarray. Non-standard calendars (``noleap``, ``360_day``,
``all_leap``, ``julian`` …) are decoded to cftime dates and taken *by their labels*: a date keeps
its year, month, day and time of day in the proleptic Gregorian calendar (as
``xarray.Dataset.convert_calendar(..., align_on="date")`` does). A label that does not exist there
(30 February of a 360-day calendar, 29 February of a non-leap year) is an error naming the file
(convert its calendar first). Timestamps are UTC at microsecond resolution.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyproj
import shapely
import xarray as xr
from pyproj.exceptions import CRSError as _PyprojCRSError

from .. import schema
from ..errors import ArgumentError, CRSError, GeoduckError, TimeParseError
from ..geo import Bounds, Footprinter, check_lonlat_extent, crs_to_string, footprinter, norm_crs
from .common import FilenameParser, file_stat, finish_build, run_build

if TYPE_CHECKING:
    from ..catalog import Catalog

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


@dataclass(frozen=True)
class XarrayOptions:
    """What :func:`read_xarray_header` needs besides the path (picklable, sent to workers)."""

    variables: tuple[str, ...] | None = None
    time_var: str = "time"
    crs_wkt: str | None = None
    """WKT of the ``crs`` argument: the CRS of files that carry none."""
    engine: str | None = None


# -- opening ------------------------------------------------------------------------------------

def infer_engine(path: str) -> str:
    """``zarr`` for ``*.zarr`` (or a directory holding Zarr metadata), ``netcdf4`` for
    ``.nc/.nc4/.h5``; else :class:`ArgumentError` asking for ``engine=``."""
    name = path.rstrip("/").lower()
    if name.endswith(ZARR_SUFFIXES):
        return "zarr"
    if name.endswith(NETCDF_EXTENSIONS):
        return "netcdf4"
    if "://" not in path and os.path.isdir(path) and any(
            os.path.exists(os.path.join(path, m)) for m in ("zarr.json", ".zgroup", ".zarray")):
        return "zarr"
    raise ArgumentError(f"cannot tell the xarray engine of {path!r} from its name "
                        f"(expected {', '.join(NETCDF_EXTENSIONS + ZARR_SUFFIXES)}); pass engine= "
                        f"(one of {ENGINES})")


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


def is_cf_lonlat(ds: xr.Dataset, x_dim: Hashable, y_dim: Hashable) -> bool:
    """True when x/y are CF longitude/latitude coordinates (by ``standard_name`` or ``units``)."""
    def attrs(dim: Hashable) -> tuple[Any, str]:
        a = ds.variables[dim].attrs if dim in ds.variables else {}
        return a.get("standard_name"), str(a.get("units", "")).lower()

    (xs, xu), (ys, yu) = attrs(x_dim), attrs(y_dim)
    return (xs == "longitude" or xu in _LON_UNITS) and (ys == "latitude" or yu in _LAT_UNITS)


def spatial_dims(ds: xr.Dataset, variable: Hashable) -> tuple[Hashable, Hashable] | None:
    """(x dim, y dim) of a data variable, None when it lacks one; raises when ambiguous."""
    dims = ds[variable].dims
    xs = [d for d in dims if _axis_of(ds, d) == "X"]
    ys = [d for d in dims if _axis_of(ds, d) == "Y"]
    if len(xs) > 1 or len(ys) > 1:
        raise GeoduckError(f"variable {variable!r} has several x or y dimensions {tuple(dims)}; "
                           "mark the spatial ones with CF axis='X'/'Y' attributes")
    return (xs[0], ys[0]) if xs and ys else None


def centres(ds: xr.Dataset, dim: Hashable) -> np.ndarray:
    """The 1-D cell-centre coordinate of a spatial dimension (float, strictly monotonic)."""
    if dim not in ds.coords or ds[dim].ndim != 1:
        raise GeoduckError(f"spatial dimension {dim!r} has no coordinate values")
    values = np.asarray(ds[dim].values, dtype=float)
    if not np.isfinite(values).all():
        raise GeoduckError(f"coordinate {dim!r} has NaN or infinite values")
    if values.size > 1:
        d = np.diff(values)
        if not ((d > 0).all() or (d < 0).all()):
            raise GeoduckError(f"coordinate {dim!r} is not strictly monotonic")
    return values


def cell_edges(ds: xr.Dataset, dim: Hashable) -> tuple[float, float]:
    """(lowest, highest) cell edge along ``dim``: from its CF ``bounds`` variable when there is one,
    else half a cell beyond the outer centres."""
    values = centres(ds, dim)
    bounds_name = ds[dim].attrs.get("bounds")
    if bounds_name in ds.variables and ds[bounds_name].shape == (values.size, 2):
        b = np.asarray(ds[bounds_name].values, dtype=float)
        return float(b.min()), float(b.max())
    if values.size < 2:
        raise GeoduckError(f"coordinate {dim!r} has a single value and no CF bounds: the cell size "
                           "is unknown")
    lo, hi = (values, values) if values[0] < values[-1] else (values[::-1], values[::-1])
    return float(lo[0] - (lo[1] - lo[0]) / 2), float(hi[-1] + (hi[-1] - hi[-2]) / 2)


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
            raise CRSError(f"grid_mapping variable {gm_name!r} has CF attributes pyproj cannot read: "
                           f"{exc}") from None
    return None


def variable_crs(ds: xr.Dataset, variable: Hashable, x_dim: Hashable, y_dim: Hashable,
                 default_wkt: str | None) -> pyproj.CRS:
    """The CRS of ``variable``: file, else ``default_wkt`` (the ``crs`` argument), else CF lon/lat
    ⇒ EPSG:4326; raises :class:`CRSError` when there is none."""
    crs = file_crs(ds, variable)
    if crs is not None:
        return crs
    lonlat = is_cf_lonlat(ds, x_dim, y_dim)
    if default_wkt is not None:
        crs = norm_crs(default_wkt)
        if lonlat and not crs.is_geographic:
            raise CRSError(f"variable {variable!r} has longitude/latitude coordinates but crs= is the "
                           f"projected {crs_to_string(crs)!r}")
        return crs
    if lonlat:
        return norm_crs("EPSG:4326")
    raise CRSError(f"variable {variable!r} has no CRS (no grid_mapping, spatial_ref or crs_wkt, and "
                   f"{x_dim!r}/{y_dim!r} are not CF longitude/latitude); pass crs= (e.g. "
                   "crs='EPSG:32630') or add a CF grid_mapping")


@lru_cache(maxsize=256)
def _crs_info(wkt: str) -> tuple[str, Footprinter]:
    crs = norm_crs(wkt)
    return crs_to_string(crs), footprinter(crs)


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
                stamps.append(pd.Timestamp(v.year, v.month, v.day, v.hour, v.minute, v.second,
                                           v.microsecond))
            except ValueError:
                raise TimeParseError(
                    f"{what}: date {v} of the {v.calendar!r} calendar does not exist in the standard "
                    "calendar; convert it first (xarray's Dataset.convert_calendar)") from None
        return pd.DatetimeIndex(stamps).tz_localize("UTC").as_unit("us")
    raise TimeParseError(f"{what} holds {values.dtype} values, not dates; check its CF 'units' "
                         "attribute (e.g. 'days since 2000-01-01')")


def time_index(ds: xr.Dataset, time_var: str, *, where: str) -> pd.DatetimeIndex:
    """The UTC timestamps of the ``time_var`` coordinate of ``ds``."""
    if time_var not in ds.coords:
        raise TimeParseError(f"{where}: time dimension {time_var!r} has no coordinate values")
    return to_utc(ds[time_var].values, what=f"{where}: time coordinate {time_var!r}")


def _is_time_like(ds: xr.Dataset, dim: Hashable) -> bool:
    if dim not in ds.coords:
        return False
    values = ds[dim].values
    return values.dtype.kind == "M" or (values.dtype.kind == "O" and values.size > 0
                                        and hasattr(values.flat[0], "calendar"))


# -- headers ------------------------------------------------------------------------------------

def _box(bounds: Bounds) -> dict[str, float]:
    return dict(zip(schema.BBOX_KEYS, bounds, strict=True))


def _variables(ds: xr.Dataset, requested: tuple[str, ...] | None
               ) -> list[tuple[Hashable, tuple[Hashable, Hashable]]]:
    """(variable, (x dim, y dim)) of the data variables to index."""
    if requested is None:
        out = [(name, dims) for name in ds.data_vars if (dims := spatial_dims(ds, name)) is not None]
        if not out:
            raise GeoduckError(f"no data variable has x/y dimensions (variables: {list(ds.data_vars)}); "
                               "CF axis='X'/'Y' attributes or x/y, lon/lat dimension names are needed")
        return out
    present = [v for v in requested if v in ds.data_vars]
    if not present:
        raise GeoduckError(f"none of variables={list(requested)} is in the file "
                           f"(it has {list(ds.data_vars)})")
    out = []
    for name in present:
        dims = spatial_dims(ds, name)
        if dims is None:
            raise GeoduckError(f"variable {name!r} has no x/y dimensions (dims {ds[name].dims})")
        out.append((name, dims))
    return out


def _grid_row(ds: xr.Dataset, x_dim: Hashable, y_dim: Hashable, crs: pyproj.CRS) -> dict[str, Any]:
    """Geometry, bbox, crs and native bounds of a grid (cell edges, latitudes clipped at ±90°)."""
    (xmin, xmax), (ymin, ymax) = cell_edges(ds, x_dim), cell_edges(ds, y_dim)
    if crs.is_geographic:  # half a cell beyond a pole is fine (centre-registered grids); more is not
        cell = max((xmax - xmin) / max(ds.sizes[x_dim], 1), (ymax - ymin) / max(ds.sizes[y_dim], 1))
        check_lonlat_extent((xmin, ymin, xmax, ymax), tolerance=cell)
        ymin, ymax = max(ymin, -90.0), min(ymax, 90.0)
    bounds = (xmin, ymin, xmax, ymax)
    crs_text, footprint_of = _crs_info(crs.to_wkt())
    footprint = footprint_of(bounds)
    return {schema.GEOMETRY: shapely.to_wkb(footprint), schema.BBOX: _box(footprint.bounds),
            schema.CRS: crs_text, schema.NATIVE_BOUNDS: _box(bounds)}


def read_xarray_header(path: str, options: XarrayOptions) -> list[dict[str, Any]]:
    """The catalog rows (without id/filepath/backend columns) of one file: one per data variable."""
    engine = options.engine or infer_engine(path)
    size, mtime = file_stat(path)
    try:
        ds = open_dataset(path, engine)
    except (OSError, ValueError) as exc:
        raise GeoduckError(f"not readable with engine={engine!r}: {str(exc).splitlines()[0]}") from None
    with ds:
        rows = []
        grids: dict[tuple[Hashable, Hashable, str], dict[str, Any]] = {}
        times: pd.DatetimeIndex | None = None
        for name, (x_dim, y_dim) in _variables(ds, options.variables):
            var = ds[name]
            crs = variable_crs(ds, name, x_dim, y_dim, options.crs_wkt)
            key = (x_dim, y_dim, crs.to_wkt())
            if key not in grids:
                grids[key] = _grid_row(ds, x_dim, y_dim, crs)
            row = dict(grids[key])
            other_time = [d for d in var.dims if d not in (x_dim, y_dim, options.time_var)
                          and _is_time_like(ds, d)]
            if other_time:
                raise GeoduckError(f"variable {name!r} has the time dimension {other_time[0]!r} but "
                                   f"time_var={options.time_var!r}; pass time_var={other_time[0]!r}")
            if options.time_var in var.dims:
                if times is None:
                    times = time_index(ds, options.time_var, where=f"variable {name!r}")
                valid = times[~times.isna()]
                if valid.empty:
                    raise TimeParseError(f"variable {name!r}: time coordinate {options.time_var!r} "
                                         "has no valid dates")
                row.update({schema.START: valid.min(), schema.END: valid.max(),
                            "time_var": options.time_var, "n_timesteps": int(times.size)})
            else:
                row.update({schema.START: None, schema.END: None, "time_var": None, "n_timesteps": None})
            row.update({"variable": str(name), "engine": engine,
                        schema.FILE_SIZE: size, schema.FILE_MTIME: mtime})
            rows.append(row)
    return rows


def build_xarray_catalog(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    variables: str | Sequence[str] | None = None,
    time_var: str = "time",
    crs: Any = None,
    engine: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    client: Any = None,
) -> Catalog:
    """Index NetCDF files and Zarr stores into the catalog at ``out_dir`` (created or appended to):
    one row per file × data variable with x/y dimensions (see the module doc).

    Args:
        paths: a list of paths, a glob pattern, or a directory (searched recursively for
            ``.nc/.nc4/.h5`` files and ``*.zarr`` stores; a store is one item, never searched).
        out_dir: catalog directory; new rows go to new part files, existing parts are untouched.
        variables: data variables to index (default: every one with x/y dimensions). A file holding
            none of them is reported as an error.
        time_var: name of the time dimension (and its coordinate); a variable without it is static.
        crs: CRS of files that declare none (anything pyproj accepts, e.g. ``"EPSG:32630"``). A CRS
            in the file always wins.
        engine: xarray engine, ``"netcdf4"``, ``"h5netcdf"`` or ``"zarr"``; default by name:
            ``*.zarr`` → zarr, others → netcdf4.
        workers: header-reading processes (default: all cores; 1 = in this process).
        progress: show a tqdm progress bar.
        client: a ``dask.distributed.Client``: the files are cut into tasks run on its cluster,
            each writing its own parts (``out_dir`` must be writable by every worker); default:
            local processes (``workers``).

    Returns:
        The catalog at ``out_dir``; ``catalog.build_report`` lists files that failed and why.
    """
    if isinstance(variables, str):
        variables = [variables]
    if variables is not None and (not variables or not all(isinstance(v, str) and v for v in variables)):
        raise ArgumentError(f"variables={variables!r} must be a non-empty list of variable names")
    if not isinstance(time_var, str) or not time_var:
        raise ArgumentError(f"time_var={time_var!r} must be a dimension name")
    options = XarrayOptions(
        variables=None if variables is None else tuple(variables), time_var=time_var,
        crs_wkt=None if crs is None else norm_crs(crs).to_wkt(), engine=check_engine(engine))
    report = run_build(
        paths, out_dir, backend="xarray", extensions=NETCDF_EXTENSIONS, directory_suffixes=ZARR_SUFFIXES,
        read_fn=read_xarray_header, options=options, parser=FilenameParser(), sub_key="variable",
        workers=workers, progress=progress, client=client,
    )
    return finish_build(out_dir, paths, report)
