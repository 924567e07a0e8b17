"""GDAL GTI (GDAL Raster Tile Index, GDAL ≥ 3.9) export: a catalog or any query result as a
vector tile index that GDAL, rasterio and QGIS open as one virtual mosaic.

The index is a GeoPackage (or FlatGeobuf) layer written with pyogrio: one feature per raster row,
its ``location`` field the file GDAL opens (``s3://`` / ``gs://`` / ``http(s)://`` URIs as
``/vsis3/`` / ``/vsigs/`` / ``/vsicurl/`` paths), its geometry the row's native bounds in the index
SRS (densified and reprojected when the row is in another CRS), plus ``id`` and the row's
``start_datetime``. The layer metadata tells the GTI driver the mosaic's ``SRS``, ``RESX``/``RESY``,
extent (``MINX`` … ``MAXY``), ``BAND_COUNT``, ``DATA_TYPE``, ``NODATA`` and
``SORT_FIELD=start_datetime`` (ascending: the latest acquisition is drawn last, on top — the
mosaic :func:`geoduck.load_raster` gives with ``merge="last"``; features are written in
(start, path) order, as the loader breaks ties).

Open it with ``rasterio.open("index.gti.gpkg")`` (the ``.gti.gpkg`` / ``.gti.fgb`` suffix makes
GDAL pick the GTI driver; any other name: ``rasterio.open("GTI:index.gpkg")``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import Polygon, box

from . import schema, store
from .errors import ArgumentError, CRSError
from .geo import crs_key, densified_ring, norm_crs, transformer

if TYPE_CHECKING:
    from .catalog import Catalog

log = logging.getLogger(__name__)

LOCATION_FIELD = "location"
SORT_FIELD = schema.START

_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
    "complex64": "CFloat32",
    "complex128": "CFloat64",
}
_DRIVERS = {".gpkg": "GPKG", ".fgb": "FlatGeobuf"}
_COLUMNS = (schema.ID, schema.FILEPATH, schema.BACKEND, schema.CRS, schema.NATIVE_BOUNDS, schema.START)
_RASTER_COLUMNS = ("count", "dtype", "nodata", "res_x", "res_y")


def gdal_location(filepath: str) -> str:
    """The path GDAL opens for a catalog ``filepath`` (URIs mapped to GDAL virtual file systems)."""
    for prefix, vsi in (("s3://", "/vsis3/"), ("gs://", "/vsigs/"), ("az://", "/vsiaz/")):
        if filepath.startswith(prefix):
            return vsi + filepath[len(prefix) :]
    if filepath.startswith(("http://", "https://")):
        return "/vsicurl/" + filepath
    return filepath


def gdal_data_type(dtypes: Sequence[str]) -> str:
    """The GDAL data type holding every numpy dtype in ``dtypes`` (their numpy result type)."""
    common = np.result_type(*[np.dtype(d) for d in dtypes])
    name = _GDAL_TYPES.get(common.name)
    if name is None:
        raise ArgumentError(f"data types {sorted(set(dtypes))} have no common GDAL data type")
    return name


def _driver(path: Path) -> str:
    driver = _DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise ArgumentError(f"{path}: a GTI index must end in .gti.gpkg or .gti.fgb (or .gpkg / .fgb)")
    return driver


def _one(values: Sequence[Any], what: str, fix: str) -> Any:
    distinct = sorted({str(v) for v in values})
    if len(distinct) > 1:
        shown = ", ".join(distinct[:5]) + (" …" if len(distinct) > 5 else "")
        raise ArgumentError(f"the rows have several {what} ({shown}); {fix}")
    return values[0]


def _nodata(values: Sequence[float | None], nodata: float | None) -> float | None:
    if nodata is not None:
        return float(nodata)
    keys = {("nan" if v is not None and math.isnan(v) else v) for v in values}
    if len(keys) > 1:
        shown = sorted(str(k) for k in keys)
        raise ArgumentError(
            f"the rows have several nodata values ({', '.join(shown)}): pass nodata= (CLI --nodata) for the mosaic"
        )
    return values[0]


def _footprint(bounds: dict[str, float], src: str, dst: str) -> Polygon:
    b = tuple(bounds[k] for k in schema.BBOX_KEYS)
    if src == dst:
        return box(*b)
    xs, ys = densified_ring(b)  # type: ignore[arg-type]
    tx, ty = transformer(src, dst).transform(xs, ys)
    if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
        raise CRSError(f"native bounds {b} in {src} do not project to the index SRS {dst}: choose another srs=")
    return Polygon(np.column_stack([tx, ty]))


def to_gti(
    cat: Catalog,
    path: str | os.PathLike[str],
    *,
    srs: Any = None,
    resolution: float | tuple[float, float] | None = None,
    nodata: float | None = None,
    layer: str = "tiles",
) -> Path:
    """Write the relation's raster rows as a GDAL GTI tile index at ``path`` (see the module
    docstring); returns ``path``.

    Args:
        srs: the mosaic's SRS. Default: the rows' CRS; rows in several CRSs need it (GDAL
            reprojects each tile on read).
        resolution: pixel size (x, or (x, y)) in ``srs`` units. Default: the finest resolution of
            the rows, which needs every row to be in ``srs``.
        nodata: the mosaic's nodata; default the rows' (one value), none if they have none.
        layer: the layer name.

    Raises ArgumentError for rows that are not rasters, several bands of band-file scenes, several
    band counts, several nodata values without ``nodata=``, or no rows; CRSError for several CRSs
    without ``srs=``. Written to a temporary name beside ``path`` and renamed into place.
    """
    import geopandas as gpd
    import pandas as pd
    import pyogrio

    target = Path(path)
    driver = _driver(target)
    missing = [c for c in (*_COLUMNS, *_RASTER_COLUMNS) if c not in cat.columns]
    if missing:
        raise ArgumentError(f"relation {cat.name!r} lacks columns {missing} that a GTI index needs (raster rows)")
    wanted = [*_COLUMNS, *_RASTER_COLUMNS, *([schema.BAND] if schema.BAND in cat.columns else [])]
    frame = cat.fetch(*wanted).to_pandas()
    if frame.empty:
        raise ArgumentError("the relation has no rows: nothing to index")
    not_raster = frame[frame[schema.BACKEND] != "raster"]
    if len(not_raster):
        raise ArgumentError(
            f"a GTI index holds rasters only; {len(not_raster)} row(s) are {sorted(set(not_raster[schema.BACKEND]))} "
            "(filter them out, e.g. where(\"backend = 'raster'\"))"
        )
    if schema.BAND in frame:
        bands = sorted(set(frame[schema.BAND].dropna()))
        if len(bands) > 1:
            raise ArgumentError(
                f"the rows are band files of {len(bands)} bands ({', '.join(bands[:5])}): a GTI mosaic is one band "
                f"stack per file; export one band, e.g. where(\"band = '{bands[0]}'\")"
            )
    count = int(_one(list(frame["count"]), "band counts", "select rows with one band count with where(...)"))
    crss = sorted({crs_key(c) for c in frame[schema.CRS]})
    if srs is None:
        if len(crss) > 1:
            raise CRSError(
                f"the rows are in {len(crss)} CRSs ({', '.join(crss[:5])}): pass srs= (CLI --srs) for the mosaic"
            )
        index_srs = crss[0]
    else:
        index_srs = crs_key(srs, argument="srs")
    if resolution is None:
        if crss != [index_srs]:
            raise ArgumentError(
                f"rows are not all in the index SRS {index_srs}: pass resolution= (CLI --resolution) in its units"
            )
        resx, resy = float(frame["res_x"].abs().min()), float(frame["res_y"].abs().min())
    elif isinstance(resolution, int | float):
        resx = resy = float(resolution)
    else:
        resx, resy = (float(v) for v in resolution)
    if not (resx > 0 and resy > 0 and math.isfinite(resx) and math.isfinite(resy)):
        raise ArgumentError(f"resolution={resolution!r} must be positive")
    nd = _nodata([None if pd.isna(v) else float(v) for v in frame["nodata"]], nodata)
    frame = frame.sort_values([schema.START, schema.FILEPATH], na_position="first", kind="stable")
    geoms = [
        _footprint(b, crs_key(c), index_srs)
        for b, c in zip(frame[schema.NATIVE_BOUNDS], frame[schema.CRS], strict=True)
    ]
    gdf = gpd.GeoDataFrame(
        {
            LOCATION_FIELD: [gdal_location(p) for p in frame[schema.FILEPATH]],
            schema.ID: list(frame[schema.ID]),
            SORT_FIELD: pd.to_datetime(frame[schema.START], utc=True).dt.tz_localize(None),
        },
        geometry=geoms,
        crs=norm_crs(index_srs),
    )
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    metadata = {
        "LOCATION_FIELD": LOCATION_FIELD,
        "SORT_FIELD": SORT_FIELD,
        "SORT_FIELD_ASC": "YES",
        "SRS": index_srs,
        "RESX": repr(resx),
        "RESY": repr(resy),
        "MINX": repr(float(xmin)),
        "MINY": repr(float(ymin)),
        "MAXX": repr(float(xmax)),
        "MAXY": repr(float(ymax)),
        "BAND_COUNT": str(count),
        "DATA_TYPE": gdal_data_type(list(frame["dtype"])),
    }
    if nd is not None:
        metadata["NODATA"] = "nan" if math.isnan(nd) else repr(nd)
    with store.replacing(target, keep_suffix=True) as tmp:
        pyogrio.write_dataframe(gdf, tmp, layer=layer, driver=driver, layer_metadata=metadata)
    log.info("wrote a GTI index of %d tiles to %s", len(gdf), target)
    return target
