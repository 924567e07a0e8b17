"""Immutable relation nodes. A :class:`~geoduck.catalog.Catalog` wraps one of these trees; nothing
runs until :mod:`geoduck.compile` turns the tree into SQL and the engine executes it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Node:
    """Base class of relation nodes."""


@dataclass(frozen=True)
class Scan(Node):
    """All rows of the catalog directory ``root`` (every committed ``*.parquet`` part)."""

    root: str


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
    start: pd.Timestamp | None
    end: pd.Timestamp | None
