"""The user-facing :class:`Catalog`: an immutable, lazy relation over catalog rows.

``query`` returns a new relation; nothing runs until rows are asked for (``len()``, iteration,
``to_arrow()``, ``to_geopandas()``). Footprints and bboxes are lon/lat EPSG:4326.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import duckdb
import geopandas as gpd
import pandas as pd
import pyarrow as pa
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from sqlglot import exp

from . import compile as sqlc
from . import engine, schema, store
from .builders.common import BuildReport
from .errors import ArgumentError, SQLError
from .expr import Node, Scan, SpatialFilter, TimeFilter
from .geo import WGS84, check_lonlat_bounds, geometry_to_wgs84, norm_crs, validate_bounds
from .intervals import TimeLike, query_interval


def open_catalog(path: str | os.PathLike[str], *, build_report: BuildReport | None = None) -> Catalog:
    """Open the catalog directory at ``path`` (a folder of GeoParquet parts).

    Raises :class:`~geoduck.errors.CatalogNotFoundError` if it has no parts and
    :class:`~geoduck.errors.SchemaError` if a part has an unreadable schema version.
    """
    root = store.require_catalog(path)
    store.check_schema_versions(root)
    return Catalog(Scan(str(root)), build_report=build_report)


def _as_geometry(geometry: Any) -> BaseGeometry:
    if isinstance(geometry, BaseGeometry):
        return geometry
    if isinstance(geometry, str):
        try:
            return shapely.from_wkt(geometry)
        except shapely.errors.ShapelyError as exc:
            raise ArgumentError(f"geometry is not valid WKT: {exc}") from None
    if isinstance(geometry, Mapping) or hasattr(geometry, "__geo_interface__"):
        try:
            return shapely.geometry.shape(geometry)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise ArgumentError(f"geometry is not a GeoJSON-like geometry: {exc}") from None
    raise ArgumentError(f"geometry must be a shapely geometry, WKT or GeoJSON, got {type(geometry).__name__}")


def aoi_to_wgs84(bbox: Any = None, geometry: Any = None, crs: Any = None) -> Polygon | MultiPolygon:
    """The AOI of a query as lon/lat (Multi)Polygon (densified, antimeridian-safe).

    Without ``crs`` the AOI must be lon/lat; a bbox whose numbers cannot be degrees is an error.
    A lon/lat bbox with ``xmin > xmax`` crosses the antimeridian.
    """
    if (bbox is None) == (geometry is None):
        raise ArgumentError("give exactly one of bbox= or geometry=")
    src = WGS84 if crs is None else norm_crs(crs)
    if bbox is not None:
        b = validate_bounds(bbox)
        if src.is_geographic:
            check_lonlat_bounds(b)
            if b[0] > b[2]:  # crosses the antimeridian (GeoJSON/STAC convention)
                b = (b[0], b[1], b[2] + 360.0, b[3])
        elif b[0] > b[2]:
            raise ArgumentError(f"bbox={tuple(bbox)}: xmin > xmax")
        geom: BaseGeometry = box(*b)
        if b[0] == b[2] or b[1] == b[3]:  # a point/line bbox: keep it as a thin polygon
            geom = geom.buffer(1e-9 if src.is_geographic else 1e-6, join_style="mitre")
    else:
        geom = _as_geometry(geometry)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        if src.is_geographic and not geom.is_empty:
            check_lonlat_bounds(geom.bounds, argument="geometry bounds")
        if geom.area == 0 and not geom.is_empty:
            geom = geom.buffer(1e-9 if src.is_geographic else 1e-6)
    return geometry_to_wgs84(geom, src)


class Catalog:
    """A lazy, immutable relation over catalog rows (see module docstring)."""

    __slots__ = ("_node", "build_report")

    def __init__(self, node: Node, *, build_report: BuildReport | None = None) -> None:
        self._node = node
        self.build_report = build_report
        """What the build that returned this catalog did (None for other relations)."""

    # -- relational API -------------------------------------------------------------------------
    @property
    def node(self) -> Node:
        return self._node

    def query(self, bbox: Any = None, geometry: Any = None, crs: Any = None,
              start: TimeLike = None, end: TimeLike = None) -> Catalog:
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
        t0, t1 = query_interval(start, end)
        if t0 is not None or t1 is not None:
            node = TimeFilter(node, t0, t1)
        return Catalog(node)

    # -- SQL ------------------------------------------------------------------------------------
    @property
    def sql_text(self) -> str:
        """The DuckDB SQL this relation runs."""
        return sqlc.to_sql(self._node)

    def explain(self, analyze: bool = False) -> str:
        """DuckDB's physical plan (``EXPLAIN`` / ``EXPLAIN ANALYZE``) of this relation."""
        prefix = "EXPLAIN ANALYZE " if analyze else "EXPLAIN "
        rows = engine.cursor().execute(prefix + sqlc.to_sql(self._node, pretty=False)).fetchall()
        return "\n".join(str(r[-1]) for r in rows)

    def sql(self, query: str) -> pd.DataFrame | gpd.GeoDataFrame:
        """Run read-only SQL in which the table ``catalog`` is this relation.

        Returns a GeoDataFrame when the result has a geometry column, else a DataFrame.
        """
        return _run_user_sql(query, {"catalog": self._node})

    # -- results --------------------------------------------------------------------------------
    def _execute(self, select: exp.Expression) -> duckdb.DuckDBPyConnection:
        return engine.cursor().execute(select.sql(dialect=sqlc.DIALECT))

    def to_arrow(self) -> pa.Table:
        """All rows as an Arrow table (``geometry`` as GeoArrow WKB with its CRS)."""
        return self._execute(sqlc.visit(self._node)).to_arrow_table()

    def to_geopandas(self) -> gpd.GeoDataFrame:
        """All rows as a GeoDataFrame in EPSG:4326."""
        return _arrow_to_frame(self.to_arrow(), require_geometry=True)

    def __len__(self) -> int:
        count = sqlc.aggregate(self._node, exp.Count(this=exp.Star()))
        return int(self._execute(count).fetchone()[0])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts (``geometry`` as a shapely geometry), streamed in batches."""
        reader = self._execute(sqlc.visit(self._node)).to_arrow_reader(10_000)
        for batch in reader:
            rows = batch.to_pylist()
            geoms = shapely.from_wkb([r[schema.GEOMETRY] for r in rows]) if rows else []
            for row, g in zip(rows, geoms, strict=True):
                row[schema.GEOMETRY] = g
                yield row

    @property
    def total_bounds(self) -> tuple[float, float, float, float] | None:
        """(xmin, ymin, xmax, ymax) lon/lat of all footprints; None when empty."""
        mins = [exp.Min(this=sqlc.bbox_field(k)) for k in ("xmin", "ymin")]
        maxs = [exp.Max(this=sqlc.bbox_field(k)) for k in ("xmax", "ymax")]
        row = self._execute(sqlc.aggregate(self._node, *mins, *maxs)).fetchone()
        return None if row[0] is None else (row[0], row[1], row[2], row[3])

    @property
    def temporal_extent(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """(earliest start, latest end) in UTC over dated rows; (None, None) if all are static."""
        select = sqlc.aggregate(self._node, exp.Min(this=sqlc.col(schema.START)),
                                exp.Max(this=sqlc.col(schema.END)))
        t = self._execute(select).to_arrow_table()
        start, end = t.column(0)[0].as_py(), t.column(1)[0].as_py()
        return (None if start is None else pd.Timestamp(start).tz_convert("UTC"),
                None if end is None else pd.Timestamp(end).tz_convert("UTC"))

    def __repr__(self) -> str:
        root = _root_of(self._node)
        return f"<geoduck.Catalog {type(self._node).__name__} over {root!r}>"


def _root_of(node: Node) -> str | None:
    while not isinstance(node, Scan):
        node = getattr(node, "child", None)
        if node is None:
            return None
    return node.root


def _arrow_to_frame(table: pa.Table, *, require_geometry: bool = False
                    ) -> pd.DataFrame | gpd.GeoDataFrame:
    geo_cols = [f.name for f in table.schema
                if (f.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"]
    if not geo_cols:
        if require_geometry:
            raise SQLError("result has no geometry column")
        return table.to_pandas()
    geometry = schema.GEOMETRY if schema.GEOMETRY in geo_cols else geo_cols[0]
    frame = gpd.GeoDataFrame.from_arrow(table, geometry=geometry)
    if frame.crs is None:
        frame = frame.set_crs(WGS84)
    return frame


def _run_user_sql(query: str, relations: Mapping[str, Node]) -> pd.DataFrame | gpd.GeoDataFrame:
    bound = sqlc.bind_user_sql(query, relations)
    try:
        table = engine.cursor().execute(bound).to_arrow_table()
    except duckdb.Error as exc:
        raise SQLError(f"query failed: {str(exc).splitlines()[0]}") from None
    return _arrow_to_frame(table)


def sql(query: str, **catalogs: Catalog) -> pd.DataFrame | gpd.GeoDataFrame:
    """Run read-only SQL over several catalogs, each named by its keyword.

    Example: ``geoduck.sql("SELECT count(*) FROM s2 JOIN labels USING (tile)", s2=a, labels=b)``.
    """
    if not catalogs:
        raise ArgumentError("name at least one catalog, e.g. sql('SELECT …', s2=catalog)")
    return _run_user_sql(query, {name: cat.node for name, cat in catalogs.items()})
