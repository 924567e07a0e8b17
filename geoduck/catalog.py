"""The user-facing :class:`Catalog`: an immutable, lazy relation over catalog rows.

``query`` returns a new relation; nothing runs until rows are asked for (``len()``, iteration,
``to_arrow()``, ``to_geopandas()``). Footprints and bboxes are lon/lat EPSG:4326.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa
import shapely
from shapely.geometry import MultiPolygon
from sqlglot import exp

from . import compiler, engine, joins, remote, sandbox, schema, store
from .errors import ArgumentError, GeoduckError, JoinError, QueryError, SQLError, StorageError
from .expr import (
    Difference,
    Intersect,
    Join,
    JoinPlan,
    Node,
    Pad,
    Scan,
    SpatialFilter,
    TimeFilter,
    Union,
    Where,
    user_tables,
)
from .geo import aoi_to_wgs84, wgs84
from .intervals import TimeLike, padding_micros, query_bounds
from .report import BuildReport

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from .explain import Explain
    from .slices import GeoSlice

log = logging.getLogger(__name__)


def open_catalog(path: str | os.PathLike[str], *, build_report: BuildReport | None = None) -> Catalog:
    """Open the catalog directory at ``path`` (a folder of GeoParquet parts).

    ``path`` may be a ``file://`` URI, or an ``s3://``, ``gs://``, ``https://`` … URI read through
    DuckDB's httpfs extension (see :mod:`geoduck.remote`; :class:`~geoduck.errors.ExtensionError`
    says what to install when it is missing).

    Raises :class:`~geoduck.errors.CatalogNotFoundError` if it has no parts and
    :class:`~geoduck.errors.SchemaError` if a part has an unreadable schema version.
    """
    location = store.local_path(path)
    if remote.is_uri(location):
        return Catalog(Scan(remote.open_root(os.fspath(location))), build_report=build_report)
    root = store.require_catalog(location)
    store.check_schema_versions(root)
    return Catalog(Scan(str(root)), build_report=build_report)


class Catalog:
    """A lazy, immutable relation over catalog rows (see module docstring)."""

    __slots__ = ("_node", "_name", "build_report")

    def __init__(self, node: Node, *, name: str | None = None, build_report: BuildReport | None = None) -> None:
        self._node = node
        self._name = name
        self.build_report = build_report
        """What the build that returned this catalog did (None for other relations)."""

    def _derive(self, node: Node) -> Catalog:
        return Catalog(node, name=self._name)

    @property
    def name(self) -> str:
        """Name used in ``union``'s ``source`` column: given with :meth:`named`, else the
        catalog directory's name."""
        if self._name is not None:
            return self._name
        root = _root_of(self._node)
        return os.path.basename(root.rstrip("/")) if root else "relation"

    def named(self, name: str) -> Catalog:
        """The same relation under another name (see :attr:`name`)."""
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"name must be a non-empty string, got {name!r}")
        return Catalog(self._node, name=name)

    @property
    def columns(self) -> list[str]:
        """Column names of this relation (asks DuckDB to bind the SQL; reads only metadata)."""
        return _columns(self._node)

    # -- relational API -------------------------------------------------------------------------
    @property
    def node(self) -> Node:
        return self._node

    def query(
        self, bbox: Any = None, geometry: Any = None, crs: Any = None, start: TimeLike = None, end: TimeLike = None
    ) -> Catalog:
        """Rows intersecting an AOI and/or overlapping a time interval (lazy).

        Args:
            bbox: (xmin, ymin, xmax, ymax) in ``crs``.
            geometry: shapely geometry, WKT or GeoJSON-like mapping in ``crs`` (instead of bbox).
            crs: CRS of the AOI; default EPSG:4326 lon/lat. The AOI is densified and reprojected
                to lon/lat by geoduck.
            start, end: closed interval bounds; a date-only ``end`` includes that whole day.
                Static rows match every interval.
        """
        node = self._node
        if bbox is not None or geometry is not None:
            aoi = aoi_to_wgs84(bbox, geometry, crs)
            polys = list(aoi.geoms) if isinstance(aoi, MultiPolygon) else [aoi]
            node = SpatialFilter(node, shapely.to_wkb(aoi), tuple(p.bounds for p in polys))
        elif crs is not None:
            raise ArgumentError("crs= is given without bbox= or geometry=")
        t0, t1 = query_bounds(start, end)
        if t0 is not None or t1 is not None:
            node = TimeFilter(node, t0, t1)
        return self._derive(node)

    def where(self, predicate: str) -> Catalog:
        """Rows satisfying a SQL predicate over this relation's columns, e.g.
        ``"cloud_cover < 20 AND tile = 'T29SND'"``.

        The predicate is parsed by sqlglot and checked: one expression, only this relation's
        column names, no subqueries, no table functions; else :class:`SQLError` naming the token.
        """
        tree = compiler.parse_predicate(predicate, self.columns)
        try:
            with compiler.parser_stack():
                rendered = tree.sql(dialect=compiler.DIALECT)
            described = execute(
                self._node,
                lambda: compiler.aggregate(self._node, exp.alias_(tree.copy(), "_p")),
                _describe,
                error=lambda reason: SQLError(f"predicate {predicate[:200]!r} is invalid: {reason}"),
            )
        except RecursionError:
            raise SQLError(f"predicate {predicate[:200]!r} is nested too deeply: simplify it") from None
        kind = described[0][1] if len(described) == 1 else f"{len(described)} columns"
        if kind != "BOOLEAN":
            raise SQLError(f"predicate {predicate!r} is {kind}, not a condition (e.g. \"tile = 'X'\")")
        return self._derive(Where(self._node, rendered))

    def with_interval_padding(self, before: Any = None, after: Any = None) -> Catalog:
        """Intervals widened to ``[start - before, end + after]`` for loose temporal pairing, e.g.
        ``sar.with_interval_padding(before=timedelta(days=3), after="3D")``. Static rows stay static.

        ``before``/``after``: timedeltas (``datetime.timedelta``, ``pandas.Timedelta``,
        ``numpy.timedelta64`` with a unit) or strings with a unit (``"3D"``, ``"12h"``), whole
        microseconds, non-negative. A bare number has no unit and is refused (``ArgumentError``).
        """
        return self._derive(
            Pad(self._node, padding_micros(before, argument="before"), padding_micros(after, argument="after"))
        )

    def intersect(self, other: Catalog, *, spatial_only: bool = False) -> Catalog:
        """Pairs of rows whose footprints intersect and, unless ``spatial_only``, whose intervals
        overlap (a static row overlaps every interval).

        Each result row: ``id`` = ``left_id|right_id``, ``geometry`` = the footprints' intersection,
        its ``bbox``, interval ``[max(starts), min(ends)]`` (with ``spatial_only`` and disjoint
        intervals: their hull), then every other column as ``left_<name>`` / ``right_<name>``
        (the two footprints themselves are not repeated; join on ``left_id``/``right_id``).
        Runs as DuckDB hash joins on (time bucket, grid cell) keys, never a Python loop.
        """
        _check_other(other, "intersect")
        plan = join_plan(self._node, other._node, spatial_only)
        return Catalog(
            Intersect(self._node, other._node, spatial_only, plan, tuple(self.columns), tuple(other.columns))
        )

    def difference(self, other: Catalog, *, spatial_only: bool = False) -> Catalog:
        """Rows of this relation that no row of ``other`` intersects (in space and, unless
        ``spatial_only``, time), e.g. imagery without labels."""
        _check_other(other, "difference")
        plan = join_plan(self._node, other._node, spatial_only)
        return self._derive(Difference(self._node, other._node, spatial_only, plan))

    def union(self, other: Catalog, *, dedupe: bool = False) -> Catalog:
        """All rows of both (``UNION ALL BY NAME``: columns missing on one side are null), with a
        ``source`` column holding each input's :attr:`name`; ``dedupe`` keeps the first row of
        each ``id`` (this relation's before ``other``'s)."""
        _check_other(other, "union")
        left_cols, right_cols = self.columns, other.columns
        taken = {c.lower() for c in (*left_cols, *right_cols)}  # DuckDB names are case-insensitive
        order_column = "_ord"
        while order_column in taken:
            order_column = f"_{order_column}"
        return Catalog(
            Union(
                self._node,
                other._node,
                self.name,
                other.name,
                "source" in {c.lower() for c in left_cols},
                "source" in {c.lower() for c in right_cols},
                dedupe,
                order_column,
            ),
            name=f"{self.name}+{other.name}",
        )

    def join(self, table: Any, on: str | Sequence[str] = "id", how: str = "inner") -> Catalog:
        """This relation's rows with the columns of a user ``table`` (lazy: joined in the same
        DuckDB query as everything else), e.g. a train/val split, a block label or model scores
        per ``id``.

        Args:
            table: a pandas DataFrame (keys may be a named index), a GeoDataFrame (its geometry
                column is dropped: rows keep the catalog's footprints) or a pyarrow Table.
            on: key column(s), present in both; the table's keys must be non-null and unique,
                so no catalog row is ever repeated.
            how: ``"inner"`` (only rows with a match) or ``"left"`` (every row; the table's
                columns NULL where none matches).

        The table's other columns are added after this relation's, and must not clash with them
        (rename them). It is held in memory and read by DuckDB in place (never written into
        the SQL text). Raises :class:`~geoduck.errors.JoinError` (see :mod:`geoduck.joins`).
        """
        if how not in joins.HOWS:
            raise JoinError(f"how= must be one of {joins.HOWS}, got {how!r}")
        keys = joins.keys_of(on)
        arrow = joins.to_arrow(table, keys)
        catalog = execute(self._node, lambda: compiler.select(self._node), _describe)
        columns = joins.check(arrow, keys, [(r[0], str(r[1])) for r in catalog])
        return self._derive(Join(self._node, joins.user_table(arrow), keys, how, columns))

    # -- SQL ------------------------------------------------------------------------------------
    @property
    def sql_text(self) -> str:
        """The DuckDB SQL this relation runs."""
        return compiler.to_sql(self._node)

    def explain(self) -> Explain:
        """Run this relation once and report what it read: parts in the catalog / pruned by
        geoduck / opened, row groups total / read, rows scanned / returned, bytes read, and the
        time of each stage (bind, compile, execute, fetch); see :mod:`geoduck.explain`."""
        from .explain import explain

        return explain(self._node)

    def plan(self, analyze: bool = False) -> str:
        """DuckDB's physical plan (``EXPLAIN`` / ``EXPLAIN ANALYZE``) of this relation."""
        rows = execute(
            self._node, lambda: compiler.select(self._node), lambda sql: _fetch_all(compiler.explain(sql, analyze))
        )
        return "\n".join(str(r[-1]) for r in rows)

    def sql(
        self,
        query: str,
        *,
        timeout: float | None = sandbox.DEFAULT_TIMEOUT_S,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> pd.DataFrame | gpd.GeoDataFrame:
        """Run read-only SQL in which the table ``catalog`` is this relation.

        Returns a GeoDataFrame when the result has a geometry column, else a DataFrame. The query
        runs in the sandbox of :mod:`geoduck.sandbox` (the catalog's part files read-only,
        nothing else readable or writable), stopped after ``timeout`` seconds (None: never) or
        by Ctrl-C, with DuckDB's ``memory_limit`` (e.g. ``"2GB"``; default a quarter of the RAM)
        and ``threads``; a refused, failed, timed-out or interrupted query raises :class:`SQLError`.
        """
        return _run_user_sql(query, {"catalog": self._node}, sandbox.limits(timeout, memory_limit, threads))

    # -- results --------------------------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        """All rows as an Arrow table (``geometry`` as GeoArrow WKB with its CRS)."""
        return execute(self._node, lambda: compiler.select(self._node))

    def to_parquet(self, path: str | os.PathLike[str], *, part_rows: int = store.MAX_PART_ROWS) -> Catalog:
        """Write this relation's rows as a new catalog (GeoParquet 1.1 parts, bbox covering) at
        ``path``; returns it opened. Rows are streamed in chunks of about 10^6, each Hilbert-sorted
        and cut into parts of ``part_rows`` rows (a chunk's last part: the rest)."""
        target = os.fspath(path)
        if os.path.isdir(target) and store.list_parts(target):
            raise ArgumentError(f"{target!r} already holds a catalog; choose an empty directory")
        if not isinstance(part_rows, int) or part_rows < 1:
            raise ArgumentError(f"part_rows={part_rows!r} must be a positive integer")
        chunk_rows = part_rows * max(1, _SORT_CHUNK_ROWS // part_rows)
        reader = execute(self._node, lambda: compiler.select(self._node), fetch_reader(min(chunk_rows, 100_000)))
        batches: list[pa.RecordBatch] = []
        rows = 0
        parts: list[os.PathLike[str]] = []
        try:
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows >= chunk_rows:
                    pending = pa.Table.from_batches(batches, schema=reader.schema)
                    parts += _write_chunk(pending.slice(0, chunk_rows), target, part_rows)
                    rest = pending.slice(chunk_rows)
                    batches, rows = rest.to_batches(), rest.num_rows
            if rows:
                parts += _write_chunk(pa.Table.from_batches(batches, schema=reader.schema), target, part_rows)
        except StorageError as exc:  # disk full, read-only …: no partial catalog is left
            for part in parts:
                with contextlib.suppress(OSError):
                    os.unlink(part)
            raise StorageError(f"{exc}; nothing was kept") from None
        if not parts:
            raise ArgumentError("the relation has no rows: nothing to write")
        return open_catalog(target)

    def to_stac_geoparquet(
        self,
        path: str | os.PathLike[str],
        *,
        collection_id: str | None = None,
        collection_href: str | None = None,
        static_datetime: Any = None,
    ) -> Path:
        """Write this relation as stac-geoparquet (one STAC Item per scene, one Asset per band file)
        with the ``stac_geoparquet`` library; see :func:`geoduck.stac_export.to_stac_geoparquet`.
        Returns ``path``."""
        from .stac_export import to_stac_geoparquet

        return to_stac_geoparquet(
            self,
            path,
            collection_id=collection_id,
            collection_href=collection_href,
            static_datetime=static_datetime,
        )

    def to_stac(
        self,
        out_dir: str | os.PathLike[str],
        *,
        collection_id: str | None = None,
        relative_hrefs: bool = False,
        static_datetime: Any = None,
    ) -> Path:
        """Write this relation as a static STAC catalog (a Collection of Items) with pystac, atomically;
        see :func:`geoduck.stac_export.to_stac`. Returns the root JSON file."""
        from .stac_export import to_stac

        return to_stac(
            self, out_dir, collection_id=collection_id, relative_hrefs=relative_hrefs, static_datetime=static_datetime
        )

    def to_gti(
        self,
        path: str | os.PathLike[str],
        *,
        srs: Any = None,
        resolution: float | tuple[float, float] | None = None,
        nodata: float | None = None,
    ) -> Path:
        """Write this relation's rasters as a GDAL GTI tile index (``.gti.gpkg``) that GDAL, rasterio
        and QGIS open as one mosaic, latest acquisition on top; see :mod:`geoduck.gti`."""
        from .gti import to_gti

        return to_gti(self, path, srs=srs, resolution=resolution, nodata=nodata)

    def to_geopandas(self) -> gpd.GeoDataFrame:
        """All rows as a GeoDataFrame in EPSG:4326."""
        return _arrow_to_frame(self.to_arrow(), require_geometry=True)

    def slices(self, resolution: float | tuple[float, float] | None = None, crs: Any = "native") -> list[GeoSlice]:
        """One :class:`~geoduck.GeoSlice` per row, on the row's own grid (native CRS, bounds, pixel
        size and interval; see :meth:`GeoSlice.from_row` for the rules, ``resolution`` and
        ``crs``), in ``id`` order: per-file outputs (e.g. a cloud mask aligned to its input file)
        need no hand conversion of the lon/lat ``geometry``.
        """
        from .slices import GeoSlice

        wanted = (
            schema.ID,
            schema.BACKEND,
            schema.CRS,
            schema.NATIVE_BOUNDS,
            "res_x",
            "res_y",
            schema.START,
            schema.END,
        )
        columns = self.columns
        table = self.fetch(*[c for c in wanted if c in columns], order_by=[schema.ID] if schema.ID in columns else ())
        return [GeoSlice.from_row(row, resolution=resolution, crs=crs) for row in table.to_pylist()]

    def __len__(self) -> int:
        row = execute(self._node, lambda: compiler.aggregate(self._node, exp.Count(this=exp.Star())), fetch_one)
        return int(row[0])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts (``geometry`` as a shapely geometry), converted batch by batch from one
        consistent Arrow result (:meth:`to_arrow`: exact rows even while a compaction runs)."""
        for batch in self.to_arrow().to_batches(10_000):
            rows = batch.to_pylist()
            geoms = shapely.from_wkb([r[schema.GEOMETRY] for r in rows]) if rows else []
            for row, g in zip(rows, geoms, strict=True):
                row[schema.GEOMETRY] = g
                yield row

    @property
    def total_bounds(self) -> tuple[float, float, float, float] | None:
        """(xmin, ymin, xmax, ymax) lon/lat of all footprints; None when empty."""
        mins = [exp.Min(this=compiler.bbox_field(k)) for k in ("xmin", "ymin")]
        maxs = [exp.Max(this=compiler.bbox_field(k)) for k in ("xmax", "ymax")]
        row = execute(self._node, lambda: compiler.aggregate(self._node, *mins, *maxs), fetch_one)
        return None if row[0] is None else (row[0], row[1], row[2], row[3])

    @property
    def temporal_extent(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """(earliest start, latest end) in UTC over dated rows; (None, None) if all are static."""
        import pandas as pd

        t0, t1 = (None if v is None else pd.Timestamp(v, unit="us", tz="UTC") for v in self.temporal_extent_us())
        return t0, t1

    def temporal_extent_us(self) -> tuple[int | None, int | None]:
        """:attr:`temporal_extent` as µs since 1970-01-01T00:00:00Z (read without pandas)."""
        bounds = (exp.Min(this=compiler.col(schema.START)), exp.Max(this=compiler.col(schema.END)))
        micros = [exp.Anonymous(this="epoch_us", expressions=[b]) for b in bounds]
        row = execute(self._node, lambda: compiler.aggregate(self._node, *micros), fetch_one)
        return row[0], row[1]

    # -- the one execution path (see execute) ----------------------------------------------------
    def fetch(
        self,
        *columns: str | exp.Expr,
        where: exp.Expr | None = None,
        order_by: Sequence[str | exp.Expr] = (),
        distinct: bool = False,
        group_by: Sequence[str | exp.Expr] = (),
    ) -> pa.Table:
        """Run ``SELECT [DISTINCT] <columns> FROM <this relation> [WHERE …] [GROUP BY …] [ORDER BY …]``
        now and return the rows as an Arrow table: the read that loaders, samplers, the CLI and
        other modules use.

        ``columns``/``order_by``/``group_by``: column names or sqlglot expressions (``exp.Ordered``
        for ``DESC``/``NULLS FIRST``, aggregates such as ``exp.Count``); ``where``: a sqlglot
        condition over this relation's columns.
        Compiled again while compactions replace the parts it reads; a failure raises
        :class:`QueryError` (see :func:`execute`).
        """
        if not columns:
            raise ArgumentError("fetch() needs at least one column, e.g. fetch('id', 'filepath')")

        def build() -> exp.Select:
            select = compiler.aggregate(self._node, *(_column(c) for c in columns))
            if where is not None:
                select = select.where(where.copy())
            if distinct:
                select = select.distinct()
            if group_by:
                select = select.group_by(*(_column(c) for c in group_by))
            return select.order_by(*(_column(c) for c in order_by)) if order_by else select

        return execute(self._node, build)

    def __repr__(self) -> str:
        root = _root_of(self._node)
        return f"<geoduck.Catalog {type(self._node).__name__} over {root!r}>"


# == The one execution path ========================================================================
# Every read of catalog rows runs through :func:`execute`: the relation's methods, loaders,
# samplers, the join planner and maintenance (through :meth:`Catalog.fetch` or directly). It
# compiles the SQL afresh and runs it again while compactions replace the parts it reads
# (:func:`read_consistently`), and raises DuckDB/Arrow failures as one :class:`QueryError`. The
# ``_fetch_*`` runners below are the only code that hands catalog SQL to DuckDB; user SQL runs in
# :mod:`geoduck.sandbox` instead.

T = TypeVar("T")


def _column(column: str | exp.Expr) -> exp.Expr:
    """A column name as a (quoted) column, or a copy of a sqlglot expression."""
    return compiler.col(column) if isinstance(column, str) else column.copy()


def _fetch_arrow(sql: str) -> pa.Table:
    return engine.fetch_arrow(sql)


def fetch_one(sql: str) -> tuple:
    """A runner for :func:`execute`: the first result row."""
    row = engine.cursor().execute(sql).fetchone()
    if row is None:
        raise QueryError(f"query returned no rows: {sql}")
    return row


def _fetch_all(sql: str) -> list[tuple]:
    return engine.cursor().execute(sql).fetchall()


def _describe(sql: str) -> list[tuple]:
    """DuckDB's ``DESCRIBE`` of a query: (name, type, …) per result column (reads only metadata)."""
    return _fetch_all(compiler.describe(sql))


def fetch_reader(batch_rows: int) -> Callable[[str], pa.RecordBatchReader]:
    """A runner for :func:`execute` that streams the result in Arrow batches of ``batch_rows`` rows
    (only running the query is retried and checked, not the later reading of its batches)."""

    def run(sql: str) -> pa.RecordBatchReader:
        return engine.cursor().execute(sql).to_arrow_reader(batch_rows)

    return run


def execute(
    node: Node,
    build: Callable[[], exp.Expr],
    run: Callable[[str], T] = _fetch_arrow,
    *,
    error: Callable[[str], GeoduckError] | None = None,
) -> T:
    """``run`` the SQL of the tree that ``build`` compiles afresh over the relation ``node``; the
    only way geoduck reads catalog rows.

    Retry policy: while compactions replace the parts it reads, it is compiled and run again (see
    :func:`read_consistently`). Error policy: geoduck's own errors propagate; a DuckDB or Arrow
    failure (a broken part, a bad value at run time …) raises :class:`QueryError` naming the
    relation, or ``error(reason)`` when given (``reason``: the first line of DuckDB's message).
    ``run``: the whole result as an Arrow table by default (see also :func:`fetch_reader`).
    """
    try:
        with engine.registered(user_tables(node)):  # user tables joined in: on each cursor
            return read_consistently(_scan_roots(node), lambda: run(compiler.render(build())))
    except GeoduckError:
        raise
    except READ_ERRORS as exc:
        reason = _first_line(exc)
        if error is not None:
            raise error(reason) from None
        raise QueryError(f"query over {Catalog(node)!r} failed: {reason}") from None


READ_ERRORS = (duckdb.Error, OSError, pa.ArrowException)
"""What a read of catalog parts raises when a part vanishes under it, whatever the message:
DuckDB's own errors, and pyarrow's ``OSError`` from a streamed Arrow result."""

READ_ATTEMPTS = 25
"""Times a read is compiled and run again while compactions replace the parts it reads."""


def read_consistently(roots: set[str], run: Callable[[], Any]) -> Any:
    """``run()`` (which lists the parts of local catalogs, compiles and reads), again while
    compactions replace those parts under it, until a run saw one part set.

    A run is repeated when it failed and a part it listed has gone since (whatever the error's
    type or message), or when it succeeded but the manifest :func:`~geoduck.store.generation`
    changed after it listed the parts (a glob read may have caught the old and new parts of a
    replacement). Other errors propagate as raised; :class:`QueryError` after
    :data:`READ_ATTEMPTS` runs. ``roots``: the catalogs read (for the message)."""
    for attempt in range(READ_ATTEMPTS):
        with store.recorded_listings() as listed:
            try:
                result = run()
            except READ_ERRORS:
                if not _replaced_since(listed):
                    raise
            else:
                if all(store.generation(root) == gen for root, (gen, _) in listed.items()):
                    return result
        log.debug("parts of %s replaced during a read (attempt %d): reading again", sorted(roots), attempt + 1)
        time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise QueryError(
        f"parts of {', '.join(sorted(roots))} kept being replaced during {READ_ATTEMPTS} "
        "reads (compactions without pause?): try again"
    )


def _replaced_since(listed: store.Listings) -> bool:
    for root, (gen, names) in listed.items():
        if store.generation(root) != gen:
            return True
        now = set(store.part_names(root))
        if any(name not in now for name in names):
            return True
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _root_of(node: Node) -> str | None:
    while not isinstance(node, Scan):
        parent: Node | None = getattr(node, "child", None) or getattr(node, "left", None)
        if parent is None:
            return None
        node = parent
    return node.root


def _check_other(other: object, op: str) -> None:
    if not isinstance(other, Catalog):
        raise ArgumentError(f"{op}() takes a Catalog, got {type(other).__name__}")


_COLUMNS_CACHE: dict[Node, list[str]] = {}
"""Columns of relations described already, keyed on the (frozen, hashable) node itself: a cached
``.columns`` does no listing or manifest I/O."""


def _columns(node: Node) -> list[str]:
    cols = _COLUMNS_CACHE.get(node)
    if cols is None:
        rows = execute(node, lambda: compiler.select(node), _describe)
        cols = _COLUMNS_CACHE[node] = [r[0] for r in rows]
        if len(_COLUMNS_CACHE) > 256:
            _COLUMNS_CACHE.pop(next(iter(_COLUMNS_CACHE)))
    return list(cols)


_DAY_US = 86_400_000_000


def join_plan(left: Node, right: Node, spatial_only: bool) -> JoinPlan:
    """Grid cell (degrees) and time bucket (µs) for the keyed join, from both sides' medians.

    Cell = 1.3 × the larger median bbox side (so a typical footprint spans ≤ 2×2 cells); bucket =
    the larger median interval length + 1 µs (a typical interval spans ≤ 2 buckets; daily rows
    aligned on midnight span exactly one). Candidate pairs are made distinct only if a side may
    repeat ids: it holds a union without dedupe, or ids repeat in it now.
    """
    sizes, lengths = [], []
    repeats = _may_repeat_ids(left) or _may_repeat_ids(right)
    for node in (left, right):

        def stats(node: Node = node) -> exp.Select:
            repeated = exp.Sub(
                this=exp.Count(this=exp.Star()),
                expression=exp.Count(this=exp.Distinct(expressions=[compiler.col(schema.ID)])),
            )
            return compiler.aggregate(node, *compiler.join_stats(), repeated)

        w, h, d, r = execute(node, stats, fetch_one)
        sizes += [v for v in (w, h) if v]
        lengths += [d] if d else []
        repeats = repeats or bool(r)
    cell = 1.3 * max(sizes) if sizes else 1.0
    cell = min(max(cell, 1e-6), 360.0)
    bucket = _DAY_US if spatial_only or not lengths else max(int(max(lengths)) + 1, 1)
    return JoinPlan(cell=float(f"{cell:.6g}"), bucket_us=bucket, distinct=repeats)


def _may_repeat_ids(node: Node) -> bool:
    """Whether a relation can hold several rows with one id by construction (a union without
    dedupe, anywhere below it)."""
    if isinstance(node, Union) and not node.dedupe:
        return True
    return any(
        _may_repeat_ids(sub)
        for name in ("child", "left", "right")
        if isinstance(sub := getattr(node, name, None), Node)
    )


_SORT_CHUNK_ROWS = 1_000_000
"""Rows that ``to_parquet`` sorts together (held in memory at once)."""


def _write_chunk(table: pa.Table, target: str, part_rows: int) -> list[os.PathLike[str]]:
    """Write ``table`` as parts of ``target``; returns them (none for no rows)."""
    if table.num_rows == 0:
        return []
    return list(store.write_parts(_plain_geometry(table), target, max_rows=part_rows))


def _plain_geometry(table: pa.Table) -> pa.Table:
    """Drop DuckDB's GeoArrow extension metadata: parts store geometry as plain WKB binary."""
    fields = [pa.field(f.name, f.type, f.nullable) if f.name == schema.GEOMETRY else f for f in table.schema]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields))


def geometry_columns(table: pa.Table) -> list[str]:
    """Names of a result's GeoArrow WKB columns (geometries), in column order."""
    return [f.name for f in table.schema if (f.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"]


def _arrow_to_frame(table: pa.Table, *, require_geometry: bool = False) -> pd.DataFrame | gpd.GeoDataFrame:
    geo_cols = geometry_columns(table)
    if not geo_cols:
        if require_geometry:
            raise SQLError("result has no geometry column")
        return table.to_pandas()
    import geopandas as gpd

    geometry = schema.GEOMETRY if schema.GEOMETRY in geo_cols else geo_cols[0]
    frame = gpd.GeoDataFrame.from_arrow(table, geometry=geometry)
    if frame.crs is None:
        frame = frame.set_crs(wgs84())
    return frame


def _scan_roots(node: Node) -> set[str]:
    """Catalog directories a relation reads."""
    if isinstance(node, Scan):
        return {node.root}
    roots: set[str] = set()
    for name in ("child", "left", "right"):
        sub = getattr(node, name, None)
        if isinstance(sub, Node):
            roots |= _scan_roots(sub)
    return roots


def _run_user_sql(
    query: str, relations: Mapping[str, Node], bounds: sandbox.SQLLimits
) -> pd.DataFrame | gpd.GeoDataFrame:
    """:func:`run_user_sql_arrow` as a (Geo)DataFrame."""
    return _arrow_to_frame(run_user_sql_arrow(query, relations, bounds))


def run_user_sql_arrow(query: str, relations: Mapping[str, Node], bounds: sandbox.SQLLimits) -> pa.Table:
    """User SQL runs in a sandbox that reads only the relations' catalog folders, read-only,
    within ``bounds`` (see :mod:`geoduck.sandbox`); the result as Arrow (geometries GeoArrow WKB)."""
    roots = set().union(*(_scan_roots(n) for n in relations.values()))
    box = sandbox.sandbox(tuple(sorted(roots)), bounds)

    def run() -> pa.Table:  # bound and run again while compactions replace the parts it reads
        bound = compiler.bind_user_sql(query, relations, scan_path=box.scan_path)
        try:
            return sandbox.execute(box, bound, bounds.timeout)
        except SQLError as exc:
            if isinstance(exc.__cause__, duckdb.Error):  # maybe a part replaced under it: judged below
                raise exc.__cause__ from None
            raise

    tables = {k: v for n in relations.values() for k, v in user_tables(n).items()}
    try:
        with engine.registered(tables):
            table = read_consistently(roots, run)
    except GeoduckError:
        raise
    except READ_ERRORS as exc:
        raise SQLError(f"query failed: {_first_line(exc)}") from None
    return table


def sql(
    query: str,
    *,
    timeout: float | None = sandbox.DEFAULT_TIMEOUT_S,
    memory_limit: str | None = None,
    threads: int | None = None,
    **catalogs: Catalog,
) -> pd.DataFrame | gpd.GeoDataFrame:
    """Run read-only SQL over several catalogs, each named by its keyword (``timeout``,
    ``memory_limit`` and ``threads`` bound it as in :meth:`Catalog.sql`, so they cannot name
    catalogs).

    Example: ``geoduck.sql("SELECT count(*) FROM s2 JOIN labels USING (tile)", s2=a, labels=b)``.
    """
    if not catalogs:
        raise ArgumentError("name at least one catalog, e.g. sql('SELECT …', s2=catalog)")
    for name, cat in catalogs.items():
        if not isinstance(cat, Catalog):
            raise ArgumentError(f"{name}= must be a Catalog, got {type(cat).__name__}")
    return _run_user_sql(
        query, {name: cat.node for name, cat in catalogs.items()}, sandbox.limits(timeout, memory_limit, threads)
    )
