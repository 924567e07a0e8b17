"""geoduck: a DuckDB-backed SQL catalog engine for large collections of geospatial files.

Pipeline: files ─build→ GeoParquet 1.1 parts ─open→ :class:`Catalog` (lazy) ─query→ DuckDB SQL
─rows→ loaders (GeoTensor mosaics on a :class:`GeoSlice` grid).

The cube and label backends, samplers and ``map_chips`` are imported on first use, so
``import geoduck`` does not pay for xarray/pyogrio.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from .builders.raster import build_raster_catalog
from .catalog import Catalog, open_catalog, sql
from .engine import connect
from .errors import GeoduckError
from .io import polygons_from_mask, save_cog, to_xarray
from .loaders.masks import QualityMask
from .loaders.raster import load_raster, load_raster_timeseries
from .maintenance import compact, migrate
from .report import BuildReport
from .schema import SCHEMA_VERSION
from .slices import GeoSlice
from .stitch import stitch
from .validate import validate

if TYPE_CHECKING:
    from .builders.stac import from_stac
    from .builders.vector import build_vector_catalog
    from .builders.xarray import build_xarray_catalog
    from .foreign import import_table as import_table
    from .loaders.vector import VectorLabels, load_vector
    from .loaders.xarray import load_xarray
    from .samplers import (
        grid_sampler,
        random_sampler,
        samples_from_parquet,
        samples_to_parquet,
        spatial_folds,
        temporal_pair_sampler,
    )
    from .scale import map_chips

__version__ = "0.1.0"

_LAZY = {
    "build_xarray_catalog": ".builders.xarray",
    "load_xarray": ".loaders.xarray",
    "build_vector_catalog": ".builders.vector",
    "from_stac": ".builders.stac",
    "load_vector": ".loaders.vector",
    "VectorLabels": ".loaders.vector",
    "map_chips": ".scale",
    "import_table": ".foreign",
    "random_sampler": ".samplers",
    "grid_sampler": ".samplers",
    "samples_to_parquet": ".samplers",
    "samples_from_parquet": ".samplers",
    "temporal_pair_sampler": ".samplers",
    "spatial_folds": ".samplers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geoduck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "SCHEMA_VERSION",
    "BuildReport",
    "Catalog",
    "GeoSlice",
    "GeoduckError",
    "QualityMask",
    "VectorLabels",
    "build_raster_catalog",
    "build_vector_catalog",
    "build_xarray_catalog",
    "compact",
    "connect",
    "from_stac",
    "grid_sampler",
    "load_raster",
    "load_raster_timeseries",
    "load_vector",
    "load_xarray",
    "map_chips",
    "migrate",
    "open_catalog",
    "polygons_from_mask",
    "random_sampler",
    "samples_from_parquet",
    "samples_to_parquet",
    "save_cog",
    "spatial_folds",
    "sql",
    "stitch",
    "to_xarray",
    "temporal_pair_sampler",
    "validate",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
