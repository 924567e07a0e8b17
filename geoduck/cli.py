"""The ``geoduck`` command line (click), in the spirit of rasterio's ``rio``.

User mistakes print one line (``Error: …``) and exit 1; no tracebacks.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import ArgumentError, BuildError, GeoduckError


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


def _build_command(name: str) -> click.Command:
    """``geoduck build <name>``, made from the registered backend's value: PATHS, ``-o``, the
    backend's :attr:`~geoduck.backends.Backend.cli_options`, ``--workers`` and ``--progress``."""
    from .backends import get

    backend = get(name)

    @_friendly
    def run(paths: tuple[str, ...], out_dir: Path, workers: int | None, progress: bool, **options: Any) -> None:
        for opt in backend.cli_options:
            if opt.multiple:  # a repeated option not given is the builder's default (None)
                options[opt.dest] = list(options[opt.dest]) or None
        items: str | list[str] = paths[0] if len(paths) == 1 else list(paths)
        cat = backend.build(items, out_dir, workers=workers, progress=progress, **options)
        report = cat.build_report
        if report is None:
            raise BuildError(f"backend {name!r} returned a catalog without a build report")
        click.echo(report.summary())
        for path, reason in report.errors:
            click.echo(f"skipped {path}: {reason}", err=True)
        for path in report.changed:
            click.echo(f"changed since indexed (not re-indexed): {path}", err=True)

    params: list[click.Parameter] = [
        click.Argument(["paths"], nargs=-1, required=True),
        click.Option(
            ["-o", "--out", "out_dir"],
            required=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Catalog directory (created or appended to).",
        ),
    ]
    for opt in backend.cli_options:
        params.append(
            click.Option(
                [*opt.flags, opt.dest],
                default=opt.default,
                is_flag=opt.is_flag,
                multiple=opt.multiple,
                type=click.Choice(list(opt.choices)) if opt.choices is not None else None,
                show_default=opt.show_default,
                help=opt.help,
            )
        )
    params += [
        click.Option(["--workers"], type=int, default=None, help="Header-reading processes (default: all cores)."),
        click.Option(["--progress/--no-progress"], default=True, show_default=True),
    ]
    return click.Command(name, callback=run, params=params, help=inspect.cleandoc(backend.cli_help))


class _BuildGroup(click.Group):
    """One ``build`` sub-command per registered backend (see :mod:`geoduck.backends`), made when
    used so that only the backend asked for is imported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .backends import names

        return sorted(names())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from .backends import names

        return _build_command(cmd_name) if cmd_name in names() else None


@main.group(cls=_BuildGroup)
def build() -> None:
    """Index files into a catalog (new parts appended to OUT)."""


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
@click.option(
    "--explain",
    is_flag=True,
    help="Run the query and report what it read (parts, row groups, rows, bytes, time per stage) instead of rows.",
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
    explain: bool,
) -> None:
    """Rows of a catalog under an AOI and/or time interval."""
    from .catalog import open_catalog

    rel = open_catalog(catalog_dir).query(bbox=bbox or None, geometry=geometry, crs=crs, start=start, end=end)
    if predicate:
        rel = rel.where(predicate)
    if explain:
        click.echo(str(rel.explain()))
        return
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
