"""STAC out: a catalog or any query result as STAC Items, written as stac-geoparquet
(:func:`to_stac_geoparquet`, through the ``stac_geoparquet`` library) or as a static catalog
(:func:`to_stac`, through ``pystac``).

Rows become Items and Assets by the scene/band model:

- *Item* = the rows sharing ``scene_id`` (a row without one is an Item of its own, id = row ``id``);
  item id = ``scene_id``. Geometry = the rows' footprint (lon/lat; a footprint split at ±180° stays
  a MultiPolygon, its bbox has ``xmin > xmax``); ``datetime`` = the interval when it is one instant,
  else ``datetime: null`` with ``start_datetime``/``end_datetime`` (closed interval, UTC).
- *Asset* = one row: key = ``band`` (``"data"`` for a row without one), href = ``filepath``
  (absolute; ``relative_hrefs=True`` writes them relative to the Item JSON in a static catalog),
  media type from the file extension, roles ``["data"]``, the projection extension from the native
  grid (``crs`` → ``proj:code`` or ``proj:wkt2``, ``transform`` → ``proj:transform``,
  ``height``/``width`` → ``proj:shape``, ``native_bounds`` → ``proj:bbox``), ``raster:bands``
  from ``count``/``dtype``/``nodata``/resolution and ``eo:bands`` from the band name (and
  ``common_name``, which STAC-built catalogs keep).
- *Properties* = the other columns (regex groups, or the typed STAC property columns of a
  STAC-built catalog such as ``"eo:cloud_cover"``) whose value is the same on every row of the
  Item, plus the JSON object in ``stac_properties``; a column whose values differ between an
  Item's rows goes on each Asset instead. Columns named ``stac_*`` other than ``stac_properties``
  and ``proj:*`` columns (rebuilt from the grid) are not exported.
- *Collection* = the ``collection`` column's value (or ``collection_id``, default the catalog's
  name), with spatial extent = the union of the item bboxes (across ±180° when shorter), temporal
  extent and pystac's summaries (platform, constellation, instruments, gsd, …) plus ``proj:code``.

A row that has no time (a static row) has no STAC datetime: pass ``static_datetime`` to give one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry import mapping

from . import schema, store
from .errors import ArgumentError, StorageError, UnsupportedError
from .geo import Bounds, geojson_bbox, geojson_bbox_union
from .intervals import query_interval

if TYPE_CHECKING:
    import pystac

    from .catalog import Catalog

log = logging.getLogger(__name__)

COLLECTION = schema.COLLECTION
STAC_PROPERTIES = schema.STAC_PROPERTIES
DEFAULT_ASSET_KEY = "data"
"""Asset key of a row without a ``band``."""

_MEDIA_TYPES: Mapping[str, str] = {
    ".tif": "image/tiff; application=geotiff",
    ".tiff": "image/tiff; application=geotiff",
    ".jp2": "image/jp2",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".nc": "application/netcdf",
    ".nc4": "application/netcdf",
    ".h5": "application/x-hdf5",
    ".hdf5": "application/x-hdf5",
    ".zarr": "application/vnd+zarr",
    ".geojson": "application/geo+json",
    ".json": "application/geo+json",
    ".gpkg": "application/geopackage+sqlite3",
    ".fgb": "application/vnd.flatgeobuf",
    ".parquet": "application/vnd.apache.parquet",
    ".shp": "application/x-shapefile",
}
"""Asset media types by (lower-case) file extension; others get none."""

_NOT_PROPERTIES = frozenset(
    {*schema.RESERVED_COLUMNS, *(f.name for f in schema.STAC_FIELDS), STAC_PROPERTIES, schema.STAC_KEY, "datetime"}
    - {schema.START, schema.END}
)
_REQUIRED = (schema.ID, schema.FILEPATH, schema.GEOMETRY, schema.START, schema.END)


def _pystac() -> Any:
    try:
        import pystac
    except ImportError:  # pragma: no cover - the stac extra is missing
        raise UnsupportedError("STAC export needs pystac: pip install 'geoduck[stac]'") from None
    return pystac


def media_type(href: str) -> str | None:
    """The asset media type of ``href`` from its file extension (None when unknown)."""
    path = href.split("?", 1)[0].rstrip("/")
    return _MEDIA_TYPES.get(os.path.splitext(path)[1].lower())


# -- rows → items --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemRows:
    """The catalog rows (dicts, ``geometry`` as WKB) that make one STAC Item, in asset order."""

    item_id: str
    rows: tuple[dict[str, Any], ...]


def group_items(rows: Sequence[dict[str, Any]]) -> list[ItemRows]:
    """Rows grouped into Items: by ``scene_id``, a row without one alone (id = row ``id``);
    items in order of first appearance, assets sorted by key. Two rows of one item with the same
    asset key are an :class:`ArgumentError` naming both."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = row.get(schema.SCENE_ID) or row[schema.ID]
        groups.setdefault(key, []).append(row)
    items = []
    for key, members in groups.items():
        seen: dict[str, str] = {}
        for row in members:
            asset = _asset_key(row)
            if asset in seen:
                raise ArgumentError(
                    f"item {key!r} has two rows for asset {asset!r} ({seen[asset]!r} and {row[schema.FILEPATH]!r}): "
                    "select one of them with where(...) before exporting"
                )
            seen[asset] = row[schema.FILEPATH]
        items.append(ItemRows(key, tuple(sorted(members, key=_asset_key))))
    return items


def _asset_key(row: Mapping[str, Any]) -> str:
    return row.get(schema.BAND) or DEFAULT_ASSET_KEY


def _json_value(value: Any) -> Any:
    """A column value as JSON (timestamps as RFC 3339 UTC, NaN as None)."""
    if isinstance(value, dt.datetime):
        return _rfc3339(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _rfc3339(t: dt.datetime) -> str:
    t = t.astimezone(dt.UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{t.microsecond:06d}Z" if t.microsecond else "Z")


def _item_geometry(rows: Sequence[Mapping[str, Any]]) -> shapely.Geometry:
    wkbs = {bytes(r[schema.GEOMETRY]) for r in rows}
    if len(wkbs) == 1:  # the bands of one STAC item share its geometry: keep it as it was
        return shapely.from_wkb(wkbs.pop())
    return shapely.union_all(shapely.from_wkb(list(wkbs)))


def _interval(
    item: ItemRows, static_datetime: dt.datetime | None
) -> tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None]:
    """(datetime, start_datetime, end_datetime) of an item: its rows' time hull."""
    starts = [r[schema.START] for r in item.rows if r[schema.START] is not None]
    ends = [r[schema.END] for r in item.rows if r[schema.END] is not None]
    if not starts or not ends:
        if static_datetime is None:
            raise ArgumentError(
                f"item {item.item_id!r} ({item.rows[0][schema.FILEPATH]}) is static (no time) and STAC needs one: "
                "pass static_datetime= (CLI --static-datetime), e.g. its production date, or filter static rows out"
            )
        return static_datetime, None, None
    start, end = min(starts), max(ends)
    return (start, None, None) if start == end else (None, start, end)


def _properties(item: ItemRows, columns: Sequence[str]) -> tuple[dict[str, Any], set[str]]:
    """Item properties from the property columns whose values agree across the item's rows and
    from ``stac_properties``; and the columns that differ (they go on the assets)."""
    props: dict[str, Any] = {}
    per_asset: set[str] = set()
    for name in columns:
        values = [r.get(name) for r in item.rows]
        present = [v for v in values if v is not None]
        if not present:
            continue
        if all(_same(v, present[0]) for v in values):
            props[name] = _json_value(present[0])
        else:
            per_asset.add(name)
    for row in item.rows:
        text = row.get(STAC_PROPERTIES)
        if text:
            try:
                nested = json.loads(text)
            except ValueError:
                raise ArgumentError(
                    f"item {item.item_id!r}: column {STAC_PROPERTIES!r} is not JSON ({text[:80]!r})"
                ) from None
            if not isinstance(nested, dict):
                raise ArgumentError(f"item {item.item_id!r}: column {STAC_PROPERTIES!r} is not a JSON object")
            for key, value in nested.items():
                props.setdefault(key, value)
    return props, per_asset


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def property_columns(columns: Sequence[str]) -> list[str]:
    """The columns exported as STAC properties (see the module docstring)."""
    return [
        c
        for c in columns
        if c not in _NOT_PROPERTIES
        and not c.startswith(("proj:", "stac_"))
        and c not in ("raster:bands", "eo:bands", "bands")
    ]


def _crs_fields(crs: str | None) -> dict[str, Any]:
    """Projection-extension CRS fields of a catalog ``crs`` (an authority code, else WKT2)."""
    if not crs:
        return {"proj:code": None}
    if "[" not in crs and ":" in crs:  # "EPSG:32630", "ESRI:102003", "IAU_2015:30100"
        return {"proj:code": crs}
    return {"proj:code": None, "proj:wkt2": crs}


def _stac_nodata(nodata: float) -> float | str:
    """A nodata value as the raster extension writes it (``"nan"``, ``"inf"``, ``"-inf"`` as strings)."""
    if math.isnan(nodata):
        return "nan"
    if math.isinf(nodata):
        return "inf" if nodata > 0 else "-inf"
    return nodata


def _raster_bands(row: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    count = row.get("count")
    if not count:
        return None
    band: dict[str, Any] = {}
    if row.get("dtype"):
        band["data_type"] = row["dtype"]
    nodata = row.get("nodata")
    if nodata is not None:
        band["nodata"] = _stac_nodata(nodata)
    res = [abs(v) for v in (row.get("res_x"), row.get("res_y")) if v]
    if res and len(set(res)) == 1:
        band["spatial_resolution"] = res[0]
    return [dict(band) for _ in range(int(count))]


def _add_asset(item: pystac.Item, row: Mapping[str, Any], per_asset: set[str], item_crs: str | None) -> None:
    pystac = _pystac()
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterBand, RasterExtension

    href = row[schema.FILEPATH]
    band = row.get(schema.BAND)
    asset = pystac.Asset(href=href, title=band, media_type=media_type(href), roles=["data"])
    item.add_asset(_asset_key(row), asset)
    if row.get(schema.CRS) is not None or row.get("transform") is not None:
        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        fields = _crs_fields(row.get(schema.CRS))
        if fields["proj:code"] != item_crs or "proj:wkt2" in fields:
            proj.code = fields["proj:code"]
            if "proj:wkt2" in fields:
                proj.wkt2 = fields["proj:wkt2"]
        if row.get("transform"):
            proj.transform = [float(v) for v in row["transform"][:6]]
        if row.get("width") and row.get("height"):
            proj.shape = [int(row["height"]), int(row["width"])]
        nb = row.get(schema.NATIVE_BOUNDS)
        if nb is not None:
            proj.bbox = [float(nb[k]) for k in schema.BBOX_KEYS]
    bands = _raster_bands(row)
    if bands:
        RasterExtension.ext(asset, add_if_missing=True).bands = [RasterBand.create(**b) for b in bands]
    if band:
        common_name = row.get(schema.COMMON_NAME)
        EOExtension.ext(asset, add_if_missing=True).bands = [Band.create(name=band, common_name=common_name)]
    for name in sorted(per_asset):
        if row.get(name) is not None:
            asset.extra_fields[name] = _json_value(row[name])


def make_item(item: ItemRows, columns: Sequence[str], *, static_datetime: dt.datetime | None = None) -> pystac.Item:
    """One pystac Item from the rows of :func:`group_items` (see the module docstring)."""
    pystac = _pystac()
    from pystac.extensions.projection import ProjectionExtension

    geom = _item_geometry(item.rows)
    when, start, end = _interval(item, static_datetime)
    props, per_asset = _properties(item, property_columns(columns))
    for key in ("datetime", "start_datetime", "end_datetime"):
        props.pop(key, None)
    if start is not None and end is not None:
        props["start_datetime"], props["end_datetime"] = _rfc3339(start), _rfc3339(end)
    crss = {r.get(schema.CRS) for r in item.rows}
    item_crs = _crs_fields(crss.pop()).get("proj:code") if len(crss) == 1 else None
    stac_item = pystac.Item(
        id=item.item_id,
        geometry=mapping(geom),
        bbox=list(geojson_bbox(geom)),
        datetime=when,
        properties=props,
    )
    if item_crs is not None:
        ProjectionExtension.ext(stac_item, add_if_missing=True).code = item_crs
    for row in item.rows:
        _add_asset(stac_item, row, per_asset, item_crs)
    return stac_item


# -- collections ---------------------------------------------------------------------------------
def _collection_of(item: ItemRows, default: str) -> str:
    values = {str(v) for r in item.rows if (v := r.get(COLLECTION)) is not None}
    if len(values) > 1:
        raise ArgumentError(f"item {item.item_id!r} has rows in several collections {sorted(values)}")
    return values.pop() if values else default


def make_collection(collection_id: str, items: Sequence[pystac.Item]) -> pystac.Collection:
    """A pystac Collection for ``items`` (not added to it): extent and summaries."""
    pystac = _pystac()
    from pystac.summaries import Summarizer

    boxes: list[Bounds] = [tuple(i.bbox) for i in items if i.bbox]  # type: ignore[misc]
    starts: list[dt.datetime] = []
    ends: list[dt.datetime] = []
    for i in items:  # every item has a datetime or a start/end range (see _interval)
        start = i.datetime or i.common_metadata.start_datetime
        end = i.datetime or i.common_metadata.end_datetime
        if start is not None and end is not None:
            starts.append(start)
            ends.append(end)
    extent = pystac.Extent(
        pystac.SpatialExtent([list(geojson_bbox_union(boxes))]),
        pystac.TemporalExtent([[min(starts), max(ends)]]),
    )
    summaries = Summarizer().summarize(items)
    codes = sorted(
        {
            str(code)
            for i in items
            for a in i.assets.values()
            if (code := a.extra_fields.get("proj:code") or i.properties.get("proj:code")) is not None
        }
    )
    if codes:
        summaries.add("proj:code", codes)
    names = sorted({k for i in items for k in i.assets})
    if names != [DEFAULT_ASSET_KEY]:
        summaries.add("eo:bands", [{"name": n} for n in names])
    return pystac.Collection(
        id=collection_id,
        description=f"geoduck export of {collection_id}",
        extent=extent,
        summaries=summaries,
        license="other",
    )


@dataclass(frozen=True)
class StacExport:
    """Items grouped by collection id, with their collections."""

    collections: dict[str, pystac.Collection]
    items: dict[str, list[pystac.Item]]

    def all_items(self) -> Iterator[pystac.Item]:
        for items in self.items.values():
            yield from items


def build_export(cat: Catalog, *, collection_id: str | None = None, static_datetime: Any = None) -> StacExport:
    """The Items and Collections of a relation (all its rows; see the module docstring)."""
    missing = [c for c in _REQUIRED if c not in cat.columns]
    if missing:
        raise ArgumentError(
            f"relation {cat.name!r} lacks columns {missing} that STAC items need (pairs from intersect() "
            "cannot be exported: export each side)"
        )
    when: dt.datetime | None = None
    if static_datetime is not None:
        start, _ = query_interval(static_datetime, None)
        when = None if start is None else start.to_pydatetime()
    table = cat.to_arrow().sort_by([(schema.START, "ascending"), (schema.ID, "ascending")])
    if table.num_rows == 0:
        raise ArgumentError("the relation has no rows: nothing to export")
    columns = table.column_names
    default = collection_id or cat.name
    items: dict[str, list[pystac.Item]] = {}
    for group in group_items(table.to_pylist()):
        cid = collection_id or _collection_of(group, default)
        stac_item = make_item(group, columns, static_datetime=when)
        stac_item.collection_id = cid
        items.setdefault(cid, []).append(stac_item)
    return StacExport({cid: make_collection(cid, its) for cid, its in items.items()}, items)


# -- writers -------------------------------------------------------------------------------------
def to_stac_geoparquet(
    cat: Catalog,
    path: str | os.PathLike[str],
    *,
    collection_id: str | None = None,
    collection_href: str | None = None,
    static_datetime: Any = None,
) -> Path:
    """Write the relation's rows as stac-geoparquet (one row per Item; asset hrefs absolute) with
    the ``stac_geoparquet`` library, its Collections in the file's ``stac-geoparquet`` metadata
    (key ``collections``). Written to a temporary name beside ``path`` and renamed into place.
    Returns ``path``.

    STAC allows an Item's ``collection`` field only beside a ``rel="collection"`` link, so the items
    name their collection only when ``collection_href`` says where its JSON lives (a URL or path;
    ``{collection}`` in it is replaced by the collection id), e.g. the ``collection.json`` of a
    :func:`to_stac` export; without it they carry neither (the file metadata still lists the
    collections)."""
    try:
        from stac_geoparquet.arrow import parse_stac_items_to_parquet
    except ImportError:  # pragma: no cover - the stac extra is missing
        raise UnsupportedError("stac-geoparquet export needs stac-geoparquet: pip install 'geoduck[stac]'") from None
    target = Path(path)
    if target.is_dir():
        raise ArgumentError(f"{target} is a directory: give a file name ending in .parquet")
    export = build_export(cat, collection_id=collection_id, static_datetime=static_datetime)
    dicts = []
    for item in export.all_items():
        d = item.to_dict(include_self_link=False, transform_hrefs=False)
        if collection_href is None:
            d.pop("collection", None)
        else:
            href = collection_href.replace("{collection}", d["collection"])
            d["links"] = [*d.get("links", []), {"rel": "collection", "href": href, "type": "application/json"}]
        dicts.append(d)
    collections = {
        cid: c.to_dict(include_self_link=False, transform_hrefs=False) for cid, c in export.collections.items()
    }
    with store.replacing(target) as tmp:
        parse_stac_items_to_parquet(dicts, output_path=tmp, schema="FullFile", collections=collections)
    log.info("wrote %d STAC items to %s", len(dicts), target)
    return target


def to_stac(
    cat: Catalog,
    out_dir: str | os.PathLike[str],
    *,
    collection_id: str | None = None,
    relative_hrefs: bool = False,
    static_datetime: Any = None,
) -> Path:
    """Write the relation's rows as a self-contained static STAC catalog with pystac.

    ``out_dir/collection.json`` is the Collection (when all items are in one collection), else
    ``out_dir/catalog.json`` is a Catalog with one child Collection per collection; each Item is
    ``<collection>/<item id>/<item id>.json`` (pystac's best-practice layout). Asset hrefs stay
    absolute unless ``relative_hrefs`` (then relative to the Item file: keep the data and the
    catalog together when moving them). The catalog is written in a temporary folder beside
    ``out_dir`` and renamed into place, so ``out_dir`` appears whole or not at all; an existing
    non-empty ``out_dir`` is refused. Returns the root JSON file."""
    pystac = _pystac()
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ArgumentError(f"{target} already exists and is not an empty directory: choose a new one")
    export = build_export(cat, collection_id=collection_id, static_datetime=static_datetime)
    collections = list(export.collections.values())
    for coll in collections:
        coll.add_items(export.items[coll.id])
    root: Any
    if len(collections) == 1:
        root = collections[0]
    else:
        root = pystac.Catalog(id=collection_id or cat.name, description=f"geoduck export of {cat.name}")
        for coll in collections:
            root.add_child(coll)
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    # no dot in the suffix: pystac takes a root href with an extension for a file name
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix="-tmp", dir=parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the catalog gets the usual mode
        root.normalize_hrefs(str(tmp))
        if relative_hrefs:
            root.make_all_asset_hrefs_relative()
        root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        if target.exists():
            target.rmdir()
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageError(f"cannot write the STAC catalog {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    name = "collection.json" if len(collections) == 1 else "catalog.json"
    log.info("wrote %d STAC items to %s", sum(len(v) for v in export.items.values()), target)
    return target / name
