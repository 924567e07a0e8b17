"""Catalog parts written by other tools (geopandas, DuckDB COPY, pyarrow), `geoduck validate` on
them, and `import_table` of foreign footprint tables (GeoParquet, GeoPackage, FlatGeobuf, CSV)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from s3_server import moto_s3

import geoduck
from geoduck import engine, schema, store
from geoduck.cli import main
from geoduck.errors import ArgumentError, CRSError, SchemaError
from geoduck.validate import errors, validate

N = 40


def _frame(seed: int = 0) -> gpd.GeoDataFrame:
    """N lon/lat boxes with every documented schema-v1 column (as a third-party writer makes it)."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-20, 20, N), rng.uniform(-10, 10, N)
    w, h = rng.uniform(0.2, 3, N), rng.uniform(0.2, 3, N)
    boxes = shapely.box(x, y, x + w, y + h)
    day = pd.to_datetime("2023-01-01", utc=True) + pd.to_timedelta(rng.integers(0, 300, N), unit="D")
    return gpd.GeoDataFrame(
        {
            "id": [f"row{i:03d}" for i in range(N)],
            "filepath": [f"/data/f{i}.tif" for i in range(N)],
            "backend": "raster",
            "start_datetime": day.as_unit("us"),
            "end_datetime": (day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)).as_unit("us"),
            "crs": "EPSG:4326",
            "schema_version": np.int32(1),
            "cloud": rng.uniform(0, 100, N),
            "geometry": boxes,
        },
        crs="EPSG:4326",
    )


def _oracle(frame: gpd.GeoDataFrame, box: tuple[float, float, float, float], t0: str, t1: str) -> set[str]:
    """Ids whose geometry intersects ``box`` and whose closed interval meets [t0, t1] (brute force)."""
    hit = shapely.intersects(shapely.box(*box), np.asarray(frame.geometry))
    start, end = pd.Timestamp(t0, tz="UTC"), pd.Timestamp(t1, tz="UTC")
    hit &= (frame["start_datetime"] <= end).to_numpy() & (frame["end_datetime"] >= start).to_numpy()
    return set(frame["id"][hit])


QUERIES = [
    ((-5, -5, 5, 5), "2023-03-01", "2023-06-30 23:59:59.999999"),
    ((-20, -10, 0, 10), "2023-01-01", "2023-12-31"),
]


def _check_catalog(root, frame: gpd.GeoDataFrame) -> None:
    cat = geoduck.open_catalog(root)
    assert len(cat) == N
    for box, t0, t1 in QUERIES:
        got = set(cat.query(bbox=box, start=t0, end=t1).to_arrow().column("id").to_pylist())
        assert got == _oracle(frame, box, t0, t1) and got
    assert errors(validate(root)) == []
    result = CliRunner().invoke(main, ["validate", str(root)])
    assert result.exit_code == 0 and "valid" in result.output, result.output


def test_geopandas_written_part_opens_as_catalog(tmp_path):
    frame = _frame()
    root = tmp_path / "gp"
    root.mkdir()
    frame.to_parquet(root / "a.parquet", write_covering_bbox=True, schema_version="1.1.0", row_group_size=10)
    assert schema.KV_SCHEMA_VERSION not in (pq.read_metadata(root / "a.parquet").metadata or {})
    _check_catalog(root, frame)
    assert [p.severity for p in validate(root)] == ["warning"]  # lacks native_bounds: queries work
    info = CliRunner().invoke(main, ["info", str(root)])
    assert info.exit_code == 0 and f"rows           {N}" in info.output and "schema version 1" in info.output
    assert geoduck.migrate(root).rows == 0 and store.part_names(root) == ["a.parquet"]  # v1 already


def test_duckdb_copy_part_opens_as_catalog(tmp_path):
    frame = _frame(1)
    root = tmp_path / "dk"
    root.mkdir()
    con = engine.connect()
    src = pa.table({"id": frame["id"], "wkt": shapely.to_wkt(np.asarray(frame.geometry))})
    src = src.append_column("start_datetime", pa.array(frame["start_datetime"]))
    src = src.append_column("end_datetime", pa.array(frame["end_datetime"]))
    con.register("src", src)
    con.execute(
        f"""COPY (SELECT id, '/data/' || id || '.tif' AS filepath, 'raster' AS backend,
                   ST_GeomFromText(wkt) AS geometry,
                   struct_pack(xmin := ST_XMin(ST_GeomFromText(wkt)), ymin := ST_YMin(ST_GeomFromText(wkt)),
                               xmax := ST_XMax(ST_GeomFromText(wkt)), ymax := ST_YMax(ST_GeomFromText(wkt))) AS bbox,
                   start_datetime, end_datetime, 'EPSG:4326' AS crs,
                   struct_pack(xmin := 0.0::DOUBLE, ymin := 0.0::DOUBLE,
                               xmax := 1.0::DOUBLE, ymax := 1.0::DOUBLE) AS native_bounds,
                   1::INTEGER AS schema_version
            FROM src) TO '{root / "part.parquet"}' (FORMAT parquet)"""
    )
    geo = json.loads(pq.read_metadata(root / "part.parquet").metadata[b"geo"])
    assert geo["version"] == "1.0.0" and "covering" not in geo["columns"]["geometry"]
    _check_catalog(root, frame)
    (warning,) = validate(root)
    assert warning.severity == "warning" and "bbox covering" in warning.message


def test_pyarrow_written_part_opens_as_catalog(tmp_path):
    frame = _frame(2)
    root = tmp_path / "pa"
    root.mkdir()
    bounds = shapely.bounds(np.asarray(frame.geometry))
    table = pa.table(
        {
            "id": frame["id"],
            "geometry": pa.array(shapely.to_wkb(np.asarray(frame.geometry)), pa.binary()),
            "bbox": pa.array([dict(zip(schema.BBOX_KEYS, b, strict=True)) for b in bounds.tolist()], schema.BOX),
            "start_datetime": pa.array(frame["start_datetime"]),
            "end_datetime": pa.array(frame["end_datetime"]),
            "schema_version": pa.array([1] * N, pa.int64()),
        }
    )
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "covering": {"bbox": {k: ["bbox", k] for k in schema.BBOX_KEYS}},
            }
        },
    }
    pq.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), root / "p.parquet", row_group_size=8)
    _check_catalog(root, frame)


def _damage(root, frame, **changes):
    table = pa.Table.from_pandas(frame.to_wkb(), preserve_index=False)
    meta = {b"geo": json.dumps(schema.geo_metadata(["Polygon"], None)).encode()}
    b = shapely.bounds(np.asarray(frame.geometry))
    table = table.append_column(
        "bbox", pa.array([dict(zip(schema.BBOX_KEYS, r, strict=True)) for r in b.tolist()], schema.BOX)
    )
    for name, value in changes.items():
        if name == "geo":
            meta[b"geo"] = value.encode()
        elif value is None:
            table = table.drop_columns([name])
        else:
            table = table.set_column(table.schema.get_field_index(name), name, value)
    root.mkdir()
    part = root / "p.parquet"
    pq.write_table(table.replace_schema_metadata(meta), part)
    return part


def _projected_wkb(frame):
    return pa.array(shapely.to_wkb(np.asarray(frame.to_crs(3857).geometry)), pa.binary())


DAMAGES = {
    "missing column": (lambda f: {"end_datetime": None}, "lacks the required column 'end_datetime'"),
    "string times": (
        lambda f: {"start_datetime": pa.array(f["start_datetime"].astype(str))},
        "column 'start_datetime' is large_string",
    ),
    "not lon/lat": (lambda f: {"geometry": _projected_wkb(f)}, "outside lon/lat"),
    "bbox off": (
        lambda f: {"bbox": pa.array([{"xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0}] * N, schema.BOX)},
        "!= geometry bounds",
    ),
    "start after end": (
        lambda f: {"start_datetime": pa.array(f["end_datetime"] + pd.Timedelta(days=2))},
        "start_datetime > end_datetime",
    ),
    "unknown version": (lambda f: {"schema_version": pa.array([7] * N, pa.int32())}, "unknown schema_version 7"),
    "geo crs": (
        lambda f: {
            "geo": json.dumps(
                {
                    "version": "1.1.0",
                    "primary_column": "geometry",
                    "columns": {
                        "geometry": {
                            "encoding": "WKB",
                            "geometry_types": [],
                            "crs": __import__("pyproj").CRS(3857).to_json_dict(),
                        }
                    },
                }
            )
        },
        "geometry CRS is not EPSG:4326",
    ),
    "geo encoding": (
        lambda f: {
            "geo": json.dumps(
                {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": "WKT"}}}
            )
        },
        "geometry encoding 'WKT'",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_validate_names_part_problem_and_fix(tmp_path, damage):
    make, text = DAMAGES[damage]
    frame = _frame(3)
    part = _damage(tmp_path / "c", frame, **make(frame))
    found = [p for p in errors(validate(tmp_path / "c")) if text in p.message]
    assert found and all(p.part == str(part) and p.fix for p in found), validate(tmp_path / "c")
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "c")])
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if text in line)
    assert line.startswith(str(part)) and "(fix: " in line


@pytest.mark.parametrize(
    ("versions", "text"),
    [([1, 2] * (N // 2), r"schema_version values \[1, 2\], not one integer"), (None, "neither a 'schema_version'")],
)
def test_foreign_part_version_comes_from_the_column(tmp_path, versions, text):
    frame = _frame(4)
    change = {"schema_version": None if versions is None else pa.array(versions, pa.int32())}
    part = _damage(tmp_path / "c", frame, **change)
    with pytest.raises(SchemaError, match=text) as info:
        geoduck.open_catalog(tmp_path / "c")
    assert str(part) in str(info.value)


def test_undamaged_foreign_part_is_valid(tmp_path):
    _damage(tmp_path / "c", _frame(3))
    (finding,) = validate(tmp_path / "c")
    assert finding.severity == "warning" and "'native_bounds'" in finding.message


# -- import_table ----------------------------------------------------------------------------------


def _foreign(seed: int = 4) -> gpd.GeoDataFrame:
    """A footprint table in UTM 31N with its own column names (as a vendor delivers it)."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(300_000, 700_000, N), rng.uniform(4_000_000, 4_600_000, N)
    w = rng.uniform(5_000, 60_000, N)
    return gpd.GeoDataFrame(
        {
            "scene": [f"S{i:03d}" for i in range(N)],
            "acquired": pd.to_datetime("2022-05-01", utc=True) + pd.to_timedelta(rng.integers(0, 10**6, N), unit="min"),
            "sensor": rng.choice(["A", "B"], N),
            "cloud": rng.uniform(0, 100, N),
            "geometry": shapely.box(x, y, x + w, y + w),
        },
        crs="EPSG:32631",
    )


def _check_import(cat, src: gpd.GeoDataFrame, period: pd.Timedelta = pd.Timedelta(0)) -> None:
    """``period``: the length of the period a time value stands for (a text with seconds: 1 s)."""
    got = cat.to_geopandas().set_index("id").loc[src["scene"]]
    assert len(cat) == len(src)
    expected = src.set_geometry(src.geometry.segmentize(500.0)).to_crs(4326).geometry.to_numpy()  # curved edges
    stored = got.geometry.to_numpy()
    assert np.all(shapely.hausdorff_distance(stored, expected) < 1e-4)
    assert np.all(shapely.area(shapely.symmetric_difference(stored, expected)) < 1e-4 * shapely.area(expected))
    times = pd.DatetimeIndex(src["acquired"]).tz_convert("UTC")
    assert (pd.DatetimeIndex(got["start_datetime"]) == times).all()
    end = times + period - pd.Timedelta(microseconds=1) if period else times
    assert (pd.DatetimeIndex(got["end_datetime"]) == end).all()
    assert (got["sensor"].to_numpy() == src["sensor"].to_numpy()).all()
    assert np.allclose(got["cloud"].to_numpy(dtype=float), src["cloud"].to_numpy())
    assert set(got["crs"]) == {"EPSG:32631"}
    # queries against a brute-force oracle on the stored lon/lat footprints
    full = cat.to_geopandas()
    for box, t0, t1 in [
        ((1.5, 36.5, 3.5, 39.0), "2022-06-01", "2022-12-31"),
        ((0, 35, 6, 42), "2022-05-01", "2024-01-01"),
    ]:
        hit = shapely.intersects(shapely.box(*box), full.geometry.to_numpy())
        hit &= (
            full["start_datetime"] <= pd.Timestamp(t1, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        ).to_numpy() & (full["end_datetime"] >= pd.Timestamp(t0, tz="UTC")).to_numpy()
        assert set(cat.query(bbox=box, start=t0, end=t1).to_arrow().column("id").to_pylist()) == set(full["id"][hit])


@pytest.mark.parametrize("kind", ["gpkg", "fgb", "parquet", "csv", "frame"])
def test_import_table_from_each_format(tmp_path, kind):
    src = _foreign()
    columns = {"id": "scene", "datetime": "acquired"}
    crs = None
    if kind == "frame":
        source: object = src
    elif kind == "csv":
        source = tmp_path / "t.csv"
        pd.DataFrame(
            {
                **{c: src[c] for c in ("scene", "sensor", "cloud")},
                "acquired": src["acquired"].astype(str),
                "footprint": src.geometry.to_wkt(),
            }
        ).to_csv(source, index=False)
        columns["geometry"], crs = "footprint", "EPSG:32631"
    elif kind == "parquet":
        source = tmp_path / "t.parquet"
        src.to_parquet(source)
    else:
        source = tmp_path / f"t.{kind}"
        pyogrio.write_dataframe(src, source)
    if kind != "frame":  # what pyogrio reads back is the reference (as another reader sees the file)
        ref = src if kind in ("csv", "parquet") else pyogrio.read_dataframe(source)
        assert len(ref) == N
    cat = geoduck.import_table(source, tmp_path / "cat", columns=columns, crs=crs)
    assert cat.build_report.indexed == N
    _check_import(cat, src, pd.Timedelta(seconds=1) if kind == "csv" else pd.Timedelta(0))  # text: its second
    assert errors(validate(tmp_path / "cat")) == []


def test_import_is_incremental_by_id_and_cli(tmp_path):
    src = _foreign(5)
    source = tmp_path / "t.gpkg"
    pyogrio.write_dataframe(src.iloc[:25], source)
    out = tmp_path / "cat"
    args = ["import", str(source), "-o", str(out), "--column", "id=scene", "--column", "datetime=acquired"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "25 rows imported, 0 already" in result.output, result.output
    pyogrio.write_dataframe(src, source)  # 15 more rows
    cat = geoduck.import_table(source, out, columns={"id": "scene", "datetime": "acquired"})
    assert (cat.build_report.indexed, cat.build_report.unchanged) == (15, 25)
    assert len(cat) == N and sorted(cat.to_arrow().column("id").to_pylist()) == sorted(src["scene"])
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 rows imported, 40 already" in again.output
    bad = CliRunner().invoke(main, ["import", str(source), "-o", str(out), "--column", "datetime=acquired"])
    assert bad.exit_code == 1 and "'id'" in bad.output and "scene" in bad.output


def test_import_errors_name_the_missing_mapping(tmp_path):
    src = _foreign(6)
    with pytest.raises(ArgumentError, match=r"no id column.*columns=\{'id'"):
        geoduck.import_table(src, tmp_path / "a", columns={"datetime": "acquired"})
    with pytest.raises(ArgumentError, match="no time column.*'datetime'.*static=True"):
        geoduck.import_table(src, tmp_path / "a", columns={"id": "scene"})
    with pytest.raises(ArgumentError, match="lacks.*'when'"):
        geoduck.import_table(src, tmp_path / "a", columns={"id": "scene", "datetime": "when"})
    with pytest.raises(ArgumentError, match="unknown catalog columns \\['colour'\\]"):
        geoduck.import_table(src, tmp_path / "a", columns={"id": "scene", "datetime": "acquired", "colour": "x"})
    with pytest.raises(ArgumentError, match="'start_datetime' is mapped but 'end_datetime'"):
        geoduck.import_table(src, tmp_path / "a", columns={"id": "scene", "start_datetime": "acquired"})
    with pytest.raises(CRSError, match="no CRS"):
        geoduck.import_table(
            src.set_crs(None, allow_override=True), tmp_path / "a", columns={"id": "scene", "datetime": "acquired"}
        )
    static = geoduck.import_table(src, tmp_path / "s", columns={"id": "scene"}, static=True, backend="vector")
    assert len(static) == N and len(static.query(start="1990-01-01", end="1990-01-02")) == N


def test_import_dates_cover_their_day_and_antimeridian(tmp_path):
    frame = gpd.GeoDataFrame(
        {
            "name": ["a", "b"],
            "day": ["2023-06-15", "2023-06-16"],
            "geometry": [shapely.box(170, 0, 190, 5), shapely.box(0, 0, 1, 1)],
        },
        crs="EPSG:4326",
    )
    cat = geoduck.import_table(frame, tmp_path / "c", columns={"id": "name", "datetime": "day"})
    rows = cat.to_geopandas().set_index("id")
    assert rows.loc["a", "start_datetime"] == pd.Timestamp("2023-06-15", tz="UTC")
    assert rows.loc["a", "end_datetime"] == pd.Timestamp("2023-06-15 23:59:59.999999", tz="UTC")
    assert rows.loc["a"].geometry.geom_type == "MultiPolygon"  # split at ±180°
    assert set(cat.query(bbox=(-175, 1, -172, 2)).to_arrow().column("id").to_pylist()) == {"a"}


def test_loaders_work_on_an_imported_table(tmp_path, archive_catalog):
    """The archive's rows handed over as a vendor table (other names, Web Mercator footprints,
    grid columns) load the same pixels as the catalog built from the files."""
    rows = archive_catalog.to_geopandas()
    vendor = rows[["id", "filepath", "crs", "count", "dtype", "nodata", "width", "height", "tile", "geometry"]].rename(
        columns={"id": "key", "filepath": "path", "crs": "native_crs"}
    )
    vendor["transform"] = [",".join(map(str, t)) for t in rows["transform"]]
    vendor["start"], vendor["end"] = rows["start_datetime"], rows["end_datetime"]
    vendor = vendor.to_crs(3857)
    source = tmp_path / "vendor.gpkg"
    pyogrio.write_dataframe(vendor, source)
    cat = geoduck.import_table(
        source,
        tmp_path / "cat",
        columns={
            "id": "key",
            "filepath": "path",
            "crs": "native_crs",
            "start_datetime": "start",
            "end_datetime": "end",
        },
    )
    assert len(cat) == len(rows)
    sl = geoduck.GeoSlice(
        (350_000, 4_400_000, 420_000, 4_460_000), "EPSG:32630", 500.0, start="2023-01-01", end="2023-12-31"
    )
    want = geoduck.load_raster(archive_catalog, sl, merge="last")
    got = geoduck.load_raster(cat, sl, merge="last")
    assert np.array_equal(np.asarray(got.values), np.asarray(want.values)) and np.asarray(want.values).any()
    got_ids = set(cat.query(bbox=sl.bounds, crs=sl.crs, start=sl.start, end=sl.end).to_arrow().column("id").to_pylist())
    want_ids = set(
        archive_catalog.query(bbox=sl.bounds, crs=sl.crs, start=sl.start, end=sl.end)
        .to_arrow()
        .column("id")
        .to_pylist()
    )
    assert got_ids == want_ids and got_ids


# -- the same parts on object storage --------------------------------------------------------------


@pytest.fixture
def s3():
    """A moto S3 server on 127.0.0.1 with the AWS variables pointing at it; yields an s3fs filesystem."""
    with moto_s3("foreign") as fs:
        yield fs


def test_foreign_parts_on_s3_open_by_their_column(tmp_path, s3):
    """Parts without geoduck's key-value entry (geopandas, DuckDB COPY, pyarrow) open from an
    ``s3://`` catalog too, with no part index: the ``schema_version`` column is read from the
    row-group statistics in the footers; queries give the brute-force answers."""
    frame = _frame(5)
    root = tmp_path / "gp"
    root.mkdir()
    frame.iloc[: N // 2].to_parquet(root / "a.parquet", write_covering_bbox=True, row_group_size=7)
    frame.iloc[N // 2 :].to_parquet(root / "b.parquet", write_covering_bbox=True, row_group_size=7)
    for part in sorted(root.iterdir()):
        assert schema.KV_SCHEMA_VERSION not in (pq.read_metadata(part).metadata or {})
        s3.put_file(str(part), f"foreign/gp/{part.name}")
    assert not s3.exists(f"foreign/gp/{store.INDEX}")
    cat = geoduck.open_catalog("s3://foreign/gp")
    assert len(cat) == N
    for box, t0, t1 in QUERIES:
        got = set(cat.query(bbox=box, start=t0, end=t1).to_arrow().column("id").to_pylist())
        assert got == _oracle(frame, box, t0, t1) and got
    # the column is the contract remotely as well: other versions or mixed values are refused
    for name, versions, text in (
        ("v7", [7] * N, "schema_version 7"),
        ("mixed", [1, 2] * (N // 2), r"schema_version values \[1, 2\], not one integer"),
        ("none", None, "neither a 'schema_version' column"),
    ):
        part = _damage(
            tmp_path / name, frame, schema_version=None if versions is None else pa.array(versions, pa.int32())
        )
        s3.put_file(str(part), f"foreign/{name}/{part.name}")
        with pytest.raises(SchemaError, match=text) as info:
            geoduck.open_catalog(f"s3://foreign/{name}")
        assert f"s3://foreign/{name}/{part.name}" in str(info.value)
    part = _damage(tmp_path / "kv", frame)  # a key-value entry that is not an integer
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, schema.KV_SCHEMA_VERSION: b"v1"}), part)
    s3.put_file(str(part), f"foreign/kv/{part.name}")
    with pytest.raises(SchemaError, match="geoduck:schema_version 'v1', not a non-negative integer"):
        geoduck.open_catalog("s3://foreign/kv")
