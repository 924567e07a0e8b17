"""Relation nodes → sqlglot expression trees → DuckDB SQL. All SQL generation lives here.

Compiling is pure: :func:`visit` renders a *bound* tree (:func:`geoduck.storage.bind` resolved
each scan into its live parts and extents beforehand) and does no I/O. The entry points that take
any relation (:func:`to_sql`, :func:`aggregate`, :func:`bind_user_sql` …) bind it first, once.

User values only ever enter the tree as sqlglot literals (numbers, strings, casts), never as SQL
text. Spatial filters emit the ``bbox`` covering inequalities first (DuckDB pushes them into the
Parquet scan and prunes row groups by their statistics) and the exact ``ST_Intersects`` second.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache, singledispatch
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from . import schema, store
from .errors import SQLError, UnboundError
from .expr import (
    Difference,
    Intersect,
    Join,
    JoinPlan,
    Node,
    Pad,
    Parts,
    Scan,
    SpatialFilter,
    TimeFilter,
    Union,
    Where,
)
from .intervals import Overlap, epoch_us
from .storage import bind

if TYPE_CHECKING:
    import datetime as dt

DIALECT = "duckdb"


# -- literals -----------------------------------------------------------------------------------


def num(value: float) -> exp.Expr:
    """A float literal that round-trips exactly (repr of a Python float)."""
    text = repr(float(value))
    lit = exp.Literal.number(text.lstrip("-"))
    return exp.Neg(this=lit) if text.startswith("-") else lit


_TIMESTAMPTZ = exp.DataType.build("TIMESTAMPTZ")


def timestamp(value: dt.datetime) -> exp.Expr:
    """A ``TIMESTAMPTZ`` literal (UTC, µs)."""
    return exp.cast(exp.Literal.string(value.isoformat()), _TIMESTAMPTZ)


def col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def bbox_field(key: str) -> exp.Expr:
    """``bbox.<key>``: a field of the GeoParquet covering struct."""
    return exp.Dot(this=col(schema.BBOX), expression=exp.to_identifier(key))


# -- nodes --------------------------------------------------------------------------------------


@singledispatch
def visit(node: Node) -> exp.Select:
    """Compile a relation node to a sqlglot SELECT (one ``visit`` per node type)."""
    raise NotImplementedError(f"no compiler for {type(node).__name__}")


@visit.register
def _(node: Scan) -> exp.Select:
    # The glob, unless a compaction/migration is replacing parts (or the location has no glob):
    # then the explicit list of live parts, as bound (see geoduck.storage).
    parts = node.parts
    if parts is None:
        raise UnboundError(f"scan of {node.root!r} is not bound: compile geoduck.storage.bind(node)")
    files = exp.Literal.string(parts.glob) if parts.glob is not None else _file_list(parts.paths)
    source = _read_parquet(files)
    if parts.extents is not None:  # filters over this scan may skip whole parts (see _prune)
        source.meta[_SCAN] = parts
    return exp.select(exp.Star()).from_(source)


def _file_list(paths: Sequence[str]) -> exp.Expr:
    """``['<part>', …]``: explicit files, spelled for DuckDB's glob (:func:`store.duckdb_path`)."""
    return exp.Array(expressions=[exp.Literal.string(store.duckdb_path(p)) for p in paths])


def _read_parquet(files: exp.Expr) -> exp.Expr:
    return exp.func(
        "read_parquet",
        files,
        exp.EQ(this=exp.var("union_by_name"), expression=exp.true()),
        exp.EQ(this=exp.var("hive_partitioning"), expression=exp.false()),
    )


_SCAN = "geoduck_scan"
"""``meta`` key of a ``read_parquet`` source whose parts' extents are known: its :class:`Parts`."""


def _prune(select: exp.Select, keep: Callable[[store.PartExtent], bool]) -> exp.Select:
    """Make a filter directly over a local catalog scan read only the parts that can hold matching
    rows, judged by ``keep`` on each part's footer statistics (bound beforehand, see
    :func:`geoduck.storage.bind`); the filter itself still runs on the parts read, so the result
    is the same.

    Parts are only skipped when all have the same schema (so ``union_by_name`` binds the same
    columns), and at least one is always read (an empty result keeps its columns)."""
    source = select.args.get("from_")
    if source is None or not source.this.meta:
        return select
    parts: Parts | None = source.this.meta.get(_SCAN)
    if parts is None or parts.extents is None:
        return select
    extents = parts.extents
    if len(parts.paths) < 2 or len({e.schema for e in extents}) != 1:
        return select
    kept = [(p, e) for p, e in zip(parts.paths, extents, strict=True) if keep(e)] or [(parts.paths[0], extents[0])]
    if len(kept) == len(parts.paths):
        return select
    pruned = _read_parquet(_file_list([p for p, _ in kept]))
    pruned.meta[_SCAN] = Parts(tuple(p for p, _ in kept), None, tuple(e for _, e in kept))
    source.this.replace(pruned)
    return select


def _may_overlap_box(box: tuple[float, float, float, float]) -> Callable[[store.PartExtent], bool]:
    """Whether a part may hold rows meeting :func:`bbox_overlaps` for ``box``."""
    xmin, ymin, xmax, ymax = box

    def keep(e: store.PartExtent) -> bool:
        return not (
            (e.xmin is not None and e.xmin > xmax)
            or (e.xmax is not None and e.xmax < xmin)
            or (e.ymin is not None and e.ymin > ymax)
            or (e.ymax is not None and e.ymax < ymin)
        )

    return keep


def _may_overlap_interval(start: dt.datetime | None, end: dt.datetime | None) -> Callable[[store.PartExtent], bool]:
    """Whether a part may hold rows meeting :func:`time_overlaps` for ``[start, end]``."""
    rule = Overlap(epoch_us(start), epoch_us(end))
    return lambda e: rule.may_overlap(e.tmin, e.tmax)


def _filter(child: exp.Select, condition: exp.Expr) -> exp.Select:
    """Add ``condition`` to ``child``'s WHERE when it is a plain ``SELECT *`` scan/filter, else wrap
    it (a WHERE sees the FROM's columns, not computed ones such as ``* REPLACE (…)``, and runs
    before QUALIFY)."""
    projections = child.expressions if isinstance(child, exp.Select) else []
    plain_star = (
        len(projections) == 1 and isinstance(projections[0], exp.Star) and not any(projections[0].args.values())
    )
    simple = not any(child.args.get(k) for k in ("group", "limit", "order", "distinct", "having", "qualify", "windows"))
    if simple and plain_star:
        return child.where(condition, copy=False)  # child is freshly compiled: no copy
    return exp.select(exp.Star()).from_(child.subquery("_rel")).where(condition)


def bbox_overlaps(box: tuple[float, float, float, float]) -> exp.Expr:
    """Covering inequalities: the row's bbox overlaps ``box`` (lon/lat), boundaries included."""
    xmin, ymin, xmax, ymax = box
    return exp.and_(
        exp.LTE(this=bbox_field("xmin"), expression=num(xmax)),
        exp.GTE(this=bbox_field("xmax"), expression=num(xmin)),
        exp.LTE(this=bbox_field("ymin"), expression=num(ymax)),
        exp.GTE(this=bbox_field("ymax"), expression=num(ymin)),
        copy=False,
    )


@visit.register
def _(node: SpatialFilter) -> exp.Select:
    boxes = node.boxes
    envelope = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    conditions = [bbox_overlaps(envelope)]
    if len(boxes) > 1:
        conditions.append(exp.or_(*(exp.paren(bbox_overlaps(b)) for b in boxes), copy=False))
    aoi = exp.func("ST_GeomFromHEXWKB", exp.Literal.string(node.aoi_wkb.hex().upper()))
    conditions.append(exp.func("ST_Intersects", col(schema.GEOMETRY), aoi))
    return _prune(_filter(visit(node.child), exp.and_(*conditions, copy=False)), _may_overlap_box(envelope))


_COMPARE = {"<=": exp.LTE, ">=": exp.GTE}
_COLUMN = {"start": schema.START, "end": schema.END}


def time_overlaps(start: dt.datetime | None, end: dt.datetime | None) -> exp.Expr | None:
    """Closed-interval overlap with ``[start, end]`` (the rule of :class:`~geoduck.intervals.Overlap`);
    static (NULL) row ends always match."""
    parts = [
        exp.paren(
            exp.or_(
                _COMPARE[op](this=col(_COLUMN[column]), expression=timestamp(bound)),
                exp.Is(this=col(_COLUMN[column]), expression=exp.null()),
                copy=False,
            )
        )
        for column, op, bound in Overlap(start, end).terms()
    ]
    return exp.and_(*parts, copy=False) if parts else None


@visit.register
def _(node: TimeFilter) -> exp.Select:
    child = visit(node.child)
    condition = time_overlaps(node.start, node.end)
    if condition is None:
        return child
    return _prune(_filter(child, condition), _may_overlap_interval(node.start, node.end))


@visit.register
def _(node: Where) -> exp.Select:
    with parser_stack():  # checked by parse_predicate: at most MAX_NESTING levels deep
        predicate = sqlglot.parse_one(node.predicate, read=DIALECT, into=exp.Condition)
    return _filter(visit(node.child), predicate)


@visit.register
def _(node: Pad) -> exp.Select:
    tree = _template(
        _PAD_SQL,
        {"__child__": visit(node.child)},
        before=exp.Literal.number(node.before_us),
        after=exp.Literal.number(node.after_us),
    )
    return tree


_PAD_SQL = """
SELECT * REPLACE (start_datetime - to_microseconds(:before) AS start_datetime,
                  end_datetime + to_microseconds(:after) AS end_datetime)
FROM __child__
"""


@visit.register
def _(node: Union) -> exp.Select:
    def side(child: Node, name: str, has_source: bool, order: int) -> exp.Select:
        select = exp.select(exp.Star()).from_(visit(child).subquery("_u"))
        if not has_source:
            select = select.select(exp.alias_(exp.Literal.string(name), "source"))
        return select.select(exp.alias_(exp.Literal.number(order), node.order_column))

    union = exp.Union(
        this=side(node.left, node.left_name, node.left_has_source, 0),
        expression=side(node.right, node.right_name, node.right_has_source, 1),
        distinct=False,
        by_name=True,
    )
    select = exp.select(exp.Star(except_=[exp.column(node.order_column)])).from_(union.subquery("_union"))
    if node.dedupe:
        rank = exp.Window(
            this=exp.RowNumber(),
            partition_by=[col(schema.ID)],
            order=exp.Order(expressions=[exp.Ordered(this=exp.column(node.order_column))]),
        )
        select = select.qualify(exp.EQ(this=rank, expression=exp.Literal.number(1)))
    return select


@visit.register
def _(node: Join) -> exp.Select:
    # The user table is read by its generated name (registered on the cursor that runs the
    # query, see geoduck.engine.registered): its values never enter the SQL text.
    condition = exp.and_(
        *(exp.EQ(this=exp.column(k, "_c", quoted=True), expression=exp.column(k, "_t", quoted=True)) for k in node.on),
        copy=False,
    )
    return (
        exp.select(
            exp.Column(this=exp.Star(), table=exp.to_identifier("_c")),
            *(exp.column(c, "_t", quoted=True) for c in node.columns),
        )
        .from_(visit(node.child).subquery("_c"))
        .join(
            exp.Table(
                this=exp.to_identifier(node.table.name, quoted=True), alias=exp.TableAlias(this=exp.to_identifier("_t"))
            ),
            on=condition,
            join_type="left" if node.how == "left" else "inner",
        )
    )


# -- spatiotemporal join ------------------------------------------------------------------------
# Candidate pairs come from equi-joins on keys, never from a join on space alone followed by a
# time filter (that explodes for tile × date catalogs). Each row gets:
#   class T: dated, spans <= max_buckets time buckets and <= max_cells cells: one key per
#            (bucket, cell) it covers;
#   class C: static, long-lived, or spatial_only: one key per cell;
#   class B: spans > max_cells cells: joined by bbox inequalities (a range join; such rows are rare).
# T×T pairs join on (bucket, cell); C×(T|C) and T×C pairs on cell; pairs involving a B row by range
# join (each join filters its sides' classes before joining); so every candidate pair is produced
# by exactly one branch, and in the keyed branches only in the cell/bucket of its reference point
# (the lower-left corner and start of the bbox/interval intersection), so no pair appears twice.
# The exact ST_Intersects runs last, on survivors only.
_KEYS_SQL = """
SELECT *,
  CASE WHEN nx * ny > :max_cells THEN 'B'
       WHEN :timed AND s IS NOT NULL AND nt <= :max_buckets THEN 'T'
       ELSE 'C' END AS cls
FROM (
  SELECT _id, x0, y0, x1, y1, s, e, cx0, cy0, tb0,
         cx1 - cx0 + 1 AS nx, cy1 - cy0 + 1 AS ny, tb1 - tb0 + 1 AS nt
  FROM (
    SELECT id AS _id, bbox.xmin AS x0, bbox.ymin AS y0, bbox.xmax AS x1, bbox.ymax AS y1,
           start_datetime AS s, end_datetime AS e,
           floor(bbox.xmin / :cell)::BIGINT AS cx0, floor(bbox.xmax / :cell)::BIGINT AS cx1,
           floor(bbox.ymin / :cell)::BIGINT AS cy0, floor(bbox.ymax / :cell)::BIGINT AS cy1,
           floor(epoch_us(start_datetime) / :bucket)::BIGINT AS tb0,
           floor(epoch_us(end_datetime) / :bucket)::BIGINT AS tb1
    FROM __child__
  )
)
"""

# The candidate pairs: the per-cell key rows of the C branches (lc/rc/lx/rx) are streamed, not
# materialized, and only the rows each branch can pair are unnested — C rows against the other
# side's T and C rows, and T rows only when the other side has C rows at all (the ``IN (… LIMIT 1)``
# semi-joins); the B range joins read the other side only when B rows exist. Tile × date catalogs
# (all rows T) then cost one keyed join and no extra copies of the key rows. Key rows carry a row
# number ``_n`` (of the materialized lk/rk) instead of the id string until the pairs are found, which
# keeps the join's hash table and ``pairs`` small. ``pairs`` is materialized: without a blocking step
# (the DISTINCT, which ``JoinPlan.distinct`` makes optional) DuckDB 1.5.5 hangs streaming this UNION
# ALL of branches over the materialized lk/rk into a result (every thread parked; ``count(*)`` over
# it works).
_PAIRS_SQL = """
WITH
lk AS MATERIALIZED (SELECT *, row_number() OVER () AS _n FROM __lkeys__),
rk AS MATERIALIZED (SELECT *, row_number() OVER () AS _n FROM __rkeys__),
lt AS (SELECT _n, x0, y0, x1, y1, s, e,
              tb0 + i // (nx * ny) AS tb, cx0 + (i % (nx * ny)) // ny AS cx, cy0 + i % ny AS cy
       FROM (SELECT *, unnest(range(nt * nx * ny)) AS i FROM lk WHERE cls = 'T')),
rt AS (SELECT _n, x0, y0, x1, y1, s, e,
              tb0 + i // (nx * ny) AS tb, cx0 + (i % (nx * ny)) // ny AS cx, cy0 + i % ny AS cy
       FROM (SELECT *, unnest(range(nt * nx * ny)) AS i FROM rk WHERE cls = 'T')),
lc AS NOT MATERIALIZED (
  SELECT _n, x0, y0, x1, y1, s, e, cx0 + i // ny AS cx, cy0 + i % ny AS cy
  FROM (SELECT *, unnest(range(nx * ny)) AS i FROM lk WHERE cls = 'C')),
rc AS NOT MATERIALIZED (
  SELECT _n, x0, y0, x1, y1, s, e, cx0 + i // ny AS cx, cy0 + i % ny AS cy
  FROM (SELECT *, unnest(range(nx * ny)) AS i FROM rk WHERE cls = 'C')),
lx AS NOT MATERIALIZED (
  SELECT _n, x0, y0, x1, y1, s, e, cx0 + i // ny AS cx, cy0 + i % ny AS cy
  FROM (SELECT *, unnest(range(nx * ny)) AS i FROM lk
        WHERE cls = 'T' AND cls IN (SELECT 'T' FROM rk WHERE cls = 'C' LIMIT 1))),
rx AS NOT MATERIALIZED (
  SELECT _n, x0, y0, x1, y1, s, e, cx0 + i // ny AS cx, cy0 + i % ny AS cy
  FROM (SELECT *, unnest(range(nx * ny)) AS i FROM rk
        WHERE (cls <> 'B') IN (SELECT true FROM lk WHERE cls = 'C' LIMIT 1))),
p_tt AS (
  SELECT a._n AS ln, b._n AS rn FROM lt AS a JOIN rt AS b
    ON a.tb = b.tb AND a.cx = b.cx AND a.cy = b.cy
  WHERE a.x0 <= b.x1 AND a.x1 >= b.x0 AND a.y0 <= b.y1 AND a.y1 >= b.y0
    AND a.s <= b.e AND a.e >= b.s
    AND a.tb = floor(epoch_us(greatest(a.s, b.s)) / :bucket)::BIGINT
    AND a.cx = floor(greatest(a.x0, b.x0) / :cell)::BIGINT
    AND a.cy = floor(greatest(a.y0, b.y0) / :cell)::BIGINT),
p_cl AS (
  SELECT a._n AS ln, b._n AS rn FROM lc AS a JOIN rx AS b
    ON a.cx = b.cx AND a.cy = b.cy
  WHERE a.x0 <= b.x1 AND a.x1 >= b.x0 AND a.y0 <= b.y1 AND a.y1 >= b.y0
    AND (NOT :timed OR ((a.s IS NULL OR b.e IS NULL OR a.s <= b.e) AND (a.e IS NULL OR b.s IS NULL OR a.e >= b.s)))
    AND a.cx = floor(greatest(a.x0, b.x0) / :cell)::BIGINT
    AND a.cy = floor(greatest(a.y0, b.y0) / :cell)::BIGINT),
p_cr AS (
  SELECT a._n AS ln, b._n AS rn FROM lx AS a JOIN rc AS b
    ON a.cx = b.cx AND a.cy = b.cy
  WHERE a.x0 <= b.x1 AND a.x1 >= b.x0 AND a.y0 <= b.y1 AND a.y1 >= b.y0
    AND (NOT :timed OR ((a.s IS NULL OR b.e IS NULL OR a.s <= b.e) AND (a.e IS NULL OR b.s IS NULL OR a.e >= b.s)))
    AND a.cx = floor(greatest(a.x0, b.x0) / :cell)::BIGINT
    AND a.cy = floor(greatest(a.y0, b.y0) / :cell)::BIGINT),
p_bl AS (
  SELECT a._n AS ln, b._n AS rn FROM (SELECT * FROM lk WHERE cls = 'B') AS a
    JOIN (SELECT * FROM rk WHERE (cls IS NOT NULL) IN (SELECT true FROM lk WHERE cls = 'B' LIMIT 1)) AS b
    ON a.x0 <= b.x1 AND a.x1 >= b.x0 AND a.y0 <= b.y1 AND a.y1 >= b.y0
  WHERE (NOT :timed OR ((a.s IS NULL OR b.e IS NULL OR a.s <= b.e) AND (a.e IS NULL OR b.s IS NULL OR a.e >= b.s)))),
p_br AS (
  SELECT a._n AS ln, b._n AS rn
    FROM (SELECT * FROM lk WHERE (cls <> 'B') IN (SELECT true FROM rk WHERE cls = 'B' LIMIT 1)) AS a
    JOIN (SELECT * FROM rk WHERE cls = 'B') AS b
    ON a.x0 <= b.x1 AND a.x1 >= b.x0 AND a.y0 <= b.y1 AND a.y1 >= b.y0
  WHERE (NOT :timed OR ((a.s IS NULL OR b.e IS NULL OR a.s <= b.e) AND (a.e IS NULL OR b.s IS NULL OR a.e >= b.s)))),
pairs AS MATERIALIZED (
  SELECT * FROM p_tt UNION ALL SELECT * FROM p_cl UNION ALL SELECT * FROM p_cr
  UNION ALL SELECT * FROM p_bl UNION ALL SELECT * FROM p_br)
SELECT DISTINCT l._id AS lid, r._id AS rid FROM pairs AS p JOIN lk AS l ON l._n = p.ln JOIN rk AS r ON r._n = p.rn
"""


@cache
def _parsed(template: str) -> exp.Expr:
    return sqlglot.parse_one(template, read=DIALECT)


def _template(template: str, tables: Mapping[str, exp.Query], **values: exp.Expr) -> exp.Select:
    """Fill a SQL template: ``__name__`` tables become subqueries, ``:name`` placeholders literals."""
    tree = exp.replace_placeholders(_parsed(template).copy(), **values)
    for table in list(tree.find_all(exp.Table)):
        if table.name in tables:
            alias = table.alias or table.name.strip("_")
            table.replace(tables[table.name].subquery(alias))
    return tree  # type: ignore[return-value]


def _plan_values(plan: JoinPlan, spatial_only: bool) -> dict[str, exp.Expr]:
    return {
        "cell": num(plan.cell),
        "bucket": exp.Literal.number(plan.bucket_us),
        "max_cells": exp.Literal.number(plan.max_cells),
        "max_buckets": exp.Literal.number(plan.max_buckets),
        "timed": exp.false() if spatial_only else exp.true(),
    }


def candidate_pairs(left: exp.Select, right: exp.Select, plan: JoinPlan, spatial_only: bool) -> exp.Select:
    """``(lid, rid)`` of every pair of rows of the compiled sides ``left`` and ``right`` whose bboxes
    (and intervals) overlap, each exactly once (the trees are used as they are: pass copies).

    With ``plan.distinct`` pairs are made distinct, so rows sharing an id (e.g. a union without
    dedupe) pair once per matching row when joined back, not once per candidate; without it (ids
    unique on both sides, see ``catalog.join_plan``) each candidate pair is unique already."""
    return _candidates(left, right, _plan_values(plan, spatial_only), plan.distinct)


def _candidates(left: exp.Select, right: exp.Select, values: Mapping[str, exp.Expr], distinct: bool) -> exp.Select:
    lkeys = _template(_KEYS_SQL, {"__child__": left}, **values)
    rkeys = _template(_KEYS_SQL, {"__child__": right}, **values)
    tree = _template(_PAIRS_SQL, {"__lkeys__": lkeys, "__rkeys__": rkeys}, **values)
    if not distinct:
        tree.set("distinct", None)
    return tree


def exact_pairs(left: exp.Select, right: exp.Select, plan: JoinPlan, spatial_only: bool) -> exp.Select:
    """``SELECT * FROM`` the candidate pairs (``p``: ``lid``, ``rid``) joined back to the rows of
    the compiled sides (``l``, ``r``) whose footprints intersect exactly. Each side is compiled
    once by the caller (its tree is read twice: for the join keys and for the rows)."""
    return _joined(left, right, candidate_pairs(left.copy(), right.copy(), plan, spatial_only))


def _sides(left: exp.Select, right: exp.Select) -> tuple[exp.Select, exp.Select, list[tuple[str, exp.Select]]]:
    """The compiled sides of a pair join, each written once: ``SELECT *`` from a ``WITH`` table
    of each (the CTEs returned, for :func:`_with_sides` to put on the outermost SELECT), read by
    the keys, the rows and (difference) the rows kept.

    ``NOT MATERIALIZED``: DuckDB inlines each reference, which gives the same physical plan as
    writing the side's SQL at each use (up to CTE numbering): the join keys read only the
    id/bbox/time columns of the parts. Materialized (DuckDB's default for a CTE read several
    times), every column of each side is read and buffered first: 2.5–8× slower at 10^4–10^5
    rows (benchmarks/bench_intersect.py, measured side by side)."""
    return (
        exp.select(exp.Star()).from_(_LEFT_SIDE),
        exp.select(exp.Star()).from_(_RIGHT_SIDE),
        [
            (_LEFT_SIDE, left),
            (_RIGHT_SIDE, right),
        ],
    )


_LEFT_SIDE, _RIGHT_SIDE = "_left_side", "_right_side"
"""CTE names of a pair join's sides (a nested join's own WITH shadows them inside its subquery)."""


def _with_sides(select: exp.Select, ctes: list[tuple[str, exp.Select]]) -> exp.Select:
    for name, side in ctes:
        select = select.with_(name, as_=side, materialized=False, copy=False)
    return select


def _joined(left: exp.Select, right: exp.Select, pairs: exp.Select) -> exp.Select:
    return (
        exp.select(exp.Star())
        .from_(pairs.subquery("p"))
        .join(
            left.subquery("l"),
            on=exp.EQ(this=exp.column(schema.ID, "l", quoted=True), expression=exp.column("lid", "p")),
        )
        .join(
            right.subquery("r"),
            on=exp.EQ(this=exp.column(schema.ID, "r", quoted=True), expression=exp.column("rid", "p")),
        )
        .where(
            exp.func(
                "ST_Intersects",
                exp.column(schema.GEOMETRY, "l", quoted=True),
                exp.column(schema.GEOMETRY, "r", quoted=True),
            )
        )
    )


_NOT_PREFIXED = frozenset({schema.GEOMETRY, schema.VERSION})


def _side_columns(alias: str, prefix: str, columns: tuple[str, ...]) -> list[exp.Expr]:
    return [
        exp.alias_(exp.column(c, alias, quoted=True), f"{prefix}{c}", quoted=True)
        for c in columns
        if c not in _NOT_PREFIXED
    ]


@visit.register
def _(node: Intersect) -> exp.Select:
    l_s, r_s = (exp.column(schema.START, t, quoted=True) for t in ("l", "r"))
    l_e, r_e = (exp.column(schema.END, t, quoted=True) for t in ("l", "r"))
    starts = exp.func("greatest", l_s, r_s)
    ends = exp.func("least", l_e, r_e)
    if node.spatial_only:  # disjoint intervals: the pair spans both (their hull)
        disjoint = exp.GT(this=starts.copy(), expression=ends.copy())
        starts = exp.If(this=disjoint, true=exp.func("least", l_s.copy(), r_s.copy()), false=starts)
        ends = exp.If(this=disjoint.copy(), true=exp.func("greatest", l_e.copy(), r_e.copy()), false=ends)
    left, right, ctes = _sides(visit(node.left), visit(node.right))
    inner = exact_pairs(left, right, node.plan, node.spatial_only)
    inner.set(
        "expressions",
        [
            exp.alias_(
                exp.DPipe(
                    this=exp.DPipe(this=exp.column("lid", "p"), expression=exp.Literal.string("|")),
                    expression=exp.column("rid", "p"),
                ),
                schema.ID,
                quoted=True,
            ),
            exp.alias_(
                exp.func(
                    "ST_Intersection",
                    exp.column(schema.GEOMETRY, "l", quoted=True),
                    exp.column(schema.GEOMETRY, "r", quoted=True),
                ),
                schema.GEOMETRY,
                quoted=True,
            ),
            exp.alias_(starts, schema.START, quoted=True),
            exp.alias_(ends, schema.END, quoted=True),
            exp.alias_(exp.cast(exp.Literal.number(schema.SCHEMA_VERSION), "INTEGER"), schema.VERSION, quoted=True),
            *_side_columns("l", "left_", node.left_columns),
            *_side_columns("r", "right_", node.right_columns),
        ],
    )
    g = col(schema.GEOMETRY)
    bbox = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(k), expression=exp.func(f"ST_{k.upper()}", g.copy()))
            for k in schema.BBOX_KEYS
        ]
    )
    outer = exp.select(
        col(schema.ID),
        g,
        exp.alias_(bbox, schema.BBOX, quoted=True),
        exp.Star(except_=[col(schema.ID), col(schema.GEOMETRY)]),
    ).from_(inner.subquery("_ix"))
    return _with_sides(outer, ctes)


@visit.register
def _(node: Difference) -> exp.Select:
    left, right, ctes = _sides(visit(node.left), visit(node.right))  # left: read by the pairs and kept
    hits = exact_pairs(left.copy(), right, node.plan, node.spatial_only)
    hits.set("expressions", [exp.column("lid", "p")])
    condition = exp.not_(exp.In(this=col(schema.ID), query=hits.subquery()))
    return _with_sides(exp.select(exp.Star()).from_(left.subquery("_d")).where(condition), ctes)


def join_stats() -> list[exp.Expr]:
    """Median bbox width, height (degrees) and interval length (µs) of a relation."""

    def median(e: exp.Expr) -> exp.Expr:
        return exp.func("approx_quantile", e, exp.Literal.number("0.5"))

    return [
        median(exp.Sub(this=bbox_field("xmax"), expression=bbox_field("xmin"))),
        median(exp.Sub(this=bbox_field("ymax"), expression=bbox_field("ymin"))),
        median(exp.Sub(this=exp.func("epoch_us", col(schema.END)), expression=exp.func("epoch_us", col(schema.START)))),
    ]


_FORBIDDEN_NODES = (
    exp.Query,
    exp.Subquery,
    exp.Table,
    exp.Command,
    exp.Create,
    exp.Drop,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Alter,
    exp.Copy,
    exp.Attach,
    exp.Pragma,
    exp.Set,
    exp.Use,
    exp.Placeholder,
    exp.Parameter,
    exp.Lambda,
    exp.Star,
)
_FORBIDDEN_FUNCTIONS = (
    "read_",
    "glob",
    "query",
    "getenv",
    "current_setting",
    "sniff_csv",
    "parquet_",
    "getvariable",
    "duckdb_",
    "pragma_",
    "which_secret",
    "st_read",
    "load_extension",
)
"""Prefixes (lower case) of functions refused in ``where`` predicates and user SQL: they read files,
list them, or reveal settings, paths and secrets."""

MAX_NESTING = 100
"""Deepest nesting of brackets (``(``, ``[``, ``{``) in a ``where`` predicate or user SQL: deeper
input is refused up front with :class:`SQLError` (the parser recurses once per level)."""

_OPENING = {sqlglot.TokenType.L_PAREN, sqlglot.TokenType.L_BRACKET, sqlglot.TokenType.L_BRACE}
_CLOSING = {sqlglot.TokenType.R_PAREN, sqlglot.TokenType.R_BRACKET, sqlglot.TokenType.R_BRACE}


def _tokens(text: str, what: str) -> list:
    """sqlglot tokens of ``text``, refused (:class:`SQLError`) when brackets nest deeper than
    :data:`MAX_NESTING`."""
    try:
        tokens = sqlglot.tokenize(text, read=DIALECT)
    except sqlglot.errors.TokenError as exc:
        raise SQLError(f"cannot parse {what}: {str(exc).splitlines()[0]}") from None
    depth = deepest = 0
    for token in tokens:
        if token.token_type in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type in _CLOSING:
            depth -= 1
    if deepest > MAX_NESTING:
        raise SQLError(
            f"{what} nests brackets {deepest} levels deep; at most {MAX_NESTING} are "
            "allowed: simplify it (e.g. IN (...) instead of nested ORs)"
        )
    return tokens


_STACK_FRAMES = 5_000
"""Recursion limit while sqlglot parses or renders checked SQL: its recursive-descent parser
takes ~23 frames per bracket level (measured with sqlglot 30), so :data:`MAX_NESTING` levels
need ~2,300 frames on top of the caller's; Python's default limit of 1,000 allows ~40."""

_stack_lock = threading.Lock()
_stack_users = 0
_stack_saved = 0


@contextlib.contextmanager
def parser_stack() -> Iterator[None]:
    """Raise the recursion limit to :data:`_STACK_FRAMES` (never lower it) while parsing or
    rendering SQL whose nesting :data:`MAX_NESTING` bounds; restored when the last user leaves."""
    global _stack_users, _stack_saved
    with _stack_lock:
        if _stack_users == 0:
            _stack_saved = sys.getrecursionlimit()
        _stack_users += 1
        sys.setrecursionlimit(max(_stack_saved, _STACK_FRAMES))
    try:
        yield
    finally:
        with _stack_lock:
            _stack_users -= 1
            if _stack_users == 0:
                sys.setrecursionlimit(_stack_saved)


def _too_deep(what: str) -> SQLError:
    return SQLError(f"{what} is nested too deeply to parse (deep NOT/CASE/operator chains?): simplify it")


def _check_functions(tree: exp.Expr, where: str) -> None:
    """Refuse every function of ``tree`` that :func:`_refuse_function` refuses."""
    for node in tree.find_all(exp.Func):
        _refuse_function(node, where)


def _refuse_function(node: exp.Func, where: str) -> None:
    """Refuse a function whose lower-case name starts with a :data:`_FORBIDDEN_FUNCTIONS` prefix
    (quoted or not: DuckDB resolves function names case-insensitively)."""
    name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
    if name.startswith(_FORBIDDEN_FUNCTIONS):
        raise SQLError(f"function {name}() is not allowed in {where}")


def parse_predicate(predicate: str, columns: list[str]) -> exp.Expr:
    """Parse and check a ``where`` predicate (one expression, known columns, no subqueries, table
    functions or comments, brackets nested at most :data:`MAX_NESTING` deep); raises
    :class:`SQLError` naming the bad token."""
    if not isinstance(predicate, str) or not predicate.strip():
        raise SQLError("where() needs a non-empty SQL predicate, e.g. \"tile = 'T29SND'\"")
    shown = predicate if len(predicate) <= 200 else predicate[:200] + "…"
    tokens = _tokens(predicate, f"predicate {shown!r}")
    if ";" in [t.text for t in tokens]:
        raise SQLError(f"predicate {shown!r} must be one expression; ';' is not allowed")
    comments = [c for t in tokens for c in t.comments]
    if comments:
        raise SQLError(f"predicate {shown!r} may not contain comments: {comments[0]!r}")
    try:
        with parser_stack():
            tree = sqlglot.parse_one(predicate, read=DIALECT, into=exp.Condition)
    except sqlglot.errors.ParseError as exc:
        raise SQLError(f"cannot parse predicate {shown!r}: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise _too_deep(f"predicate {shown!r}") from None
    known = set(columns)
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise SQLError(f"predicate may not contain {node.key.upper()}: {node.sql(DIALECT)!r}")
        if isinstance(node, exp.Func):
            _refuse_function(node, "a predicate")
        if isinstance(node, exp.Column):
            root = node.table or node.name
            if root not in known:
                raise SQLError(f"unknown column {root!r} in predicate; columns: {', '.join(columns)}")
    return tree


def render(tree: exp.Expr, *, pretty: bool = False) -> str:
    """DuckDB SQL text of a freshly compiled tree. The generator may rewrite the tree in place
    (sqlglot copies it first by default, a third of a simple query's compile time), so pass only
    trees that are not used again."""
    with parser_stack():  # a where() predicate may nest MAX_NESTING brackets deep
        return tree.sql(dialect=DIALECT, pretty=pretty, copy=False)


def to_sql(node: Node, *, pretty: bool = True) -> str:
    """DuckDB SQL text of a relation (bound first, once; see :func:`geoduck.storage.bind`)."""
    return render(visit(bind(node)), pretty=pretty)


def select(node: Node) -> exp.Select:
    """``SELECT * FROM <node>`` as a tree (``node`` bound first, once)."""
    return visit(bind(node))


def aggregate(node: Node, *selects: exp.Expr) -> exp.Select:
    """``SELECT <selects> FROM (<node>)`` (``node`` bound first, once)."""
    return exp.select(*selects).from_(visit(bind(node)).subquery("_rel"))


# -- user SQL -----------------------------------------------------------------------------------


def bind_user_sql(sql: str, relations: Mapping[str, Node], *, scan_path: Callable[[str], str] | None = None) -> str:
    """Check a read-only query and replace references to ``relations`` by their compiled SQL.

    One SELECT-like statement only; every table it names must be one of ``relations`` or a CTE
    in scope there; table functions (``read_csv(...)`` …) and file-reading, file-listing or
    setting-revealing functions (:data:`_FORBIDDEN_FUNCTIONS`) are refused, as are brackets nested
    deeper than :data:`MAX_NESTING`. ``scan_path`` rewrites the paths the compiled relations read
    (see :func:`map_scan_paths`). Raises :class:`SQLError`.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise SQLError("SQL must be a non-empty string, e.g. 'SELECT count(*) FROM catalog'")
    _tokens(sql, "SQL")
    try:
        with parser_stack():
            statements = sqlglot.parse(sql, read=DIALECT)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        raise SQLError(f"cannot parse SQL: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise _too_deep("SQL") from None
    trees = [s for s in statements if s is not None]
    if len(trees) != 1:
        raise SQLError(f"expected exactly one SQL statement, got {len(trees)}")
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        raise SQLError(f"only read-only queries (SELECT …) are allowed, got {tree.key.upper()}")
    _check_functions(tree, "catalog SQL")
    listings: dict = {}  # each catalog listed once, however many relations read it
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise SQLError(f"table functions are not allowed in catalog SQL: {table.this.sql(DIALECT)}")
        name = table.name
        if table.args.get("db") or table.args.get("catalog"):
            raise SQLError(f"unknown table {table.sql(DIALECT)!r}; available: {sorted(relations)}")
        if _cte_in_scope(table):
            continue
        if name not in relations:
            raise SQLError(f"unknown table {name!r}; available: {sorted(relations)}")
        alias = table.alias or name
        table.replace(visit(bind(relations[name], listings)).subquery(alias))
    if scan_path is not None:
        map_scan_paths(tree, scan_path)
    try:
        with parser_stack():
            return tree.sql(dialect=DIALECT)
    except RecursionError:
        raise _too_deep("SQL") from None


def _cte_in_scope(table: exp.Table) -> bool:
    """Whether ``table`` names a CTE visible where it stands: one of an enclosing query's WITH,
    or, inside a CTE, one defined before it in the same WITH (or itself, if RECURSIVE). A name
    matching a CTE elsewhere would make DuckDB look it up as a table or file instead."""
    name = table.name
    node: exp.Expr = table
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.With):  # node is one of its CTEs: only earlier ones are visible
            index = next(i for i, cte in enumerate(parent.expressions) if cte is node)
            visible = parent.expressions[: index + 1 if parent.args.get("recursive") else index]
            if any(cte.alias_or_name == name for cte in visible):
                return True
            if parent.parent is None:
                return False
            node = parent.parent  # the query owning this WITH: not its whole WITH again
            continue
        if isinstance(parent, exp.Query):
            with_ = parent.args.get("with_")
            if with_ is not None and any(cte.alias_or_name == name for cte in with_.expressions):
                return True
        node = parent
    return False


def map_scan_paths(tree: exp.Expr, scan_path: Callable[[str], str]) -> exp.Expr:
    """Rewrite, in place, the file paths and globs that the ``read_parquet`` scans of compiled
    relations in ``tree`` read, through ``scan_path``; returns ``tree``."""
    for call in tree.find_all(exp.ReadParquet):
        files = call.expressions[0] if call.expressions else None
        literals = [files] if isinstance(files, exp.Literal) else list(getattr(files, "expressions", []))
        for literal in literals:
            if isinstance(literal, exp.Literal) and literal.is_string:
                literal.replace(exp.Literal.string(scan_path(literal.this)))
    return tree


# -- generated DuckDB macros (sql/geoduck.sql) ---------------------------------------------------

MACRO_BEGIN = "-- BEGIN GENERATED: geoduck_intersect (geoduck.compiler.update_macro_file(); do not edit)"
MACRO_END = "-- END GENERATED: geoduck_intersect"


_MACRO_GLOB = {side: f"__geoduck_macro__/{side}" for side in ("left", "right")}
"""Stand-ins for the macro's ``left_glob``/``right_glob`` parameters (bound scans: no I/O)."""


def intersect_macro_sql() -> str:
    """The ``geoduck_intersect`` table macro: the Python engine's intersect plan (the same
    :func:`exact_pairs` join) over two globs.

    ``cell`` (degrees) and ``bucket_us`` only tune speed; the pairs are exact for any values.
    """
    left, right, ctes = _sides(
        *(visit(Scan(_MACRO_GLOB[side], parts=Parts((), _MACRO_GLOB[side]))) for side in ("left", "right"))
    )
    values = {
        "cell": exp.column("cell"),
        "bucket": exp.column("bucket_us"),
        "max_cells": exp.Literal.number(JoinPlan(1.0, 1).max_cells),
        "max_buckets": exp.Literal.number(JoinPlan(1.0, 1).max_buckets),
        "timed": exp.not_(exp.column("spatial_only")),
    }
    # the production join (exact_pairs), with the plan as macro parameters; ids may repeat: distinct
    pairs = _joined(left, right, _candidates(left.copy(), right.copy(), values, distinct=True))
    pairs.set(
        "expressions",
        [
            exp.alias_(
                exp.DPipe(
                    this=exp.DPipe(this=exp.column("lid", "p"), expression=exp.Literal.string("|")),
                    expression=exp.column("rid", "p"),
                ),
                schema.ID,
            ),
            exp.alias_(exp.column("lid", "p"), "left_id"),
            exp.alias_(exp.column("rid", "p"), "right_id"),
            exp.alias_(
                exp.func("ST_Intersection", exp.column(schema.GEOMETRY, "l"), exp.column(schema.GEOMETRY, "r")),
                schema.GEOMETRY,
            ),
            exp.alias_(
                exp.func("greatest", exp.column(schema.START, "l"), exp.column(schema.START, "r")), schema.START
            ),
            exp.alias_(exp.func("least", exp.column(schema.END, "l"), exp.column(schema.END, "r")), schema.END),
            exp.alias_(exp.column(schema.FILEPATH, "l"), "left_filepath"),
            exp.alias_(exp.column(schema.FILEPATH, "r"), "right_filepath"),
        ],
    )
    tree = _with_sides(pairs, ctes)
    for lit in list(tree.find_all(exp.Literal)):
        if lit.is_string and lit.this in _MACRO_GLOB.values():
            lit.replace(exp.column(f"{lit.this.split('/')[1]}_glob"))
    body = tree.sql(dialect=DIALECT, pretty=True)
    return (
        f"{MACRO_BEGIN}\n"
        "CREATE OR REPLACE MACRO geoduck_intersect(left_glob, right_glob, cell := 1.0,\n"
        "                                          bucket_us := 86400000000, spatial_only := false) AS TABLE\n"
        f"{body};\n{MACRO_END}\n"
    )


def update_macro_file(path: str | None = None) -> bool:
    """Rewrite the generated section of ``sql/geoduck.sql``; True if it changed."""
    from pathlib import Path

    from .engine import macros_path

    target = Path(path) if path else macros_path()
    text = target.read_text()
    start, end = text.index(MACRO_BEGIN.split(" (")[0]), text.index(MACRO_END) + len(MACRO_END) + 1
    new = text[:start] + intersect_macro_sql() + text[end:]
    target.write_text(new)
    return new != text


# -- maintenance ----------------------------------------------------------------------------------

PART_ORDER_SQL = (
    "ST_Hilbert((bbox.xmin + bbox.xmax) / 2, (bbox.ymin + bbox.ymax) / 2, "
    "{'min_x': -180.0, 'min_y': -90.0, 'max_x': 180.0, 'max_y': 90.0}::BOX_2D), start_datetime NULLS FIRST, id"
)
"""The one row order of parts, as an SQL ``ORDER BY`` list over catalog columns: the Hilbert key of
the bbox centre on the lon/lat globe, then start time (static rows first), then id. Compaction
(:func:`sorted_rows`, DuckDB) sorts by it; :func:`geoduck.store.sort_rows` computes the same order in numpy
(:func:`geoduck.geo.hilbert_key` equals DuckDB's ``ST_Hilbert`` key; tests/test_store.py checks both
give one order)."""


_SORTED_SQL = f"""
SELECT * REPLACE (ST_AsWKB(geometry) AS geometry)
FROM __child__
ORDER BY {PART_ORDER_SQL}
"""

_SUMMARY_SQL = """
SELECT count(*) AS n, list(DISTINCT ST_GeometryType(geometry)::VARCHAR) AS types
FROM __child__
"""


def sorted_rows(node: Node) -> exp.Select:
    """All rows Hilbert-sorted by bbox centre, then start time (geometry as WKB): for compaction."""
    return _template(_SORTED_SQL, {"__child__": visit(bind(node))})


def summary(node: Node) -> exp.Select:
    """Row count and geometry type names of a relation (one row; each written part computes its
    own bbox)."""
    return _template(_SUMMARY_SQL, {"__child__": visit(bind(node))})


# -- storage and tool statements (no catalog query; parameters bound by DuckDB) -------------------


def describe(sql: str) -> str:
    """DuckDB's ``DESCRIBE`` of the query ``sql`` (its result columns and types)."""
    return f"DESCRIBE {sql}"


def explain(sql: str, analyze: bool = False) -> str:
    """DuckDB's ``EXPLAIN`` (``EXPLAIN ANALYZE``: run and timed) of the query ``sql``."""
    return f"EXPLAIN {'ANALYZE ' if analyze else ''}{sql}"


GLOB_FILES_SQL = "SELECT file FROM glob(?)"
"""The files matching a glob (remote listings through httpfs)."""

READ_TEXT_SQL = "SELECT content FROM read_text(?)"
"""One file's text (a remote manifest through httpfs)."""

READ_BLOB_SQL = "SELECT content FROM read_blob(?)"
"""One file's bytes (a remote part index through httpfs)."""

FOOTER_KV_SQL = "SELECT file_name, decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = ?"
"""One key-value metadata entry from each footer of a list of Parquet files."""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def catalog_views(name: str, parts_glob: str, manifest_glob: str, columns: Sequence[str]) -> list[str]:
    """The ``CREATE VIEW`` statements of one catalog as ``name`` in a DuckDB database file
    (:mod:`geoduck.database`): its rows through the ``geoduck_catalog`` macro over ``parts_glob``
    and ``manifest_glob``, ``name_footprints``, ``name_monthly`` and, with a ``backend`` column,
    ``name_backends``."""
    view = _quote_ident(name)
    out = [
        f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM geoduck_catalog({_quote_str(parts_glob)}, "
        f"{_quote_str(manifest_glob)})",
        f"CREATE OR REPLACE VIEW {_quote_ident(name + '_footprints')} AS "
        f"SELECT * REPLACE (geometry::GEOMETRY AS geometry) FROM {view}",
        f"CREATE OR REPLACE VIEW {_quote_ident(name + '_monthly')} AS "
        "SELECT date_trunc('month', make_timestamp(epoch_us(start_datetime)))::DATE AS month, count(*) AS n "
        f"FROM {view} GROUP BY ALL ORDER BY month NULLS FIRST",
    ]
    if schema.BACKEND in columns:
        out.append(
            f"CREATE OR REPLACE VIEW {_quote_ident(name + '_backends')} AS "
            f"SELECT backend, count(*) AS n FROM {view} GROUP BY ALL ORDER BY backend"
        )
    return out
