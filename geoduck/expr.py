"""Immutable relation nodes. A :class:`~geoduck.catalog.Catalog` wraps one of these trees; nothing
runs until :mod:`geoduck.compiler` turns the tree into SQL and the engine executes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt

    import pyarrow as pa

    from .store import PartExtent


@dataclass(frozen=True)
class Node:
    """Base class of relation nodes."""


@dataclass(frozen=True)
class Parts:
    """What one scan reads, as bound at one moment (:func:`geoduck.storage.bind`): the compiler
    renders it without any I/O."""

    paths: tuple[str, ...]
    """The live part files (local paths or URIs), oldest first."""
    glob: str | None = None
    """A glob that reads exactly ``paths`` (no replacement pending); None: name the parts."""
    extents: tuple[PartExtent, ...] | None = None
    """Footer statistics of each of ``paths`` (local parts under a filter that may skip whole
    parts); None: unknown, every part is read."""


@dataclass(frozen=True)
class Scan(Node):
    """All rows of the catalog directory ``root`` (its live ``*.parquet`` parts), or of exactly
    the part ``files`` given (a snapshot, e.g. for compaction). ``parts``: set by binding."""

    root: str
    files: tuple[str, ...] | None = None
    parts: Parts | None = None


@dataclass(frozen=True)
class SpatialFilter(Node):
    """Rows whose footprint intersects ``aoi_wkb`` (a lon/lat EPSG:4326 (Multi)Polygon).

    ``boxes`` are the lon/lat bounds of the AOI's polygons (several when it crosses ±180°), used
    for the row-group-pruning bbox inequalities before the exact ``ST_Intersects``.
    """

    child: Node
    aoi_wkb: bytes
    boxes: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class TimeFilter(Node):
    """Rows whose closed interval overlaps ``[start, end]`` (None = open end); static rows always."""

    child: Node
    start: dt.datetime | None
    end: dt.datetime | None


@dataclass(frozen=True)
class Where(Node):
    """Rows satisfying ``predicate`` (a validated sqlglot condition over the child's columns)."""

    child: Node
    predicate: str
    """The predicate as DuckDB SQL, re-rendered by sqlglot from the validated tree."""


@dataclass(frozen=True)
class JoinPlan:
    """Parameters of the spatiotemporal candidate join (chosen from the data at construction).

    ``cell`` is the lon/lat grid size in degrees, ``bucket_us`` the time bucket in µs. Rows spanning
    at most ``max_cells`` cells and ``max_buckets`` buckets take the keyed hash join; larger ones a
    bbox range join.

    ``distinct`` makes the candidate (left id, right id) pairs distinct: needed when an input may
    repeat ids (a union without dedupe, or rows sharing an id), else every pair is unique already.
    """

    cell: float
    bucket_us: int
    max_cells: int = 64
    max_buckets: int = 64
    distinct: bool = True


@dataclass(frozen=True)
class Intersect(Node):
    """Pairs (l, r) whose footprints intersect and (unless ``spatial_only``) intervals overlap.

    Output: ``id`` = ``l.id|r.id``, ``geometry`` = footprint intersection, ``bbox`` of it, interval
    ``[max(starts), min(ends)]``, ``schema_version``, then every other column as ``left_*``/``right_*``.
    """

    left: Node
    right: Node
    spatial_only: bool
    plan: JoinPlan
    left_columns: tuple[str, ...]
    right_columns: tuple[str, ...]


@dataclass(frozen=True)
class Difference(Node):
    """Rows of ``left`` that no row of ``right`` intersects (space, and time unless spatial_only)."""

    left: Node
    right: Node
    spatial_only: bool
    plan: JoinPlan


@dataclass(frozen=True)
class Union(Node):
    """All rows of both inputs by column name, with a ``source`` column naming each input."""

    left: Node
    right: Node
    left_name: str
    right_name: str
    left_has_source: bool
    right_has_source: bool
    dedupe: bool
    order_column: str = "_ord"
    """Name of the helper column that numbers the sides (one neither side has, in any case)."""


@dataclass(frozen=True)
class Pad(Node):
    """Intervals widened to ``[start - before, end + after]`` (µs); static rows stay static."""

    child: Node
    before_us: int
    after_us: int


@dataclass(frozen=True, eq=False)
class UserTable:
    """An in-memory Arrow table joined to a catalog, registered on each DuckDB cursor that runs a
    query over it under the opaque generated ``name`` (its values never enter SQL text). Compared
    and hashed by identity."""

    name: str
    table: pa.Table


@dataclass(frozen=True)
class Join(Node):
    """Rows of ``child`` with the ``columns`` of ``table`` whose ``on`` key values equal theirs
    (``how="inner"``: matching rows only; ``"left"``: every row, NULLs where none matches). The
    table's keys are unique and non-null (checked by :meth:`~geoduck.catalog.Catalog.join`), so
    no row is repeated."""

    child: Node
    table: UserTable
    on: tuple[str, ...]
    how: str
    columns: tuple[str, ...]
    """The table's other columns, added after the child's in this order."""


def user_tables(node: Node) -> dict[str, pa.Table]:
    """``name → table`` of every :class:`UserTable` joined anywhere in ``node``."""
    out: dict[str, pa.Table] = {}
    for value in vars(node).values():
        if isinstance(value, UserTable):
            out[value.name] = value.table
        elif isinstance(value, Node):
            out.update(user_tables(value))
    return out
