"""The ``geoduck`` command line (click), in the spirit of rasterio's ``rio``.

User mistakes print one line (``Error: …``) and exit 1; no tracebacks.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import ArgumentError, GeoduckError


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GeoduckError (and OSError: missing files, full or read-only disks) into one-line click errors."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GeoduckError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # a file system failure outside geoduck's own checks: still one line
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    return wrapper


@click.group()
@click.version_option(package_name="geoduck")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """geoduck: a DuckDB-backed SQL catalog of geospatial files."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_friendly
def demo(out_dir: Path) -> None:
    """Run the whole pipeline on a synthetic archive written to OUT_DIR."""
    from .demo import run_demo

    run_demo(out_dir, echo=click.echo)


@main.group()
def build() -> None:
    """Index files into a catalog (new parts appended to OUT)."""


@build.command("raster")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Catalog directory (created or appended to).",
)
@click.option(
    "--regex",
    "filename_regex",
    default=None,
    help="Regex on file names; (?P<date>…) or (?P<start>…)/(?P<stop>…) give time, other groups columns.",
)
@click.option("--date-format", default=None, help="strptime format of the date groups (default: auto).")
@click.option("--regex-verbose", is_flag=True, help="Compile --regex with re.VERBOSE (whitespace, # comments).")
@click.option("--exact-times", is_flag=True, help="Times of day are instants, not their second/minute.")
@click.option("--workers", type=int, default=None, help="Header-reading processes (default: all cores).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_friendly
def build_raster(
    paths: tuple[str, ...],
    out_dir: Path,
    filename_regex: str | None,
    date_format: str | None,
    regex_verbose: bool,
    exact_times: bool,
    workers: int | None,
    progress: bool,
) -> None:
    """Index raster PATHS (files, globs or directories) into the catalog OUT.

    A --regex with '/' is searched in paths relative to the scanned folder, else in file names;
    a (?P<band>…) group makes files that agree on every other group the bands of one scene."""
    from .builders.raster import build_raster_catalog

    items: str | list[str] = paths[0] if len(paths) == 1 else list(paths)
    cat = build_raster_catalog(
        items,
        out_dir,
        filename_regex=filename_regex,
        date_format=date_format,
        regex_verbose=regex_verbose,
        exact_times=exact_times,
        workers=workers,
        progress=progress,
    )
    report = cat.build_report
    click.echo(report.summary())
    for path, reason in report.errors:
        click.echo(f"skipped {path}: {reason}", err=True)
    for path in report.changed:
        click.echo(f"changed since indexed (not re-indexed): {path}", err=True)


@build.command("xarray")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Catalog directory (created or appended to).",
)
@click.option(
    "--variables",
    "variables",
    multiple=True,
    help="Data variable to index (repeatable; default: every variable with x/y dimensions).",
)
@click.option("--time-var", default="time", show_default=True, help="Name of the time dimension.")
@click.option("--crs", default=None, help="CRS of files that declare none, e.g. EPSG:32630.")
@click.option(
    "--engine",
    type=click.Choice(["netcdf4", "h5netcdf", "zarr"]),
    default=None,
    help="xarray engine (default: zarr for *.zarr, netcdf4 otherwise).",
)
@click.option(
    "--regex",
    "filename_regex",
    default=None,
    help="Regex on file names: (?P<date>…) or (?P<start>…)/(?P<stop>…) date variables without a "
    "time dimension, other groups become columns.",
)
@click.option("--date-format", default=None, help="strptime format of the date groups (default: auto).")
@click.option("--workers", type=int, default=None, help="Header-reading processes (default: all cores).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_friendly
def build_xarray(
    paths: tuple[str, ...],
    out_dir: Path,
    variables: tuple[str, ...],
    time_var: str,
    crs: str | None,
    engine: str | None,
    filename_regex: str | None,
    date_format: str | None,
    workers: int | None,
    progress: bool,
) -> None:
    """Index NetCDF files and Zarr stores PATHS (files, globs or directories) into the catalog OUT."""
    from .builders.xarray import build_xarray_catalog

    items: str | list[str] = paths[0] if len(paths) == 1 else list(paths)
    cat = build_xarray_catalog(
        items,
        out_dir,
        variables=list(variables) or None,
        time_var=time_var,
        crs=crs,
        engine=engine,
        filename_regex=filename_regex,
        date_format=date_format,
        workers=workers,
        progress=progress,
    )
    report = cat.build_report
    click.echo(report.summary())
    for path, reason in report.errors:
        click.echo(f"skipped {path}: {reason}", err=True)
    for path in report.changed:
        click.echo(f"changed since indexed (not re-indexed): {path}", err=True)


@build.command("vector")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Catalog directory (created or appended to).",
)
@click.option(
    "--regex",
    "filename_regex",
    default=None,
    help="Regex on file names; (?P<date>…) or (?P<start>…)/(?P<stop>…) give time, other groups columns.",
)
@click.option("--date-format", default=None, help="strptime format of the date groups (default: auto).")
@click.option("--regex-verbose", is_flag=True, help="Compile --regex with re.VERBOSE (whitespace, # comments).")
@click.option("--exact-times", is_flag=True, help="Times of day are instants, not their second/minute.")
@click.option("--layer", default=None, help="Index only this layer of each file (default: every layer).")
@click.option("--workers", type=int, default=None, help="Header-reading processes (default: all cores).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_friendly
def build_vector(
    paths: tuple[str, ...],
    out_dir: Path,
    filename_regex: str | None,
    date_format: str | None,
    regex_verbose: bool,
    exact_times: bool,
    layer: str | None,
    workers: int | None,
    progress: bool,
) -> None:
    """Index vector label PATHS (GeoJSON, GPKG, GeoParquet, Shapefile, FlatGeobuf) into catalog OUT."""
    from .builders.vector import build_vector_catalog

    items: str | list[str] = paths[0] if len(paths) == 1 else list(paths)
    cat = build_vector_catalog(
        items,
        out_dir,
        filename_regex=filename_regex,
        date_format=date_format,
        regex_verbose=regex_verbose,
        exact_times=exact_times,
        layer=layer,
        workers=workers,
        progress=progress,
    )
    report = cat.build_report
    click.echo(report.summary())
    for path, reason in report.errors:
        click.echo(f"skipped {path}: {reason}", err=True)
    for path in report.changed:
        click.echo(f"changed since indexed (not re-indexed): {path}", err=True)


@main.command()
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@_friendly
def info(catalog_dir: Path) -> None:
    """Rows, parts, bounds, time extent, size and schema version of a catalog."""
    from . import store
    from .catalog import open_catalog

    cat = open_catalog(catalog_dir)
    parts = store.list_parts(catalog_dir)
    versions = sorted(set(store.read_schema_versions(catalog_dir).values()))
    kind = "backend" if "backend" in cat.columns else "'pairs'"
    backends = cat.sql(f"SELECT {kind} AS backend, count(*) AS n FROM catalog GROUP BY 1 ORDER BY 1")
    t0, t1 = cat.temporal_extent
    bounds = cat.total_bounds
    click.echo(f"catalog        {Path(catalog_dir).resolve()}")
    click.echo(f"rows           {len(cat)}")
    click.echo(
        "backends       " + ", ".join(f"{b}: {n}" for b, n in zip(backends["backend"], backends["n"], strict=True))
    )
    click.echo(f"parts          {len(parts)} ({sum(p.stat().st_size for p in parts) / 1e6:.2f} MB)")
    click.echo(f"bounds         {tuple(round(v, 6) for v in bounds) if bounds else None} (EPSG:4326)")
    click.echo(f"time extent    {t0} .. {t1}")
    click.echo(f"schema version {', '.join(map(str, versions))}")


_BULKY = ("geometry", "bbox", "native_bounds", "transform")


def _emit(frame: Any, fmt: str, output: Path | None) -> None:
    """Write a (Geo)DataFrame as table/csv/geojson to ``output`` or stdout."""
    import geopandas as gpd
    import pandas as pd

    if fmt == "geojson":
        if not isinstance(frame, gpd.GeoDataFrame):
            raise ArgumentError("--format geojson needs a result with a geometry column")
        out = frame.copy()
        for name in out.columns:
            if name != out.geometry.name and str(out[name].dtype).startswith(("datetime", "timestamp")):
                out[name] = out[name].map(lambda v: None if v is None or v != v else v.isoformat())
        text = out.drop(columns=[c for c in _BULKY[1:] if c in out.columns]).to_json(drop_id=True)
    elif fmt == "csv":
        out = frame.drop(columns=[c for c in _BULKY[1:] if c in frame.columns])
        if isinstance(out, gpd.GeoDataFrame):
            out = pd.DataFrame(out).assign(**{out.geometry.name: out.geometry.to_wkt()})
        text = out.to_csv(index=False)
    else:
        shown = frame.drop(columns=[c for c in _BULKY if c in frame.columns])
        text = shown.to_string(index=False, max_rows=200, max_colwidth=60) + f"\n({len(frame)} rows)\n"
    if output is not None:
        output.write_text(text)
    else:
        click.echo(text, nl=not text.endswith("\n"))


@main.command()
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@click.option(
    "--bbox",
    nargs=4,
    type=float,
    default=None,
    metavar="XMIN YMIN XMAX YMAX",
    help="AOI bounds in --crs (default lon/lat).",
)
@click.option("--geometry", default=None, help="AOI as WKT in --crs (instead of --bbox).")
@click.option("--crs", default=None, help="CRS of the AOI, e.g. EPSG:32630 (default EPSG:4326).")
@click.option("--start", default=None, help="Interval start (date or datetime, UTC if naive).")
@click.option("--end", default=None, help="Interval end; a date-only end includes that whole day.")
@click.option("--where", "predicate", default=None, help="Extra SQL predicate on catalog columns.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "geojson", "parquet"]), default="table", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (csv/geojson/table) or catalog directory (parquet; required).",
)
@_friendly
def query(
    catalog_dir: Path,
    bbox: tuple[float, ...] | None,
    geometry: str | None,
    crs: str | None,
    start: str | None,
    end: str | None,
    predicate: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Rows of a catalog under an AOI and/or time interval."""
    from .catalog import open_catalog

    rel = open_catalog(catalog_dir).query(bbox=bbox or None, geometry=geometry, crs=crs, start=start, end=end)
    if predicate:
        rel = rel.where(predicate)
    if fmt == "parquet":
        if output is None:
            raise click.UsageError("--format parquet needs -o/--output DIR (a new catalog directory)")
        written = rel.to_parquet(output)
        click.echo(f"wrote {len(written)} rows to {output}")
        return
    _emit(rel.to_geopandas(), fmt, output)


@main.command("sql")
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@click.argument("statement")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "geojson"]), default="table", show_default=True)
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Stop the query after this many seconds (0: no limit). Ctrl-C stops it too.",
)
@click.option("--memory-limit", default=None, help="DuckDB memory limit, e.g. 2GB (default: a quarter of the RAM).")
@click.option("--threads", type=int, default=None, help="DuckDB threads (default: up to 4).")
@_friendly
def sql_command(
    catalog_dir: Path, statement: str, fmt: str, timeout: float, memory_limit: str | None, threads: int | None
) -> None:
    """Run read-only SQL over a catalog; the table is called `catalog`."""
    from .catalog import open_catalog

    frame = open_catalog(catalog_dir).sql(
        statement, timeout=timeout or None, memory_limit=memory_limit, threads=threads
    )
    _emit(frame, fmt, None)


@main.command()
@click.argument("left", type=click.Path(path_type=Path))
@click.argument("right", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--spatial-only", is_flag=True, help="Pair by footprint only, ignoring time.")
@_friendly
def intersect(left: Path, right: Path, out: Path, spatial_only: bool) -> None:
    """Write the spatiotemporal intersection of catalogs LEFT and RIGHT as catalog OUT."""
    from .catalog import open_catalog

    result = open_catalog(left).intersect(open_catalog(right), spatial_only=spatial_only).to_parquet(out)
    click.echo(f"wrote {len(result)} pairs to {out}")


@main.command()
@click.argument("left", type=click.Path(path_type=Path))
@click.argument("right", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--dedupe", is_flag=True, help="Keep one row per id (LEFT's first).")
@_friendly
def union(left: Path, right: Path, out: Path, dedupe: bool) -> None:
    """Write all rows of catalogs LEFT and RIGHT (with a `source` column) as catalog OUT."""
    from .catalog import open_catalog

    result = open_catalog(left).union(open_catalog(right), dedupe=dedupe).to_parquet(out)
    click.echo(f"wrote {len(result)} rows to {out}")


@main.command("extension-path")
def extension_path() -> None:
    """Print the DuckDB spatial extension file shipped with geoduck's environment (for LOAD)."""
    from .engine import macros_path, spatial_extension_path

    path = spatial_extension_path()
    if path is None:
        raise click.ClickException("duckdb-extension-spatial is not installed for this DuckDB version")
    click.echo(str(path))
    click.echo(f"-- macros: .read {macros_path()}", err=True)


@main.command()
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@_friendly
def compact(catalog_dir: Path) -> None:
    """Rewrite a catalog's parts as few: one Hilbert order cut into parts of at most 50,000 rows
    (atomic for geoduck readers)."""
    from .maintenance import compact as run

    report = run(catalog_dir)
    click.echo(f"{report.parts_before} parts ({report.rows} rows) -> {report.parts_after} part(s)")


@main.command()
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@_friendly
def migrate(catalog_dir: Path) -> None:
    """Rewrite parts of an older schema version as the current one."""
    from .maintenance import migrate as run

    report = run(catalog_dir)
    click.echo(f"migrated {len(report.removed)} part(s), {report.rows} rows")


@main.command()
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@_friendly
def validate(catalog_dir: Path) -> None:
    """Check every part (GeoParquet metadata, schema version, bbox, intervals, unique ids)."""
    from .validate import validate as run

    problems = run(catalog_dir)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found in {catalog_dir}")
    click.echo(f"{catalog_dir}: valid")


if __name__ == "__main__":
    main()
