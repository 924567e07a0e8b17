"""Backends as values: the registry, a fourth backend added as one module plus one registration
line (built through the shared driver and the generated CLI), and the import layering."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import numpy as np
import pyproj
import pytest
from click.testing import CliRunner

import geoduck
from geoduck import backends, schema
from geoduck.builders import common
from geoduck.cli import main
from geoduck.errors import ArgumentError
from geoduck.report import BuildReport

PACKAGE = Path(geoduck.__file__).parent

XYZ_MODULE = textwrap.dedent('''
    """A point-cloud-like backend: text files of "x y z" lines, the first line "# crs <CRS>"."""
    import os

    import numpy as np
    import pyarrow as pa
    import shapely

    from geoduck import schema
    from geoduck.backends import Backend, CliOption
    from geoduck.builders.common import FilenameParser, build_catalog, file_stat
    from geoduck.geo import crs_to_string, footprint_wgs84, norm_crs


    def read_xyz_header(path, default_crs):
        with open(path) as fh:
            first = fh.readline()
        crs = first.split(None, 2)[2].strip() if first.startswith("# crs ") else default_crs
        points = np.loadtxt(path, comments="#", ndmin=2)
        xmin, ymin = points[:, :2].min(axis=0)
        xmax, ymax = points[:, :2].max(axis=0)
        footprint = footprint_wgs84((xmin, ymin, xmax, ymax), norm_crs(crs))
        size, mtime = file_stat(path)
        box = dict(zip(schema.BBOX_KEYS, footprint.bounds))
        return [{
            schema.GEOMETRY: shapely.to_wkb(footprint), schema.BBOX: box,
            schema.CRS: crs_to_string(norm_crs(crs)),
            schema.NATIVE_BOUNDS: dict(zip(schema.BBOX_KEYS, (xmin, ymin, xmax, ymax))),
            "n_points": len(points), schema.FILE_SIZE: size, schema.FILE_MTIME: mtime,
        }]


    def load_points(catalog):
        paths = sorted(catalog.to_arrow().column(schema.FILEPATH).to_pylist())
        return np.concatenate([np.loadtxt(p, comments="#", ndmin=2) for p in paths])


    def build_xyz_catalog(paths, out_dir, *, crs=None, filename_regex=None, workers=None, progress=True,
                          client=None):
        return build_catalog(BACKEND, paths, out_dir, options=crs, parser=FilenameParser(filename_regex),
                             workers=workers, progress=progress, client=client)


    BACKEND = Backend(
        name="xyz", extensions=(".xyz",), fields=(pa.field("n_points", pa.int64()),),
        read_header=read_xyz_header, build=build_xyz_catalog, loader=__name__ + ":load_points",
        cli_options=(CliOption(("--crs",), "crs", "CRS of files without a '# crs' line."),
                     CliOption(("--regex",), "filename_regex", "Regex on file names.")),
        cli_help="Index XYZ point files PATHS into the catalog OUT.",
    )
''')


@pytest.fixture
def xyz(tmp_path, monkeypatch):
    """The fourth backend: its module on the path and its one registration line."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "geoduck_xyz_backend.py").write_text(XYZ_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.setitem(backends._REGISTRY, "xyz", "geoduck_xyz_backend")  # noqa: SLF001 - undone after the test
    rng = np.random.default_rng(3)
    files = {}
    for i, crs in enumerate(["EPSG:32630", "EPSG:32630", None]):
        points = np.column_stack(
            [
                500_000 + 1000 * i + rng.uniform(0, 800, 20 + i),
                4_400_000 + rng.uniform(0, 500, 20 + i),
                rng.uniform(0, 50, 20 + i),
            ]
        )
        path = tmp_path / "points" / f"cloud_2023061{i}.xyz"
        path.parent.mkdir(exist_ok=True)
        header = f"# crs {crs}\n" if crs else ""
        path.write_text(header + "\n".join(f"{x:.3f} {y:.3f} {z:.3f}" for x, y, z in points) + "\n")
        files[str(path)] = np.loadtxt(path, comments="#", ndmin=2)
    return files


def test_registry_holds_the_three_backends():
    assert backends.names() == ("raster", "xarray", "vector")
    raster, cube, vector = (backends.get(n) for n in backends.names())
    assert (raster.build, cube.build, vector.build) == (
        geoduck.build_raster_catalog,
        geoduck.build_xarray_catalog,
        geoduck.build_vector_catalog,
    )
    assert (raster.load, cube.load, vector.load) == (geoduck.load_raster, geoduck.load_xarray, geoduck.load_vector)
    assert (raster.sub_key, cube.sub_key, vector.sub_key) == (None, "variable", "layer")
    assert cube.directory_suffixes == (".zarr",) and ".tif" in raster.extensions and ".gpkg" in vector.extensions
    for b in (raster, cube, vector):
        assert b.fields == schema.BACKEND_FIELDS[b.name]
        assert b.arrow_schema(["tile"], scenes=True) == schema.catalog_schema(b.name, ["tile"], scenes=True)
    assert backends.reserved_columns() == schema.RESERVED_COLUMNS
    with pytest.raises(ArgumentError, match="unknown backend 'lidar'.*raster, xarray, vector"):
        backends.get("lidar")
    assert geoduck.BuildReport is BuildReport is common.BuildReport


def test_a_fourth_backend_is_one_module_and_one_registration(xyz, tmp_path):
    backend = backends.get("xyz")
    cat = backend.build(tmp_path / "points", tmp_path / "cat", crs="EPSG:32630", workers=1, progress=False)
    assert cat.build_report.indexed == 3 and cat.build_report.errors == ()
    table = cat.to_arrow().sort_by("filepath")
    assert table.column("backend").to_pylist() == ["xyz"] * 3
    assert table.column("filepath").to_pylist() == sorted(xyz)
    assert table.column("id").to_pylist() == [common.item_id("xyz", p) for p in sorted(xyz)]
    assert table.column("n_points").to_pylist() == [len(xyz[p]) for p in sorted(xyz)]
    to_wgs84 = pyproj.Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)
    for path, native, box in zip(
        sorted(xyz), table.column("native_bounds").to_pylist(), table.column("bbox").to_pylist(), strict=True
    ):
        points = xyz[path]
        assert native == dict(zip(schema.BBOX_KEYS, (*points[:, :2].min(0), *points[:, :2].max(0)), strict=True))
        lon, lat = to_wgs84.transform(points[:, 0], points[:, 1])
        assert box["xmin"] <= lon.min() and lon.max() <= box["xmax"]
        assert box["ymin"] <= lat.min() and lat.max() <= box["ymax"]
    # Queries and the set algebra see it like any backend; its loader resolves through the value.
    hit = cat.query(bbox=(500_000, 4_400_000, 500_900, 4_400_600), crs="EPSG:32630")
    assert hit.to_arrow().column("filepath").to_pylist() == [sorted(xyz)[0]]
    assert np.array_equal(backend.load(cat), np.concatenate([xyz[p] for p in sorted(xyz)]))
    # Its columns are reserved for every backend: no regex group may take them.
    assert "n_points" in backends.reserved_columns()
    with pytest.raises(ArgumentError, match="n_points"):
        geoduck.build_raster_catalog(tmp_path / "points", tmp_path / "r", filename_regex=r"(?P<n_points>\d)")


def test_the_cli_builds_every_registered_backend(xyz, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["build", "--help"])
    assert listing.exit_code == 0 and "xyz" in listing.output and "Index XYZ point files" in listing.output
    out = tmp_path / "cli"
    args = ["build", "xyz", str(tmp_path / "points"), "-o", str(out), "--no-progress", "--workers", "1"]
    no_crs = runner.invoke(main, args)
    assert no_crs.exit_code == 0  # the file without a '# crs' line is reported, the build goes on
    assert "2 rows from 2 files indexed" in no_crs.output and "1 errors" in no_crs.output
    again = runner.invoke(main, [*args, "--crs", "EPSG:32630", "--regex", r"_(?P<date>\d{8})\.xyz$"])
    assert again.exit_code == 0, again.output
    assert "1 rows from 1 files indexed, 2 unchanged" in again.output
    cat = geoduck.open_catalog(out)
    assert sorted(cat.to_arrow().column("n_points").to_pylist()) == sorted(len(v) for v in xyz.values())
    bad = runner.invoke(main, ["build", "xyz", str(tmp_path / "points"), "-o", str(tmp_path / "x"), "--regex", "("])
    assert bad.exit_code == 1 and bad.output.startswith("Error: filename_regex='(' is not a valid regex")


def _module_level_imports(path: Path) -> list[str]:
    """Modules imported by statements that run when ``path`` is imported (not inside functions
    or ``if TYPE_CHECKING:``), relative ones resolved against the geoduck package."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: list[str] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                found.extend([module] if node.module else [f"{module}.{a.name}" for a in node.names])
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit([s for s in getattr(node, field, []) if isinstance(s, ast.stmt)])
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


def test_catalog_and_builders_do_not_import_each_other():
    catalog = _module_level_imports(PACKAGE / "catalog.py")
    assert "geoduck.report" in catalog  # BuildReport comes from its own module …
    assert not [m for m in catalog if m.startswith("geoduck.builders")]  # … not from the builders
    all_catalog = [
        n for n in ast.walk(ast.parse((PACKAGE / "catalog.py").read_text())) if isinstance(n, ast.ImportFrom)
    ]
    assert not [n.module for n in all_catalog if n.module and "builders" in n.module]
    for path in sorted((PACKAGE / "builders").glob("*.py")):
        assert "geoduck.catalog" not in _module_level_imports(path), path.name  # only lazily, inside functions
    assert not [m for m in _module_level_imports(PACKAGE / "backends.py") if m.startswith("geoduck.builders")]
