"""Scale-out: distributed builds and ``map_chips`` on a LocalCluster (2 worker processes), the
incremental ``Stitcher``, and catalogs at URIs (``file://``; ``s3://`` against a moto server on
127.0.0.1).

The cluster is started once for the module and always closed. Functions defined here are pickled
by value (the workers cannot import this test module).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import rasterio
from s3_server import moto_s3

import geoduck
from geoduck import engine, remote, store
from geoduck.builders import common
from geoduck.builders.common import BuildSpec, _remove_stray_parts, _Tally, run_build
from geoduck.builders.raster import BACKEND as RASTER
from geoduck.errors import ArgumentError, CatalogNotFoundError, ExtensionError, NoDataError
from geoduck.loaders.raster import load_raster
from geoduck.scale import chip_name
from geoduck.stitch import Stitcher, stitch
from geoduck.testing import ARCHIVE_REGEX, synthetic_archive

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

UTM30 = "EPSG:32630"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with distributed.Client(cluster) as c:
            yield c
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """The default synthetic archive (48 GeoTIFFs in 3 UTM zones) plus one broken .tif."""
    root = tmp_path_factory.mktemp("scale_archive")
    paths = synthetic_archive(root)
    broken = root / "S2_99ZZZ_20230101.tif"
    broken.write_bytes(b"not a tiff")
    return [*paths, broken]


def by_id(cat: geoduck.Catalog) -> pa.Table:
    return cat.to_arrow().sort_by("id")


# -- distributed builds -------------------------------------------------------------------------------


def test_distributed_build_gives_the_local_rows(client, files, tmp_path):
    local = geoduck.build_raster_catalog(
        files, tmp_path / "local", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    dist = geoduck.build_raster_catalog(
        files, tmp_path / "dist", filename_regex=ARCHIVE_REGEX, progress=False, client=client
    )
    a, b = by_id(local), by_id(dist)
    assert a.num_rows == b.num_rows == 48
    assert a.column_names == b.column_names
    assert a.equals(b)
    report = dist.build_report
    assert (report.indexed, report.files_indexed, report.unchanged, report.changed) == (48, 48, 0, ())
    broken = str(files[-1])
    assert [p for p, _ in report.errors] == [broken]
    assert report.errors == local.build_report.errors
    # 49 files, 2 threads: tasks of max(32, ceil(49 / 8)) = 32 files, each writing its own part
    assert len(report.parts) == 2
    assert sorted(report.parts) == sorted(str(p) for p in store.list_parts(tmp_path / "dist"))
    tag = store.part_tag(Path(report.parts[0]).name)
    assert all(store.part_tag(Path(p).name) == tag for p in report.parts)

    # incremental, still on the cluster: nothing new, one changed file reported (not re-indexed)
    changed = files[3]
    os.utime(changed, ns=(os.stat(changed).st_atime_ns, os.stat(changed).st_mtime_ns + 10**9))
    again = geoduck.build_raster_catalog(
        files, tmp_path / "dist", filename_regex=ARCHIVE_REGEX, progress=False, client=client
    ).build_report
    assert (again.indexed, again.unchanged, again.changed, again.parts) == (0, 47, (str(changed),), ())
    assert len(geoduck.open_catalog(tmp_path / "dist")) == 48


def test_distributed_build_small_tasks_and_vector(client, tmp_path):
    import geopandas as gpd
    import shapely

    paths = []
    for i in range(6):
        frame = gpd.GeoDataFrame(
            {"cls": [i, i + 1]},
            crs=UTM30,
            geometry=[
                shapely.box(500_000 + 1000 * i, 4_400_000, 500_500 + 1000 * i, 4_400_500),
                shapely.box(500_600 + 1000 * i, 4_400_600, 500_900 + 1000 * i, 4_400_900),
            ],
        )
        path = tmp_path / "labels" / f"labels_{i}.gpkg"
        path.parent.mkdir(exist_ok=True)
        frame.to_file(path, layer="a")
        frame.iloc[:1].to_file(path, layer="b")
        paths.append(path)
    local = geoduck.build_vector_catalog(tmp_path / "labels", tmp_path / "vl", progress=False, workers=1)
    report = run_build(
        tmp_path / "labels",
        tmp_path / "vd",
        backend=geoduck.builders.vector.BACKEND,
        options=None,
        parser=common.FilenameParser(),
        workers=None,
        progress=False,
        client=client,
        task_files=1,
    )
    assert (report.indexed, report.files_indexed, len(report.parts)) == (12, 6, 6)  # a part per task
    dist = geoduck.open_catalog(tmp_path / "vd")
    assert by_id(dist).equals(by_id(local))
    assert sorted(dist.to_arrow().column("n_features").to_pylist()) == [1] * 6 + [2] * 6


def _failing_env():
    raise RuntimeError("GDAL environment unavailable")


def test_a_failed_task_reports_its_files(client, files, tmp_path):
    good = [str(p) for p in files[:40]]
    report = run_build(
        good,
        tmp_path / "cat",
        backend=dataclasses.replace(RASTER, read_env=_failing_env),
        options=None,
        parser=common.FilenameParser(ARCHIVE_REGEX),
        workers=None,
        progress=False,
        client=client,
        task_files=16,
    )
    assert report.indexed == 0 and report.parts == ()
    assert sorted(p for p, _ in report.errors) == sorted(good)  # every file of every (failed) task
    assert {r for _, r in report.errors} == {"build task failed: RuntimeError: GDAL environment unavailable"}
    assert not store.list_parts(tmp_path / "cat")


def test_stray_parts_of_a_build_are_removed(files, tmp_path):
    out = tmp_path / "cat"
    local = geoduck.build_raster_catalog(files[:4], tmp_path / "src", progress=False, workers=1)
    table = local.to_arrow()
    table = pa.Table.from_arrays(
        table.columns, schema=pa.schema([pa.field(f.name, f.type, f.nullable) for f in table.schema])
    )  # plain WKB, as in parts
    kept = store.write_part(table, out, tag="abc123")
    stray = store.write_part(table, out, tag="abc123")
    other = store.write_part(table, out)  # another build's part (no tag): untouched
    assert store.part_tag(kept.name) == "abc123" and store.part_tag(other.name) != "abc123"
    spec = BuildSpec(
        backend=RASTER,
        out=out,
        arrow_schema=table.schema,
        options=None,
        part_rows=10,
        tag="abc123",
    )
    _remove_stray_parts(spec, _Tally(parts=[str(kept)]))
    assert store.list_parts(out) == sorted([kept, other])
    assert not stray.exists()
    with pytest.raises(ValueError, match="hex"):
        store.new_part_name("XYZ")


def test_bad_client_and_task_files(client, files, tmp_path):
    with pytest.raises(ArgumentError, match="not a connected dask.distributed.Client"):
        geoduck.build_raster_catalog(files[:2], tmp_path / "c", progress=False, client=object())
    with pytest.raises(ArgumentError, match="task_files=0"):
        run_build(
            files[:2],
            tmp_path / "c",
            backend=RASTER,
            options=None,
            parser=common.FilenameParser(),
            workers=None,
            progress=False,
            client=client,
            task_files=0,
        )
    assert not (tmp_path / "c").exists()


# -- map_chips ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chip_setup(files, tmp_path_factory):
    root = tmp_path_factory.mktemp("chips")
    cat = geoduck.build_raster_catalog(
        files[:-1], root / "cat", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    sub = cat.query(start="2022-01-01", end="2022-04-30")
    slices = geoduck.grid_sampler(sub, chip_size=64, stride=48, resolution=500.0, crs=UTM30)
    return sub, slices


def ratio(t):
    v = np.asarray(t, dtype="float32")
    return (v[0] - v[1]) / (v[0] + v[1] + 1.0)


def test_map_chips_on_the_cluster_stitches_as_a_local_loop(client, chip_setup, tmp_path):
    cat, slices = chip_setup
    assert len(slices) > 40
    expected = stitch([ratio(load_raster(cat, s)) for s in slices], slices)
    out = geoduck.map_chips(
        cat,
        slices,
        ratio,
        client=client,
        mode="stitch",
        out=tmp_path / "dist.tif",
        progress=False,
        chips_per_task=3,
        max_in_flight=2,
    )
    local = geoduck.map_chips(cat, slices, ratio, mode="stitch", out=tmp_path / "local.tif", progress=False)
    with rasterio.open(out) as a, rasterio.open(local) as b:
        got, ref = a.read(1), b.read(1)
        assert a.transform == expected.transform and a.crs == expected.crs
        assert a.driver == "GTiff" and a.profile["blockxsize"] == 256  # a COG
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, np.asarray(expected))
    np.testing.assert_array_equal(ref, np.asarray(expected))
    assert np.isfinite(got).mean() > 0.9


def test_map_chips_results_in_order_and_per_chip_cogs(client, chip_setup, tmp_path):
    cat, slices = chip_setup
    some = slices[:7]
    tensors = geoduck.map_chips(cat, some, lambda t: t, client=client, progress=False, chips_per_task=2)
    for t, s in zip(tensors, some, strict=True):
        ref = load_raster(cat, s)
        assert t.transform == s.transform and str(t.crs) == UTM30 and t.fill_value_default == 0
        np.testing.assert_array_equal(np.asarray(t), np.asarray(ref))
    sums = geoduck.map_chips(cat, some, lambda t: int(np.asarray(t, dtype="int64").sum()), progress=False)
    assert sums == [int(np.asarray(t, dtype="int64").sum()) for t in tensors]

    paths = geoduck.map_chips(cat, some, ratio, client=client, mode="chips", out=tmp_path / "chips", progress=False)
    assert [p.name for p in paths] == [chip_name(i, 7) for i in range(7)] == [f"chip_{i:06d}.tif" for i in range(7)]
    for p, s in zip(paths, some, strict=True):
        with rasterio.open(p) as src:
            assert src.transform == s.transform and src.shape == s.shape
            np.testing.assert_array_equal(src.read(1), ratio(load_raster(cat, s)))


def test_map_chips_empty_chips_and_errors(client, chip_setup, tmp_path):
    cat, slices = chip_setup
    nowhere = geoduck.GeoSlice((100_000, 100_000, 132_000, 132_000), UTM30, 500.0)
    mixed = [slices[0], nowhere, slices[1]]
    out = geoduck.map_chips(cat, mixed, ratio, client=client, progress=False)
    assert out[1] is None and out[0].shape == (64, 64)
    np.testing.assert_array_equal(out[2], ratio(load_raster(cat, slices[1])))
    paths = geoduck.map_chips(cat, mixed, ratio, mode="chips", out=tmp_path / "d", progress=False)
    assert paths[1] is None and sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "chip_000000.tif",
        "chip_000002.tif",
    ]
    with pytest.raises(NoDataError):
        geoduck.map_chips(cat, mixed, ratio, client=client, skip_empty=False, progress=False)
    with pytest.raises(NoDataError, match="none of the 1 chips"):
        geoduck.map_chips(cat, [nowhere], ratio, mode="stitch", out=tmp_path / "x.tif", progress=False)

    def boom(t):
        raise ValueError("model exploded")

    with pytest.raises(ValueError, match="model exploded"):
        geoduck.map_chips(cat, slices[:4], boom, client=client, progress=False)
    with pytest.raises(ArgumentError, match="chips_per_task"):
        geoduck.map_chips(cat, slices, ratio, chips_per_task=0)
    with pytest.raises(ArgumentError, match="GeoSlice"):
        geoduck.map_chips(cat, [(0, 0, 1, 1)], ratio)
    with pytest.raises(ArgumentError, match="to write it as a COG"):
        geoduck.map_chips(cat, slices[:1], lambda t: np.zeros(3), mode="chips", out=tmp_path / "bad", progress=False)


def test_map_chips_mode_not_the_suffix_of_out_chooses_what_is_written(chip_setup, tmp_path):
    """A ``.tif``-named directory receives per-chip COGs and a stitched COG may have any name."""
    cat, slices = chip_setup
    some = slices[:3]
    expected = stitch([ratio(load_raster(cat, s)) for s in some], some)
    mosaic = geoduck.map_chips(cat, some, ratio, mode="stitch", out=tmp_path / "mosaic.cog", progress=False)
    assert mosaic == tmp_path / "mosaic.cog"
    with rasterio.open(mosaic) as src:
        assert src.transform == expected.transform and src.shape == expected.shape
        np.testing.assert_array_equal(src.read(1), np.asarray(expected))
    paths = geoduck.map_chips(cat, some, ratio, mode="chips", out=tmp_path / "chips.tif", progress=False)
    assert (tmp_path / "chips.tif").is_dir()
    assert [p.parent.name for p in paths] == ["chips.tif"] * 3
    assert sorted(p.name for p in (tmp_path / "chips.tif").iterdir()) == [chip_name(i, 3) for i in range(3)]
    for p, s in zip(paths, some, strict=True):
        with rasterio.open(p) as src:
            np.testing.assert_array_equal(src.read(1), ratio(load_raster(cat, s)))
    with pytest.raises(ArgumentError, match="needs mode='stitch'.*or mode='chips'"):
        geoduck.map_chips(cat, some, ratio, out=tmp_path / "y.tif", progress=False)
    with pytest.raises(ArgumentError, match="mode='chips' writes files: pass out="):
        geoduck.map_chips(cat, some, ratio, mode="chips", progress=False)
    with pytest.raises(ArgumentError, match="mode='mosaic' is not one of"):
        geoduck.map_chips(cat, some, ratio, mode="mosaic", out=tmp_path / "z.tif", progress=False)  # type: ignore[arg-type]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArgumentError, match="is not a directory"):
        geoduck.map_chips(cat, some, ratio, mode="chips", out=tmp_path / "file", progress=False)
    assert not (tmp_path / "y.tif").exists() and not (tmp_path / "z.tif").exists()


def test_map_chips_with_a_loader_partial(chip_setup):
    cat, slices = chip_setup
    loader = functools.partial(load_raster, bands=["B03"], merge="max")
    got = geoduck.map_chips(cat, slices[:2], lambda t: t, loader=loader, progress=False)
    assert got[0].shape == (1, 64, 64)
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(loader(cat, slices[1])))


# -- Stitcher -----------------------------------------------------------------------------------------


def _grid_slices() -> list[geoduck.GeoSlice]:
    return [
        geoduck.GeoSlice((500_000 + 30 * c, 4_399_940 - 30 * r, 500_060 + 30 * c, 4_400_000 - 30 * r), UTM30, 10.0)
        for r in range(3)
        for c in range(3)
    ]


@pytest.mark.parametrize("method", ["average", "max", "first", "last"])
def test_stitcher_fed_one_by_one_equals_stitch(method):
    slices = _grid_slices()
    rng = np.random.default_rng(7)
    preds = [rng.normal(size=(2, 6, 6)).astype("float32") for _ in slices]
    preds[4][0, :2, :2] = np.nan
    st = Stitcher(slices, method=method)
    for p in preds:
        st.feed(p)
    a, b = st.result(), stitch(preds, slices, method=method)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.transform == b.transform and a.dtype == b.dtype


def test_stitcher_skip_widen_and_errors():
    slices = _grid_slices()[:2]
    st = Stitcher(slices, method="max", fill_value=0)
    st.feed(np.full((6, 6), 3, dtype="uint8"))
    st.feed(np.full((6, 6), 300, dtype="uint16"))  # widens the output
    out = st.result()
    assert out.fill_value_default == 0
    values = np.asarray(out)
    assert values.dtype == np.uint16 and values.max() == 300 and values[0, 0] == 3
    st = Stitcher(slices)
    st.skip()
    st.feed(np.ones((6, 6)))
    res = np.asarray(st.result())
    assert np.isnan(res[0, 0]) and res[0, -1] == 1.0  # the first chip's own pixels stay unfilled
    with pytest.raises(ArgumentError, match="more predictions"):
        st.feed(np.ones((6, 6)))
    half = Stitcher(slices)
    half.feed(np.ones((6, 6)))
    with pytest.raises(ArgumentError, match="1 predictions for 2 slices"):
        half.result()
    with pytest.raises(ArgumentError, match="same rank"):
        st = Stitcher(slices)
        st.feed(np.ones((6, 6)))
        st.feed(np.ones((1, 6, 6)))


# -- catalogs at URIs ---------------------------------------------------------------------------------


def test_file_uri_catalog_and_out_dir(files, tmp_path):
    uri = (tmp_path / "cat").as_uri()
    assert uri.startswith("file:///")
    built = geoduck.build_raster_catalog(files[:5], uri, progress=False, workers=1)
    assert len(built) == 5 and store.list_parts(tmp_path / "cat")
    for spelled in (uri, uri + "/", "file://localhost" + str(tmp_path / "cat")):
        cat = geoduck.open_catalog(spelled)
        assert len(cat) == 5 and _root(cat) == str((tmp_path / "cat").resolve())
    with pytest.raises(CatalogNotFoundError, match="another host"):
        geoduck.open_catalog("file://server/share/cat")
    with pytest.raises(CatalogNotFoundError):
        geoduck.open_catalog((tmp_path / "nothing").as_uri())


def _root(cat: geoduck.Catalog) -> str:
    return cat.node.root


def test_s3_secret_from_the_environment(monkeypatch):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    assert engine.s3_secret_sql() is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "it's")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert engine.s3_secret_sql() == (
        "CREATE OR REPLACE SECRET geoduck_s3 (TYPE s3, KEY_ID 'AK', SECRET 'it''s', REGION 'eu-west-1')"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/")
    assert engine.s3_secret_sql() == (
        "CREATE OR REPLACE SECRET geoduck_s3 (TYPE s3, URL_STYLE 'path', "
        "USE_SSL false, KEY_ID 'AK', SECRET 'it''s', REGION 'eu-west-1', "
        "ENDPOINT '127.0.0.1:9000')"
    )


def test_missing_httpfs_is_a_clear_error(monkeypatch):
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("LOAD httpfs")
        pytest.skip("httpfs is installed in DuckDB's own extension directory")
    except duckdb.Error:
        pass
    monkeypatch.setenv("GEODUCK_OFFLINE", "1")
    monkeypatch.setattr(engine, "httpfs_extension_path", lambda: None)
    with pytest.raises(ExtensionError, match=r"INSTALL httpfs.*duckdb-extension-httpfs==") as err:
        engine.load_httpfs(con)
    assert "s3://" in str(err.value)
    monkeypatch.setattr(engine, "_httpfs", {})

    def fail(c):
        raise ExtensionError("needs INSTALL httpfs")

    monkeypatch.setattr(engine, "load_httpfs", fail)
    with pytest.raises(ExtensionError, match="INSTALL httpfs"):
        geoduck.open_catalog("s3://bucket/catalog")


def test_https_catalog_without_a_listing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(remote, "_filesystem", lambda uri: None)
    with pytest.raises(CatalogNotFoundError, match="cannot list an HTTP server"):
        remote.list_parts("https://example.invalid/catalog")


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 with the AWS variables pointing at it (restored after)."""
    with moto_s3("geoduck-test") as fs:
        yield fs


def test_s3_catalog_reads_like_the_local_one(s3, files, tmp_path, monkeypatch):
    local = geoduck.build_raster_catalog(
        files, tmp_path / "cat", filename_regex=ARCHIVE_REGEX, progress=False, workers=1
    )
    for part in store.list_parts(tmp_path / "cat"):
        s3.put_file(str(part), f"geoduck-test/cat/{part.name}")
    s3.pipe_file("geoduck-test/cat/notes.txt", b"not a part")
    cat = geoduck.open_catalog("s3://geoduck-test/cat/")
    assert _root(cat) == "s3://geoduck-test/cat" and cat.name == "cat"
    assert len(cat) == 48 and "s3://geoduck-test/cat/*.parquet" in cat.sql_text
    q = dict(bbox=(-6, 38, 3, 42), start="2022-01-01", end="2022-12-31")
    got, want = cat.query(**q).to_arrow().sort_by("id"), local.query(**q).to_arrow().sort_by("id")
    assert got.num_rows == want.num_rows > 0 and got.equals(want)
    assert (
        int(geoduck.sql("SELECT count(*) AS n FROM c WHERE tile = '30TWK'", c=cat)["n"][0])
        == int(geoduck.sql("SELECT count(*) AS n FROM c WHERE tile = '30TWK'", c=local)["n"][0])
        > 0
    )
    assert remote.list_parts("s3://geoduck-test/cat") == sorted(
        f"s3://geoduck-test/cat/{p.name}" for p in store.list_parts(tmp_path / "cat")
    )

    # without fsspec: DuckDB lists the bucket itself
    monkeypatch.setattr(remote, "_filesystem", lambda uri: None)
    assert len(geoduck.open_catalog("s3://geoduck-test/cat")) == 48
    with pytest.raises(CatalogNotFoundError, match="no \\*.parquet parts"):
        geoduck.open_catalog("s3://geoduck-test/nothing-here")


def test_import_geoduck_does_not_import_dask():
    import subprocess

    code = "import sys, geoduck; print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_s3_catalog_mid_compaction_counts_each_row_once(s3, tmp_path):
    """A remote reader of a catalog caught mid-compaction (or after a crash) reads the old parts
    until every new part is in place, then only the new ones: the same rule as local catalogs
    (geoduck.store.live_names), so no row is counted twice."""
    import json

    from geoduck.testing import write_synthetic_catalog

    local = write_synthetic_catalog(tmp_path / "old", 12, 10, part_rows=30)
    old = store.list_parts(local)
    ids = sorted(geoduck.open_catalog(local).to_arrow()["id"].to_pylist())
    new = store.list_parts(geoduck.open_catalog(local).to_parquet(tmp_path / "new", part_rows=50).node.root)
    assert len(old) == 4 and len(new) == 3 and len(ids) == 120
    uri = "s3://geoduck-test/compacting"
    for part in old:
        s3.put_file(str(part), f"geoduck-test/compacting/{part.name}")
    manifest = {"generation": 1, "replacements": [{"replaces": [p.name for p in old], "by": [p.name for p in new]}]}
    s3.pipe_file(f"geoduck-test/compacting/{store.MANIFEST}", json.dumps(manifest).encode())

    def read() -> tuple[list[str], str]:
        cat = geoduck.open_catalog(uri)
        assert len(cat) == len(ids)
        return sorted(cat.to_arrow()["id"].to_pylist()), cat.sql_text

    for i, part in enumerate(new):  # renamed into place one by one (a crash may stop it anywhere)
        s3.put_file(str(part), f"geoduck-test/compacting/{part.name}")
        got, sql = read()
        assert got == ids
        read_now = new if i == len(new) - 1 else old  # switched once all new parts exist
        assert {p.name for p in (*old, *new) if p.name in sql} == {p.name for p in read_now}
    assert "*.parquet" not in sql  # a replacement is pending: parts named, never globbed
    for part in old:  # the compaction deletes the old parts, then clears the manifest
        s3.rm_file(f"geoduck-test/compacting/{part.name}")
        assert read()[0] == ids
    s3.pipe_file(
        f"geoduck-test/compacting/{store.MANIFEST}", json.dumps({"generation": 2, "replacements": []}).encode()
    )
    got, sql = read()
    assert got == ids and f"{uri}/*.parquet" in sql
