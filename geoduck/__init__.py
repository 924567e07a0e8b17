"""geoduck: a DuckDB-backed SQL catalog engine for large collections of geospatial files.

Pipeline: files ─build→ GeoParquet 1.1 parts ─open→ :class:`Catalog` (lazy) ─query→ DuckDB SQL
─rows→ loaders (GeoTensor mosaics on a :class:`GeoSlice` grid).
"""

from __future__ import annotations

import logging

from .builders.common import BuildReport
from .builders.raster import build_raster_catalog
from .builders.xarray import build_xarray_catalog
from .builders.vector import build_vector_catalog
from .catalog import Catalog, open_catalog, sql
from .maintenance import compact, migrate
from .engine import connect
from .errors import GeoduckError
from .io import save_cog
from .loaders.raster import load_raster, load_raster_timeseries
from .loaders.xarray import load_xarray
from .loaders.vector import VectorLabels, load_vector
from .schema import SCHEMA_VERSION
from .scale import map_chips
from .samplers import grid_sampler, random_sampler, samples_from_parquet, samples_to_parquet
from .slices import GeoSlice
from .stitch import stitch
from .validate import validate

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "BuildReport",
    "Catalog",
    "GeoSlice",
    "GeoduckError",
    "VectorLabels",
    "build_raster_catalog",
    "build_xarray_catalog",
    "compact",
    "build_vector_catalog",
    "connect",
    "load_raster",
    "load_raster_timeseries",
    "load_xarray",
    "migrate",
    "load_vector",
    "map_chips",
    "open_catalog",
    "sql",
    "validate",
    "random_sampler",
    "grid_sampler",
    "samples_to_parquet",
    "samples_from_parquet",
    "stitch",
    "save_cog",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
