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

from .errors import GeoduckError


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GeoduckError (and missing files) into one-line click errors."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GeoduckError as exc:
            raise click.ClickException(str(exc)) from None

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
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Catalog directory (created or appended to).")
@click.option("--regex", "filename_regex", default=None,
              help="Regex on file names; (?P<date>…) or (?P<start>…)/(?P<stop>…) give time, other groups columns.")
@click.option("--date-format", default=None, help="strptime format of the date groups (default: auto).")
@click.option("--workers", type=int, default=None, help="Header-reading processes (default: all cores).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_friendly
def build_raster(paths: tuple[str, ...], out_dir: Path, filename_regex: str | None,
                 date_format: str | None, workers: int | None, progress: bool) -> None:
    """Index raster PATHS (files, globs or directories) into the catalog OUT."""
    from .builders.raster import build_raster_catalog

    items: str | list[str] = paths[0] if len(paths) == 1 else list(paths)
    cat = build_raster_catalog(items, out_dir, filename_regex=filename_regex, date_format=date_format,
                               workers=workers, progress=progress)
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
    backends = cat.sql("SELECT backend, count(*) AS n FROM catalog GROUP BY backend ORDER BY backend")
    t0, t1 = cat.temporal_extent
    bounds = cat.total_bounds
    click.echo(f"catalog        {Path(catalog_dir).resolve()}")
    click.echo(f"rows           {len(cat)}")
    click.echo("backends       " + ", ".join(f"{b}: {n}" for b, n in zip(backends["backend"], backends["n"], strict=True)))
    click.echo(f"parts          {len(parts)} ({sum(p.stat().st_size for p in parts) / 1e6:.2f} MB)")
    click.echo(f"bounds         {tuple(round(v, 6) for v in bounds) if bounds else None} (EPSG:4326)")
    click.echo(f"time extent    {t0} .. {t1}")
    click.echo(f"schema version {', '.join(map(str, versions))}")
