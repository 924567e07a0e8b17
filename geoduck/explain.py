"""What a query read: parts, row groups, rows, bytes and time per stage (``Catalog.explain()``,
``geoduck query --explain``).

The relation runs once through the one execution path (:func:`geoduck.catalog.execute`) on a
cursor with DuckDB's profiling on. Figures and their sources:

- parts in the catalog: the live parts bound for each scan; parts opened: DuckDB's ``Total Files
  Read`` of its ``READ_PARQUET`` scans; pruned by geoduck: the difference (DuckDB opens every file
  it is given);
- row groups total / read, rows scanned: DuckDB 1.5.5's profiling reports neither row groups nor
  (reliably) rows scanned after row-group skipping, so they are computed from the footers of the
  scanned parts: a row group is read when its ``bbox``/time statistics may meet the bbox and time
  filters over its scan (the rule by which DuckDB skips row groups on the pushed-down filters);
  unknown (None) for scans under other nodes (joins, padding);
- rows returned: the result; bytes read: DuckDB's ``total_bytes_read``;
- time per stage: bind (listing, part index), compile (SQL), execute (DuckDB runs the query),
  fetch (the result to Arrow), in milliseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from . import compiler, engine, remote, storage, store
from .errors import StorageError
from .expr import Node, Scan, SpatialFilter, TimeFilter, Where


@dataclass(frozen=True)
class Explain:
    """What one run of a relation read (see the module doc for each figure's source)."""

    parts_total: int
    """Live parts of the scanned catalogs (a catalog scanned twice counts twice)."""
    parts_pruned: int
    """Parts geoduck skipped by their extents (never opened)."""
    parts_opened: int
    """Parts DuckDB opened."""
    row_groups_total: int
    """Row groups of all parts of the scanned catalogs."""
    row_groups_read: int | None
    """Row groups whose statistics may meet the filters over their scan; None: unknown."""
    rows_scanned: int | None
    """Rows of the row groups read; None: unknown."""
    rows_returned: int
    bytes_read: int
    """Bytes DuckDB read from files (its ``total_bytes_read``; 0 when cached)."""
    bind_ms: float
    compile_ms: float
    execute_ms: float
    fetch_ms: float
    sql: str = field(repr=False)

    def __str__(self) -> str:
        def unknown(v: int | None) -> str:
            return "?" if v is None else f"{v:,}"

        return "\n".join(
            [
                f"parts       {self.parts_total:,} in catalog, {self.parts_pruned:,} pruned by geoduck, "
                f"{self.parts_opened:,} opened",
                f"row groups  {self.row_groups_total:,} total, {unknown(self.row_groups_read)} read",
                f"rows        {unknown(self.rows_scanned)} scanned, {self.rows_returned:,} returned",
                f"bytes read  {self.bytes_read:,}",
                f"time (ms)   bind {self.bind_ms:.2f}, compile {self.compile_ms:.2f}, "
                f"execute {self.execute_ms:.2f}, fetch {self.fetch_ms:.2f}",
            ]
        )


Keep = Callable[[store.PartExtent], bool]


def _scans(node: Node, keeps: tuple[Keep, ...] | None = ()) -> Iterator[tuple[Scan, tuple[Keep, ...] | None]]:
    """Every scan of ``node`` with the filters directly over it (``None``: it sits under another
    node, so which of its row groups DuckDB reads is not known here)."""
    if isinstance(node, Scan):
        yield node, keeps
        return
    if isinstance(node, SpatialFilter | TimeFilter | Where):
        here: tuple[Keep, ...] = ()
        if isinstance(node, SpatialFilter):
            boxes = [compiler._may_overlap_box(b) for b in node.boxes]

            def any_box(e: store.PartExtent, boxes: list[Keep] = boxes) -> bool:
                return any(k(e) for k in boxes)

            here = (any_box,)
        elif isinstance(node, TimeFilter):
            here = (compiler._may_overlap_interval(node.start, node.end),)
        yield from _scans(node.child, None if keeps is None else (*keeps, *here))
        return
    for sub in storage._children(node).values():
        yield from _scans(sub, None)


def _row_groups(path: str, keeps: tuple[Keep, ...] | None) -> tuple[int, int | None, int | None]:
    """(row groups, row groups read, rows in them) of one part, from its footer."""
    if remote.is_uri(path):
        fs = remote._filesystem(path)
        if fs is None:
            raise StorageError(f"cannot read the footer of {path}: install fsspec and the protocol's package")
        with fs.open(path, "rb") as fh:
            md = pq.read_metadata(fh)
    else:
        md = pq.read_metadata(path)
    if keeps is None:
        return md.num_row_groups, None, None
    read = rows = 0
    for g in range(md.num_row_groups):
        extent = store.extent_of(md, (g,))
        if all(k(extent) for k in keeps):
            read += 1
            rows += md.row_group(g).num_rows
    return md.num_row_groups, read, rows


def _files_read(profile: dict) -> int:
    """Σ ``Total Files Read`` of the ``READ_PARQUET`` operators of a DuckDB JSON profile."""
    total = 0
    stack = [profile]
    while stack:
        op = stack.pop()
        info = op.get("extra_info") or {}
        if isinstance(info, dict) and info.get("Function") == "READ_PARQUET":
            total += int(str(info.get("Total Files Read", "0")).replace(",", ""))
        stack.extend(op.get("children") or [])
    return total


def explain(node: Node) -> Explain:
    """Run the relation ``node`` once and report what it read (see :class:`Explain`)."""
    from .catalog import execute

    times: dict[str, float] = {}
    bound: dict[str, Node] = {}
    figures: dict[str, object] = {}

    def build() -> exp.Expr:  # execute renders the tree right after: timed up to run's start
        t0 = time.perf_counter()
        bound["node"] = storage.bind(node)
        times["bind"] = time.perf_counter() - t0
        times["compile_start"] = time.perf_counter()
        return compiler.visit(bound["node"])

    def run(sql: str) -> pa.Table:
        times["compile"] = time.perf_counter() - times["compile_start"]
        cur = engine.cursor()
        cur.execute("PRAGMA enable_profiling = 'no_output'")
        cur.execute("SET profiling_mode = 'standard'")
        try:
            t0 = time.perf_counter()
            result = cur.execute(sql)
            t1 = time.perf_counter()
            table = result.to_arrow_reader(engine.ARROW_BATCH_ROWS).read_all()
            times["execute"], times["fetch"] = t1 - t0, time.perf_counter() - t1
            figures["profile"] = json.loads(cur.get_profiling_information(format="json"))
            figures["sql"] = sql
        finally:
            cur.execute("PRAGMA disable_profiling")
            cur.close()
        return table

    table = execute(node, build, run)
    profile: dict = figures["profile"]  # type: ignore[assignment]
    total_parts = rg_total = 0
    rg_read: int | None = 0
    rows_scanned: int | None = 0
    for scan, keeps in _scans(bound["node"]):
        assert scan.parts is not None
        paths = scan.parts.paths or tuple(_listed(scan))
        total_parts += len(paths)
        for path in paths:
            n, read, rows = _row_groups(path, keeps)
            rg_total += n
            rg_read = None if rg_read is None or read is None else rg_read + read
            rows_scanned = None if rows_scanned is None or rows is None else rows_scanned + rows
    opened = _files_read(profile)
    return Explain(
        parts_total=total_parts,
        parts_pruned=total_parts - opened,
        parts_opened=opened,
        row_groups_total=rg_total,
        row_groups_read=rg_read,
        rows_scanned=rows_scanned,
        rows_returned=table.num_rows,
        bytes_read=int(profile.get("total_bytes_read", 0)),
        bind_ms=times["bind"] * 1e3,
        compile_ms=times["compile"] * 1e3,
        execute_ms=times["execute"] * 1e3,
        fetch_ms=times["fetch"] * 1e3,
        sql=str(figures["sql"]),
    )


def _listed(scan: Scan) -> list[str]:
    """The parts of a scan bound to a glob without a listing (``paths`` empty)."""
    return list(storage.storage_for(scan.root).listing(scan.root).paths)
