"""build_raster_catalog on real GeoTIFFs: rows and columns (DESIGN §2), file-name parsing, input
forms, incremental rebuilds, bad files, argument errors, parallel and streaming builds."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyproj
import pytest
import rasterio
import shapely
from rasterio.transform import Affine
from shapely.geometry import Point

import geoduck
from geoduck import store
from geoduck.builders import common
from geoduck.builders.raster import BACKEND, RASTER_EXTENSIONS, read_raster_header
from geoduck.errors import ArgumentError, BuildError
from geoduck.geo import footprint_wgs84, norm_crs
from geoduck.testing import coordinate_raster, write_raster

REGEX = r"S2_(?P<tile>[0-9]{2}[A-Z]{3})_(?P<date>\d{8})\.tif$"

# name, crs, origin (top-left), resolution, (height, width)
SPECS = [
    ("utm30/S2_30TVK_20230615.tif", "EPSG:32630", (400_000.0, 4_500_000.0), 500.0, (16, 24)),
    ("utm30/S2_30TVK_20230620.tif", "EPSG:32630", (400_000.0, 4_500_000.0), 500.0, (16, 24)),
    ("utm31/S2_31TBE_20230615.tif", "EPSG:32631", (300_000.0, 4_430_000.0), 250.0, (32, 32)),
    ("utm31/deeper/S2_31TCE_20230616.tif", "EPSG:32631", (420_000.0, 4_430_000.0), 250.0, (20, 40)),
    ("geo/S2_00GEO_20230617.tif", "EPSG:4326", (10.0, 45.0), 0.01, (16, 16)),
    ("merc/S2_00MER_20230618.tif", "EPSG:3857", (1_000_000.0, 5_000_000.0), 1000.0, (24, 16)),
]


def build(paths, out, **kwargs) -> geoduck.Catalog:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("workers", 1)
    return geoduck.build_raster_catalog(paths, out, **kwargs)


def rows_by_path(catalog: geoduck.Catalog) -> dict[str, dict]:
    return {r["filepath"]: r for r in catalog.to_arrow().to_pylist()}


@pytest.fixture
def rasters(tmp_path) -> list[Path]:
    """Six float64 coordinate rasters in UTM 30/31, EPSG:4326 and 3857, plus one 3-band uint8
    raster with nodata, under nested folders of ``tmp_path/in``; a README.txt is not a raster."""
    root = tmp_path / "in"
    files = [coordinate_raster(root / name, crs=crs, origin=o, res=r, shape=shape) for name, crs, o, r, shape in SPECS]
    values = np.arange(3 * 16 * 16, dtype="uint8").reshape(3, 16, 16)
    files.append(
        write_raster(
            root / "utm30" / "S2_30TWK_20230701.tif",
            values,
            crs="EPSG:32630",
            transform=Affine(60.0, 0.0, 500_000.0, 0.0, -60.0, 4_500_000.0),
            nodata=0,
        )
    )
    (root / "README.txt").write_text("not a raster")
    return files


# -- rows and columns ----------------------------------------------------------------------------


def test_rows_match_rasterio_headers(rasters, tmp_path):
    cat = build(tmp_path / "in", tmp_path / "cat", filename_regex=REGEX)
    rows = rows_by_path(cat)
    assert len(cat) == len(rasters) == 7
    assert set(rows) == {str(p) for p in rasters}
    assert len({r["id"] for r in rows.values()}) == 7
    assert all(re.fullmatch(r"[0-9a-f]{16}", r["id"]) for r in rows.values())
    for path in rasters:
        r = rows[str(path)]
        st = os.stat(path)
        with rasterio.open(path) as src:
            assert (r["width"], r["height"], r["count"]) == (src.width, src.height, src.count)
            assert r["dtype"] == src.dtypes[0]
            assert r["nodata"] == src.nodata
            assert (r["res_x"], r["res_y"]) == src.res
            assert r["transform"] == list(src.transform)[:6]
            assert r["crs"] == f"EPSG:{src.crs.to_epsg()}"
            assert tuple(r["native_bounds"].values()) == tuple(src.bounds)
        assert r["backend"] == "raster" and r["schema_version"] == 1
        assert r["file_size"] == st.st_size > 0
        assert r["file_mtime"] == pd.Timestamp(st.st_mtime_ns // 1000, unit="us", tz="UTC")

    utm = rows[str(rasters[0])]
    assert (utm["width"], utm["height"], utm["count"], utm["dtype"]) == (24, 16, 2, "float64")
    assert utm["nodata"] is None and utm["crs"] == "EPSG:32630"
    assert utm["transform"] == [500.0, 0.0, 400_000.0, 0.0, -500.0, 4_500_000.0]
    assert utm["native_bounds"] == {"xmin": 400_000.0, "ymin": 4_492_000.0, "xmax": 412_000.0, "ymax": 4_500_000.0}
    geo = rows[str(rasters[4])]
    assert geo["crs"] == "EPSG:4326" and geo["res_x"] == pytest.approx(0.01)
    assert geo["native_bounds"] == pytest.approx({"xmin": 10.0, "ymin": 44.84, "xmax": 10.16, "ymax": 45.0})
    assert rows[str(rasters[5])]["crs"] == "EPSG:3857"
    u8 = rows[str(rasters[6])]
    assert (u8["count"], u8["dtype"], u8["nodata"], u8["res_x"]) == (3, "uint8", 0.0, 60.0)


def test_footprints_are_lonlat_and_contain_the_raster_centre(rasters, tmp_path):
    cat = build(rasters, tmp_path / "cat")
    for path, r in rows_by_path(cat).items():
        geom = shapely.from_wkb(r["geometry"])
        nb = r["native_bounds"]
        expected = footprint_wgs84(tuple(nb.values()), norm_crs(r["crs"]))
        assert geom.equals_exact(expected, 1e-12)
        assert tuple(r["bbox"].values()) == geom.bounds
        cx, cy = (nb["xmin"] + nb["xmax"]) / 2, (nb["ymin"] + nb["ymax"]) / 2
        lon, lat = pyproj.Transformer.from_crs(r["crs"], "EPSG:4326", always_xy=True).transform(cx, cy)
        assert geom.contains(Point(lon, lat)), path
        assert -180 <= geom.bounds[0] and geom.bounds[2] <= 180 and 35 < lat < 46


def test_regex_groups_and_dates(rasters, tmp_path):
    cat = build(rasters, tmp_path / "cat", filename_regex=REGEX)
    table = cat.to_arrow()
    assert table.schema.field("tile").type == "string"
    assert "date" not in table.column_names
    rows = rows_by_path(cat)
    assert rows[str(rasters[0])]["tile"] == "30TVK" and rows[str(rasters[3])]["tile"] == "31TCE"
    r = rows[str(rasters[1])]
    assert r["start_datetime"] == pd.Timestamp("2023-06-20T00:00:00", tz="UTC")
    assert r["end_datetime"] == pd.Timestamp("2023-06-20T23:59:59.999999", tz="UTC")
    assert sorted({r["tile"] for r in rows.values()}) == ["00GEO", "00MER", "30TVK", "30TWK", "31TBE", "31TCE"]
    assert cat.temporal_extent == (
        pd.Timestamp("2023-06-15", tz="UTC"),
        pd.Timestamp("2023-07-01T23:59:59.999999", tz="UTC"),
    )


def test_start_stop_groups_give_intervals(tmp_path):
    names = ["L8_20230601_20230630_a.tif", "L8_20230701_20230731_b.tif", "L8_20230801T101500_20230801T103000_c.tif"]
    files = [
        coordinate_raster(
            tmp_path / "in" / n,
            crs="EPSG:32630",
            origin=(400_000.0 + 20_000 * i, 4_500_000.0),
            res=500.0,
            shape=(16, 16),
        )
        for i, n in enumerate(names)
    ]
    cat = build(
        files, tmp_path / "cat", filename_regex=r"L8_(?P<start>[0-9T]+)_(?P<stop>[0-9T]+)_(?P<sensor>[a-z])\.tif"
    )
    got = {r["sensor"]: (r["start_datetime"], r["end_datetime"]) for r in rows_by_path(cat).values()}
    utc = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    assert got == {
        "a": (utc("2023-06-01"), utc("2023-06-30T23:59:59.999999")),
        "b": (utc("2023-07-01"), utc("2023-07-31T23:59:59.999999")),
        "c": (utc("2023-08-01T10:15:00"), utc("2023-08-01T10:30:00.999999")),  # stop covers its second
    }
    assert "start" not in cat.to_arrow().column_names and "stop" not in cat.to_arrow().column_names


def test_date_format(tmp_path):
    f = coordinate_raster(
        tmp_path / "in" / "scene_15-06-2023.tif",
        crs="EPSG:32630",
        origin=(400_000.0, 4_500_000.0),
        res=500.0,
        shape=(16, 16),
    )
    cat = build([f], tmp_path / "cat", filename_regex=r"scene_(?P<date>[\d-]+)\.tif", date_format="%d-%m-%Y")
    (r,) = cat.to_arrow().to_pylist()
    assert r["start_datetime"] == pd.Timestamp("2023-06-15", tz="UTC")
    assert r["end_datetime"] == pd.Timestamp("2023-06-15T23:59:59.999999", tz="UTC")


def test_no_regex_gives_static_rows(rasters, tmp_path):
    cat = build(rasters, tmp_path / "cat")
    table = cat.to_arrow()
    assert table.num_rows == 7
    assert table.column("start_datetime").null_count == 7 and table.column("end_datetime").null_count == 7
    assert "tile" not in table.column_names
    assert cat.temporal_extent == (None, None)


# -- input forms -----------------------------------------------------------------------------------


def test_paths_as_list_glob_and_directory(rasters, tmp_path):
    expected = sorted(str(p) for p in rasters)
    from_list = build([str(p) for p in rasters], tmp_path / "a")
    from_glob = build(str(tmp_path / "in" / "**" / "*.tif"), tmp_path / "b")
    from_dir = build(tmp_path / "in", tmp_path / "c")
    for cat in (from_list, from_glob, from_dir):
        assert sorted(rows_by_path(cat)) == expected  # the nested 'deeper' file too; no README.txt
        assert cat.build_report.errors == ()
    ids = [sorted(c.to_arrow().column("id").to_pylist()) for c in (from_list, from_glob, from_dir)]
    assert ids[0] == ids[1] == ids[2]
    # A non-recursive glob only sees its own folder.
    only_utm30 = build(str(tmp_path / "in" / "utm30" / "*.tif"), tmp_path / "d")
    assert len(only_utm30) == 3


def test_duplicate_inputs_are_indexed_once(rasters, tmp_path):
    a = rasters[0]
    same_a = tmp_path / "in" / "utm31" / ".." / "utm30" / a.name
    cat = build([a, str(a), same_a, rasters[1], tmp_path / "in" / "utm30"], tmp_path / "cat")
    assert cat.build_report.indexed == 3 and cat.build_report.files_indexed == 3
    assert sorted(rows_by_path(cat)) == sorted(str(p) for p in [rasters[0], rasters[1], rasters[6]])


def test_extensions_are_the_raster_ones():
    assert {".tif", ".tiff", ".jp2", ".vrt"} <= set(RASTER_EXTENSIONS)


# -- incremental builds ----------------------------------------------------------------------------


def test_rebuild_adds_nothing(rasters, tmp_path):
    out = tmp_path / "cat"
    first = build(tmp_path / "in", out, filename_regex=REGEX)
    assert first.build_report.indexed == 7 and len(first.build_report.parts) == 1
    parts = store.list_parts(out)
    again = build(tmp_path / "in", out, filename_regex=REGEX)
    report = again.build_report
    assert (report.indexed, report.files_indexed, report.unchanged) == (0, 0, 7)
    assert report.changed == () and report.errors == () and report.parts == ()
    assert store.list_parts(out) == parts
    assert len(again) == 7

    # A new file is the only thing indexed, into one new part.
    new = coordinate_raster(
        tmp_path / "in" / "utm30" / "S2_30TVK_20230625.tif",
        crs="EPSG:32630",
        origin=(400_000.0, 4_500_000.0),
        res=500.0,
        shape=(16, 24),
    )
    third = build(tmp_path / "in", out, filename_regex=REGEX)
    assert (third.build_report.indexed, third.build_report.unchanged) == (1, 7)
    assert len(store.list_parts(out)) == 2
    assert pq.read_table(third.build_report.parts[0]).column("filepath").to_pylist() == [str(new)]
    assert len(third) == 8


def test_touched_file_is_reported_changed_not_reindexed(rasters, tmp_path):
    out = tmp_path / "cat"
    build(rasters, out)
    touched = rasters[2]
    st = os.stat(touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    cat = build(rasters, out)
    report = cat.build_report
    assert report.changed == (str(touched),)
    assert (report.indexed, report.unchanged, report.parts) == (0, 6, ())
    assert len(cat) == 7
    row = rows_by_path(cat)[str(touched)]
    assert row["file_mtime"] == pd.Timestamp(st.st_mtime_ns // 1000, unit="us", tz="UTC")


# -- bad files ---------------------------------------------------------------------------------------


def test_unreadable_files_are_skipped_and_reported(rasters, tmp_path):
    bad = tmp_path / "in" / "bad"
    bad.mkdir()
    (bad / "random.tif").write_bytes(np.random.default_rng(0).bytes(4096))
    (bad / "empty.tif").write_bytes(b"")
    (bad / "text.tif").write_text("this is a text file, not a GeoTIFF\n" * 20)
    write_raster(
        bad / "nocrs.tif", np.ones((16, 16), "uint8"), crs=None, transform=Affine(10.0, 0.0, 0.0, 0.0, -10.0, 160.0)
    )
    cat = build(tmp_path / "in", tmp_path / "cat")
    report = cat.build_report
    assert report.indexed == 7 and len(cat) == 7
    assert sorted(rows_by_path(cat)) == sorted(str(p) for p in rasters)
    reasons = dict(report.errors)
    assert set(reasons) == {str(bad / n) for n in ("random.tif", "empty.tif", "text.tif", "nocrs.tif")}
    for name in ("random.tif", "empty.tif", "text.tif"):
        assert reasons[str(bad / name)].startswith("not a readable raster")
    assert "no CRS" in reasons[str(bad / "nocrs.tif")]


def test_only_bad_files_is_a_build_error(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(BuildError, match=r"x\.tif.*not a readable raster"):
        build([tmp_path / "x.tif"], tmp_path / "cat")


def test_files_not_matching_the_regex_are_counted_as_skipped(rasters, tmp_path):
    for i in range(5):
        coordinate_raster(
            tmp_path / "in" / f"landsat_2023061{i}.tif",
            crs="EPSG:32630",
            origin=(400_000.0, 4_500_000.0),
            res=500.0,
            shape=(16, 16),
        )
    cat = build(tmp_path / "in", tmp_path / "cat", filename_regex=REGEX)
    report = cat.build_report
    assert len(cat) == 7 and report.files_indexed == 7
    assert report.errors == ()  # not errors
    assert report.skipped == 5
    assert report.skipped_examples == ("landsat_20230610.tif", "landsat_20230611.tif", "landsat_20230612.tif")
    assert "5 files skipped" in report.summary() and "landsat_20230610.tif" in report.summary()


def test_error_line_names_file_and_reason_without_the_regex(rasters, tmp_path):
    bad = coordinate_raster(
        tmp_path / "in" / "S2_30TVK_20231345.tif",
        crs="EPSG:32630",
        origin=(400_000.0, 4_500_000.0),
        res=500.0,
        shape=(16, 16),
    )
    cat = build(tmp_path / "in", tmp_path / "cat", filename_regex=REGEX)
    ((path, reason),) = cat.build_report.errors
    assert path == str(bad) and "'20231345'" in reason and REGEX not in reason


def test_no_input_files_is_a_build_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match="no input files"):
        build(tmp_path / "empty", tmp_path / "cat")


# -- argument errors -----------------------------------------------------------------------------


def test_regex_matching_no_file_names_regex_and_example(rasters, tmp_path):
    regex = r"LC08_(?P<date>\d{8})"
    with pytest.raises(ArgumentError) as info:
        build(tmp_path / "in" / "geo", tmp_path / "cat", filename_regex=regex)
    msg = str(info.value)
    assert repr(regex) in msg and "S2_00GEO_20230617.tif" in msg
    assert not (tmp_path / "cat").exists()


def test_regex_with_start_but_no_stop(rasters, tmp_path):
    with pytest.raises(ArgumentError, match=r"\(\?P<stop>\.\.\.\)"):
        build(rasters, tmp_path / "cat", filename_regex=r"S2_\w+_(?P<start>\d{8})")
    assert not (tmp_path / "cat").exists()


@pytest.mark.parametrize("group", ["width", "crs", "geometry", "file_size", "id"])
def test_regex_group_named_like_a_reserved_column(rasters, tmp_path, group):
    with pytest.raises(ArgumentError, match=rf"'{group}'.*named like catalog columns"):
        build(rasters, tmp_path / "cat", filename_regex=rf"S2_(?P<{group}>\w+)_(?P<date>\d{{8}})")


def test_date_format_without_regex(rasters, tmp_path):
    with pytest.raises(ArgumentError, match="date_format"):
        build(rasters, tmp_path / "cat", date_format="%Y%m%d")


# -- parallel and streaming builds -----------------------------------------------------------------


@pytest.fixture(scope="module")
def many_rasters(tmp_path_factory) -> list[Path]:
    """48 small rasters (more than CHUNK_FILES=32) in UTM 30, UTM 31 and EPSG:4326."""
    root = tmp_path_factory.mktemp("many")
    files = []
    for i in range(48):
        crs = ("EPSG:32630", "EPSG:32631", "EPSG:4326")[i % 3]
        origin = (-3.0 + 0.2 * i, 42.0) if crs == "EPSG:4326" else (300_000.0 + 10_000 * i, 4_600_000.0)
        res = 0.01 if crs == "EPSG:4326" else 500.0
        files.append(
            coordinate_raster(
                root / f"S2_{i:02d}ABC_202301{i % 28 + 1:02d}.tif", crs=crs, origin=origin, res=res, shape=(16, 16)
            )
        )
    return files


def snapshot(catalog: geoduck.Catalog) -> list[tuple]:
    t = catalog.to_arrow().sort_by("id")
    cols = ("id", "filepath", "geometry", "bbox", "start_datetime", "end_datetime", "crs", "native_bounds", "tile")
    return list(zip(*(t.column(c).to_pylist() for c in cols), strict=True))


def test_workers_2_gives_the_same_rows_as_workers_1(many_rasters, tmp_path, monkeypatch):
    assert len(many_rasters) > common.CHUNK_FILES
    pools = []

    class SpyPool(common.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(common, "ProcessPoolExecutor", SpyPool)
    serial = build(many_rasters, tmp_path / "serial", filename_regex=r"S2_(?P<tile>\w{5})_(?P<date>\d{8})", workers=1)
    assert pools == []
    parallel = build(
        many_rasters, tmp_path / "parallel", filename_regex=r"S2_(?P<tile>\w{5})_(?P<date>\d{8})", workers=2
    )
    assert pools == [2]  # the process-pool path was taken
    assert parallel.build_report.indexed == serial.build_report.indexed == 48
    assert parallel.build_report.errors == ()
    assert snapshot(parallel) == snapshot(serial)
    assert len(snapshot(serial)) == 48


def test_build_streams_into_several_parts(many_rasters, tmp_path):
    out = tmp_path / "cat"
    report = common.run_build(
        many_rasters,
        out,
        backend=dataclasses.replace(BACKEND, read_header=read_raster_header, read_env=None),
        options=None,
        parser=common.FilenameParser(),
        workers=1,
        progress=False,
        part_rows=10,
    )
    parts = store.list_parts(out)
    assert sorted(report.parts) == sorted(str(p) for p in parts)
    assert sorted(pq.read_metadata(p).num_rows for p in parts) == [8, 10, 10, 10, 10]
    ids = [i for p in parts for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == 48 == report.indexed
    cat = geoduck.open_catalog(out)
    assert len(cat) == 48
    assert sorted(cat.to_arrow().column("filepath").to_pylist()) == sorted(str(p) for p in many_rasters)


# -- appending to a catalog keeps one part schema ------------------------------------------------


def plain_duckdb_rows(out: Path) -> list[tuple]:
    """``SELECT *`` over the parts with DuckDB's plain glob read (no union_by_name), as CLI users do."""
    import duckdb

    con = duckdb.connect()
    return con.execute(
        f"SELECT filepath, tile FROM read_parquet('{store.part_glob(out)}') ORDER BY filepath"
    ).fetchall()


def test_append_without_regex_keeps_the_catalog_columns(rasters, tmp_path):
    out = tmp_path / "cat"
    build(rasters[:3], out, filename_regex=REGEX)
    cat = build(rasters[3:], out)  # no regex: the new rows get a null tile
    parts = store.list_parts(out)
    assert len(parts) == 2
    assert pq.read_schema(parts[0]).names == pq.read_schema(parts[1]).names
    rows = plain_duckdb_rows(out)
    assert len(rows) == len(cat) == 7
    tiles = dict(rows)
    assert tiles[str(rasters[0])] == "30TVK" and tiles[str(rasters[4])] is None
    static = rows_by_path(cat)[str(rasters[4])]
    assert static["start_datetime"] is None and static["tile"] is None


def test_append_with_a_new_regex_group_is_refused(rasters, tmp_path):
    out = tmp_path / "cat"
    build(rasters[:3], out)
    with pytest.raises(ArgumentError, match=r"\['tile'\].*new out_dir"):
        build(rasters[3:], out, filename_regex=REGEX)
    assert len(store.list_parts(out)) == 1
    # The same groups (or a subset of them) append fine.
    build(rasters[:3], tmp_path / "cat2", filename_regex=REGEX)
    cat = build(rasters[3:], tmp_path / "cat2", filename_regex=r"S2_(?P<tile>\w{5})_")
    assert len(plain_duckdb_rows(tmp_path / "cat2")) == len(cat) == 7
