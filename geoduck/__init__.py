"""geoduck: a DuckDB-backed SQL catalog engine for large collections of geospatial files.

Pipeline: files ─build→ GeoParquet 1.1 parts ─open→ :class:`Catalog` (lazy) ─query→ DuckDB SQL
─rows→ loaders (GeoTensor mosaics on a :class:`GeoSlice` grid).

Every public name is imported on first use (PEP 562), so ``import geoduck`` and the CLI do not
pay for geopandas/rasterio/xarray/pyogrio until a name that needs them is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .builders.raster import build_raster_catalog
    from .builders.stac import from_stac
    from .builders.vector import build_vector_catalog
    from .builders.xarray import build_xarray_catalog
    from .catalog import Catalog, open_catalog, sql
    from .engine import connect
    from .errors import GeoduckError
    from .foreign import import_table as import_table
    from .io import polygons_from_mask, save_cog, to_xarray
    from .loaders.masks import QualityMask
    from .loaders.raster import load_raster, load_raster_timeseries
    from .loaders.vector import VectorLabels, load_vector
    from .loaders.xarray import load_xarray
    from .maintenance import compact, migrate
    from .report import BuildReport
    from .samplers import (
        grid_sampler,
        random_sampler,
        samples_from_parquet,
        samples_to_parquet,
        spatial_folds,
        temporal_pair_sampler,
    )
    from .scale import map_chips
    from .schema import SCHEMA_VERSION
    from .slices import GeoSlice
    from .stitch import stitch
    from .validate import validate

__version__ = "0.1.0"

# Every public name → the module defining it, imported on first access (PEP 562), so that
# ``import geoduck`` (and the CLI, which imports ``geoduck.cli``) pays for no heavy dependency
# (geopandas, rasterio, xarray, torch …) until a name that needs one is used.
_LAZY = {
    "SCHEMA_VERSION": ".schema",
    "BuildReport": ".report",
    "Catalog": ".catalog",
    "GeoSlice": ".slices",
    "GeoduckError": ".errors",
    "QualityMask": ".loaders.masks",
    "VectorLabels": ".loaders.vector",
    "build_raster_catalog": ".builders.raster",
    "build_vector_catalog": ".builders.vector",
    "build_xarray_catalog": ".builders.xarray",
    "compact": ".maintenance",
    "connect": ".engine",
    "from_stac": ".builders.stac",
    "grid_sampler": ".samplers",
    "import_table": ".foreign",
    "load_raster": ".loaders.raster",
    "load_raster_timeseries": ".loaders.raster",
    "load_vector": ".loaders.vector",
    "load_xarray": ".loaders.xarray",
    "map_chips": ".scale",
    "migrate": ".maintenance",
    "open_catalog": ".catalog",
    "polygons_from_mask": ".io",
    "random_sampler": ".samplers",
    "samples_from_parquet": ".samplers",
    "samples_to_parquet": ".samplers",
    "save_cog": ".io",
    "spatial_folds": ".samplers",
    "sql": ".catalog",
    "stitch": ".stitch",
    "temporal_pair_sampler": ".samplers",
    "to_xarray": ".io",
    "validate": ".validate",
}


def __getattr__(name: str) -> Any:
    """A public name, imported on first use; or a submodule (``geoduck.store`` …), as when the
    package imported them all eagerly."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'geoduck' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# Submodules named like the function they define: as with the former eager imports, the package
# attribute is the function, also after the submodule is imported (which binds it on the package).
_SHADOWED = frozenset({"stitch", "validate"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
