"""xarray builder: one catalog row per file × data variable of NetCDF files and Zarr stores.

A data variable is indexed when it has an x and a y dimension (see :func:`grid_of`): 1-D x/y
coordinates, or 2-D CF longitude/latitude coordinates (curvilinear). Its row holds the footprint
of its grid's cell *edges* (the CF ``bounds`` variable, else centres ± half a cell; x/y in any CF
length unit converted to the CRS's, longitudes wrapping inside the file unwrapped; curvilinear:
the outline of the outer cells), the native CRS and the interval of its time cells (CF
``climatology``/``bounds`` variable, else ``[first, last]`` label, see :class:`TimeCells`). A
variable without the time dimension leaves the interval to the file name (``filename_regex``),
else it is static. Only coordinates and attributes are read, never data.

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
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyproj
import shapely
import xarray as xr

from .. import schema
from ..backends import Backend, CliOption
from ..cf import (
    ENGINES,
    NETCDF_EXTENSIONS,
    ZARR_SUFFIXES,
    Grid,
    TimeCells,
    bounds_name,
    cell_edges,
    check_engine,
    curvilinear_outline,
    grid_crs,
    grid_of,
    infer_engine,
    is_time_like,
    lonlat_kind,
    open_dataset,
    time_cells,
)
from ..errors import ArgumentError, SourceError, TimeParseError, VariableError
from ..geo import Bounds, check_lonlat_extent, crs_key, footprinter, norm_crs, ring_to_wgs84
from .common import DATE_FORMAT_OPTION, FilenameParser, build_catalog, file_stat

if TYPE_CHECKING:
    from ..catalog import Catalog


@dataclass(frozen=True)
class XarrayOptions:
    """What :func:`read_xarray_header` needs besides the path (picklable, sent to workers)."""

    variables: tuple[str, ...] | None = None
    time_var: str = "time"
    crs_wkt: str | None = None
    """WKT of the ``crs`` argument: the CRS of files that carry none."""
    engine: str | None = None


# -- headers ------------------------------------------------------------------------------------


def _box(bounds: Bounds) -> dict[str, float]:
    return dict(zip(schema.BBOX_KEYS, bounds, strict=True))


def _auxiliary(ds: xr.Dataset) -> set[Hashable]:
    """Variables that describe others rather than data: CF ``bounds``/``climatology`` variables and
    2-D longitude/latitude coordinates stored as data variables."""
    out: set[Hashable] = set()
    for name, var in ds.variables.items():
        for key in ("bounds", "climatology"):
            ref = bounds_name(ds, name, key)
            if ref is not None:
                out.add(ref)
        if name in ds.data_vars and var.ndim == 2 and lonlat_kind(var.attrs) is not None:
            out.add(name)
    return out


def _variables(ds: xr.Dataset, requested: tuple[str, ...] | None) -> list[tuple[Hashable, Grid]]:
    """(variable, grid) of the data variables to index."""
    if requested is None:
        skip = _auxiliary(ds)
        out = [(name, grid) for name in ds.data_vars if name not in skip and (grid := grid_of(ds, name)) is not None]
        if not out:
            raise VariableError(
                f"no data variable has x/y dimensions (variables: {list(ds.data_vars)}); "
                "CF axis='X'/'Y' attributes, x/y or lon/lat dimension names, or 2-D CF "
                "longitude/latitude coordinates are needed"
            )
        return out
    present = [v for v in requested if v in ds.data_vars]
    if not present:
        raise VariableError(f"none of variables={list(requested)} is in the file (it has {list(ds.data_vars)})")
    out = []
    for name in present:
        grid = grid_of(ds, name)
        if grid is None:
            raise VariableError(f"variable {name!r} has no x/y dimensions (dims {ds[name].dims})")
        out.append((name, grid))
    return out


def _grid_row(ds: xr.Dataset, grid: Grid, crs: pyproj.CRS) -> dict[str, Any]:
    """Geometry, bbox, crs and native bounds of a grid: its outer cell edges (in the CRS's units,
    latitudes clipped at ±90°) or, curvilinear, the lon/lat outline of its outer cells."""
    wkt = crs.to_wkt()
    crs_text, footprint_of = crs_key(wkt), footprinter(wkt)
    if grid.curvilinear:
        footprint = ring_to_wgs84(*curvilinear_outline(ds, grid))
        bounds = footprint.bounds
    else:
        (xmin, xmax) = cell_edges(ds, grid.x_dim, crs, "X")
        (ymin, ymax) = cell_edges(ds, grid.y_dim, crs, "Y")
        if crs.is_geographic:  # half a cell beyond a pole is fine (centre-registered grids); more is not
            cell = max((xmax - xmin) / max(ds.sizes[grid.x_dim], 1), (ymax - ymin) / max(ds.sizes[grid.y_dim], 1))
            check_lonlat_extent((xmin, ymin, xmax, ymax), tolerance=cell)
            ymin, ymax = max(ymin, -90.0), min(ymax, 90.0)
        bounds = (xmin, ymin, xmax, ymax)
        footprint = footprint_of(bounds)
    return {
        schema.GEOMETRY: shapely.to_wkb(footprint),
        schema.BBOX: _box(footprint.bounds),
        schema.CRS: crs_text,
        schema.NATIVE_BOUNDS: _box(bounds),
    }


def _time_row(
    ds: xr.Dataset, var: xr.DataArray, grid: Grid, time_var: str, cells: dict[str, TimeCells]
) -> dict[str, Any]:
    """Interval columns of a variable: from its time coordinate's cells (bounds when present), or
    none for a variable without a time dimension (the file name's interval, else static)."""
    name = var.name
    other_time = [d for d in var.dims if d not in (grid.x_dim, grid.y_dim, time_var) and is_time_like(ds, d)]
    if other_time:
        raise VariableError(
            f"variable {name!r} has the time dimension {other_time[0]!r} but "
            f"time_var={time_var!r}; pass time_var={other_time[0]!r}"
        )
    if time_var not in var.dims:
        return {"time_var": None, "n_timesteps": None}
    if time_var not in cells:
        cells[time_var] = time_cells(ds, time_var, where=f"variable {name!r}")
    c = cells[time_var]
    valid = c.overlapping(None, None)
    if valid.size == 0:
        raise TimeParseError(f"variable {name!r}: time coordinate {time_var!r} has no valid dates")
    return {
        schema.START: c.starts[valid].min(),
        schema.END: c.ends[valid].max(),
        "time_var": time_var,
        "n_timesteps": int(c.labels.size),
    }


def read_xarray_header(path: str, options: XarrayOptions) -> list[dict[str, Any]]:
    """The catalog rows (without id/filepath/backend columns) of one file: one per data variable.

    A variable without the time dimension leaves out the interval columns, so the build gives it
    the interval of the file name (``filename_regex``), or none (static).
    """
    engine = options.engine or infer_engine(path)
    size, mtime = file_stat(path)
    try:
        ds = open_dataset(path, engine)
    except (OSError, ValueError) as exc:
        raise SourceError(f"not readable with engine={engine!r}: {str(exc).splitlines()[0]}") from None
    with ds:
        rows = []
        grids: dict[tuple[Grid, str], dict[str, Any]] = {}
        cells: dict[str, TimeCells] = {}
        for name, grid in _variables(ds, options.variables):
            crs = grid_crs(ds, name, grid, options.crs_wkt)
            key = (grid, crs.to_wkt())
            if key not in grids:
                grids[key] = _grid_row(ds, grid, crs)
            row = dict(grids[key])
            row.update(_time_row(ds, ds[name], grid, options.time_var, cells))
            row.update({"variable": str(name), "engine": engine, schema.FILE_SIZE: size, schema.FILE_MTIME: mtime})
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
    filename_regex: str | None = None,
    date_format: str | None = None,
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
        filename_regex: regex searched in each file's name (as for rasters): a ``date`` group or
            ``start``/``stop`` groups give the interval of the variables *without* a time
            dimension (a variable with one keeps its time coordinate's interval); every other named
            group becomes a string column.
        date_format: ``strptime`` format of the date groups (default: inferred).
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
        variables=None if variables is None else tuple(variables),
        time_var=time_var,
        crs_wkt=None if crs is None else norm_crs(crs).to_wkt(),
        engine=check_engine(engine),
    )
    return build_catalog(
        BACKEND,
        paths,
        out_dir,
        options=options,
        parser=FilenameParser(filename_regex, date_format),
        workers=workers,
        progress=progress,
        client=client,
    )


BACKEND = Backend(
    name="xarray",
    extensions=NETCDF_EXTENSIONS,
    directory_suffixes=ZARR_SUFFIXES,
    fields=schema.BACKEND_FIELDS["xarray"],
    read_header=read_xarray_header,
    sub_key="variable",
    build=build_xarray_catalog,
    loader="geoduck.loaders.xarray:load_xarray",
    cli_options=(
        CliOption(
            ("--variables",),
            "variables",
            "Data variable to index (repeatable; default: every variable with x/y dimensions).",
            multiple=True,
        ),
        CliOption(("--time-var",), "time_var", "Name of the time dimension.", default="time", show_default=True),
        CliOption(("--crs",), "crs", "CRS of files that declare none, e.g. EPSG:32630."),
        CliOption(
            ("--engine",),
            "engine",
            "xarray engine (default: zarr for *.zarr, netcdf4 otherwise).",
            choices=ENGINES,
        ),
        CliOption(
            ("--regex",),
            "filename_regex",
            "Regex on file names: (?P<date>…) or (?P<start>…)/(?P<stop>…) date variables without a "
            "time dimension, other groups become columns.",
        ),
        DATE_FORMAT_OPTION,
    ),
    cli_help="Index NetCDF files and Zarr stores PATHS (files, globs or directories) into the catalog OUT.",
)
"""The xarray backend (registered in :mod:`geoduck.backends`)."""
