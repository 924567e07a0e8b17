"""Issue #12 "Hardening", points 9-16: bad input gives a clear error and wrong rows never.

Each test is one attack of the issue; counts are checked against a brute-force oracle (shapely over
the same footprints) or against what the files hold. Storage failures run the real CLI in a private
mount namespace (a tiny tmpfs that fills up, a read-only remount) where the machine allows it, and
unreadable/unwritable folders in a child process without the root capabilities that bypass
permissions.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from rasterio.transform import Affine
from shapely.geometry import GeometryCollection, LineString, MultiPoint, Point, box

import geoduck
from geoduck import schema, store
from geoduck.cli import main
from geoduck.errors import ArgumentError, FootprintError, SchemaError, StorageError
from geoduck.geo import check_grid, check_lonlat_extent
from geoduck.testing import write_raster, write_synthetic_catalog
from geoduck.validate import validate

REPO = Path(__file__).resolve().parents[1]


def _tile(path: Path, transform: Affine, *, crs: str = "EPSG:4326", shape: tuple[int, int] = (4, 4)) -> Path:
    return write_raster(path, np.ones((1, *shape), "uint8"), crs=crs, transform=transform, tiled=False)


@pytest.fixture(scope="module")
def grid_catalog(tmp_path_factory):
    """10 × 10 lon/lat tiles of 0.1° (tile i_j covers [0.1 i, 0.1 i + 0.1] × [0.1 j, 0.1 j + 0.1])."""
    root = tmp_path_factory.mktemp("grid")
    src = root / "src"
    src.mkdir()
    for i in range(10):
        for j in range(10):
            _tile(src / f"t{i}_{j}.tif", Affine(0.025, 0, i * 0.1, 0, -0.025, (j + 1) * 0.1))
    return geoduck.build_raster_catalog(src, root / "cat", progress=False, workers=1)


def _oracle(cat: geoduck.Catalog, aoi) -> set[str]:
    """Paths whose footprint intersects ``aoi`` (shapely, row by row)."""
    return {r["filepath"] for r in cat if r["geometry"].intersects(aoi)}


# -- 9. GeometryCollection AOIs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "aoi",
    [
        GeometryCollection([box(0.01, 0.01, 0.05, 0.05), box(0.91, 0.91, 0.95, 0.95)]),
        GeometryCollection([box(0.01, 0.01, 0.05, 0.05), Point(0.55, 0.55), LineString([(0.31, 0.01), (0.31, 0.05)])]),
        GeometryCollection([Point(0.15, 0.15), MultiPoint([(0.75, 0.25), (0.45, 0.85)])]),
    ],
    ids=["two boxes", "box point line", "points"],
)
def test_geometry_collection_aoi_is_the_union_of_its_parts(grid_catalog, aoi):
    got = set(grid_catalog.query(geometry=aoi).to_arrow()["filepath"].to_pylist())
    assert got == _oracle(grid_catalog, aoi)
    parts = aoi.geoms
    assert len(got) == sum(1 if not hasattr(p, "geoms") else len(p.geoms) for p in parts)  # no hull
    # the same rows as the parts queried one by one
    each = set().union(*(set(grid_catalog.query(geometry=p).to_arrow()["filepath"].to_pylist()) for p in parts))
    assert got == each


def test_geometry_collection_in_a_projected_crs(grid_catalog):
    def to_m(lon, lat):
        return geoduck.geo.transformer(geoduck.geo.WGS84, geoduck.geo.norm_crs("EPSG:3857")).transform(lon, lat)

    a, b = to_m(0.02, 0.02), to_m(0.92, 0.92)
    aoi = GeometryCollection([box(a[0], a[1], a[0] + 2000, a[1] + 2000), Point(*b)])
    got = grid_catalog.query(geometry=aoi, crs="EPSG:3857").to_arrow()["filepath"].to_pylist()
    assert sorted(os.path.basename(p) for p in got) == ["t0_0.tif", "t9_9.tif"]


# -- 10. impossible lon/lat and zero-resolution geotransforms -----------------------------------------


def test_impossible_lonlat_and_zero_resolution_are_reported_by_path(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    bad = {
        "lat120.tif": _tile(src / "lat120.tif", Affine(0.1, 0, 10, 0, -0.1, 120.5)),
        "lon500.tif": _tile(src / "lon500.tif", Affine(0.1, 0, 500, 0, -0.1, 10)),
        "wide.tif": _tile(src / "wide.tif", Affine(1, 0, -180, 0, -1, 10), shape=(4, 400)),
    }
    # GeoTIFF cannot store a zero pixel size; a VRT states it as given
    (src / "zero.vrt").write_text(
        '<VRTDataset rasterXSize="8" rasterYSize="8"><SRS>EPSG:32630</SRS>'
        "<GeoTransform>400000, 0, 0, 4400000, 0, -10</GeoTransform>"
        '<VRTRasterBand dataType="Byte" band="1"/></VRTDataset>'
    )
    bad["zero.vrt"] = src / "zero.vrt"
    good = {
        # centre-registered global grid: edges half a cell beyond ±90/±180 are fine (clipped)
        "global.tif": _tile(src / "global.tif", Affine(0.25, 0, -180.125, 0, -0.25, 90.125), shape=(721, 1441)),
        "lon0360.tif": _tile(src / "lon0360.tif", Affine(1, 0, 0, 0, -1, 10), shape=(8, 360)),
        "ok.tif": _tile(src / "ok.tif", Affine(0.1, 0, 10, 0, -0.1, 45)),
    }
    cat = geoduck.build_raster_catalog(src, tmp_path / "cat", progress=False, workers=1)
    errors = dict(cat.build_report.errors)
    assert set(errors) == {str(p) for p in bad.values()}
    assert "beyond ±90°" in errors[str(bad["lat120.tif"])]
    assert "start beyond ±360°" in errors[str(bad["lon500.tif"])]
    assert "more than the globe's 360°" in errors[str(bad["wide.tif"])]
    assert "zero resolution" in errors[str(bad["zero.vrt"])]
    rows = {os.path.basename(r["filepath"]): r["bbox"] for r in cat.to_arrow().to_pylist()}
    assert set(rows) == set(good)
    assert rows["global.tif"] == {"xmin": -180.0, "ymin": -90.0, "xmax": 180.0, "ymax": 90.0}
    assert rows["lon0360.tif"] == {"xmin": -180.0, "ymin": 2.0, "xmax": 180.0, "ymax": 10.0}
    assert rows["ok.tif"] == pytest.approx({"xmin": 10.0, "ymin": 44.6, "xmax": 10.4, "ymax": 45.0})


def test_footprint_checks_directly():
    with pytest.raises(FootprintError, match="zero resolution"):
        check_grid((0.0, 0.0, 1.0, 0.0, -1.0, 2.0), 4, 4)
    with pytest.raises(FootprintError, match="zero resolution"):  # rotated but degenerate
        check_grid((1.0, 1.0, 0.0, 1.0, 1.0, 0.0), 4, 4)
    with pytest.raises(FootprintError, match="NaN or infinite"):
        check_grid((float("nan"), 0.0, 0.0, 0.0, -1.0, 0.0), 4, 4)
    check_grid((10.0, 0.0, 4e5, 0.0, -10.0, 4.4e6), 4, 4)
    check_lonlat_extent((-180.5, -90.5, 180.5, 90.5), tolerance=1.0)
    check_lonlat_extent((350.0, 40.0, 370.0, 50.0))  # a 0…360 grid crossing 360 (= 0°E)
    for bounds in [(-10, 89, 10, 91), (-361, 0, -359, 1), (500, 0, 501, 1), (-180, 0, 180.5, 1)]:
        with pytest.raises(FootprintError):
            check_lonlat_extent(bounds, tolerance=0.1)
    assert issubclass(FootprintError, ValueError)


def test_xarray_grid_beyond_the_pole_is_reported(tmp_path):
    import xarray as xr

    src = tmp_path / "cubes"
    src.mkdir()
    lon = np.arange(5.0)
    for name, lat in [("ok.nc", [90.0, 89.0, 88.0]), ("bad.nc", [120.0, 119.0, 118.0])]:
        xr.Dataset(
            {"t": (("lat", "lon"), np.zeros((3, 5), "float32"))},
            coords={"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
        ).to_netcdf(src / name)
    cat = geoduck.build_xarray_catalog(src, tmp_path / "cat", progress=False, workers=1)
    errors = dict(cat.build_report.errors)
    assert list(errors) == [str(src / "bad.nc")] and "beyond ±90°" in errors[str(src / "bad.nc")]
    (row,) = cat.to_arrow().to_pylist()
    assert row["bbox"]["ymax"] == 90.0 and row["bbox"]["ymin"] == 87.5  # half a cell beyond 90: clipped


# -- 11. regex groups named like reserved or internal columns ---------------------------------------


@pytest.mark.parametrize(
    "regex",
    [
        r"t(?P<ID>\d)_",
        r"t(?P<Geometry>\d)_",
        r"t(?P<BBOX>\d)_",
        r"t(?P<Start_Datetime>\d)_",
        r"t(?P<tile>\d)_(?P<TILE>\d)",
    ],
)
def test_regex_groups_differing_only_by_case_are_refused(grid_catalog, tmp_path, regex):
    src = Path(grid_catalog.to_arrow()["filepath"][0].as_py()).parent
    with pytest.raises(ArgumentError, match="case-insensitive"):
        geoduck.build_raster_catalog(src, tmp_path / "cat", filename_regex=regex, progress=False, workers=1)
    assert not (tmp_path / "cat").exists()


INTERNAL_NAMES = (
    "_ord",
    "__ord",
    "Source",
    "_rel",
    "_union",
    "_u",
    "_id",
    "cls",
    "lid",
    "rid",
    "_n",
    "x0",
    "l",
    "r",
    "p",
    "_ix",
    "_d",
    "_p",
    "i",
)
"""Aliases and helper columns of the compiled SQL (and ``source``, which union adds)."""


def test_groups_named_like_internal_names_never_break_relations(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    fields = "_".join("{i}" for _ in INTERNAL_NAMES)
    for i in range(3):  # tiles 0-1 and 1-2 overlap; one day each
        _tile(src / f"t{fields.format(i=i)}_2023010{i + 1}.tif", Affine(0.2, 0, i * 0.5, 0, -0.2, 10))
    regex = "t" + "_".join(rf"(?P<{g}>\d)" for g in INTERNAL_NAMES) + r"_(?P<date>\d{8})"
    cat = geoduck.build_raster_catalog(src, tmp_path / "cat", filename_regex=regex, progress=False, workers=1)
    assert all(cat.columns.count(g) == 1 for g in INTERNAL_NAMES)
    union = cat.union(cat.named("again"))
    table = union.to_arrow()
    assert table.num_rows == 6
    for group in INTERNAL_NAMES:  # the user's columns are kept, values intact
        assert sorted(table.column(group).to_pylist()) == ["0", "0", "1", "1", "2", "2"], group
    assert len(cat.union(cat, dedupe=True)) == 3
    assert len(cat.intersect(cat)) == 3  # each tile with itself (neighbours differ in day)
    assert len(cat.with_interval_padding(before="1D").intersect(cat)) == 5  # + (1 after 0), (2 after 1)
    assert len(cat.difference(cat)) == 0
    for group in ("_ord", "_rel", "cls", "_p"):
        assert len(cat.where(f"\"{group}\" = '1'")) == 1
        assert len(union.where(f"\"{group}\" = '2'")) == 2
        assert cat.sql(f'SELECT count(DISTINCT "{group}") AS n FROM catalog')["n"][0] == 3
    assert cat.union(cat).union(cat, dedupe=True).to_arrow().num_rows == 3


# -- 12. parts lacking a column or of the wrong type --------------------------------------------------


def _with_column(table: pa.Table, name: str, values: pa.Array | None) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.remove_column(i) if values is None else table.set_column(i, name, values)


def _damage(root: Path, edit) -> Path:
    """Rewrite the catalog's first part with ``edit(table)`` (metadata kept); returns the part."""
    part = store.list_parts(root)[0]
    pf = pq.ParquetFile(part)
    table = edit(pf.read())
    meta = dict(pf.schema_arrow.metadata or {})
    meta.update(table.schema.metadata or {})
    pq.write_table(table.replace_schema_metadata(meta), part)
    return part


def _as_strings(table: pa.Table, name: str) -> pa.Array:
    return pa.array([None if v is None else str(v) for v in table.column(name).to_pylist()], pa.string())


DAMAGES = {
    "no start_datetime": (lambda t: _with_column(t, schema.START, None), "'start_datetime'"),
    "no end_datetime": (lambda t: _with_column(t, schema.END, None), "'end_datetime'"),
    "no bbox": (lambda t: _with_column(t, schema.BBOX, None), "'bbox'"),
    "string timestamps": (lambda t: _with_column(t, schema.START, _as_strings(t, schema.START)), "'start_datetime'"),
    "naive timestamps": (
        lambda t: _with_column(t, schema.END, t.column(schema.END).cast(pa.timestamp("us"))),
        "'end_datetime'",
    ),
    "integer ids": (lambda t: _with_column(t, schema.ID, pa.array(range(t.num_rows), pa.int64())), "'id'"),
    "string schema_version column": (
        lambda t: _with_column(t, schema.VERSION, _as_strings(t, schema.VERSION)),
        "'schema_version'",
    ),
    "bbox as a list": (lambda t: _with_column(t, schema.BBOX, pa.array([[0.0, 0.0, 1.0, 1.0]] * t.num_rows)), "'bbox'"),
    "non-integer schema version": (
        lambda t: t.replace_schema_metadata({**t.schema.metadata, schema.KV_SCHEMA_VERSION: b"1.5"}),
        "'1.5'",
    ),
    "text schema version": (
        lambda t: t.replace_schema_metadata({**t.schema.metadata, schema.KV_SCHEMA_VERSION: b"one"}),
        "'one'",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_parts_are_refused_at_open_and_reported_by_validate(tmp_path, damage):
    edit, column = DAMAGES[damage]
    root = write_synthetic_catalog(tmp_path / "cat", 4, 3, part_rows=6)
    part = _damage(root, edit)
    with pytest.raises(SchemaError) as info:
        geoduck.open_catalog(root)
    assert str(part) in str(info.value) and column in str(info.value)
    problems = validate(root)  # reports instead of crashing
    assert any(p.part == str(part) and column.strip("'") in p.message for p in problems), problems
    assert all(p.part == str(part) for p in problems)
    result = CliRunner().invoke(main, ["validate", str(root)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert str(part) in result.output


def test_undamaged_catalog_still_opens(tmp_path):
    root = write_synthetic_catalog(tmp_path / "cat", 4, 3, part_rows=6)
    assert len(geoduck.open_catalog(root)) == 12 and validate(root) == []
    assert schema.column_problems(pq.read_schema(store.list_parts(root)[0])) == []


# -- 13. unreadable subdirectories ----------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2


def _drop_permission_bypass() -> None:
    """In the child: drop the capabilities with which root ignores file permissions (the next
    exec then runs without them), so chmod'ed folders stop it as they stop any user."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _unprivileged(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, env=_env(), timeout=180, preexec_fn=_drop_permission_bypass, **kwargs
    )


@pytest.mark.parametrize("as_glob", [False, True], ids=["folder", "recursive-glob"])
def test_unreadable_subdirectory_is_reported(tmp_path, as_glob):
    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    _tile(src / "a.tif", Affine(0.1, 0, 0, 0, -0.1, 1))
    _tile(src / "locked" / "b.tif", Affine(0.1, 0, 1, 0, -0.1, 1))
    (src / "locked").chmod(0)
    tmp_path.chmod(0o755)
    inputs = str(src / "**" / "*.tif") if as_glob else str(src)
    try:
        code = textwrap.dedent(f"""
            import geoduck
            cat = geoduck.build_raster_catalog({inputs!r}, {str(tmp_path / "cat")!r}, progress=False, workers=1)
            print(len(cat))
            for path, reason in cat.build_report.errors:
                print(path, '|', reason)
        """)
        out = _unprivileged([sys.executable, "-c", code])
    finally:
        (src / "locked").chmod(0o755)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1:] == [f"{src / 'locked'} | cannot list directory: Permission denied"]


def test_unreadable_subdirectory_in_process(tmp_path, monkeypatch):
    """The same, without a child process: the listing of one folder fails."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    _tile(src / "a.tif", Affine(0.1, 0, 0, 0, -0.1, 1))
    _tile(src / "sub" / "b.tif", Affine(0.1, 0, 1, 0, -0.1, 1))
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(src / "sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    cat = geoduck.build_raster_catalog(src, tmp_path / "cat", progress=False, workers=1)
    assert cat.to_arrow()["filepath"].to_pylist() == [str(src / "a.tif")]
    assert cat.build_report.errors == ((str(src / "sub"), "cannot list directory: Permission denied"),)


# -- 14. catalog folders with special characters --------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["back\\slash", "st*ar", "q?mark", "br[ack]et", "quo'te", 'dq"uote', "all \\*?['\" of them\\"]
)
def test_catalog_folder_with_special_characters(tmp_path, name):
    src = tmp_path / "src"
    src.mkdir()
    _tile(src / "a_20230101.tif", Affine(0.1, 0, 0, 0, -0.1, 1))
    _tile(src / "b_20230102.tif", Affine(0.1, 0, 5, 0, -0.1, 1))
    out = tmp_path / name
    twin = tmp_path / name.replace("\\", "x").replace("*", "x").replace("?", "x").replace("[", "x")
    regex = r"_(?P<date>\d{8})"
    if twin != out:  # a sibling the escaped glob must not read too
        geoduck.build_raster_catalog(src, twin, filename_regex=regex, progress=False, workers=1)
    geoduck.build_raster_catalog(src, out, filename_regex=regex, progress=False, workers=1)
    cat = geoduck.open_catalog(out)
    assert len(cat) == 2
    assert [os.path.basename(p) for p in cat.query(bbox=(-1, 0, 1, 1)).to_arrow()["filepath"].to_pylist()] == [
        "a_20230101.tif"
    ]
    assert len(cat.query(start="2023-01-02", end="2023-01-02")) == 1
    assert cat.sql("SELECT count(*) AS n FROM catalog")["n"][0] == 2
    assert len(cat.intersect(cat)) == 2 and len(cat.union(cat, dedupe=True)) == 2
    geoduck.build_raster_catalog(src, out, filename_regex=regex, progress=False, workers=1)  # all unchanged
    _tile(src / "c_20230103.tif", Affine(0.1, 0, 9, 0, -0.1, 1))
    geoduck.build_raster_catalog(src, out, filename_regex=regex, progress=False, workers=1)
    geoduck.compact(out)
    cat = geoduck.open_catalog(out)
    assert len(store.list_parts(out)) == 1 and len(cat) == 3 and validate(out) == []


# -- 15. output folder inside the input folder -------------------------------------------------------


def test_build_never_indexes_its_own_parts(tmp_path):
    import geopandas as gpd

    src = tmp_path / "labels"
    src.mkdir()
    for i in range(3):
        gpd.GeoDataFrame({"c": [i]}, geometry=[box(i, 0, i + 1, 1)], crs="EPSG:4326").to_parquet(src / f"l{i}.parquet")
    out = src / "catalog"
    first = geoduck.build_vector_catalog(src, out, progress=False, workers=1)
    assert first.build_report.files_indexed == 3
    again = geoduck.build_vector_catalog(src, out, progress=False, workers=1)  # its parts are in src now
    assert (again.build_report.files_indexed, again.build_report.unchanged, again.build_report.errors) == (0, 3, ())
    # also when the parts are named explicitly, through a glob, or through a symlink to the input
    parts = [str(p) for p in store.list_parts(out)]
    (tmp_path / "link").symlink_to(src)
    for paths in (parts, str(src / "**" / "*.parquet"), str(tmp_path / "link")):
        cat = geoduck.build_vector_catalog(paths, out, progress=False, workers=1) if paths != parts else None
        if cat is None:
            with pytest.raises(geoduck.errors.BuildError, match="no input files"):
                geoduck.build_vector_catalog(paths, out, progress=False, workers=1)
            continue
        assert cat.build_report.files_indexed == 0 or paths == str(tmp_path / "link")
    rows = geoduck.open_catalog(out).to_arrow()["filepath"].to_pylist()
    assert not any(p.startswith(str(out)) or "/catalog/" in p for p in rows)
    assert sorted(os.path.basename(p) for p in rows if p.startswith(str(src))) == [
        "l0.parquet",
        "l1.parquet",
        "l2.parquet",
    ]


# -- 16. disk full, read-only, unwritable --------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())} if root.is_dir() else {}


# Each child runs the CLI commands of a scenario in one interpreter (click's CliRunner: the same
# output as the console script, without paying the imports per command) and prints JSON.
_SCENARIO = textwrap.dedent("""
    import hashlib, json, os, subprocess, sys, traceback
    from click.testing import CliRunner
    from geoduck.cli import main

    def state(folder):
        if not os.path.isdir(folder):
            return None
        return {n: hashlib.md5(open(os.path.join(folder, n), 'rb').read()).hexdigest()
                for n in sorted(os.listdir(folder))}

    out = {}
    for step in json.loads(sys.argv[1]):
        if step[0] == 'sh':
            subprocess.run(step[1], shell=True, check=True)
        elif step[0] == 'state':
            out[step[1]] = state(step[2])
        else:
            r = CliRunner().invoke(main, step[1:])
            failed = r.exception and not isinstance(r.exception, SystemExit)
            tb = ''.join(traceback.format_exception(r.exception)) if failed else ''
            out[step[0]] = [r.exit_code, r.output, tb]
    print(json.dumps(out))
""")


def _scenario(steps: list, *, prefix: list[str] = (), **kwargs) -> dict:
    result = subprocess.run(
        [*prefix, sys.executable, "-c", _SCENARIO, json.dumps(steps)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        **kwargs,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _one_error_line(run: list, *fragments: str) -> None:
    code, output, tb = run
    lines = output.strip().splitlines()
    assert code == 1 and not tb, run
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_unwritable_output_folder_is_one_error_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _tile(src / "a.tif", Affine(0.1, 0, 0, 0, -0.1, 1))
    out = tmp_path / "cat"
    geoduck.build_raster_catalog(src, out, progress=False, workers=1)
    _tile(src / "b.tif", Affine(0.1, 0, 1, 0, -0.1, 1))
    tmp_path.chmod(0o755)
    out.chmod(0o555)
    build = ["build", "build", "raster", str(src), "-o"]
    try:
        runs = _scenario(
            [
                ["state", "before", str(out)],
                [*build, str(out), "--no-progress", "--workers", "1"],
                ["fresh", *build[1:], str(out / "new"), "--no-progress"],
                ["query", "query", str(out), "--format", "parquet", "-o", str(out / "q")],
                ["state", "after", str(out)],
            ],
            preexec_fn=_drop_permission_bypass,
        )
    finally:
        out.chmod(0o755)
    _one_error_line(runs["build"], f"cannot write catalog folder {out}", "Permission denied")
    _one_error_line(runs["fresh"], f"cannot write catalog folder {out / 'new'}", "Permission denied")
    _one_error_line(runs["query"], str(out / "q"), "Permission denied")
    assert runs["after"] == runs["before"] and len(runs["before"]) == 3  # the part, the append lock, the part index


def _namespace_ok() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _namespace_ok(), reason="needs root and mount namespaces (unshare -m)")
_NAMESPACE = ["unshare", "-m", "--propagation", "private"]


@needs_mount
def test_disk_full_leaves_the_catalog_as_it_was(tmp_path):
    src, more, disk = tmp_path / "src", tmp_path / "more", tmp_path / "disk"
    for folder in (src, more, disk):
        folder.mkdir()
    _tile(src / "first.tif", Affine(0.1, 0, 0, 0, -0.1, 1))
    for i in range(5):
        _tile(more / f"m{i}.tif", Affine(0.01, 0, i, 0, -0.01, 1))
    cat = disk / "cat"
    build = ["build", "raster", "-o", str(cat), "--no-progress", "--workers", "1"]
    runs = _scenario(
        [
            ["sh", f"mount -t tmpfs -o size=256k tmpfs {disk}"],
            ["first", *build, str(src)],
            ["state", "before", str(cat)],
            ["sh", f"dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null || true"],  # until full
            ["append", *build, str(more)],
            ["state", "after", str(cat)],
            ["compact", "compact", str(cat)],
            ["sh", f"rm {disk}/filler"],
            ["rows", "query", str(cat), "--format", "csv"],
        ],
        prefix=_NAMESPACE,
    )
    assert runs["first"][0] == 0, runs["first"]
    _one_error_line(
        runs["append"],
        f"cannot write catalog folder {cat}",
        "No space left on device",
        "nothing of this build was kept",
    )
    assert runs["after"] == runs["before"]  # same parts, same bytes, no temp file left
    assert runs["compact"][0] == 0 and not runs["compact"][2]  # one part: nothing to rewrite
    assert runs["rows"][0] == 0 and len(runs["rows"][1].strip().splitlines()) == 2  # header + the one row


@needs_mount
def test_read_only_mount_is_one_error_line(tmp_path):
    src, disk = tmp_path / "src", tmp_path / "disk"
    for folder in (src, disk):
        folder.mkdir()
    _tile(src / "a.tif", Affine(0.1, 0, 0, 0, -0.1, 1))
    _tile(src / "b.tif", Affine(0.1, 0, 1, 0, -0.1, 1))
    cat = disk / "cat"
    build = ["build", "raster", "-o", str(cat), "--no-progress", "--workers", "1"]
    runs = _scenario(
        [
            ["sh", f"mount -t tmpfs -o size=1m tmpfs {disk}"],
            ["first", *build, str(src / "a.tif")],
            ["state", "before", str(cat)],
            ["sh", f"mount -o remount,ro {disk}"],
            ["append", *build, str(src)],
            ["query", "query", str(cat), "--format", "parquet", "-o", str(disk / "q")],
            ["compact", "compact", str(cat)],
            ["state", "after", str(cat)],
            ["rows", "query", str(cat), "--format", "csv"],
        ],
        prefix=_NAMESPACE,
    )
    assert runs["first"][0] == 0, runs["first"]
    _one_error_line(runs["append"], f"cannot write catalog folder {cat}", "Read-only file system")
    _one_error_line(runs["query"], str(disk / "q"), "Read-only file system")
    assert not runs["compact"][2]
    assert runs["after"] == runs["before"]
    assert runs["rows"][0] == 0 and len(runs["rows"][1].strip().splitlines()) == 2


def test_storage_error_names_folder_and_cause(tmp_path, monkeypatch):
    """ENOSPC / EROFS raised by the Parquet writer mid-build: a StorageError, and the parts this
    build wrote before are removed (the catalog as it was)."""
    import errno

    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        _tile(src / f"t{i}.tif", Affine(0.1, 0, i, 0, -0.1, 1))
    out = tmp_path / "cat"
    geoduck.build_raster_catalog([str(src / "t0.tif")], out, progress=False, workers=1)
    before = _snapshot(out)
    real = store.write_parquet
    calls = {"n": 0}

    for code, text in ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")):
        calls["n"] = 0

        def failing(table, fh, code=code, **kwargs):
            calls["n"] += 1
            if calls["n"] > 1:  # the first part of the build is written, the second fails
                raise OSError(code, os.strerror(code))
            return real(table, fh, **kwargs)

        monkeypatch.setattr(store, "write_parquet", failing)
        monkeypatch.setattr(geoduck.builders.common, "PART_ROWS", 2)
        with pytest.raises(StorageError) as info:
            geoduck.builders.common.run_build(
                str(src),
                out,
                backend=dataclasses.replace(geoduck.builders.raster.BACKEND, extensions=(".tif",)),
                options=None,
                parser=geoduck.builders.common.FilenameParser(),
                workers=1,
                progress=False,
                part_rows=2,
            )
        assert calls["n"] == 2
        assert str(out) in str(info.value) and text in str(info.value)
        assert isinstance(info.value, OSError)
        assert _snapshot(out) == before
