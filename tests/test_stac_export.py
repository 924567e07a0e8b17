"""STAC out: static catalogs (pystac) and stac-geoparquet (stac_geoparquet) checked against rasterio
reading the same files, read back by stac_geoparquet and rustac, validated offline by stac-validator."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import pystac
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from pystac.extensions.projection import ProjectionExtension
from rasterio.transform import from_origin
from shapely.geometry import shape

import geoduck
from geoduck import store
from geoduck.cli import main
from geoduck.errors import ArgumentError
from geoduck.geo import geojson_bbox_union
from geoduck.testing import SENTINEL2_REGEX, synthetic_sentinel2_archive, write_raster

DATES = (dt.date(2023, 6, 15), dt.date(2023, 6, 20))
BANDS_10M, BANDS_20M = ("B02", "B03"), ("B11",)


@pytest.fixture(scope="module")
def s2(tmp_path_factory):
    """A band-file catalog: 2 tiles (UTM 30/31) × 2 dates = 4 scenes of 3 band files."""
    root = tmp_path_factory.mktemp("s2")
    synthetic_sentinel2_archive(root / "arch", dates=DATES, size=40, bands_10m=BANDS_10M, bands_20m=BANDS_20M)
    return geoduck.build_raster_catalog(root / "arch", root / "cat", filename_regex=SENTINEL2_REGEX, progress=False)


def _item_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.name not in ("collection.json", "catalog.json"))


# -- the offline validator --------------------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails: a validator that tried to fetch a schema would fail."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _schema_map() -> dict[str, str]:
    """Remote STAC 1.1.0 core and GeoJSON schema URLs → the copies inside the pystac wheel."""
    base = Path(pystac.__file__).parent / "validation" / "jsonschemas"
    kinds = {"catalog.json": "catalog", "collection.json": "collection"}
    mapping = {
        f"https://schemas.stacspec.org/v1.1.0/{kinds.get(p.name, 'item')}-spec/json-schema/{p.name}": str(p)
        for p in (base / "stac-spec" / "v1.1.0").glob("*.json")
    }
    for name in ("Feature", "Geometry"):
        mapping[f"https://geojson.org/schema/{name}.json"] = str(base / "geojson" / f"{name}.json")
    return mapping


def _validate(path_or_dict) -> tuple[bool, list]:
    """stac-validator 4.1.2 core validation against the local schemas (no network)."""
    with warnings.catch_warnings():  # 4.1.2 announces its rename to stac_valid on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from stac_validator.validate import StacValidate

    if isinstance(path_or_dict, dict):
        v = StacValidate(core=True, schema_map=_schema_map())
        return bool(v.validate_dict(path_or_dict)), v.message
    v = StacValidate(str(path_or_dict), core=True, schema_map=_schema_map())
    return bool(v.run()), v.message


# -- static catalog ---------------------------------------------------------------------------------
def test_static_catalog_matches_the_files(s2, tmp_path):
    root_file = s2.to_stac(tmp_path / "stac")
    assert root_file == tmp_path / "stac" / "collection.json"
    coll = pystac.Collection.from_file(str(root_file))
    items = list(coll.get_items(recursive=True))
    rows = s2.to_arrow().to_pylist()
    scenes = {r["scene_id"] for r in rows}
    assert sorted(i.id for i in items) == sorted(scenes)  # one item per scene
    assert len(rows) == 12
    for item in items:
        mine = [r for r in rows if r["scene_id"] == item.id]
        assert sorted(item.assets) == sorted(r["band"] for r in mine)
        # interval: a date-only file name covers its whole day, so STAC gets a range, datetime null
        assert item.datetime is None
        assert item.common_metadata.start_datetime == mine[0]["start_datetime"]
        assert item.common_metadata.end_datetime == mine[0]["end_datetime"]
        assert item.properties["tile"] == mine[0]["tile"] and item.properties["sensor"] == mine[0]["sensor"]
        assert shape(item.geometry).equals_exact(shapely.from_wkb(mine[0]["geometry"]), 1e-12)
        for key, asset in item.assets.items():
            row = next(r for r in mine if r["band"] == key)
            assert asset.href == row["filepath"] and os.path.isabs(asset.href)
            assert asset.media_type == "image/tiff; application=geotiff" and asset.roles == ["data"]
            with rasterio.open(asset.href) as ds:  # every field against rasterio reading the file
                assert item.properties["proj:code"] == ds.crs.to_string()
                assert asset.extra_fields["proj:transform"] == list(ds.transform)[:6]
                assert asset.extra_fields["proj:shape"] == [ds.height, ds.width]
                assert asset.extra_fields["proj:bbox"] == list(ds.bounds)
                rb = asset.extra_fields["raster:bands"]
                assert [b["data_type"] for b in rb] == list(ds.dtypes)
                assert [b["nodata"] for b in rb] == [ds.nodata] * ds.count
                assert rb[0]["spatial_resolution"] == ds.res[0]
            assert asset.extra_fields["eo:bands"] == [{"name": key}]
    assert coll.extent.temporal.intervals == [
        [min(r["start_datetime"] for r in rows), max(r["end_datetime"] for r in rows)]
    ]
    west, south, east, north = coll.extent.spatial.bboxes[0]
    assert (west, south, east, north) == pytest.approx(s2.total_bounds)
    assert coll.summaries.get_list("proj:code") == ["EPSG:32630", "EPSG:32631"]
    assert [b["name"] for b in coll.summaries.get_list("eo:bands")] == ["B02", "B03", "B11"]


def test_stac_validator_accepts_every_file_offline(s2, tmp_path, no_network):
    root_file = s2.to_stac(tmp_path / "stac", relative_hrefs=True)
    files = [root_file, *_item_files(root_file.parent)]
    assert len(files) == 5
    for f in files:
        ok, message = _validate(f)
        assert ok, message
        assert message[0]["validation_method"] == "core" and message[0]["schema"][0].startswith(
            str(Path(pystac.__file__).parent)
        )
    broken = json.loads(files[1].read_text())
    broken["properties"].pop("start_datetime")  # datetime null needs a start/end range
    ok, message = _validate(broken)
    assert not ok


def test_relative_hrefs_resolve_to_the_files(s2, tmp_path):
    root_file = s2.to_stac(tmp_path / "stac", relative_hrefs=True)
    paths = {r["band"] + r["scene_id"]: r["filepath"] for r in s2.to_arrow().to_pylist()}
    for f in _item_files(root_file.parent):
        data = json.loads(f.read_text())
        for key, asset in data["assets"].items():
            assert not os.path.isabs(asset["href"])
            assert os.path.normpath(f.parent / asset["href"]) == paths[key + data["id"]]


def test_export_is_atomic_and_refuses_a_used_folder(s2, tmp_path, monkeypatch):
    out = tmp_path / "stac"
    out.mkdir()
    (out / "x").write_text("keep")
    with pytest.raises(ArgumentError, match="not an empty directory"):
        s2.to_stac(out)
    assert sorted(p.name for p in out.iterdir()) == ["x"]

    def fail(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pystac.Collection, "save", fail)
    with pytest.raises(geoduck.errors.StorageError, match="No space left"):
        s2.to_stac(tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stac"]  # no partial folder, no temp folder


# -- stac-geoparquet --------------------------------------------------------------------------------
def test_stac_geoparquet_reads_back_with_stac_geoparquet_and_rustac(s2, tmp_path, no_network):
    import rustac
    from stac_geoparquet.arrow import stac_table_to_items

    rel = s2.query(start="2023-06-15", end="2023-06-15")  # any query result
    path = s2.to_stac_geoparquet(tmp_path / "items.parquet", collection_href="../stac/{collection}/collection.json")
    part = rel.to_stac_geoparquet(tmp_path / "june15.parquet")
    expected = {
        i.id: i for i in (pystac.Item.from_file(str(f)) for f in _item_files(s2.to_stac(tmp_path / "s").parent))
    }
    via_sgp = [pystac.Item.from_dict(d) for d in stac_table_to_items(pq.read_table(path))]
    via_rustac = [pystac.Item.from_dict(d) for d in rustac.read_sync(str(path))["features"]]
    for got in (via_sgp, via_rustac):
        assert sorted(i.id for i in got) == sorted(expected)
        for item in got:
            want = expected[item.id]
            assert item.collection_id == "cat"
            assert item.get_single_link("collection").href == "../stac/cat/collection.json"
            assert {k: a.href for k, a in item.assets.items()} == {k: a.href for k, a in want.assets.items()}
            assert item.common_metadata.start_datetime == want.common_metadata.start_datetime
            assert item.common_metadata.end_datetime == want.common_metadata.end_datetime
            assert shape(item.geometry).equals_exact(shape(want.geometry), 1e-12)
            assert item.assets["B11"].extra_fields["proj:shape"] == [20, 20]
            ok, message = _validate(json.loads(json.dumps(item.to_dict(include_self_link=False))))
            assert ok, message
    features = rustac.read_sync(str(part))["features"]
    assert sorted(d["id"] for d in features) == sorted(
        r["scene_id"] for r in rel.to_arrow().to_pylist() if r["band"] == "B02"
    )
    for d in features:  # without collection_href: no collection field (STAC needs the link with it)
        assert "collection" not in d and _validate(json.loads(json.dumps(d)))[0]
    meta = json.loads(pq.read_schema(path).metadata[b"stac-geoparquet"])
    assert list(meta["collections"]) == ["cat"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_cli_export_stac(s2, tmp_path):
    runner = CliRunner()
    cat_dir = str(s2.node.root)
    res = runner.invoke(main, ["export", "stac", str(tmp_path / "out"), "-c", cat_dir, "--where", "band = 'B02'"])
    assert res.exit_code == 0, res.output
    items = [pystac.Item.from_file(str(f)) for f in _item_files(tmp_path / "out")]
    assert len(items) == 4 and all(list(i.assets) == ["B02"] for i in items)
    res = runner.invoke(
        main,
        ["export", "stac", str(tmp_path / "x.parquet"), "-c", cat_dir, "--start", "2023-06-20", "--end", "2023-06-20"],
    )
    assert res.exit_code == 0, res.output
    assert pq.read_table(tmp_path / "x.parquet").num_rows == 2
    res = runner.invoke(main, ["export", "stac", str(tmp_path / "out"), "-c", cat_dir])
    assert res.exit_code == 1 and res.output.startswith("Error:") and "not an empty directory" in res.output


# -- single files, static rows, antimeridian --------------------------------------------------------
def _write(path: Path, crs: str, transform, shape=(10, 20), nodata=None, dtype="float32") -> Path:
    values = np.arange(shape[0] * shape[1], dtype=dtype).reshape(shape)
    return write_raster(path, values, crs=crs, transform=transform, nodata=nodata)


def test_files_without_scenes_and_across_the_antimeridian(tmp_path):
    # UTM 60N, x 700-900 km at ~10°N: lon 178.8 … 180.6 (crosses ±180°); UTM 59N near lon 170-171
    east = _write(tmp_path / "f" / "east_20230102.tif", "EPSG:32660", from_origin(700_000, 1_200_000, 10_000, 10_000))
    west = _write(tmp_path / "f" / "west_20230101.tif", "EPSG:32659", from_origin(400_000, 1_200_000, 10_000, 10_000))
    cat = geoduck.build_raster_catalog(
        tmp_path / "f", tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})", progress=False
    )
    coll = pystac.Collection.from_file(str(cat.to_stac(tmp_path / "stac", collection_id="pacific")))
    items = {i.assets["data"].href: i for i in coll.get_items(recursive=True)}
    assert set(items) == {str(east), str(west)}
    ids = {r["filepath"]: r["id"] for r in cat.to_arrow().to_pylist()}
    for href, item in items.items():
        assert item.id == ids[href] and list(item.assets) == ["data"]
        assert "eo:bands" not in item.assets["data"].extra_fields
    e = items[str(east)]
    assert e.geometry["type"] == "MultiPolygon"  # split at ±180°
    parts = list(shape(e.geometry).geoms)
    east_of = [p.bounds for p in parts if p.bounds[0] >= 0]  # the part west of ±180° (lon 178.8 … 180)
    west_of = [p.bounds for p in parts if p.bounds[0] < 0]  # the part past it (lon -180 … -179.4)
    assert e.bbox == [
        east_of[0][0],
        min(b[1] for b in east_of + west_of),
        west_of[0][2],
        max(b[3] for b in east_of + west_of),
    ]
    assert e.bbox[0] > e.bbox[2] and 178.5 < e.bbox[0] < 179 and -179.5 < e.bbox[2] < -179
    w = items[str(west)]
    assert w.bbox == list(shape(w.geometry).bounds) and 169 < w.bbox[0] < w.bbox[2] < 172.5
    # the collection spans 170 → -179.4 across ±180°, not the whole globe
    xmin, _, xmax, _ = coll.extent.spatial.bboxes[0]
    assert (xmin, xmax) == (w.bbox[0], e.bbox[2])
    assert coll.id == "pacific"


def test_static_rows_need_a_datetime(tmp_path):
    _write(tmp_path / "f" / "dem.tif", "EPSG:32630", from_origin(500_000, 4_400_000, 30, 30), nodata=-9999)
    cat = geoduck.build_raster_catalog(tmp_path / "f", tmp_path / "cat", progress=False)
    with pytest.raises(ArgumentError, match="static_datetime"):
        cat.to_stac(tmp_path / "a")
    assert not (tmp_path / "a").exists()
    root = cat.to_stac(tmp_path / "b", static_datetime="2020-05-01")
    (item,) = pystac.Collection.from_file(str(root)).get_items(recursive=True)
    assert item.datetime == dt.datetime(2020, 5, 1, tzinfo=dt.UTC)
    assert item.assets["data"].extra_fields["raster:bands"] == [
        {"data_type": "float32", "nodata": -9999.0, "spatial_resolution": 30.0}
    ]


def test_pairs_cannot_be_exported(s2, tmp_path):
    with pytest.raises(ArgumentError, match="filepath"):
        s2.intersect(s2).to_stac(tmp_path / "x")


# -- the STAC-built row contract --------------------------------------------------------------------
def test_stac_built_rows_become_their_items_again(s2, tmp_path):
    """Rows as STAC-built catalogs write them (id = item/asset, scene_id = item id, band = asset key,
    ``collection``, typed property columns, nested properties as JSON) give back those items."""
    table = s2.to_arrow()
    rows = table.to_pylist()
    item_ids = {sid: f"S2_{k}" for k, sid in enumerate(sorted({r["scene_id"] for r in rows}))}
    clouds = {sid: 10.0 * k for k, sid in enumerate(sorted(item_ids))}
    table = (
        table.set_column(
            table.schema.get_field_index("id"), "id", pa.array([f"{item_ids[r['scene_id']]}/{r['band']}" for r in rows])
        )
        .set_column(
            table.schema.get_field_index("scene_id"), "scene_id", pa.array([item_ids[r["scene_id"]] for r in rows])
        )
        .append_column("collection", pa.array(["sentinel-2-l2a"] * len(rows)))
        .append_column("platform", pa.array([r["sensor"].lower().replace("s2", "sentinel-2") for r in rows]))
        .append_column("eo:cloud_cover", pa.array([clouds[r["scene_id"]] for r in rows]))
        .append_column("stac_properties", pa.array([json.dumps({"s2:grid": {"tile": r["tile"]}}) for r in rows]))
    )
    table = table.drop_columns(["sensor", "tile"])
    store.write_parts(table, tmp_path / "stac_cat")
    cat = geoduck.open_catalog(tmp_path / "stac_cat")
    coll = pystac.Collection.from_file(str(cat.to_stac(tmp_path / "out")))
    assert coll.id == "sentinel-2-l2a"
    items = {i.id: i for i in coll.get_items(recursive=True)}
    assert sorted(items) == sorted(item_ids.values())
    for r in rows:
        item = items[item_ids[r["scene_id"]]]
        assert item.assets[r["band"]].href == r["filepath"]
        assert item.properties["eo:cloud_cover"] == clouds[r["scene_id"]]
        assert item.properties["platform"] == r["sensor"].lower().replace("s2", "sentinel-2")
        assert item.properties["s2:grid"] == {"tile": r["tile"]}
        assert "stac_properties" not in item.properties and "collection" not in item.properties
    assert sorted(coll.summaries.get_list("platform")) == ["sentinel-2a", "sentinel-2b"]
    assert coll.summaries.get_range("eo:cloud_cover").minimum == 0.0


def test_two_rows_for_one_asset_are_refused(s2, tmp_path):
    table = s2.to_arrow()
    store.write_parts(
        table.set_column(table.schema.get_field_index("band"), "band", pa.array(["B02"] * table.num_rows)),
        tmp_path / "c",
    )
    with pytest.raises(ArgumentError, match="two rows for asset 'B02'"):
        geoduck.open_catalog(tmp_path / "c").to_stac(tmp_path / "x")


# -- antimeridian-aware bbox union against a brute-force oracle ------------------------------------------
def _arc(box) -> tuple[float, float]:
    """(west, width) of a GeoJSON bbox's longitude arc, degrees."""
    return box[0], (box[2] - box[0]) % 360


def test_bbox_union_is_the_shortest_covering_arc():
    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(1, 7))
        west = rng.uniform(-180, 180, n)
        east = (west + rng.uniform(0, 100, n) + 180) % 360 - 180
        boxes = [(float(w), -1.0, float(e), 1.0) for w, e in zip(west, east, strict=True)]
        got = geojson_bbox_union(boxes)
        gw, gwidth = _arc(got)
        if (got[0], got[2]) == (-180.0, 180.0):
            gwidth = 360.0
        for b in boxes:  # covers every box
            bw, bwidth = _arc(b)
            assert (bw - gw) % 360 + bwidth <= gwidth + 1e-9 or gwidth == 360.0
        # oracle: the shortest arc starting at some box's west edge that covers every box
        best = min(max((_arc(b)[0] - w0) % 360 + _arc(b)[1] for b in boxes) for w0, *_ in boxes)
        assert gwidth == pytest.approx(min(best, 360.0), abs=1e-9)


def test_several_collections_give_a_root_catalog(s2, tmp_path, no_network):
    table = s2.to_arrow()
    names = ["s2-30" if r["tile"].startswith("30") else "s2-31" for r in table.to_pylist()]
    store.write_parts(table.append_column("collection", pa.array(names)), tmp_path / "c")
    root_file = geoduck.open_catalog(tmp_path / "c").to_stac(tmp_path / "out")
    assert root_file.name == "catalog.json"
    root = pystac.Catalog.from_file(str(root_file))
    children = {c.id: c for c in root.get_children()}
    assert sorted(children) == ["s2-30", "s2-31"]
    for cid, coll in children.items():
        items = list(coll.get_items())
        assert len(items) == 2 and all(i.properties["proj:code"] == f"EPSG:326{cid[-2:]}" for i in items)
        assert coll.summaries.get_list("proj:code") == [f"EPSG:326{cid[-2:]}"]
    for f in root_file.parent.rglob("*.json"):
        ok, message = _validate(f)
        assert ok, message


def test_crs_without_code_and_nan_nodata(tmp_path, no_network):
    crs = "+proj=tmerc +lon_0=7.3 +lat_0=0 +k=0.9996 +x_0=500000 +datum=WGS84 +units=m"
    _write(tmp_path / "f" / "t_20230101.tif", crs, from_origin(500_000, 5_000_000, 100, 100), nodata=float("nan"))
    cat = geoduck.build_raster_catalog(
        tmp_path / "f", tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})", progress=False
    )
    (row,) = cat.to_arrow().to_pylist()
    assert "[" in row["crs"]  # no authority code: the catalog holds WKT2
    root = cat.to_stac(tmp_path / "out")
    (item,) = pystac.Collection.from_file(str(root)).get_items(recursive=True)
    asset = item.assets["data"]
    proj = ProjectionExtension.ext(asset)
    assert proj.code is None and proj.wkt2 == row["crs"] and "proj:code" not in item.properties
    with rasterio.open(asset.href) as ds:
        assert pyproj.CRS.from_wkt(proj.wkt2) == pyproj.CRS.from_user_input(ds.crs.to_wkt())
    assert asset.extra_fields["raster:bands"][0]["nodata"] == "nan"
    for f in root.parent.rglob("*.json"):
        assert _validate(f)[0]
