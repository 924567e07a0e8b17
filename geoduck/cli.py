"""The ``geoduck`` command line (click), in the spirit of rasterio's ``rio``.

User mistakes print one line (``Error: …``) and exit 1; no tracebacks.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import ArgumentError, BuildError, GeoduckError, SQLError

if TYPE_CHECKING:
    import pyarrow as pa

# Commands import what they use inside their functions: building the command tree (and ``--help``)
# imports neither DuckDB nor the builders and loaders, and ``query``/``sql``/``info`` never import
# geopandas, rasterio or xarray for table and CSV output (see tests/test_cold_start.py).


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


_READ_ONLY_DONE: list[bool] = []
"""Holds True once a read-only command (``query``, ``sql``, ``info``) has written its output."""


def _read_only_done() -> None:
    _READ_ONLY_DONE.append(True)


def run() -> None:
    """The ``geoduck`` console script: :func:`main`; after a read-only command that succeeded
    (``query``, ``sql``, ``info``: nothing left to write) the process ends without the
    interpreter's teardown of every imported module (~0.1 s of a ~0.6 s ``geoduck query``,
    benchmarks/bench_cli.py), once its output is flushed, DuckDB's connections are closed and
    logging is shut down. Every other command, and any failure, exits normally."""
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if not (_READ_ONLY_DONE and code in (0, None)):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe (e.g. `| head`): the normal exit reports it
        sys.exit(code)
    from . import engine

    engine.close_connections()
    logging.shutdown()
    os._exit(0)


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


def _lines(stream: Any) -> list[str]:
    """The non-blank lines of a text stream that do not start with ``#``, stripped."""
    return [line.strip() for line in stream if line.strip() and not line.lstrip().startswith("#")]


def _build_command(name: str) -> click.Command:
    """``geoduck build <name>``, made from the registered backend's value: PATHS, ``-o``, the
    backend's :attr:`~geoduck.backends.Backend.cli_options`, ``--workers`` and ``--progress``."""
    from .backends import get

    backend = get(name)

    @_friendly
    def run(
        paths: tuple[str, ...],
        out_dir: Path,
        from_file: Any,
        workers: int | None,
        progress: bool,
        **options: Any,
    ) -> None:
        for opt in backend.cli_options:
            if opt.multiple:  # a repeated option not given is the builder's default (None)
                options[opt.dest] = list(options[opt.dest]) or None
        if from_file is not None:
            paths = (*paths, *_lines(from_file))
        if not paths:
            raise ArgumentError("no PATHS: give paths, URLs or globs as arguments, or a list with --from-file FILE")
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
        click.Argument(["paths"], nargs=-1),
        click.Option(
            ["-o", "--out", "out_dir"],
            required=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Catalog directory (created or appended to).",
        ),
        click.Option(
            ["--from-file", "from_file"],
            type=click.File("r", encoding="utf-8"),
            default=None,
            metavar="FILE",
            help="Also index the paths/URLs listed in FILE, one per line ('-': stdin; blank and # lines skipped).",
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


@click.command("stac")
@click.argument("source")
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Catalog directory (created or appended to).",
)
@click.option("--asset", "assets", multiple=True, help="Asset key to index (repeat; default: the raster assets).")
@click.option("--read-headers", is_flag=True, help="Read the grid of assets without proj:* fields from their headers.")
@click.option("--collection", "collections", multiple=True, help="STAC API search: collection id (repeat).")
@click.option("--bbox", nargs=4, type=float, default=None, help="STAC API search: lon/lat bbox W S E N.")
@click.option("--datetime", "datetime_", default=None, help="STAC API search: RFC 3339 datetime or interval.")
@click.option("--max-items", type=int, default=None, help="STAC API search: at most this many items.")
@click.option("--workers", type=int, default=None, help="Threads reading asset headers (with --read-headers).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_friendly
def _stac_command(
    source: str,
    out_dir: Path,
    assets: tuple[str, ...],
    read_headers: bool,
    collections: tuple[str, ...],
    bbox: tuple[float, float, float, float] | None,
    datetime_: str | None,
    max_items: int | None,
    workers: int | None,
    progress: bool,
) -> None:
    """Index STAC items of SOURCE into the catalog OUT: one raster row per item × asset.

    SOURCE is a stac-geoparquet file or folder, an Item / ItemCollection JSON file, a static
    catalog (catalog.json or its folder) or a STAC API URL (searched with the --collection,
    --bbox, --datetime and --max-items options)."""
    from .builders.stac import from_stac

    search: dict[str, Any] = {}
    if collections:
        search["collections"] = list(collections)
    if bbox:
        search["bbox"] = list(bbox)
    if datetime_:
        search["datetime"] = datetime_
    if max_items is not None:
        search["max_items"] = max_items
    cat = from_stac(
        source,
        out_dir,
        assets=list(assets) or None,
        read_headers=read_headers,
        search=search or None,
        progress=progress,
        workers=workers,
    )
    report = cat.build_report
    assert report is not None
    click.echo(report.summary().replace(" files indexed", " items indexed"))
    for item, reason in report.errors:
        click.echo(f"skipped item {item}: {reason}", err=True)
    for item in report.changed:
        click.echo(f"changed since indexed (not re-indexed): item {item}", err=True)


class _BuildGroup(click.Group):
    """One ``build`` sub-command per registered backend (see :mod:`geoduck.backends`), made when
    used so that only the backend asked for is imported, plus ``build stac`` (STAC items are a
    source of raster rows, not a kind of file)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .backends import names

        return sorted({*names(), "stac"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from .backends import names

        if cmd_name == "stac":
            return _stac_command
        return _build_command(cmd_name) if cmd_name in names() else None


@main.group(cls=_BuildGroup)
def build() -> None:
    """Index files into a catalog (new parts appended to OUT)."""


@main.command()
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@_friendly
def info(catalog_dir: Path) -> None:
    """Rows, parts, bounds, time extent, size and schema version of a catalog."""
    from sqlglot import exp

    from . import schema, store
    from .catalog import open_catalog
    from .intervals import from_epoch_us

    cat = open_catalog(catalog_dir)
    parts = store.list_parts(catalog_dir)
    versions = sorted(set(store.read_schema_versions(catalog_dir).values()))
    if schema.BACKEND in cat.columns:  # rows per backend, through the one execution path
        n = exp.alias_(exp.Count(this=exp.Star()), "n")
        table = cat.fetch(schema.BACKEND, n, group_by=[schema.BACKEND], order_by=[schema.BACKEND])
        counts = list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
    else:  # a pair catalog (intersect, difference)
        counts = [("pairs", len(cat))]
    t0, t1 = (None if v is None else from_epoch_us(v) for v in cat.temporal_extent_us())
    bounds = cat.total_bounds
    click.echo(f"catalog        {Path(catalog_dir).resolve()}")
    click.echo(f"rows           {len(cat)}")
    click.echo("backends       " + ", ".join(f"{b}: {n}" for b, n in counts))
    click.echo(f"parts          {len(parts)} ({sum(p.stat().st_size for p in parts) / 1e6:.2f} MB)")
    click.echo(f"bounds         {tuple(round(v, 6) for v in bounds) if bounds else None} (EPSG:4326)")
    click.echo(f"time extent    {t0} .. {t1}")
    click.echo(f"schema version {', '.join(map(str, versions))}")
    _read_only_done()


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


def _emit_arrow(table: pa.Table, fmt: str, output: Path | None, *, require_geometry: bool = False) -> None:
    """Write an Arrow result exactly as :func:`_emit` writes the (Geo)DataFrame of it; table and
    CSV output of a result with at most one geometry column are made without geopandas (its
    geometry as WKT through shapely, as ``GeoSeries.to_wkt`` writes it)."""
    from .catalog import _arrow_to_frame, geometry_columns

    geo_cols = geometry_columns(table)
    if require_geometry and not geo_cols:
        raise SQLError("result has no geometry column")
    names = table.column_names
    if fmt == "table" and all(c in _BULKY for c in geo_cols):
        shown = table.drop_columns([c for c in _BULKY if c in names]).to_pandas()
        text = shown.to_string(index=False, max_rows=200, max_colwidth=60) + f"\n({table.num_rows} rows)\n"
    elif fmt == "csv" and len(geo_cols) <= 1 and not set(geo_cols) & set(_BULKY[1:]):
        import shapely

        kept = [c for c in names if c not in _BULKY[1:]]
        # to_pylist: a ChunkedArray's numpy conversion of binary values goes through pandas
        wkt = {name: shapely.to_wkt(shapely.from_wkb(table[name].to_pylist())) for name in geo_cols}
        fast = _csv_text(table, kept, wkt)
        if fast is None:  # a column type whose pandas text is not reproduced by _csv_text
            frame = table.select([c for c in kept if c not in geo_cols]).to_pandas()
            for name in geo_cols:  # where GeoDataFrame.from_arrow puts it
                frame.insert(kept.index(name), name, wkt[name])
            fast = frame.to_csv(index=False)
        text = fast
    else:
        _emit(_arrow_to_frame(table, require_geometry=require_geometry), fmt, output)
        return
    if output is not None:
        output.write_text(text)
    else:
        click.echo(text, nl=not text.endswith("\n"))


_CSV_BATCH_ROWS = 65_536
"""Rows formatted at a time by :func:`_csv_text` (its Python values stay bounded)."""


def _csv_text(table: pa.Table, names: list[str], wkt: dict[str, Any]) -> str | None:
    """CSV of ``table``'s ``names`` columns (``wkt``: the text of geometry columns) exactly as
    pandas' ``to_csv`` writes the DataFrame of it, without importing pandas (the query CLI's cold
    start); None when a column has a type whose pandas text is not reproduced here."""
    import csv
    import io

    formats: dict[str, Callable[[pa.ChunkedArray], list[Any]]] = {}
    for name in names:
        if name not in wkt:
            fmt = _csv_format(table.column(name))
            if fmt is None:
                return None
            formats[name] = fmt
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for start in range(0, table.num_rows, _CSV_BATCH_ROWS):
        stop = min(start + _CSV_BATCH_ROWS, table.num_rows)
        columns = [
            list(wkt[name][start:stop]) if name in wkt else formats[name](table.column(name).slice(start, stop - start))
            for name in names
        ]
        writer.writerows(zip(*columns, strict=True))
    return out.getvalue()


def _csv_format(column: pa.ChunkedArray) -> Callable[[pa.ChunkedArray], list[Any]] | None:
    """How pandas writes a column's values to CSV (None: a type not handled), as a function of a
    slice of it: strings and booleans as they are, float64 by ``repr`` (NaN as empty), integers
    by ``str`` (by ``repr`` of the float when the column has nulls: pandas reads it as float64),
    dates ISO, UTC timestamps as ``YYYY-MM-DD HH:MM:SS[.fff|.ffffff]+00:00`` with the fewest
    fraction digits (0, 3, 6) that every value of the whole column needs; nulls empty."""
    import pyarrow as pa

    from .intervals import from_epoch_us

    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit in ("s", "ms", "us") and kind.tz in ("UTC", "Etc/UTC", "+00:00"):
        # as ints (a view: cast would load pyarrow.compute, to_pylist of zoned times pandas)
        scale = {"s": 1_000_000, "ms": 1_000, "us": 1}[kind.unit]
        fractions = set()
        for chunk in column.chunks:
            for v in chunk.view(pa.int64()).to_pylist():
                if v is not None:
                    if v * scale < _YEAR_1000_US:
                        return None  # pandas pads years to four digits, strftime does not
                    fractions.add(0 if v * scale % 1_000_000 == 0 else 3 if v * scale % 1000 == 0 else 6)
        digits = max(fractions, default=0)

        def times(part: pa.ChunkedArray) -> list[Any]:
            return [
                None
                if v is None
                else (t := from_epoch_us(v * scale)).strftime("%Y-%m-%d %H:%M:%S")
                + (f".{t.microsecond:06d}"[: digits + 1] if digits else "")
                + "+00:00"
                for chunk in part.chunks
                for v in chunk.view(pa.int64()).to_pylist()
            ]

        return times
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        return lambda part: part.to_pylist()
    if pa.types.is_date32(kind):
        return lambda part: [None if v is None else v.isoformat() for v in part.to_pylist()]
    if pa.types.is_integer(kind):
        if column.null_count == 0:
            return lambda part: part.to_pylist()
        return lambda part: [None if v is None else repr(float(v)) for v in part.to_pylist()]
    if pa.types.is_float64(kind):
        return lambda part: [None if v is None or v != v else repr(v) for v in part.to_pylist()]
    return None


_YEAR_1000_US = -30_610_224_000_000_000
"""1000-01-01T00:00:00Z in µs since 1970-01-01T00:00:00Z."""


_CATALOG_ARGUMENT = click.argument("catalog_dir", type=click.Path(path_type=Path))
_CATALOG_OPTION = click.option(
    "-c", "--catalog", "catalog_dir", required=True, type=click.Path(path_type=Path), help="Catalog to export."
)


def _query_options(catalog: Callable[[Any], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The catalog (``catalog``: its click argument or option, named ``catalog_dir``) and the query
    options (AOI, interval, predicate) of ``geoduck query`` and the ``geoduck export`` commands,
    given to the command as one argument ``rel``: the query of the catalog they select."""
    options = [
        catalog,
        click.option(
            "--bbox",
            nargs=4,
            type=float,
            default=None,
            metavar="XMIN YMIN XMAX YMAX",
            help="AOI bounds in --crs (default lon/lat).",
        ),
        click.option("--geometry", default=None, help="AOI as WKT in --crs (instead of --bbox)."),
        click.option("--crs", default=None, help="CRS of the AOI, e.g. EPSG:32630 (default EPSG:4326)."),
        click.option("--start", default=None, help="Interval start (date or datetime, UTC if naive)."),
        click.option("--end", default=None, help="Interval end; a date-only end includes that whole day."),
        click.option("--where", "predicate", default=None, help="Extra SQL predicate on catalog columns."),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def command(
            *,
            catalog_dir: Path,
            bbox: tuple[float, ...] | None,
            geometry: str | None,
            crs: str | None,
            start: str | None,
            end: str | None,
            predicate: str | None,
            **kwargs: Any,
        ) -> Any:
            from .catalog import open_catalog

            rel = open_catalog(catalog_dir).query(bbox=bbox or None, geometry=geometry, crs=crs, start=start, end=end)
            return fn(rel=rel.where(predicate) if predicate else rel, **kwargs)

        wrapped = _friendly(command)  # (the catalog opens here, so its errors need the same one-line form)
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped

    return decorate


@main.command()
@_query_options(_CATALOG_ARGUMENT)
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
def query(rel: Any, fmt: str, output: Path | None, explain: bool) -> None:
    """Rows of a catalog under an AOI and/or time interval."""
    if explain:
        click.echo(str(rel.explain()))
    elif fmt == "parquet":
        if output is None:
            raise click.UsageError("--format parquet needs -o/--output DIR (a new catalog directory)")
        written = rel.to_parquet(output)
        click.echo(f"wrote {len(written)} rows to {output}")
        return  # (wrote a catalog: the normal exit)
    else:
        _emit_arrow(rel.to_arrow(), fmt, output, require_geometry=True)
    _read_only_done()


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
    from . import sandbox
    from .catalog import open_catalog, run_user_sql_arrow

    relations = {"catalog": open_catalog(catalog_dir).node}  # as Catalog.sql, as Arrow
    table = run_user_sql_arrow(statement, relations, sandbox.limits(timeout or None, memory_limit, threads))
    _emit_arrow(table, fmt, None)
    _read_only_done()


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


@main.group()
def export() -> None:
    """Hand a catalog (or a query of it) to other tools: STAC, GDAL GTI mosaics."""


@export.command("stac")
@click.argument("out", type=click.Path(path_type=Path))
@_query_options(_CATALOG_OPTION)
@click.option(
    "--collection-id", default=None, help="Collection id (default: the `collection` column, else the catalog name)."
)
@click.option(
    "--relative-hrefs", is_flag=True, help="Asset hrefs relative to each item file (default: absolute paths)."
)
@click.option(
    "--collection-href",
    default=None,
    help="stac-geoparquet: where the collection JSON lives ({collection}: its id); items then name their collection.",
)
@click.option("--static-datetime", default=None, help="Datetime given to static rows (STAC items need one).")
def export_stac(
    out: Path,
    rel: Any,
    collection_id: str | None,
    relative_hrefs: bool,
    collection_href: str | None,
    static_datetime: str | None,
) -> None:
    """Write catalog rows as STAC: a static catalog in folder OUT (pystac; one collection, one
    item per scene, one asset per band file), or stac-geoparquet when OUT ends in .parquet."""
    if out.suffix.lower() in (".parquet", ".geoparquet"):
        if relative_hrefs:
            raise click.UsageError("--relative-hrefs applies to static catalogs, not stac-geoparquet")
        written = rel.to_stac_geoparquet(
            out, collection_id=collection_id, collection_href=collection_href, static_datetime=static_datetime
        )
    else:
        if collection_href is not None:
            raise click.UsageError("--collection-href applies to stac-geoparquet (OUT ending in .parquet)")
        written = rel.to_stac(
            out, collection_id=collection_id, relative_hrefs=relative_hrefs, static_datetime=static_datetime
        )
    click.echo(f"wrote {written}")


@export.command("gti")
@click.argument("out", type=click.Path(path_type=Path))
@_query_options(_CATALOG_OPTION)
@click.option("--srs", default=None, help="Mosaic SRS (needed when the rows are in several CRSs).")
@click.option("--resolution", type=float, nargs=2, default=None, metavar="RESX RESY", help="Pixel size in --srs units.")
@click.option("--nodata", type=float, default=None, help="Mosaic nodata (needed when the rows' nodata differ).")
def export_gti(
    out: Path,
    rel: Any,
    srs: str | None,
    resolution: tuple[float, float] | None,
    nodata: float | None,
) -> None:
    """Write a GDAL GTI tile index OUT (.gti.gpkg): one virtual mosaic for GDAL, rasterio and QGIS,
    the latest acquisition on top."""
    written = rel.to_gti(out, srs=srs, resolution=resolution or None, nodata=nodata)
    click.echo(f"wrote {written}")


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


@main.command("duckdb")
@click.argument("catalogs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Database file to write.")
@click.option("--name", "names", multiple=True, help="View name of each catalog, in order (default: folder name).")
@_friendly
def duckdb_command(catalogs: tuple[Path, ...], out: Path, names: tuple[str, ...]) -> None:
    """Write a DuckDB database file of live views over CATALOGS (rows, footprints as GEOMETRY,
    monthly and per-backend counts) and geoduck's macros, for BI tools; new parts appear without
    regenerating it."""
    from .database import write_duckdb

    path = write_duckdb(catalogs, out, names=names or None)
    click.echo(str(path))


@main.command("import")
@click.argument("table", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Catalog folder.")
@click.option(
    "--column",
    "column_map",
    multiple=True,
    metavar="CATALOG=SOURCE",
    help="Map a catalog column onto a source column, e.g. id=scene (repeatable).",
)
@click.option("--layer", default=None, help="Layer of a multi-layer source (GeoPackage …).")
@click.option("--crs", default=None, help="CRS of the source geometries (needed for a CSV).")
@click.option("--backend", default="raster", show_default=True, help="Backend of every row (unless mapped).")
@click.option("--static", is_flag=True, help="Rows without time (valid at all times).")
@_friendly
def import_command(
    table: Path,
    out_dir: Path,
    column_map: tuple[str, ...],
    layer: str | None,
    crs: str | None,
    backend: str,
    static: bool,
) -> None:
    """Adopt a foreign footprint table (GeoParquet, GeoPackage, FlatGeobuf, CSV with WKT …) as
    catalog rows appended to OUT; rows whose id OUT already holds are skipped."""
    from .foreign import import_table, parse_column_options

    cat = import_table(
        table, out_dir, columns=parse_column_options(column_map), layer=layer, crs=crs, backend=backend, static=static
    )
    report = cat.build_report
    assert report is not None
    click.echo(f"{report.indexed} rows imported, {report.unchanged} already in {out_dir}, {len(report.parts)} part(s)")


@main.command()
@click.argument("catalog_dir", type=click.Path(path_type=Path))
@_friendly
def validate(catalog_dir: Path) -> None:
    """Check every part, whoever wrote it (columns and types, GeoParquet metadata, schema version,
    bbox, intervals, unique ids): one line per finding with the fix; exit 1 on errors."""
    from .validate import errors
    from .validate import validate as run

    problems = run(catalog_dir)
    for problem in problems:
        click.echo(str(problem))
    bad = errors(problems)
    if bad:
        raise click.ClickException(f"{len(bad)} problem(s) found in {catalog_dir}")
    warned = f" ({len(problems)} warning(s))" if problems else ""
    click.echo(f"{catalog_dir}: valid{warned}")


if __name__ == "__main__":
    main()
