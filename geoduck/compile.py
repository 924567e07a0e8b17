"""Relation nodes → sqlglot expression trees → DuckDB SQL. All SQL generation lives here.

User values only ever enter the tree as sqlglot literals (numbers, strings, casts), never as SQL
text. Spatial filters emit the ``bbox`` covering inequalities first (DuckDB pushes them into the
Parquet scan and prunes row groups by their statistics) and the exact ``ST_Intersects`` second.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import singledispatch

import pandas as pd
import sqlglot
from sqlglot import exp

from . import schema, store
from .errors import SQLError
from .expr import Node, Scan, SpatialFilter, TimeFilter

DIALECT = "duckdb"


# -- literals -----------------------------------------------------------------------------------

def num(value: float) -> exp.Expression:
    """A float literal that round-trips exactly (repr of a Python float)."""
    text = repr(float(value))
    lit = exp.Literal.number(text.lstrip("-"))
    return exp.Neg(this=lit) if text.startswith("-") else lit


def timestamp(value: pd.Timestamp) -> exp.Expression:
    """A ``TIMESTAMPTZ`` literal (UTC, µs)."""
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("TIMESTAMPTZ"))


def col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def bbox_field(key: str) -> exp.Expression:
    """``bbox.<key>``: a field of the GeoParquet covering struct."""
    return exp.Dot(this=col(schema.BBOX), expression=exp.to_identifier(key))


# -- nodes --------------------------------------------------------------------------------------

@singledispatch
def visit(node: Node) -> exp.Select:
    """Compile a relation node to a sqlglot SELECT (one ``visit`` per node type)."""
    raise NotImplementedError(f"no compiler for {type(node).__name__}")


@visit.register
def _(node: Scan) -> exp.Select:
    source = exp.func(
        "read_parquet",
        exp.Literal.string(store.part_glob(node.root)),
        exp.EQ(this=exp.var("union_by_name"), expression=exp.true()),
        exp.EQ(this=exp.var("hive_partitioning"), expression=exp.false()),
    )
    return exp.select(exp.Star()).from_(source)


def _filter(child: exp.Select, condition: exp.Expression) -> exp.Select:
    """Add ``condition`` to ``child``'s WHERE when it is a plain scan/filter, else wrap it."""
    simple = not any(child.args.get(k) for k in ("group", "limit", "order", "distinct", "having"))
    if simple and isinstance(child, exp.Select):
        return child.where(condition, copy=True)
    return exp.select(exp.Star()).from_(child.subquery("_rel")).where(condition)


def bbox_overlaps(box: tuple[float, float, float, float]) -> exp.Expression:
    """Covering inequalities: the row's bbox overlaps ``box`` (lon/lat), boundaries included."""
    xmin, ymin, xmax, ymax = box
    return exp.and_(
        exp.LTE(this=bbox_field("xmin"), expression=num(xmax)),
        exp.GTE(this=bbox_field("xmax"), expression=num(xmin)),
        exp.LTE(this=bbox_field("ymin"), expression=num(ymax)),
        exp.GTE(this=bbox_field("ymax"), expression=num(ymin)),
    )


@visit.register
def _(node: SpatialFilter) -> exp.Select:
    boxes = node.boxes
    envelope = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))
    conditions = [bbox_overlaps(envelope)]
    if len(boxes) > 1:
        conditions.append(exp.or_(*(exp.paren(bbox_overlaps(b)) for b in boxes)))
    aoi = exp.func("ST_GeomFromHEXWKB", exp.Literal.string(node.aoi_wkb.hex().upper()))
    conditions.append(exp.func("ST_Intersects", col(schema.GEOMETRY), aoi))
    return _filter(visit(node.child), exp.and_(*conditions))


def time_overlaps(start: pd.Timestamp | None, end: pd.Timestamp | None) -> exp.Expression | None:
    """Closed-interval overlap with ``[start, end]``; static (NULL) row ends always match."""
    parts: list[exp.Expression] = []
    if end is not None:
        parts.append(exp.paren(exp.or_(
            exp.LTE(this=col(schema.START), expression=timestamp(end)),
            exp.Is(this=col(schema.START), expression=exp.null()))))
    if start is not None:
        parts.append(exp.paren(exp.or_(
            exp.GTE(this=col(schema.END), expression=timestamp(start)),
            exp.Is(this=col(schema.END), expression=exp.null()))))
    return exp.and_(*parts) if parts else None


@visit.register
def _(node: TimeFilter) -> exp.Select:
    child = visit(node.child)
    condition = time_overlaps(node.start, node.end)
    return child if condition is None else _filter(child, condition)


def to_sql(node: Node, *, pretty: bool = True) -> str:
    """DuckDB SQL text of a relation."""
    return visit(node).sql(dialect=DIALECT, pretty=pretty)


def aggregate(node: Node, *selects: exp.Expression) -> exp.Select:
    """``SELECT <selects> FROM (<node>)``."""
    return exp.select(*selects).from_(visit(node).subquery("_rel"))


# -- user SQL -----------------------------------------------------------------------------------

def bind_user_sql(sql: str, relations: Mapping[str, Node]) -> str:
    """Check a read-only query and replace references to ``relations`` by their compiled SQL.

    One SELECT-like statement only; every table it names must be one of ``relations`` or a CTE;
    table functions (``read_csv(...)`` …) are refused. Raises :class:`SQLError`.
    """
    try:
        statements = sqlglot.parse(sql, read=DIALECT)
    except sqlglot.errors.ParseError as exc:
        raise SQLError(f"cannot parse SQL: {str(exc).splitlines()[0]}") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise SQLError(f"expected exactly one SQL statement, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise SQLError(f"only read-only queries (SELECT …) are allowed, got {tree.key.upper()}")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise SQLError(f"table functions are not allowed in catalog SQL: {table.this.sql(DIALECT)}")
        name = table.name
        if table.args.get("db") or table.args.get("catalog"):
            raise SQLError(f"unknown table {table.sql(DIALECT)!r}; available: {sorted(relations)}")
        if name in ctes:
            continue
        if name not in relations:
            raise SQLError(f"unknown table {name!r}; available: {sorted(relations)}")
        alias = table.alias or name
        table.replace(visit(relations[name]).subquery(alias))
    return tree.sql(dialect=DIALECT)
