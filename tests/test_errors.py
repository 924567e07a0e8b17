"""The error hierarchy: every class in ``geoduck.errors`` (and nowhere else), each also a builtin,
and the specific class raised where the base class or a bare builtin used to be."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr
from rasterio.transform import Affine

import geoduck
from geoduck import errors, schema
from geoduck.builders.vector import read_vector_header
from geoduck.builders.xarray import XarrayOptions, read_xarray_header
from geoduck.cf import centres
from geoduck.testing import write_raster

PACKAGE = Path(geoduck.__file__).parent
BUILTIN_ALLOWED = {
    # protocol contracts: fsspec file systems raise these, lazy attributes AttributeError,
    # abstract methods NotImplementedError, optional imports ImportError
    "FileNotFoundError",
    "PermissionError",
    "AttributeError",
    "NotImplementedError",
    "ImportError",
}


def _error_classes() -> list[type[BaseException]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]


def test_every_error_is_a_geoduck_error_and_a_builtin():
    classes = _error_classes()
    assert len(classes) >= 20
    for cls in classes:
        assert issubclass(cls, errors.GeoduckError), cls
        if cls is errors.GeoduckError:
            continue
        builtins = [
            b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (Exception, BaseException, object)
        ]
        assert builtins, f"{cls.__name__} subclasses no builtin exception"


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def test_error_classes_live_only_in_errors_py():
    elsewhere = []
    for path, tree in _modules():
        if path.name == "errors.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and (node.name.endswith(("Error", "Exception"))):
                elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert elsewhere == []


def test_no_base_class_or_bare_builtin_is_raised():
    bad = []
    builtin_errors = {n for n in vars(__import__("builtins")) if n.endswith(("Error", "Exception"))}
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.id if isinstance(exc, ast.Name) else None
            if name == "GeoduckError" or (name in builtin_errors and name not in BUILTIN_ALLOWED):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} raise {name}")
    assert bad == []
    assert {"ValueError", "RuntimeError", "IndexError"} <= builtin_errors


def test_moved_classes_keep_their_old_import_paths():
    from geoduck.builders.vector import EmptyLayerError
    from geoduck.loaders.vector import LabelFieldError

    assert EmptyLayerError is errors.EmptyLayerError and LabelFieldError is errors.LabelFieldError


def test_unreadable_vector_and_parquet_files_are_source_errors(tmp_path):
    bad = tmp_path / "broken.gpkg"
    bad.write_bytes(b"not a geopackage")
    with pytest.raises(errors.SourceError, match="not a readable vector file") as info:
        read_vector_header(str(bad))
    assert isinstance(info.value, OSError)
    table = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), table)
    with pytest.raises(errors.SourceError, match="plain.parquet is Parquet without GeoParquet 'geo' metadata"):
        read_vector_header(str(table))
    with pytest.raises(errors.ArgumentError, match=r"has no layer 'roads' \(its layers: \['plain'\]\)"):
        read_vector_header(str(table), "roads")


def _cube(x: np.ndarray) -> xr.Dataset:
    y = np.array([3.5, 2.5, 1.5])
    return xr.Dataset(
        {"v": (("y", "x"), np.zeros((y.size, x.size)))},
        coords={"x": ("x", x, {"axis": "X"}), "y": ("y", y, {"axis": "Y"})},
    )


def test_unusable_coordinates_are_footprint_errors_and_missing_variables_variable_errors(tmp_path):
    with pytest.raises(errors.FootprintError, match="coordinate 'x' is not strictly monotonic"):
        centres(_cube(np.array([0.5, 2.5, 1.5])), "x")
    with pytest.raises(errors.FootprintError, match="coordinate 'x' has NaN or infinite values"):
        centres(_cube(np.array([0.5, np.nan, 1.5])), "x")
    path = tmp_path / "cube.nc"
    _cube(np.array([0.5, 1.5, 2.5])).to_netcdf(path)
    opts = XarrayOptions(variables=("w",), crs_wkt="EPSG:32630")
    with pytest.raises(errors.VariableError, match=r"none of variables=\['w'\] is in the file \(it has \['v'\]\)"):
        read_xarray_header(str(path), opts)
    (row,) = read_xarray_header(str(path), XarrayOptions(crs_wkt="EPSG:32630"))
    assert row["variable"] == "v" and row[schema.NATIVE_BOUNDS] == {"xmin": 0.0, "ymin": 1.0, "xmax": 3.0, "ymax": 4.0}
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"CDF garbage")
    with pytest.raises(errors.SourceError, match="not readable with engine='netcdf4'"):
        read_xarray_header(str(garbage), opts)


def test_sampler_index_and_unknown_backend(tmp_path):
    src = tmp_path / "a.tif"
    write_raster(src, np.zeros((20, 20), "uint8"), crs="EPSG:32630", transform=Affine(10, 0, 5e5, 0, -10, 4000200))
    cat = geoduck.build_raster_catalog([src], tmp_path / "cat", workers=1, progress=False)
    sampler = geoduck.random_sampler(cat, chip_size=4, resolution=10.0, length=3, seed=0)
    assert sampler[-3] == sampler[0]
    with pytest.raises(errors.ChipIndexError, match="chip index 3 out of range for 3 chips"):
        sampler[3]
    with pytest.raises(IndexError):
        sampler[-4]
    assert len(list(sampler)) == 3
    with pytest.raises(errors.SchemaError, match="unknown backend 'lidar'"):
        schema.catalog_schema("lidar")  # type: ignore[arg-type]
