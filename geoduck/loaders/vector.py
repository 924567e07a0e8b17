"""Vector label loader: catalog rows → label arrays exactly on a GeoSlice's grid.

For each catalog row under the slice, only the features near the slice are read: the slice's grid
bounds are densified and reprojected into the layer's CRS, and that bbox is handed to
``pyogrio.read_dataframe(bbox=...)`` (OGR formats) or to a GeoParquet reader that filters on the
``bbox`` covering (row groups pruned) or, without a covering, streams record batches and keeps the
features whose envelopes intersect. Features are clipped near the slice, densified (about one pixel
per segment) and reprojected to the slice CRS, then rasterized with ``rasterio.features.rasterize``.

Sources are used in catalog order: ``start_datetime`` (static rows first), then file path, then
layer; within a layer, in file order. numpy only: torch is never imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pyproj
import rasterio.crs
import rasterio.features
import shapely
from georeader.geotensor import GeoTensor
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.transform import Affine
from sqlglot import exp

from .. import compiler, schema
from ..catalog import Catalog
from ..errors import ArgumentError, LabelFieldError, NoDataError, SourceError
from ..geo import Bounds, densified_ring, norm_crs, rasterio_crs, transformer
from ..geoparquet import geoparquet_metadata, is_parquet
from ..slices import GeoSlice

Task = Literal["semantic_segmentation", "object_detection", "instance_segmentation"]
TASKS: tuple[str, ...] = ("semantic_segmentation", "object_detection", "instance_segmentation")

_PARQUET_BATCH_ROWS = 65_536
"""Rows decoded at a time when a GeoParquet file without a bbox covering is scanned."""


@dataclass(frozen=True, eq=False)
class VectorLabels:
    """Instance labels of one slice (object detection / instance segmentation).

    Attributes:
        boxes: (N, 4) float64 ``xmin, ymin, xmax, ymax`` in pixel coordinates of the slice grid
            (column/row; (0, 0) is the top-left corner of the top-left pixel), clipped to
            ``[0, width] × [0, height]``: the box of the part of each feature inside the slice.
        labels: (N,) int64 class ids (``label_field`` values, else 1).
        masks: (N, height, width) bool instance masks on the slice grid, or None (detection).
        transform: the slice's affine (pixel → ``crs`` coordinates).
        crs: the slice's CRS (authority code or WKT2).
        shape: (height, width) of the slice grid in pixels.
    """

    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    transform: Affine
    crs: str
    shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class VectorSource:
    """One catalog row (file × layer) to read for a slice."""

    filepath: str
    layer: str
    crs: str


def sources_for(catalog: Catalog, slice: GeoSlice) -> list[VectorSource]:
    """Vector rows of ``catalog`` under ``slice`` (space and time), in load order: start time
    (static first), file path, layer."""
    if not {"layer", schema.BACKEND, schema.FILEPATH, schema.CRS, schema.START} <= set(catalog.columns):
        raise ArgumentError(
            "catalog has no 'layer'/'backend' columns: load_vector needs a vector catalog "
            "(from build_vector_catalog, or a union/query of one)"
        )
    rel = catalog.query(bbox=slice.grid_bounds, crs=slice.crs, start=slice.start, end=slice.end)
    table = rel.fetch(
        schema.FILEPATH,
        "layer",
        schema.CRS,
        where=exp.EQ(this=compiler.col(schema.BACKEND), expression=exp.Literal.string("vector")),
        order_by=(exp.Ordered(this=compiler.col(schema.START), nulls_first=True), schema.FILEPATH, "layer"),
    )
    columns = (table[n].to_pylist() for n in (schema.FILEPATH, "layer", schema.CRS))
    return [VectorSource(path, layer, crs) for path, layer, crs in zip(*columns, strict=True)]


# -- reading ----------------------------------------------------------------------------------------


def native_bbox(slice: GeoSlice, crs: pyproj.CRS) -> Bounds | None:
    """The slice's grid bounds in ``crs`` (edges densified), grown by one slice pixel (in ``crs``
    units) so that reprojection curvature never cuts a feature; None when nothing of it projects."""
    slice_crs = norm_crs(slice.crs)
    if crs.equals(slice_crs, ignore_axis_order=True):
        return slice.grid_bounds
    xs, ys = densified_ring(slice.grid_bounds)
    with np.errstate(all="ignore"):
        x, y = transformer(slice_crs, crs).transform(xs, ys, errcheck=False)
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return None
    xmin, xmax, ymin, ymax = x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max()
    pad = max((xmax - xmin) / slice.width, (ymax - ymin) / slice.height)
    return xmin - pad, ymin - pad, xmax + pad, ymax + pad


def _read_ogr(path: str, layer: str, bbox: Bounds, columns: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    try:
        df = pyogrio.read_dataframe(path, layer=layer, bbox=bbox, columns=columns)
    except (DataSourceError, DataLayerError) as exc:
        raise SourceError(f"OGR failed reading layer {layer!r} of {path}: {str(exc).strip().splitlines()[0]}") from None
    return np.asarray(df.geometry.values, dtype=object), pd.DataFrame(df.drop(columns=df.geometry.name))


def _read_parquet(path: str, bbox: Bounds, columns: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Features of a GeoParquet file whose envelopes intersect ``bbox`` (in the file's CRS)."""
    import geopandas as gpd

    meta, geo = geoparquet_metadata(path)
    geom_col = geo["primary_column"]
    col = geo["columns"][geom_col]
    missing = [c for c in columns if c not in meta.schema.names]
    if missing:
        return np.empty(0, dtype=object), pd.DataFrame({c: [] for c in columns if c in meta.schema.names})
    encoding = str(col.get("encoding", "WKB")).upper()
    if col.get("covering") or encoding == "POINT":  # pyarrow filters prune row groups by the bbox
        df = gpd.read_parquet(path, columns=[geom_col, *columns], bbox=bbox)
        return np.asarray(df.geometry.values, dtype=object), pd.DataFrame(df[columns])
    if encoding != "WKB":  # native GeoArrow encoding without covering: read whole, then filter
        df = gpd.read_parquet(path, columns=[geom_col, *columns])
        keep = df.geometry.intersects(shapely.box(*bbox)).to_numpy()
        return np.asarray(df.geometry.values[keep], dtype=object), pd.DataFrame(df[columns][keep])
    geoms: list[np.ndarray] = []
    attrs: list[pd.DataFrame] = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[geom_col, *columns]):
        g = shapely.from_wkb(batch.column(geom_col).to_numpy(zero_copy_only=False))
        b = shapely.bounds(g)
        keep = (b[:, 0] <= bbox[2]) & (b[:, 2] >= bbox[0]) & (b[:, 1] <= bbox[3]) & (b[:, 3] >= bbox[1])
        if keep.any():
            geoms.append(g[keep])
            attrs.append(batch.select(columns).to_pandas()[keep] if columns else pd.DataFrame(index=range(keep.sum())))
    if not geoms:
        return np.empty(0, dtype=object), pd.DataFrame({c: [] for c in columns})
    return np.concatenate(geoms), pd.concat(attrs, ignore_index=True)


def _class_ids(values: pd.Series, source: VectorSource, label_field: str) -> np.ndarray:
    """``label_field`` values as int64; clear error for nulls and non-integers."""
    where = f"layer {source.layer!r} of {source.filepath}"
    if values.isna().any():
        raise LabelFieldError(
            f"label_field={label_field!r} is null for some features of {where}; "
            "fill them (0 = background) or drop those features"
        )
    arr = values.to_numpy()
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise LabelFieldError(
        f"label_field={label_field!r} of {where} holds {arr.dtype} values, not "
        "integer class ids; map them to integers first"
    )


def read_features(source: VectorSource, slice: GeoSlice, label_field: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(geometries in the slice CRS, int64 class ids) of ``source``'s features near ``slice``.

    Features are read with a bbox filter in the layer's CRS, clipped to that bbox, densified to
    about one slice pixel per segment and reprojected (when the CRSs differ).
    """
    crs = norm_crs(source.crs, argument=f"crs of {source.filepath}")
    bbox = native_bbox(slice, crs)
    if bbox is None:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    columns = [label_field] if label_field else []
    if is_parquet(source.filepath):
        geoms, attrs = _read_parquet(source.filepath, bbox, columns)
    else:
        geoms, attrs = _read_ogr(source.filepath, source.layer, bbox, columns)
    if label_field and label_field not in attrs.columns:
        raise LabelFieldError(
            f"label_field={label_field!r} is not a field of layer {source.layer!r} of {source.filepath}"
        )
    labels = _class_ids(attrs[label_field], source, label_field) if label_field else np.ones(len(geoms), dtype=np.int64)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms, labels = geoms[keep], labels[keep]
    if crs.equals(norm_crs(slice.crs), ignore_axis_order=True) or not len(geoms):
        return geoms, labels
    geoms = shapely.clip_by_rect(geoms, *bbox)
    step = min((bbox[2] - bbox[0]) / (slice.width + 2), (bbox[3] - bbox[1]) / (slice.height + 2))
    geoms = shapely.segmentize(geoms, step)
    to_slice = transformer(crs, norm_crs(slice.crs))
    geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_slice.transform(xy[:, 0], xy[:, 1])))
    keep = ~shapely.is_empty(geoms)
    return geoms[keep], labels[keep]


# -- outputs ----------------------------------------------------------------------------------------


def _pixel_boxes(geoms: np.ndarray, slice: GeoSlice) -> tuple[np.ndarray, np.ndarray]:
    """(pixel boxes (N, 4), kept mask (len(geoms),)) of the parts of ``geoms`` inside the slice grid."""
    xmin, ymin, xmax, ymax = slice.grid_bounds
    clipped = shapely.clip_by_rect(geoms, xmin, ymin, xmax, ymax)
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
    keep = ~shapely.is_empty(clipped) & ~(polygonal & (shapely.area(clipped) <= 0))
    b = shapely.bounds(clipped[keep]).reshape(-1, 4)
    rx, ry = slice.resolution
    h, w = slice.shape
    boxes = np.column_stack(
        [(b[:, 0] - xmin) / rx, (ymax - b[:, 3]) / ry, (b[:, 2] - xmin) / rx, (ymax - b[:, 1]) / ry]
    )
    boxes = np.clip(boxes, 0.0, [w, h, w, h])
    return boxes.astype(np.float64), keep


def _rasterize(shapes: Sequence[tuple[object, int]], slice: GeoSlice, all_touched: bool, dtype: str) -> np.ndarray:
    if not shapes:
        return np.zeros(slice.shape, dtype=dtype)
    return rasterio.features.rasterize(
        shapes, out_shape=slice.shape, transform=slice.transform, fill=0, all_touched=all_touched, dtype=dtype
    )


@overload
def load_vector(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    task: Literal["semantic_segmentation"],
    label_field: str | None = None,
    all_touched: bool = False,
) -> GeoTensor: ...


@overload
def load_vector(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    task: Literal["object_detection", "instance_segmentation"],
    label_field: str | None = None,
    all_touched: bool = False,
) -> VectorLabels: ...


def load_vector(
    catalog: Catalog,
    slice: GeoSlice,
    *,
    task: Task,
    label_field: str | None = None,
    all_touched: bool = False,
) -> GeoTensor | VectorLabels:
    """Labels of the catalog's vector layers under ``slice``, on its grid.

    Args:
        catalog: a catalog (or a query of one) with vector rows; other backends' rows are ignored.
        slice: the output grid, CRS and time interval (rows are selected like ``catalog.query``).
        task: ``"semantic_segmentation"``: a GeoTensor (height, width) of int64 class ids, 0 =
            background; features are burnt in order, so later features overwrite earlier ones
            (later layers/files too, in catalog order: start time, static first, then path, layer).
            ``"object_detection"``: :class:`VectorLabels` with ``boxes``/``labels``, ``masks=None``.
            ``"instance_segmentation"``: :class:`VectorLabels` with boxes, labels and (N, H, W)
            bool masks; features whose mask has no pixel are dropped.
        label_field: integer attribute holding class ids (default: every feature is class 1).
            A value of 0 draws background in semantic segmentation.
        all_touched: burn every pixel a geometry touches, not only those whose centre is inside
            (``rasterio.features.rasterize``); affects masks, not boxes.

    Returns:
        GeoTensor (semantic segmentation; ``transform``/``crs`` = the slice's, fill value 0) or
        :class:`VectorLabels`. Boxes are in pixel coordinates of the slice, clipped to it; points
        give zero-size boxes.

    Raises:
        NoDataError: no vector row of the catalog covers the slice (unlabelled area); a covered
            slice without features gives background / zero instances instead.
        LabelFieldError: ``label_field`` is missing or not integer.
    """
    if task not in TASKS:
        raise ArgumentError(f"task={task!r} is not one of {TASKS}")
    sources = sources_for(catalog, slice)
    if not sources:
        raise NoDataError(
            f"no vector row of the catalog intersects the slice bounds={slice.bounds} "
            f"crs={slice.crs} interval=[{slice.start}, {slice.end}]"
        )
    parts = [read_features(s, slice, label_field) for s in sources]
    geoms = np.concatenate([g for g, _ in parts]) if parts else np.empty(0, dtype=object)
    labels = np.concatenate([lab for _, lab in parts]).astype(np.int64)
    crs = rasterio_crs(slice.crs)

    if task == "semantic_segmentation":
        values = _rasterize(list(zip(geoms, labels.tolist(), strict=True)), slice, all_touched, "int64")
        return GeoTensor(values, transform=slice.transform, crs=crs, fill_value_default=0)

    boxes, keep = _pixel_boxes(geoms, slice)
    geoms, labels = geoms[keep], labels[keep]
    masks: np.ndarray | None = None
    if task == "instance_segmentation":
        h, w = slice.shape
        masks = np.zeros((len(geoms), h, w), dtype=bool)
        for i, g in enumerate(geoms):
            masks[i] = _rasterize([(g, 1)], slice, all_touched, "uint8").astype(bool)
        nonempty = masks.reshape(len(geoms), -1).any(axis=1)
        boxes, labels, masks = boxes[nonempty], labels[nonempty], masks[nonempty]
    return VectorLabels(
        boxes=boxes.reshape(-1, 4),
        labels=labels,
        masks=masks,
        transform=slice.transform,
        crs=slice.crs,
        shape=slice.shape,
    )
