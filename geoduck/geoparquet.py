"""Reading the metadata of GeoParquet files indexed as vector sources (not catalog parts, whose
schema lives in :mod:`geoduck.schema`): shared by the vector builder and the vector loader."""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow.parquet as pq

from .errors import SourceError

PARQUET_EXTENSIONS = (".parquet", ".geoparquet")
"""Suffixes of vector files read as GeoParquet (with pyarrow, not OGR)."""

DEFAULT_CRS = "OGC:CRS84"
"""CRS of a GeoParquet geometry column whose metadata has no ``crs`` key (the spec's default), and
of a GeoJSON layer that declares none (RFC 7946): lon/lat WGS 84."""


def is_parquet(path: str) -> bool:
    """True for GeoParquet files (read with pyarrow, not OGR)."""
    return path.lower().endswith(PARQUET_EXTENSIONS)


def geoparquet_metadata(path: str) -> tuple[pq.FileMetaData, dict[str, Any]]:
    """(Parquet footer, ``geo`` metadata) of a GeoParquet file; raises if it has no ``geo`` key."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, ValueError) as exc:
        raise SourceError(f"not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    raw = (meta.metadata or {}).get(b"geo")
    if raw is None:
        raise SourceError(f"{os.path.basename(path)} is Parquet without GeoParquet 'geo' metadata")
    geo = json.loads(raw)
    if geo.get("primary_column") not in geo.get("columns", {}):
        raise SourceError(f"{os.path.basename(path)}: 'geo' metadata names no valid primary_column")
    return meta, geo


def geoparquet_crs(column_meta: dict[str, Any]) -> str | None:
    """The CRS text of a GeoParquet geometry column: absent → OGC:CRS84 (spec default), null → None."""
    if "crs" not in column_meta:
        return DEFAULT_CRS
    crs = column_meta["crs"]
    if crs is None:
        return None
    return crs if isinstance(crs, str) else json.dumps(crs)
