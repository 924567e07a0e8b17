"""STAC in: catalog rows from STAC items (stac-geoparquet, Item/ItemCollection JSON, static
catalogs, STAC API searches), written through the same part store as the file builders.

STAC is a source of rows, not a kind of file: each item × selected asset becomes one ``raster``
row, so everything that reads raster catalogs (queries, set algebra, ``load_raster``, samplers)
works on it. The row contract (relied on by the STAC export too):

* ``id`` = ``"{item id}/{asset key}"``, ``scene_id`` = item id, ``band`` = asset key,
  ``common_name`` = the asset's ``eo:bands``/``bands`` common name (one-band assets), so
  ``load_raster(cat, sl, bands=["red", "nir"])`` works for ``red`` keys and for ``B04`` keys whose
  common name is ``red``; ``collection`` = collection id; ``filepath`` = absolute asset href
  (relative hrefs resolved against the item's self link, else against the file it was read from);
* footprint = item geometry (lon/lat; crossing ±180° split as for files), closed interval
  ``[datetime, datetime]`` or ``[start_datetime, end_datetime]``;
* ``crs``/``transform``/``width``/``height``/``native_bounds``/``res_*`` from the projection
  extension (``proj:code``/``proj:epsg``/``proj:wkt2``/``proj:projjson``, ``proj:transform``,
  ``proj:shape``, ``proj:bbox``; asset fields over item fields), else from the asset's header with
  ``read_headers=True``, else null (the loaders read the grid from the file itself);
  ``count``/``dtype``/``nodata`` from ``raster:bands`` (or STAC 1.1 ``bands``/``data_type``/``nodata``);
* scalar item properties are typed columns named as in STAC (``"eo:cloud_cover"`` DOUBLE,
  ``platform`` VARCHAR, booleans BOOLEAN, integers BIGINT); nested or non-scalar ones, and
  scalars whose names clash with a catalog column, go into the JSON column ``stac_properties``.

Items are read and written in batches (memory does not grow with the source); each batch of
``part_rows`` rows is one atomic, Hilbert-sorted part. Appending skips rows already in the
catalog with the same :data:`~geoduck.schema.STAC_KEY` (``updated`` property, else a content
hash) and reports items whose key changed (not re-indexed, as files whose mtime changed);
malformed items are reported by id and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.parquet as pq
import shapely
import shapely.geometry
from tqdm.auto import tqdm

from .. import schema, store
from ..errors import ArgumentError, BuildError, GeoduckError, SourceError, StorageError
from ..geo import check_grid, check_lonlat_bounds, crs_key, geometry_to_wgs84
from ..report import BuildReport
from .common import _make_out_dir, _reason, _roll_back, finish_build

if TYPE_CHECKING:
    from ..catalog import Catalog

__all__ = ["StacOptions", "from_stac", "item_rows"]

log = logging.getLogger("geoduck.build.stac")

BATCH_ITEMS = 1_000
"""Items read from a source at a time (stac-geoparquet record batches, header-reading batches)."""

RASTER_MEDIA_TYPES = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff", "application/x-geotiff")
"""Media types (prefixes, lower case) of the assets indexed by default."""

_GRID_COLUMNS = ("crs", "native_bounds", "width", "height", "res_x", "res_y", "transform")
_STAC_TAIL: tuple[pa.Field, ...] = (
    pa.field(schema.STAC_PROPERTIES, pa.string()),
    pa.field(schema.STAC_KEY, pa.string()),
)
_TIME_PROPERTIES = frozenset({"datetime", "start_datetime", "end_datetime"})


@dataclass(frozen=True)
class StacOptions:
    """How items become rows: which assets (``assets`` keys; None: the raster assets, see
    :func:`is_raster_asset`) and whether to read missing grids from the asset headers."""

    assets: tuple[str, ...] | None = None
    read_headers: bool = False


# -- one item → rows ------------------------------------------------------------------------------


def is_raster_asset(asset: Mapping[str, Any]) -> bool:
    """An asset indexed by default: a raster media type (GeoTIFF/COG, JPEG 2000), or the role
    ``data`` with no media type or an ``image/*`` one."""
    media = str(asset.get("type") or "").lower()
    if media.startswith(RASTER_MEDIA_TYPES):
        return True
    roles = asset.get("roles") or ()
    return "data" in roles and (not media or media.startswith("image/"))


def _self_href(item: Mapping[str, Any]) -> str | None:
    for link in item.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


def _absolute_href(href: str, base: str | None) -> str:
    """``href`` as rasterio opens it: an absolute local path or a URI; relative to ``base``."""
    from pystac.utils import is_absolute_href, make_absolute_href

    if href.startswith("file://"):
        return url2pathname(urlparse(href).path)
    if "://" in href or os.path.isabs(href):
        return href
    if base is None:
        raise ArgumentError(f"asset href {href!r} is relative and the item has no self link to resolve it against")
    if base.startswith("file://"):
        base = url2pathname(urlparse(base).path)
    out = make_absolute_href(href, base)
    return out if is_absolute_href(out) and "://" in out else os.path.abspath(out)


def _time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ArgumentError(f"{name} {value!r} is not an RFC 3339 string")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ArgumentError(f"{name} {value!r} is not an RFC 3339 date-time") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def item_interval(props: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """Closed UTC interval of an item: ``[start_datetime, end_datetime]`` when both are given,
    else ``[datetime, datetime]``."""
    start, end = props.get("start_datetime"), props.get("end_datetime")
    if start is not None and end is not None:
        t0, t1 = _time(start, "start_datetime"), _time(end, "end_datetime")
        if t1 < t0:
            raise ArgumentError(f"end_datetime {end} is before start_datetime {start}")
        return t0, t1
    if props.get("datetime") is None:
        raise ArgumentError("item has neither datetime nor start_datetime and end_datetime")
    t = _time(props["datetime"], "datetime")
    return t, t


def item_footprint(geometry: object) -> tuple[bytes, tuple[float, float, float, float]]:
    """WKB and bounds of an item geometry (GeoJSON, lon/lat) as a catalog footprint: polygons as
    they are when inside ±180°; longitudes beyond (170 … 190) split at the antimeridian."""
    if not isinstance(geometry, Mapping):
        raise ArgumentError("item has no geometry (a null geometry cannot be a footprint)")
    try:
        geom = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ArgumentError(f"geometry is not valid GeoJSON: {exc}") from None
    if geom.is_empty:
        raise ArgumentError("geometry is empty")
    xmin, ymin, xmax, ymax = geom.bounds
    if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
        raise ArgumentError("geometry has non-finite coordinates")
    if ymin < -90.0 or ymax > 90.0:
        raise ArgumentError(f"geometry latitudes {ymin}..{ymax} are beyond ±90°")
    plain = geom.geom_type in ("Polygon", "MultiPolygon") and geom.is_valid and xmin >= -180.0 and xmax <= 180.0
    if not plain:
        check_lonlat_bounds(geom.bounds, argument="geometry bounds")
        geom = geometry_to_wgs84(geom, None)
    return shapely.to_wkb(geom), geom.bounds


def _box(b: Sequence[float]) -> dict[str, float]:
    return dict(zip(schema.BBOX_KEYS, (float(v) for v in b), strict=True))


def _proj_crs(get: Any) -> str | None:
    """Catalog ``crs`` text from projection-extension fields (``get(name)``), None if absent."""
    code = get("proj:code")
    if code is None and get("proj:epsg") is not None:
        code = f"EPSG:{int(get('proj:epsg'))}"
    if code is not None:
        return crs_key(str(code))
    if get("proj:wkt2"):
        return crs_key(str(get("proj:wkt2")))
    if get("proj:projjson"):
        return crs_key(json.dumps(get("proj:projjson")))
    return None


def proj_grid(props: Mapping[str, Any], asset: Mapping[str, Any]) -> dict[str, Any]:
    """Grid columns from the projection extension (asset fields first, then the item's): as many
    of ``crs``, ``transform``, ``width``/``height``, ``res_x``/``res_y``, ``native_bounds`` as the
    fields give (``{}`` without a CRS)."""

    def get(name: str) -> Any:
        return asset[name] if name in asset else props.get(name)

    crs = _proj_crs(get)
    if crs is None:
        return {}
    t, shape, bbox = get("proj:transform"), get("proj:shape"), get("proj:bbox")
    return _grid(
        crs,
        None if t is None else tuple(float(v) for v in t),
        None if shape is None else tuple(int(v) for v in shape),
        None if bbox is None else tuple(float(v) for v in bbox),
    )


@lru_cache(maxsize=4096)
def _grid(
    crs: str, t: tuple[float, ...] | None, shape: tuple[int, ...] | None, bbox: tuple[float, ...] | None
) -> dict[str, Any]:
    """:func:`proj_grid` of normalised fields, cached: an archive's tiles repeat their grids (the
    values are shared between rows, never modified)."""
    out: dict[str, Any] = {"crs": crs}
    if shape is not None:
        if len(shape) != 2:
            raise ArgumentError(f"proj:shape {list(shape)} is not [rows, columns]")
        out["width"], out["height"] = shape[1], shape[0]
    if t is None and shape is not None and bbox is not None and len(bbox) == 4:
        x0, y0, x1, y1 = bbox
        t = ((x1 - x0) / out["width"], 0.0, x0, 0.0, -(y1 - y0) / out["height"], y1)
    if t is not None:
        if len(t) not in (6, 9):
            raise ArgumentError(f"proj:transform {list(t)} has {len(t)} values, not 6 or 9")
        a, b, c, d, e, f = t[:6]
        out["transform"] = [a, b, c, d, e, f]
        out["res_x"], out["res_y"] = math.hypot(a, d), math.hypot(b, e)
        if shape is not None:
            check_grid(out["transform"], out["width"], out["height"])
            w, h = out["width"], out["height"]
            xs = [a * i + b * j + c for i, j in ((0, 0), (w, 0), (w, h), (0, h))]
            ys = [d * i + e * j + f for i, j in ((0, 0), (w, 0), (w, h), (0, h))]
            out["native_bounds"] = _box((min(xs), min(ys), max(xs), max(ys)))
    if "native_bounds" not in out and bbox is not None and len(bbox) == 4:
        out["native_bounds"] = _box(bbox)
    return out


def _nodata(value: object) -> float | None:
    if value is None:
        return None
    return float(value)  # type: ignore[arg-type]  # numbers, or "nan"/"inf"/"-inf" as STAC writes them


def band_info(asset: Mapping[str, Any]) -> dict[str, Any]:
    """``count``, ``dtype``, ``nodata`` and ``common_name`` of an asset, from ``raster:bands`` /
    ``eo:bands`` (STAC 1.0 extensions) or ``bands`` / ``data_type`` / ``nodata`` (STAC 1.1)."""
    bands = asset.get("raster:bands") or asset.get("bands") or None
    eo = asset.get("eo:bands") or None
    out: dict[str, Any] = {}
    listed = bands or eo
    if listed:
        out["count"] = len(listed)
    first = bands[0] if bands else {}
    dtype = first.get("data_type") or asset.get("data_type")
    if dtype is not None:
        out["dtype"] = str(dtype)
    nodata = first.get("nodata", asset.get("nodata"))
    if nodata is not None:
        out["nodata"] = _nodata(nodata)
    if listed and len(listed) == 1:
        name = (eo[0].get("common_name") if eo else None) or first.get("eo:common_name")
        if name:
            out[schema.COMMON_NAME] = str(name)
    return out


def item_key(item: Mapping[str, Any]) -> str:
    """The :data:`~geoduck.schema.STAC_KEY` of an item: its ``updated`` time (UTC), else a hash of
    its JSON (keys sorted)."""
    updated = (item.get("properties") or {}).get("updated")
    if isinstance(updated, str):
        try:
            return "updated:" + _time(updated, "updated").isoformat()
        except ArgumentError:
            pass
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return "sha:" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _select_assets(item_assets: Mapping[str, Any], assets: tuple[str, ...] | None) -> list[tuple[str, Mapping]]:
    if assets is None:
        chosen = [(k, a) for k, a in item_assets.items() if isinstance(a, Mapping) and is_raster_asset(a)]
        if not chosen:
            raise ArgumentError(
                f"no raster asset (media type GeoTIFF/JP2 or role 'data') among {sorted(item_assets)}; "
                "name the assets to index with assets=[...]"
            )
        return chosen
    chosen = [(k, item_assets[k]) for k in assets if isinstance(item_assets.get(k), Mapping)]
    if not chosen:
        raise ArgumentError(f"none of the assets {list(assets)} is in the item; its assets: {sorted(item_assets)}")
    return chosen


def item_rows(item: Mapping[str, Any], base: str | None, options: StacOptions) -> list[dict[str, Any]]:
    """The catalog rows of one STAC item (dict), one per selected asset; raises
    :class:`GeoduckError` (or a builtin error) naming what is malformed. ``base`` resolves relative
    hrefs when the item has no self link. Properties are left under ``"properties"`` (typed into
    columns per part by the writer)."""
    if item.get("type", "Feature") != "Feature":
        raise ArgumentError(f"type is {item.get('type')!r}, not 'Feature'")
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ArgumentError("item has no string id")
    props = item.get("properties")
    if not isinstance(props, Mapping):
        raise ArgumentError("item has no properties object")
    start, end = item_interval(props)
    wkb, bounds = item_footprint(item.get("geometry"))
    item_assets = item.get("assets")
    if not isinstance(item_assets, Mapping) or not item_assets:
        raise ArgumentError("item has no assets")
    self_href = _self_href(item)
    if self_href is not None and base is not None and "://" not in self_href and not os.path.isabs(self_href):
        self_href = _absolute_href(self_href, base)  # a relative self link: relative to the source
    base = self_href or base
    key = item_key(item)
    collection = item.get("collection")
    rows = []
    for asset_key, asset in _select_assets(item_assets, options.assets):
        href = asset.get("href")
        if not isinstance(href, str) or not href:
            raise ArgumentError(f"asset {asset_key!r} has no href")
        row: dict[str, Any] = {
            schema.ID: f"{item_id}/{asset_key}",
            schema.FILEPATH: _absolute_href(href, base),
            schema.BACKEND: "raster",
            schema.GEOMETRY: wkb,
            schema.BBOX: _box(bounds),
            schema.START: start,
            schema.END: end,
            schema.VERSION: schema.SCHEMA_VERSION,
            schema.SCENE_ID: item_id,
            schema.BAND: asset_key,
            schema.COLLECTION: str(collection) if collection is not None else None,
            schema.STAC_KEY: key,
            schema.FILE_SIZE: asset.get("file:size"),
            "properties": props,
        }
        row.update(proj_grid(props, asset))
        row.update(band_info(asset))
        rows.append(row)
    return rows


# -- rows → typed part tables ---------------------------------------------------------------------

_RESERVED_LOWER = frozenset(
    n.lower()
    for n in (
        *schema.RESERVED_COLUMNS,
        *(f.name for f in schema.STAC_FIELDS),
        *(f.name for f in _STAC_TAIL),
        "properties",
    )
)


def _scalar_type(values: list[Any]) -> pa.DataType | None:
    """Arrow type of a property column from its non-null values; None: not one scalar kind."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return None
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    if kinds == {str}:
        return pa.string()
    return None


def _typed_table(rows: list[dict[str, Any]], known: Mapping[str, pa.DataType]) -> pa.Table:
    """The part table of ``rows``: raster and STAC columns, then one typed column per scalar
    property (the type the catalog already has for it, when the values fit it), the rest in
    ``stac_properties``."""
    names: dict[str, str] = {}  # lower → first spelling seen
    for row in rows:
        for name in row["properties"]:
            names.setdefault(name.lower(), name)
    columns: list[pa.Field] = []
    arrays: list[pa.Array] = []
    as_column: set[str] = set()
    for lower, name in names.items():
        if not name or lower in _RESERVED_LOWER or name in _TIME_PROPERTIES:
            continue
        values = [r["properties"].get(name) for r in rows]
        typ = _scalar_type(values)
        if typ is None:
            continue
        want = known.get(name)
        array = None
        if want is not None and want != typ:
            try:
                array = pa.array(values, type=want)
                typ = want
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                array = None
        if array is None:
            try:
                array = pa.array(values, type=typ)
            except (pa.ArrowInvalid, OverflowError):  # e.g. an integer beyond int64: kept in the JSON
                continue
        columns.append(pa.field(name, typ))
        arrays.append(array)
        as_column.add(name)
    rest = []
    done: dict[int, str | None] = {}  # the rows of one item share its properties object
    for row in rows:
        props = row["properties"]
        text = done.get(id(props), "")
        if text == "":
            other = {k: v for k, v in props.items() if k not in as_column and k not in _TIME_PROPERTIES}
            text = done[id(props)] = json.dumps(other, separators=(",", ":"), default=str) if other else None
        rest.append(text)
    arrow_schema = schema.part_schema(
        schema.BACKEND_FIELDS["raster"], (*schema.STAC_FIELDS, *columns, *_STAC_TAIL), scenes=True
    )
    data: dict[str, Any] = {}
    typed = dict(zip((f.name for f in columns), arrays, strict=True))
    for f in arrow_schema:
        if f.name in typed:
            data[f.name] = typed[f.name]
        elif f.name == schema.STAC_PROPERTIES:
            data[f.name] = pa.array(rest, pa.string())
        else:
            data[f.name] = pa.array([r.get(f.name) for r in rows], type=f.type)
    return pa.Table.from_pydict(data, schema=arrow_schema)


# -- sources --------------------------------------------------------------------------------------

Source = str | os.PathLike[str] | Iterable[Any]
"""What :func:`from_stac` reads (see there)."""


@dataclass
class _Stream:
    """Items of a source as ``(item dict or error, base href)``; ``total`` when known."""

    items: Iterator[tuple[Mapping[str, Any] | tuple[str, str], str | None]]
    total: int | None = None


def _require(module: str) -> None:
    """Raise :class:`ArgumentError` naming the ``geoduck[stac]`` extra when ``module`` is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ArgumentError(
            f"reading STAC needs the {module!r} package: pip install 'geoduck[stac]' "
            "(pystac, pystac-client, stac-geoparquet)"
        )


def _geoparquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".geoparquet") and p.is_file())
        if not files:
            raise ArgumentError(f"source {str(path)!r} is a folder without catalog.json or *.parquet files")
        return files
    return [path]


def _geoparquet_stream(files: list[Path], batch_items: int) -> _Stream:
    _require("stac_geoparquet")
    from stac_geoparquet.arrow import stac_table_to_items

    try:
        total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"cannot read stac-geoparquet {files[0]}: {exc}") from None

    def items() -> Iterator[tuple[Mapping[str, Any], str | None]]:
        for f in files:
            pf = pq.ParquetFile(f)
            reader = pa.RecordBatchReader.from_batches(pf.schema_arrow, pf.iter_batches(batch_size=batch_items))
            for d in stac_table_to_items(reader):
                yield d, str(f)

    return _Stream(items(), total)


def _read_json(href: str) -> Any:
    from pystac import StacIO

    return StacIO.default().read_json(href)


def _catalog_items(root: Any) -> Iterator[tuple[Mapping[str, Any] | tuple[str, str], str | None]]:
    """Items of a static catalog (pystac), depth first, each item link read on its own so that
    one unreadable item is reported (by its href) instead of ending the walk."""
    stack = [root]
    while stack:
        cat = stack.pop()
        for link in cat.get_links("item"):
            href = link.get_absolute_href() or link.href
            try:
                d = _read_json(href)
            except Exception as exc:  # noqa: BLE001 - reported with the item's href
                yield (href, f"cannot read item: {_reason(exc)}"), None
                continue
            yield d, href
        children = []
        for link in cat.get_child_links():
            try:
                children.append(link.resolve_stac_object(root=cat.get_root()).target)
            except Exception as exc:  # noqa: BLE001 - reported with the child's href
                yield (link.get_absolute_href() or link.href, f"cannot read child catalog: {_reason(exc)}"), None
        stack.extend(reversed(children))


def _api_or_catalog(href: str, data: Mapping[str, Any], search: Mapping[str, Any] | None) -> _Stream:
    import pystac

    conforms = [str(c) for c in data.get("conformsTo") or ()]
    has_search = any(link.get("rel") == "search" for link in data.get("links") or () if isinstance(link, Mapping))
    if has_search and any("item-search" in c for c in conforms):
        _require("pystac_client")
        from pystac_client import Client

        kwargs = dict(search or {})
        methods = {
            str(link.get("method", "GET")).upper()
            for link in data.get("links") or ()
            if isinstance(link, Mapping) and link.get("rel") == "search"
        }
        kwargs.setdefault("method", "POST" if "POST" in methods else "GET")
        try:
            s = Client.open(href).search(**kwargs)
        except TypeError as exc:
            raise ArgumentError(f"search={dict(search or {})!r}: {exc}") from None
        return _Stream(_api_items(href, s), None)
    if search:
        raise ArgumentError(f"search={dict(search)!r} given but {href} is a static catalog, not a STAC API")
    root = pystac.read_dict(dict(data), href=href)
    return _Stream(_catalog_items(root), None)


def _api_items(href: str, search: Any) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    """Item dicts of a pystac-client search (pages fetched as iterated); API failures become one
    :class:`SourceError` naming the API."""
    from pystac_client.exceptions import APIError

    try:
        for d in search.items_as_dicts():
            yield d, None
    except APIError as exc:
        raise SourceError(f"STAC API {href} failed: {str(exc).strip().splitlines()[0]}") from None


def _json_stream(href: str, search: Mapping[str, Any] | None) -> _Stream:
    try:
        data = _read_json(href)
    except Exception as exc:  # noqa: BLE001 - one clear error naming the source
        raise SourceError(f"cannot read STAC JSON {href}: {_reason(exc)}") from None
    if not isinstance(data, Mapping):
        raise ArgumentError(f"{href} is not a STAC object (a JSON {type(data).__name__})")
    kind = data.get("type")
    if search and kind != "Catalog" and kind != "Collection":
        raise ArgumentError(f"search= is only for STAC APIs; {href} is a {kind}")
    if kind == "Feature":
        return _Stream(iter([(data, href)]), 1)
    if kind == "FeatureCollection":
        features = data.get("features") or []
        return _Stream(((f, href) for f in features), len(features))
    if kind in ("Catalog", "Collection"):
        return _api_or_catalog(href, data, search)
    raise ArgumentError(f"{href} has type {kind!r}; expected a STAC Item, ItemCollection, Catalog or Collection")


def _object_stream(source: Any, search: Mapping[str, Any] | None) -> _Stream:
    """Items of pystac / pystac-client objects or an iterable of item dicts / pystac Items."""
    import pystac

    if search:
        raise ArgumentError("search= is only for a STAC API URL")
    if isinstance(source, pystac.Item):
        source = [source]
    if isinstance(source, pystac.Catalog):
        return _Stream(_catalog_items(source), None)
    if hasattr(source, "items_as_dicts"):  # a pystac_client ItemSearch
        return _Stream(((d, None) for d in source.items_as_dicts()), None)

    def items() -> Iterator[tuple[Mapping[str, Any] | tuple[str, str], str | None]]:
        for obj in source:
            if isinstance(obj, pystac.Item):
                yield obj.to_dict(transform_hrefs=False), obj.get_self_href()
            else:
                yield obj, None

    total = len(source) if hasattr(source, "__len__") else None
    return _Stream(items(), total)


def open_source(source: Source, search: Mapping[str, Any] | None = None, batch_items: int = BATCH_ITEMS) -> _Stream:
    """The items of ``source`` (see :func:`from_stac`), streamed."""
    if not isinstance(source, str | os.PathLike):
        return _object_stream(source, search)
    text = os.fspath(source)
    if "://" in text and not text.startswith("file://"):
        if text.lower().endswith((".parquet", ".geoparquet")):
            raise ArgumentError(f"source {text!r}: read remote stac-geoparquet into a local file first")
        return _json_stream(text, search)
    path = Path(url2pathname(urlparse(text).path) if text.startswith("file://") else text).expanduser()
    if not path.exists():
        raise ArgumentError(f"source {text!r} does not exist")
    if path.is_dir() and (path / "catalog.json").is_file():
        path = path / "catalog.json"
    elif path.is_dir() and (path / "collection.json").is_file():
        path = path / "collection.json"
    if path.is_dir() or path.suffix.lower() in (".parquet", ".geoparquet"):
        if search:
            raise ArgumentError("search= is only for a STAC API URL")
        return _geoparquet_stream(_geoparquet_files(path), batch_items)
    return _json_stream(str(path.resolve()), search)


# -- the build ------------------------------------------------------------------------------------


@dataclass
class _Counts:
    indexed: int = 0
    items: int = 0
    unchanged: int = 0
    changed: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)


def _existing(out: Path) -> tuple[dict[str, str | None], dict[str, pa.DataType]]:
    """(row id → STAC key, column name → type) of the catalog at ``out`` (empty if none)."""
    if not (out.is_dir() and store.list_parts(out)):
        return {}, {}

    def read(part: Path) -> tuple[list[Any], list[Any], pa.Schema]:
        sch = pq.read_schema(part)
        cols = [schema.ID] + ([schema.STAC_KEY] if schema.STAC_KEY in sch.names else [])
        t = pq.read_table(part, columns=cols)
        keys = t.column(schema.STAC_KEY).to_pylist() if len(cols) == 2 else [None] * t.num_rows
        return t.column(schema.ID).to_pylist(), keys, sch

    ids: dict[str, str | None] = {}
    types: dict[str, pa.DataType] = {}
    for row_ids, keys, sch in store.each_part(out, read).values():
        ids.update(zip(row_ids, keys, strict=True))
        for f in sch:
            types.setdefault(f.name, f.type)
    return ids, types


def _fill_headers(rows: list[dict[str, Any]], workers: int) -> list[tuple[int, str]]:
    """Read the grid of rows without one from their asset headers (threads); returns
    ``(row index, reason)`` of those that failed."""
    from .raster import read_raster_header

    todo = [i for i, r in enumerate(rows) if r.get("transform") is None or r.get("width") is None]
    if not todo:
        return []

    def read(i: int) -> tuple[int, dict[str, Any] | str]:
        from ..header import gdal_env

        try:
            with gdal_env(rows[i][schema.FILEPATH]):
                return i, read_raster_header(rows[i][schema.FILEPATH])[0]
        except Exception as exc:  # noqa: BLE001 - reported with the item id
            return i, _reason(exc)

    failed = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, hdr in pool.map(read, todo):
            if isinstance(hdr, str):
                failed.append((i, hdr))
                continue
            for c in (*_GRID_COLUMNS, "count", "dtype", "nodata"):
                if rows[i].get(c) is None:
                    rows[i][c] = hdr[c]
            if rows[i].get(schema.FILE_SIZE) is None:
                rows[i][schema.FILE_SIZE] = hdr.get(schema.FILE_SIZE)
    return failed


class _Writer:
    """Buffers rows of new items and writes them as parts of at most ``part_rows`` rows."""

    def __init__(self, out: Path, part_rows: int, types: dict[str, pa.DataType], counts: _Counts) -> None:
        self.out, self.part_rows, self.types, self.counts = out, part_rows, types, counts
        self.rows: list[dict[str, Any]] = []

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        table = _typed_table(self.rows, self.types)
        self.rows = []
        for f in table.schema:
            self.types.setdefault(f.name, f.type)
        part = store.write_part(table, self.out)
        self.counts.parts.append(str(part))
        self.counts.indexed += table.num_rows


def _item_label(item: Any, n: int) -> str:
    item_id = item.get("id") if isinstance(item, Mapping) else None
    return str(item_id) if isinstance(item_id, str) and item_id else f"item #{n}"


def run_stac_build(
    source: Source,
    out_dir: str | os.PathLike[str],
    *,
    options: StacOptions,
    search: Mapping[str, Any] | None = None,
    progress: bool = True,
    workers: int | None = None,
    part_rows: int = store.MAX_PART_ROWS,
    batch_items: int = BATCH_ITEMS,
) -> BuildReport:
    """Index the items of ``source`` into new parts of the catalog at ``out_dir`` (see
    :func:`from_stac`); returns the report."""
    out_dir = store.local_path(out_dir)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise BuildError(f"out_dir {str(out_dir)!r} exists and is not a directory")
    _require("pystac")
    stream = open_source(source, search, batch_items)
    known, types = _existing(out)
    counts = _Counts()
    created = _make_out_dir(out)
    writer = _Writer(out, part_rows, types, counts)
    seen: set[str] = set()
    n_workers = workers if workers is not None else 8
    bar = tqdm(total=stream.total, unit="item", desc="indexing STAC items", disable=not progress)
    pending: list[tuple[str, list[dict[str, Any]]]] = []

    def settle() -> None:
        """Headers of the pending items (if asked), then their rows to the writer."""
        if options.read_headers:
            flat = [r for _, rows in pending for r in rows]
            bad = {id(flat[i]): reason for i, reason in _fill_headers(flat, n_workers)}
        else:
            bad = {}
        for label, rows in pending:
            reasons = [bad[id(r)] for r in rows if id(r) in bad]
            if reasons:
                counts.errors.append((label, f"cannot read the asset header: {reasons[0]}"))
                log.warning("skipped STAC item %s: %s", label, reasons[0])
                continue
            writer.add(rows)
            counts.items += 1
        pending.clear()

    try:
        for n, (item, base) in enumerate(stream.items):
            bar.update(1)
            if isinstance(item, tuple):  # (href, reason) of an item the source could not read
                counts.errors.append(item)
                log.warning("skipped STAC item %s: %s", *item)
                continue
            label = _item_label(item, n)
            try:
                rows = item_rows(item, base, options)
            except (GeoduckError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                counts.errors.append((label, _reason(exc)))
                log.warning("skipped STAC item %s: %s", label, _reason(exc))
                continue
            new, changed = [], False
            for row in rows:
                rid = row[schema.ID]
                if rid in seen:
                    continue
                if rid in known:
                    changed |= known[rid] != row[schema.STAC_KEY]
                    continue
                seen.add(rid)
                new.append(row)
            if changed:
                counts.changed.append(label)
            if new:
                pending.append((label, new))
                if len(pending) >= batch_items:
                    settle()
            elif not changed:
                counts.unchanged += 1
        settle()
        writer.flush()
    except StorageError as exc:
        _roll_back(out, counts.parts, created)
        raise StorageError(f"{exc}; nothing of this build was kept") from None
    finally:
        bar.close()
    if counts.changed:
        log.warning(
            "%d STAC item(s) changed since indexed (not re-indexed), e.g. %s", len(counts.changed), counts.changed[0]
        )
    return BuildReport(
        indexed=counts.indexed,
        files_indexed=counts.items,
        unchanged=counts.unchanged,
        changed=tuple(counts.changed),
        errors=tuple(counts.errors),
        parts=tuple(counts.parts),
    )


def from_stac(
    source: Source,
    out_dir: str | os.PathLike[str],
    *,
    assets: Sequence[str] | None = None,
    read_headers: bool = False,
    search: Mapping[str, Any] | None = None,
    progress: bool = True,
    workers: int | None = None,
    part_rows: int = store.MAX_PART_ROWS,
) -> Catalog:
    """Index STAC items into the catalog at ``out_dir`` (created or appended to), one ``raster``
    row per item × selected asset (see the module docstring for the row contract).

    Args:
        source: a stac-geoparquet file or folder of them (read with ``stac_geoparquet``); an Item or
            ItemCollection JSON file; a static catalog (``catalog.json`` / ``collection.json`` or
            the folder holding it; items of every sub-catalog, read with pystac); the URL of a STAC
            API landing page (searched with pystac-client, see ``search``) or of any of the JSON
            files above; or pystac objects (Item, ItemCollection, Catalog, a pystac-client
            ``ItemSearch``) or an iterable of item dicts / pystac Items.
        out_dir: catalog directory; new rows go to new parts, existing parts are untouched.
        assets: asset keys to index (default: the raster assets: GeoTIFF/COG/JP2 media types or
            the ``data`` role). An item with none of them is reported as an error.
        read_headers: read the grid (CRS, transform, size, dtype, nodata) of assets that lack
            projection-extension fields from their headers (GDAL; one open per asset).
        search: keyword arguments of ``pystac_client.Client.search`` (``collections``, ``bbox``,
            ``datetime``, ``query``, ``filter``, ``max_items`` …), for a STAC API source only.
        progress: show a tqdm progress bar (items).
        workers: threads reading asset headers (``read_headers``; default 8).
        part_rows: rows per part written.

    Returns:
        The catalog at ``out_dir``; ``catalog.build_report`` counts rows indexed, items indexed
        (``files_indexed``), items already indexed unchanged, items changed since (by id, not
        re-indexed), and malformed items (id or href, reason).
    """
    if isinstance(assets, str):
        assets = [assets]
    if assets is not None and (not assets or not all(isinstance(a, str) and a for a in assets)):
        raise ArgumentError(f"assets={assets!r} must be a non-empty list of asset keys")
    if search is not None and not isinstance(search, Mapping):
        raise ArgumentError(f"search={search!r} must be a dict of pystac_client search arguments")
    report = run_stac_build(
        source,
        out_dir,
        options=StacOptions(tuple(assets) if assets is not None else None, read_headers),
        search=search,
        progress=progress,
        workers=workers,
        part_rows=part_rows,
    )
    return finish_build(out_dir, source if isinstance(source, str | os.PathLike) else "STAC items", report)
