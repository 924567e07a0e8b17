"""geoduck: a DuckDB-backed SQL catalog engine for large collections of geospatial files.

Pipeline: files ─build→ GeoParquet 1.1 parts ─open→ :class:`Catalog` (lazy) ─query→ DuckDB SQL
─rows→ loaders (GeoTensor mosaics on a :class:`GeoSlice` grid).
"""

from __future__ import annotations

import logging

from .builders.common import BuildReport
from .builders.raster import build_raster_catalog
from .catalog import Catalog, open_catalog, sql
from .engine import connect
from .errors import GeoduckError
from .loaders.raster import load_raster
from .schema import SCHEMA_VERSION
from .slices import GeoSlice

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "BuildReport",
    "Catalog",
    "GeoSlice",
    "GeoduckError",
    "build_raster_catalog",
    "connect",
    "load_raster",
    "open_catalog",
    "sql",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
