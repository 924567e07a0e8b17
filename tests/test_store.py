"""DESIGN §2-§3 storage: GeoParquet 1.1 parts, atomic append, sorted row groups, and readers other
than geoduck (geopandas, pyarrow.dataset, the DuckDB CLI) seeing exactly the catalog's rows."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import geopandas
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
from shapely.geometry import MultiPolygon, box

import geoduck
from geoduck import schema, store
from geoduck.engine import spatial_extension_path
from geoduck.geo import hilbert_key
from geoduck.testing import coordinate_raster

BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")


def synthetic_table(n: int, seed: int = 0, *, antimeridian_every: int = 0) -> pa.Table:
    """``n`` schema-v1 rows with random axis-aligned lon/lat boxes (so bbox == geometry), in random
    order; every ``antimeridian_every``-th row is a MultiPolygon split at ±180°; every 7th is static."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-179, 178, n), rng.uniform(-89, 88, n)
    geoms = shapely.box(x, y, x + rng.uniform(0.01, 1.0, n), y + rng.uniform(0.01, 1.0, n))
    if antimeridian_every:
        for i in range(0, n, antimeridian_every):
            geoms[i] = MultiPolygon([box(-180, y[i], -179.5, y[i] + 1), box(179.0, y[i], 180, y[i] + 1)])
    bounds = shapely.bounds(geoms)
    bbox = pa.StructArray.from_arrays([pa.array(bounds[:, j]) for j in range(4)], names=list(BOX_KEYS))
    day = np.datetime64("2023-01-01", "us") + rng.integers(0, 365, n) * np.timedelta64(1, "D")
    static = np.arange(n) % 7 == 0
    start = pa.array(day, mask=static).cast(pa.timestamp("us", tz="UTC"))
    end = pa.array(day + np.timedelta64(86_400_000_000 - 1, "us"), mask=static).cast(start.type)
    columns = {
        schema.ID: pa.array([f"id{i:06d}" for i in range(n)]),
        schema.FILEPATH: pa.array([f"/data/f{i:06d}.tif" for i in range(n)]),
        schema.BACKEND: pa.array(["raster"] * n),
        schema.GEOMETRY: pa.array(shapely.to_wkb(geoms), pa.binary()),
        schema.BBOX: bbox,
        schema.START: start,
        schema.END: end,
        schema.CRS: pa.array(["EPSG:4326"] * n),
        schema.NATIVE_BOUNDS: bbox,
        schema.VERSION: pa.array(np.full(n, schema.SCHEMA_VERSION, np.int32)),
        "width": pa.array(np.full(n, 16)),
    }
    arrow_schema = schema.catalog_schema("raster")
    return pa.table(
        {f.name: columns.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in arrow_schema}, schema=arrow_schema
    )


def only_part(root: Path) -> Path:
    parts = store.list_parts(root)
    assert len(parts) == 1
    return parts[0]


# -- metadata ------------------------------------------------------------------------------------


def test_part_geo_metadata_and_schema_version(tmp_path):
    table = synthetic_table(200, antimeridian_every=10)
    part = store.write_part(table, tmp_path / "cat")
    assert part.parent == tmp_path / "cat" and part.name.startswith("part-") and part.suffix == ".parquet"

    meta = pq.read_metadata(part).metadata
    geo = json.loads(meta[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB"
    assert col["covering"] == {"bbox": {k: ["bbox", k] for k in BOX_KEYS}}
    assert col["geometry_types"] == ["MultiPolygon", "Polygon"]
    assert col["crs"] == pyproj.CRS.from_epsg(4326).to_json_dict()
    assert pyproj.CRS.from_json_dict(col["crs"]).to_epsg() == 4326
    bounds = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    total = shapely.total_bounds(bounds)
    assert col["bbox"] == pytest.approx(list(total))
    assert col["bbox"][0] == -180.0 and col["bbox"][2] == 180.0

    assert meta[b"geoduck:schema_version"] == b"1"
    assert store.read_schema_versions(tmp_path / "cat") == {part: 1}
    t = pq.read_table(part)
    assert t.schema.field("schema_version").type == pa.int32()
    assert set(t.column("schema_version").to_pylist()) == {1}
    assert t.num_rows == 200


def test_geometry_types_polygons_only(tmp_path):
    part = store.write_part(synthetic_table(30), tmp_path)
    geo = json.loads(pq.read_metadata(part).metadata[b"geo"])
    assert geo["columns"]["geometry"]["geometry_types"] == ["Polygon"]


def test_rows_are_sorted_by_hilbert_key_of_bbox_centre(tmp_path):
    table = synthetic_table(2000, seed=1)
    part = store.write_part(table, tmp_path)
    t = pq.read_table(part)
    b = t.column("bbox").combine_chunks()
    cx = (b.field("xmin").to_numpy() + b.field("xmax").to_numpy()) / 2
    cy = (b.field("ymin").to_numpy() + b.field("ymax").to_numpy()) / 2
    keys = hilbert_key(cx, cy)
    assert (np.diff(keys.astype(np.int64)) >= 0).all()
    # Nothing lost or duplicated by the sort, and the input was not already in order.
    assert sorted(t.column("id").to_pylist()) == sorted(table.column("id").to_pylist())
    assert t.column("id").to_pylist() != table.column("id").to_pylist()


def _hilbert_keys(table: pa.Table) -> np.ndarray:
    b = table.column("bbox").combine_chunks()
    cx = (b.field("xmin").to_numpy() + b.field("xmax").to_numpy()) / 2
    cy = (b.field("ymin").to_numpy() + b.field("ymax").to_numpy()) / 2
    return hilbert_key(cx, cy).astype(np.int64)


def test_write_parts_cuts_one_hilbert_order_into_compact_parts(tmp_path):
    table = synthetic_table(2000, seed=3)
    parts = store.write_parts(table, tmp_path, max_rows=300)
    assert [pq.read_metadata(p).num_rows for p in parts] == [300] * 6 + [200]
    assert store.list_parts(tmp_path) == sorted(parts)
    tables = [pq.read_table(p) for p in parts]
    # One sort over all rows, cut in order: each part's keys follow the previous part's.
    keys = np.concatenate([_hilbert_keys(t) for t in tables])
    assert (np.diff(keys) >= 0).all()
    assert sorted(pa.concat_tables(tables).column("id").to_pylist()) == sorted(table.column("id").to_pylist())
    # Each part covers a region much smaller than the whole (so queries skip whole parts), and
    # its footer extent is exactly its rows' bbox.
    for part, t in zip(parts, tables, strict=True):
        e = store.part_extent(part)
        b = t.column("bbox").combine_chunks()
        assert (e.xmin, e.ymin) == (min(b.field("xmin").to_pylist()), min(b.field("ymin").to_pylist()))
        assert (e.xmax, e.ymax) == (max(b.field("xmax").to_pylist()), max(b.field("ymax").to_pylist()))
    areas = [
        (store.part_extent(p).xmax - store.part_extent(p).xmin)
        * (store.part_extent(p).ymax - store.part_extent(p).ymin)
        for p in parts
    ]
    assert max(areas) < 0.5 * 360 * 180  # (cut in input order instead, each would span ~all)
    with pytest.raises(ValueError):
        store.write_parts(table.slice(0, 0), tmp_path)


def test_a_query_opens_only_the_parts_it_can_match(tmp_path):
    """A box query over a catalog written as many compact parts names only some of them in its
    SQL, and returns exactly the brute-force rows."""
    table = synthetic_table(3000, seed=4)
    store.write_parts(table, tmp_path / "cat", max_rows=250)
    cat = geoduck.open_catalog(tmp_path / "cat")
    box = (10.0, 10.0, 40.0, 30.0)
    rel = cat.query(bbox=box)
    named = [p for p in store.list_parts(tmp_path / "cat") if p.name in rel.sql_text]
    assert 1 <= len(named) < 12
    b = table.column("bbox").combine_chunks()
    expected = sorted(
        i
        for i, x0, y0, x1, y1 in zip(
            table.column("id").to_pylist(), *(b.field(k).to_pylist() for k in BOX_KEYS), strict=True
        )
        if x0 <= box[2] and x1 >= box[0] and y0 <= box[3] and y1 >= box[1]
    )
    assert sorted(rel.to_arrow()["id"].to_pylist()) == expected and expected


def test_row_groups_sized_and_bbox_statistics_prune(tmp_path):
    n, size = 4096, 256
    part = store.write_part(synthetic_table(n, seed=2), tmp_path, row_group_size=size)
    md = pq.ParquetFile(part).metadata
    assert md.num_row_groups == n // size
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [size] * (n // size)

    t = pq.read_table(part)
    b = t.column("bbox").combine_chunks()
    cols = {k: b.field(k).to_numpy() for k in BOX_KEYS}
    paths = {md.row_group(0).column(j).path_in_schema: j for j in range(md.num_columns)}
    groups = []
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        stats = {}
        for k in BOX_KEYS:
            st = rg.column(paths[f"bbox.{k}"]).statistics
            assert st is not None and st.has_min_max
            stats[k] = (st.min, st.max)
        rows = slice(g * size, (g + 1) * size)
        for k in BOX_KEYS:
            assert stats[k] == (cols[k][rows].min(), cols[k][rows].max())
        groups.append((stats["xmin"][0], stats["ymin"][0], stats["xmax"][1], stats["ymax"][1]))

    # Hilbert-sorted groups are compact: together they cover ~the globe once, not 16 times.
    area = sum((g[2] - g[0]) * (g[3] - g[1]) for g in groups)
    assert area < 2.0 * 360 * 180
    # A 10° x 10° query can skip most row groups on bbox statistics alone.
    q = (10.0, 10.0, 20.0, 20.0)
    hit = [g for g in groups if g[0] <= q[2] and g[2] >= q[0] and g[1] <= q[3] and g[3] >= q[1]]
    assert 1 <= len(hit) <= 3


def test_default_row_group_size(tmp_path):
    part = store.write_part(synthetic_table(300), tmp_path)
    md = pq.ParquetFile(part).metadata
    assert store.ROW_GROUP_SIZE >= 300
    assert md.num_row_groups == 1 and md.row_group(0).num_rows == 300


def _encodings(part: Path) -> dict[str, tuple[str, set[str]]]:
    """Column path → (codec, encodings) of a part's first row group."""
    rg = pq.ParquetFile(part).metadata.row_group(0)
    return {
        rg.column(j).path_in_schema: (rg.column(j).compression, set(rg.column(j).encodings))
        for j in range(rg.num_columns)
    }


@pytest.mark.parametrize("writer", ["append", "compact"])
def test_parts_are_snappy_with_unique_columns_plain(tmp_path, writer):
    """Appended and compacted parts alike: Snappy; no dictionary for per-row unique values (id,
    filepath), a dictionary for repeated flat ones (backend, crs); and values read back exactly."""
    root = tmp_path / "cat"
    table = synthetic_table(500)
    store.write_part(table.slice(0, 250), root)
    store.write_part(table.slice(250), root)
    if writer == "compact":
        geoduck.compact(root)
    parts = store.live_parts(root)
    assert len(parts) == (1 if writer == "compact" else 2)
    enc = _encodings(parts[0])
    assert {codec for codec, _ in enc.values()} == {"SNAPPY"}
    for name in (schema.ID, schema.FILEPATH):
        assert "RLE_DICTIONARY" not in enc[name][1] and "PLAIN" in enc[name][1]
    for name in (schema.BACKEND, schema.CRS):
        assert "RLE_DICTIONARY" in enc[name][1]
    got = pa.concat_tables(pq.read_table(p) for p in parts).sort_by(schema.ID)
    assert got.column(schema.FILEPATH).to_pylist() == table.sort_by(schema.ID).column(schema.FILEPATH).to_pylist()
    assert got.num_rows == 500


# -- atomicity -----------------------------------------------------------------------------------


def test_write_leaves_no_temp_file(tmp_path):
    root = tmp_path / "cat"
    first = store.write_part(synthetic_table(20), root)
    second = store.write_part(synthetic_table(20, seed=5), root)
    assert sorted(p.name for p in root.iterdir()) == sorted([first.name, second.name, store.INDEX])
    assert not list(root.glob("*.tmp")) and not list(root.glob(".*"))
    assert store.list_parts(root) == sorted([first, second])


def test_failed_write_leaves_no_part_and_no_temp_file(tmp_path, monkeypatch):
    root = tmp_path / "cat"
    old = store.write_part(synthetic_table(20), root)
    old_bytes = old.read_bytes()
    seen = {}

    def half_then_fail(table, where, **kwargs):
        where.write(b"PAR1" + b"\0" * 1000)  # half a file ...
        where.flush()
        seen["tmp"] = [p.name for p in root.iterdir() if p.name.endswith(".tmp")]
        seen["visible"] = [p.name for p in root.glob("*.parquet")]
        raise OSError("disk full")  # ... then the disk fills up

    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.write_part(synthetic_table(50, seed=3), root)

    # While being written the part had a hidden temporary name that `*.parquet` globs never match.
    assert len(seen["tmp"]) == 1 and seen["tmp"][0].startswith(".part-")
    assert seen["visible"] == [old.name]
    # Afterwards: no temp file, no new part, the old part untouched.
    assert sorted(p.name for p in root.iterdir()) == sorted([old.name, store.INDEX])
    assert old.read_bytes() == old_bytes
    monkeypatch.undo()
    assert pq.read_table(old).num_rows == 20


def test_empty_part_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        store.write_part(synthetic_table(1).slice(0, 0), tmp_path / "cat")
    assert not (tmp_path / "cat").exists() or not list((tmp_path / "cat").iterdir())


# -- other readers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [(10.0, 10.0, 30.0, 25.0), (-180.0, -90.0, -170.0, 90.0), (-5.0, -5.0, 5.0, 5.0), (179.2, -60.0, 180.0, 60.0)],
)
def test_geopandas_bbox_read_matches_brute_force(tmp_path, query):
    table = synthetic_table(3000, seed=4, antimeridian_every=50)
    part = store.write_part(table, tmp_path, row_group_size=300)
    got = geopandas.read_parquet(part, bbox=query)
    assert got.crs.to_epsg() == 4326
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    # Rows are boxes (or two boxes), so the bbox overlap test geopandas does is the geometry test.
    expected = np.asarray(table.column("id").to_pylist())[
        shapely.intersects(shapely.box(*shapely.bounds(geoms).T), box(*query))
    ]
    assert len(expected) > 0
    assert sorted(got["id"]) == sorted(expected.tolist())
    exact = np.asarray(table.column("id").to_pylist())[shapely.intersects(geoms, box(*query))]
    assert set(exact) <= set(got["id"])


@pytest.fixture(scope="module")
def raster_catalog(tmp_path_factory) -> Path:
    """A real catalog of 12 rasters in 3 CRSs built in two appends (two parts), plus a stale
    temporary file from a 'crashed' writer."""
    root = tmp_path_factory.mktemp("store_cat")
    specs = [("EPSG:32630", (400_000.0 + 20_000 * i, 4_500_000.0), 1000.0) for i in range(5)]
    specs += [("EPSG:32631", (300_000.0 + 20_000 * i, 4_600_000.0), 1000.0) for i in range(4)]
    specs += [("EPSG:4326", (-3.0 + 0.5 * i, 41.0), 0.01) for i in range(3)]
    files = [
        coordinate_raster(root / "in" / f"T{i:02d}_202306{i + 1:02d}.tif", crs=crs, origin=o, res=r, shape=(16, 16))
        for i, (crs, o, r) in enumerate(specs)
    ]
    out = root / "cat"
    regex = r"T(?P<tile>\d{2})_(?P<date>\d{8})"
    geoduck.build_raster_catalog(files[:7], out, filename_regex=regex, workers=1, progress=False)
    geoduck.build_raster_catalog(files, out, filename_regex=regex, workers=1, progress=False)
    assert len(store.list_parts(out)) == 2
    (out / ".part-20000101T000000000000-deadbeef.parquet.tmp").write_bytes(b"PAR1 half a file")
    return out


def test_built_parts_metadata_and_order(raster_catalog):
    for part in store.list_parts(raster_catalog):
        meta = pq.read_metadata(part).metadata
        assert meta[b"geoduck:schema_version"] == b"1"
        geo = json.loads(meta[b"geo"])
        col = geo["columns"]["geometry"]
        assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
        assert col["covering"] == {"bbox": {k: ["bbox", k] for k in BOX_KEYS}}
        assert col["crs"] == pyproj.CRS.from_epsg(4326).to_json_dict()
        assert col["geometry_types"] == ["Polygon"]
        t = pq.read_table(part)
        b = t.column("bbox").combine_chunks()
        keys = hilbert_key(
            (b.field("xmin").to_numpy() + b.field("xmax").to_numpy()) / 2,
            (b.field("ymin").to_numpy() + b.field("ymax").to_numpy()) / 2,
        )
        assert (np.diff(keys.astype(np.int64)) >= 0).all()
        lo = [b.field(k).to_numpy().min() for k in ("xmin", "ymin")]
        hi = [b.field(k).to_numpy().max() for k in ("xmax", "ymax")]
        assert col["bbox"] == pytest.approx(lo + hi)
        assert set(t.column("schema_version").to_pylist()) == {1}
    assert [pq.read_metadata(p).num_rows for p in store.list_parts(raster_catalog)] == [7, 5]


def duckdb_cli(sql: str) -> list[dict]:
    """Run ``sql`` in the DuckDB CLI binary of the venv, with the packaged spatial extension."""
    exe = Path(sys.executable).parent / "duckdb"
    assert exe.is_file(), "duckdb-cli is not installed in the venv"
    ext = spatial_extension_path()
    assert ext is not None
    proc = subprocess.run(
        [str(exe), "-json", "-c", f"LOAD '{ext.as_posix()}'; {sql}"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else []


def test_duckdb_cli_reads_exactly_the_catalog_rows(raster_catalog):
    api = geoduck.open_catalog(raster_catalog).to_arrow()
    assert api.num_rows == 12
    api_ids = sorted(api.column("id").to_pylist())
    glob = store.part_glob(raster_catalog)

    rows = duckdb_cli(f"SELECT id FROM read_parquet('{glob}') ORDER BY id")
    assert [r["id"] for r in rows] == api_ids
    assert duckdb_cli(f"SELECT count(*) AS n FROM read_parquet('{glob}')") == [{"n": 12}]

    # A spatial filter with the spatial extension gives the same ids as the Python API.
    q = (-3.9, 40.0, -2.5, 41.0)
    expected = sorted(geoduck.open_catalog(raster_catalog).query(bbox=q).to_arrow().column("id").to_pylist())
    assert 0 < len(expected) < 12
    wkt = box(*q).wkt
    rows = duckdb_cli(
        f"SELECT id FROM read_parquet('{glob}') WHERE ST_Intersects(geometry, ST_GeomFromText('{wkt}')) ORDER BY id"
    )
    assert [r["id"] for r in rows] == expected


RASTER_COLUMNS_DUCKDB = {
    "id": "VARCHAR",
    "filepath": "VARCHAR",
    "backend": "VARCHAR",
    "geometry": "GEOMETRY('EPSG:4326')",
    "bbox": "STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE)",
    "start_datetime": "TIMESTAMP WITH TIME ZONE",
    "end_datetime": "TIMESTAMP WITH TIME ZONE",
    "crs": "VARCHAR",
    "native_bounds": "STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE)",
    "schema_version": "INTEGER",
    "width": "BIGINT",
    "height": "BIGINT",
    "count": "INTEGER",
    "dtype": "VARCHAR",
    "nodata": "DOUBLE",
    "res_x": "DOUBLE",
    "res_y": "DOUBLE",
    "transform": "DOUBLE[]",
    "tile": "VARCHAR",
    "file_size": "BIGINT",
    "file_mtime": "TIMESTAMP WITH TIME ZONE",
}

_BOX = pa.struct([pa.field(k, pa.float64()) for k in BOX_KEYS])
RASTER_COLUMNS_ARROW = {
    "id": pa.string(),
    "filepath": pa.string(),
    "backend": pa.string(),
    "geometry": pa.binary(),
    "bbox": _BOX,
    "start_datetime": pa.timestamp("us", tz="UTC"),
    "end_datetime": pa.timestamp("us", tz="UTC"),
    "crs": pa.string(),
    "native_bounds": _BOX,
    "schema_version": pa.int32(),
    "width": pa.int64(),
    "height": pa.int64(),
    "count": pa.int32(),
    "dtype": pa.string(),
    "nodata": pa.float64(),
    "res_x": pa.float64(),
    "res_y": pa.float64(),
    "transform": pa.list_(pa.float64()),
    "tile": pa.string(),
    "file_size": pa.int64(),
    "file_mtime": pa.timestamp("us", tz="UTC"),
}


def test_catalog_columns_and_types_follow_design(raster_catalog):
    rows = duckdb_cli(f"DESCRIBE SELECT * FROM read_parquet('{store.part_glob(raster_catalog)}')")
    assert {r["column_name"]: r["column_type"] for r in rows} == RASTER_COLUMNS_DUCKDB
    assert [r["column_name"] for r in rows] == list(RASTER_COLUMNS_DUCKDB)
    for part in store.list_parts(raster_catalog):
        s = pq.read_schema(part)
        assert {f.name: f.type for f in s} == RASTER_COLUMNS_ARROW
        assert list(s.names[:10]) == [
            "id",
            "filepath",
            "backend",
            "geometry",
            "bbox",
            "start_datetime",
            "end_datetime",
            "crs",
            "native_bounds",
            "schema_version",
        ]


def test_pyarrow_dataset_reads_the_catalog_dir(raster_catalog):
    data = pads.dataset(raster_catalog, format="parquet").to_table()
    api = geoduck.open_catalog(raster_catalog).to_arrow()
    assert data.num_rows == 12
    assert sorted(data.column("id").to_pylist()) == sorted(api.column("id").to_pylist())
    by_id = {r["id"]: r for r in data.to_pylist()}
    for r in api.to_pylist():
        d = by_id[r["id"]]
        assert d["geometry"] == r["geometry"] and d["bbox"] == r["bbox"]
        assert d["start_datetime"] == r["start_datetime"] and d["end_datetime"] == r["end_datetime"]
        assert d["tile"] == r["tile"] and d["transform"] == r["transform"]
    assert set(data.column("schema_version").to_pylist()) == {1}
    assert all(math.isclose(v, 1000.0) or math.isclose(v, 0.01) for v in data.column("res_x").to_pylist())


def _duckdb_hilbert(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from geoduck import engine

    con = engine.cursor()
    con.register("_pts", pa.table({"x": x, "y": y}))
    box = "{'min_x': -180.0, 'min_y': -90.0, 'max_x': 180.0, 'max_y': 90.0}::BOX_2D"
    sql = f"SELECT ST_Hilbert(x, y, {box}) AS k FROM _pts"
    return con.execute(sql).to_arrow_reader(1 << 20).read_all().column("k").to_numpy().astype(np.uint64)


def test_numpy_hilbert_key_is_duckdbs_st_hilbert():
    rng = np.random.default_rng(5)
    # Within the extent (bbox centres of lon/lat footprints always are; outside it geoduck clips to
    # the border cells, while DuckDB's key is undefined).
    x = np.concatenate([rng.uniform(-180, 180, 20_000), [-180.0, 180.0, 0.0, 179.9999999, -1e-12, 180.0]])
    y = np.concatenate([rng.uniform(-90, 90, 20_000), [-90.0, 90.0, 0.0, 89.9999999, 1e-12, -90.0]])
    np.testing.assert_array_equal(hilbert_key(x, y), _duckdb_hilbert(x, y))


def test_appends_and_compaction_write_one_row_order(tmp_path):
    """store.sort_rows (numpy, every append) and compaction's DuckDB ORDER BY give the same order,
    ties (same bbox and start: band files) and static rows included."""
    from geoduck import compiler, engine
    from geoduck.expr import Scan

    table = synthetic_table(600, seed=11)
    twins = table.slice(0, 50)  # same bbox and start as 50 rows, other ids: ties resolved by id
    i = twins.schema.get_field_index("id")
    twins = twins.set_column(i, twins.schema.field(i), pa.array([f"z{k:02d}" for k in range(50)]))
    table = pa.concat_tables([table, twins])
    static = pa.nulls(table.num_rows, table.schema.field("start_datetime").type)
    mixed = pc.if_else(pa.array(np.arange(table.num_rows) % 7 == 0), static, table.column("start_datetime"))
    table = table.set_column(table.schema.get_field_index("start_datetime"), "start_datetime", mixed)
    part = store.write_part(table.take(np.random.default_rng(1).permutation(table.num_rows)), tmp_path / "cat")
    appended = pq.read_table(part).column("id").to_pylist()
    compacted = engine.fetch_arrow(compiler.render(compiler.sorted_rows(Scan(str(tmp_path / "cat")))))
    assert compacted.column("id").to_pylist() == appended
    assert len(set(appended)) == table.num_rows
