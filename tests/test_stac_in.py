"""STAC in (``geoduck.from_stac`` / ``geoduck build stac``): items built with pystac over real local
COGs (written here with rasterio, plus a file of the real corpus), read from a static catalog, an
ItemCollection JSON file, stac-geoparquet and a STAC API served on 127.0.0.1 by the test itself.
Rows are checked against the items, pixels against rasterio and against ``odc.stac.load``."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pystac
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.transform import Affine
from stac_api import stac_api

import geoduck
from geoduck.cli import main
from geoduck.errors import ArgumentError, BuildError

RES = 20.0
SIZE = 48  # pixels per side: tiles of 960 m
CRS = "EPSG:32630"
X0, Y0 = 400_000.0, 4_500_000.0  # upper-left of the first tile
TILES = {"T1": (X0, Y0), "T2": (X0 + SIZE * RES, Y0)}  # side by side
DATES = ["2023-06-01T10:30:00Z", "2023-06-11T10:30:00Z"]
S2_BANDS = {"B04": "red", "B03": "green", "B02": "blue"}
NODATA = 0


def _write_cog(path: Path, values: np.ndarray, transform: Affine) -> None:
    profile = dict(
        driver="COG", width=values.shape[1], height=values.shape[0], count=1, dtype="uint16",
        crs=CRS, transform=transform, nodata=NODATA, blocksize=16,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)


def _lonlat_polygon(x0: float, y0: float) -> dict:
    from pyproj import Transformer

    t = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    xs, ys = [x0, x0 + SIZE * RES, x0 + SIZE * RES, x0, x0], [y0, y0, y0 - SIZE * RES, y0 - SIZE * RES, y0]
    lon, lat = t.transform(xs, ys)
    return shapely.geometry.mapping(shapely.Polygon(zip(lon, lat, strict=True)))


def _item(item_id: str, tile: str, date: str, cloud: float, assets: dict[str, Path], style: str) -> pystac.Item:
    x0, y0 = TILES[tile]
    geom = _lonlat_polygon(x0, y0)
    item = pystac.Item(
        id=item_id,
        geometry=geom,
        bbox=list(shapely.geometry.shape(geom).bounds),
        datetime=datetime.fromisoformat(date),
        properties={
            "eo:cloud_cover": cloud,
            "platform": "sentinel-2a" if tile == "T1" else "sentinel-2b",
            "s2:tile": tile,
            "proj:code": CRS,
            "s2:processing": {"baseline": "05.09", "steps": [1, 2]},
        },
        collection="s2-test",
    )
    for key, path in assets.items():
        common = S2_BANDS.get(key, key)
        item.add_asset(
            key,
            pystac.Asset(
                href=str(path),
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={
                    "proj:shape": [SIZE, SIZE],
                    "proj:transform": [RES, 0.0, x0, 0.0, -RES, y0],
                    "eo:bands": [{"name": key, "common_name": common}] if style == "pc" else [{"name": key}],
                    "raster:bands": [{"data_type": "uint16", "nodata": NODATA}],
                },
            ),
        )
    item.add_asset(
        "thumbnail", pystac.Asset(href=str(path) + ".png", media_type=pystac.MediaType.PNG, roles=["thumbnail"])
    )
    return item


def _make_items(root: Path, style: str) -> list[pystac.Item]:
    """Two tiles × two dates; asset keys ``B04/B03/B02`` (Planetary-Computer style, common names
    red/green/blue) or ``red/green/blue`` (Earth-Search style). Pixel values are seeded noise
    (1..9999, with a nodata corner), different in every file."""
    rng = np.random.default_rng(7 if style == "pc" else 8)
    items = []
    for d, date in enumerate(DATES):
        for tile, (x0, y0) in TILES.items():
            item_id = f"S2_{tile}_{date[:10].replace('-', '')}"
            assets = {}
            for key in S2_BANDS if style == "pc" else S2_BANDS.values():
                values = rng.integers(1, 10_000, (SIZE, SIZE), dtype=np.uint16)
                values[: 6 + 4 * d, : 5 + 3 * d] = NODATA  # a hole where the other date shows through
                path = root / "cogs" / f"{item_id}_{key}.tif"
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_cog(path, values, Affine(RES, 0, x0, 0, -RES, y0))
                assets[key] = path
            items.append(_item(item_id, tile, date, 5.0 + 20.0 * len(items), assets, style))
    return items


@pytest.fixture(scope="module")
def stac(tmp_path_factory):
    """Items, and every kind of source holding them."""
    root = tmp_path_factory.mktemp("stac")
    items = _make_items(root, "pc")
    # static catalog: catalog.json → collection → items, asset hrefs relative
    cat = pystac.Catalog("root", "test catalog")
    coll = pystac.Collection(
        "s2-test",
        "test",
        pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])),
    )
    cat.add_child(coll)
    for it in items:
        coll.add_item(it.clone())
    cat.normalize_hrefs(str(root / "static"))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    # ItemCollection JSON, plus two malformed items
    features = [it.to_dict() for it in items]
    bad_time = copy.deepcopy(features[0])
    bad_time["id"], bad_time["properties"]["datetime"] = "no-time", None
    bad_assets = copy.deepcopy(features[1])
    bad_assets["id"] = "no-raster"
    bad_assets["assets"] = {"thumbnail": bad_assets["assets"]["thumbnail"]}
    bad_proj = copy.deepcopy(features[2])
    bad_proj["id"] = "bad-proj"
    bad_proj["assets"]["B04"]["proj:transform"] = [20.0, 0.0, 1.0]
    ic_path = root / "items.json"
    ic_path.write_text(
        json.dumps({"type": "FeatureCollection", "features": [*features, bad_time, bad_assets, bad_proj]})
    )
    # stac-geoparquet
    import stac_geoparquet

    gpq = root / "items.parquet"
    reader = stac_geoparquet.arrow.parse_stac_items_to_arrow(features)
    stac_geoparquet.arrow.to_parquet(reader, gpq)
    return {"root": root, "items": items, "static": root / "static" / "catalog.json", "ic": ic_path, "gpq": gpq}


# -- a minimal STAC API on 127.0.0.1 --------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(stac):
    with stac_api([it.to_dict() for it in stac["items"]]) as server:
        yield server


@pytest.fixture
def api(api_server) -> str:
    return api_server.base


# -- helpers ----------------------------------------------------------------------------------------


def _rows(cat: geoduck.Catalog) -> dict[str, dict]:
    return {r["id"]: r for r in cat.to_arrow().to_pylist()}


def _expected_rows(items: list[pystac.Item]) -> dict[str, dict]:
    out = {}
    for it in items:
        for key, asset in it.assets.items():
            if key == "thumbnail":
                continue
            out[f"{it.id}/{key}"] = {"href": str(Path(asset.get_absolute_href()).resolve()), "item": it, "key": key}
    return out


def _check_rows(cat: geoduck.Catalog, items: list[pystac.Item]) -> None:
    rows, want = _rows(cat), _expected_rows(items)
    assert set(rows) == set(want)
    for rid, w in want.items():
        r, it = rows[rid], w["item"]
        x0, y0 = TILES[it.properties["s2:tile"]]
        assert r["filepath"] == w["href"]
        assert r["backend"] == "raster" and r["scene_id"] == it.id and r["band"] == w["key"]
        assert r["collection"] == "s2-test"
        assert r["common_name"] == S2_BANDS[w["key"]]
        assert r["start_datetime"] == r["end_datetime"] == it.datetime.astimezone(UTC)
        assert r["crs"] == CRS
        assert r["transform"] == [RES, 0.0, x0, 0.0, -RES, y0]
        assert (r["width"], r["height"], r["count"], r["dtype"], r["nodata"]) == (SIZE, SIZE, 1, "uint16", 0.0)
        assert r["native_bounds"] == {"xmin": x0, "ymin": y0 - SIZE * RES, "xmax": x0 + SIZE * RES, "ymax": y0}
        assert shapely.from_wkb(r["geometry"]).equals_exact(shapely.geometry.shape(it.geometry), 1e-12)
        assert r["eo:cloud_cover"] == it.properties["eo:cloud_cover"]
        assert r["platform"] == it.properties["platform"]
        props = json.loads(r["stac_properties"])
        assert props == {"proj:code": CRS, "s2:processing": {"baseline": "05.09", "steps": [1, 2]}} or props == {
            "s2:processing": {"baseline": "05.09", "steps": [1, 2]}
        }
        with rasterio.open(r["filepath"]) as src:  # the catalogued grid is the file's
            assert tuple(src.transform)[:6] == tuple(r["transform"]) and src.crs.to_string() == CRS


def _slice(date: str | None = None) -> geoduck.GeoSlice:
    bounds = (X0, Y0 - SIZE * RES, X0 + 2 * SIZE * RES, Y0)
    return geoduck.GeoSlice(bounds, CRS, RES, start=date[:10] if date else None, end=date[:10] if date else None)


def _rasterio_mosaic(items: list[pystac.Item], keys: list[str], date: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Expected first-valid mosaic of the items (oldest first) on :func:`_slice`'s grid, read
    with rasterio: a scene pixel is valid where all its bands are."""
    out = np.zeros((len(keys), SIZE, 2 * SIZE), np.uint16)
    valid = np.zeros((SIZE, 2 * SIZE), bool)
    for it in sorted(items, key=lambda i: i.datetime):
        if date and it.datetime.date().isoformat() != date[:10]:
            continue
        col = int((TILES[it.properties["s2:tile"]][0] - X0) / RES)
        stack = []
        for k in keys:
            with rasterio.open(it.assets[k].get_absolute_href()) as src:
                stack.append(src.read(1))
        v = np.stack(stack)
        ok = (v != NODATA).all(axis=0)
        region = valid[:, col : col + SIZE]
        take = ok & ~region
        out[:, :, col : col + SIZE][:, take] = v[:, take]
        region |= ok
    return out, valid


# -- tests ------------------------------------------------------------------------------------------


def test_static_catalog_with_a_broken_link(stac, tmp_path):
    """An unreadable item or child link is reported by its href; the other items are indexed."""
    import shutil

    root = tmp_path / "static"
    shutil.copytree(stac["static"].parent, root)
    coll = json.loads((root / "s2-test" / "collection.json").read_text())
    gone = next(link["href"] for link in coll["links"] if link["rel"] == "item")
    (root / "s2-test" / gone).unlink()
    cat = json.loads((root / "catalog.json").read_text())
    cat["links"].append({"rel": "child", "href": "./missing/catalog.json", "type": "application/json"})
    (root / "catalog.json").write_text(json.dumps(cat))
    built = geoduck.from_stac(root, tmp_path / "cat", progress=False)
    errors = dict(built.build_report.errors)
    assert len(errors) == 2 and len(built) == 9
    assert any(k.endswith(gone.lstrip("./")) and "cannot read item" in v for k, v in errors.items())
    assert any(k.endswith("missing/catalog.json") and "child catalog" in v for k, v in errors.items())


@pytest.mark.parametrize("kind", ["static", "ic", "gpq", "objects"])
def test_sources_give_the_contract_rows(stac, tmp_path, kind):
    source = stac["items"] if kind == "objects" else stac[kind]
    cat = geoduck.from_stac(source, tmp_path / "cat", progress=False)
    _check_rows(cat, stac["items"])
    report = cat.build_report
    assert report.indexed == 12 and report.files_indexed == 4
    if kind == "ic":  # the two malformed items, by id
        errors = dict(report.errors)
        assert set(errors) == {"no-time", "no-raster", "bad-proj"}
        assert "datetime" in errors["no-time"] and "no raster asset" in errors["no-raster"]
        assert "proj:transform" in errors["bad-proj"]
    else:
        assert report.errors == ()


def test_relative_hrefs_resolve_against_the_item_location(stac, tmp_path):
    """A relative asset href is resolved against the item's self link, else against the file the
    item was read from; with neither, the item is reported by id and skipped."""
    import os

    features = [it.to_dict() for it in stac["items"]]
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    want = {}
    for f in features:  # relative to the ItemCollection file's folder, no self link
        f["links"] = [link for link in f["links"] if link["rel"] != "self"]
        for key, asset in f["assets"].items():
            if key != "thumbnail":
                want[f"{f['id']}/{key}"] = asset["href"]
            asset["href"] = os.path.relpath(asset["href"], sub)
            assert asset["href"].startswith("../")
    web = copy.deepcopy(features[0])  # relative to a self link elsewhere (a URL)
    web["id"] = "on-the-web"
    web["links"] = [{"rel": "self", "href": "https://example.test/stac/items/on-the-web.json"}]
    web["assets"] = {"B04": {**web["assets"]["B04"], "href": "./cogs/B04.tif"}}
    (sub / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [*features, web]}))
    cat = geoduck.from_stac(sub / "items.json", tmp_path / "cat", progress=False)
    rows = _rows(cat)
    assert rows.pop("on-the-web/B04")["filepath"] == "https://example.test/stac/items/cogs/B04.tif"
    assert {rid: r["filepath"] for rid, r in rows.items()} == want and len(want) == 12
    # item dicts without a self link or a file: nothing to resolve against
    absolute = stac["items"][1].to_dict()
    orphan = geoduck.from_stac([features[0], absolute], tmp_path / "orphan", progress=False, assets=["B04"])
    assert set(_rows(orphan)) == {f"{absolute['id']}/B04"}
    ((item_id, reason),) = orphan.build_report.errors
    assert item_id == features[0]["id"] and "is relative" in reason and "self link" in reason


def test_api_search_pages_and_filters(stac, api, api_server, tmp_path):
    api_server.requests.clear()
    cat = geoduck.from_stac(api, tmp_path / "cat", progress=False, search={"collections": ["s2-test"], "limit": 1})
    _check_rows(cat, stac["items"])
    assert api_server.requests.count("/search") == 4  # one item per page, next links followed
    capped = geoduck.from_stac(api, tmp_path / "cap", progress=False, search={"max_items": 3})
    assert capped.build_report.files_indexed == 3 and len(capped) == 9
    with pytest.raises(BuildError, match="could be indexed"):  # no item matched: no catalog
        geoduck.from_stac(api, tmp_path / "none", progress=False, search={"collections": ["other"]})


def test_cli_build_stac_from_an_api(stac, api, api_server, tmp_path):
    """The CLI's search options reach the API as STAC item-search parameters."""
    api_server.queries.clear()
    out = tmp_path / "cli"
    args = ["build", "stac", api, "-o", str(out), "--no-progress", "--collection", "s2-test"]
    args += ["--bbox", "-4", "40", "-3", "41", "--datetime", "2023-06", "--max-items", "3", "--asset", "B04"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "3 items indexed" in res.output
    rows = _rows(geoduck.open_catalog(out))
    assert {r["band"] for r in rows.values()} == {"B04"} and len(rows) == 3
    assert {r["scene_id"] for r in rows.values()} == {it.id for it in stac["items"][:3]}
    first = api_server.queries[0]
    assert first["collections"] == "s2-test"
    assert [float(v) for v in first["bbox"].split(",")] == [-4.0, 40.0, -3.0, 41.0]
    assert first["datetime"].startswith("2023-06-01T00:00:00") and "/2023-06-30T23:59:59" in first["datetime"]


def test_property_columns_are_typed_and_queryable(stac, tmp_path):
    cat = geoduck.from_stac(stac["static"], tmp_path / "cat", progress=False)
    types = dict(zip(cat.to_arrow().schema.names, cat.to_arrow().schema.types, strict=True))
    assert types["eo:cloud_cover"] == pa.float64() and types["platform"] == pa.string()
    clear = cat.where('"eo:cloud_cover" < 30')
    want = {it.id for it in stac["items"] if it.properties["eo:cloud_cover"] < 30}
    assert {r["scene_id"] for r in clear.to_arrow().to_pylist()} == want and len(want) == 2
    june1 = cat.query(start="2023-06-01", end="2023-06-01")
    assert {r["scene_id"] for r in june1.to_arrow().to_pylist()} == {"S2_T1_20230601", "S2_T2_20230601"}
    # a bbox inside tile 2 only (UTM), both dates
    t2 = cat.query(bbox=(X0 + SIZE * RES + 100, Y0 - 500, X0 + SIZE * RES + 300, Y0 - 100), crs=CRS)
    assert {r["scene_id"] for r in t2.to_arrow().to_pylist()} == {"S2_T2_20230601", "S2_T2_20230611"}
    b2 = cat.where("platform = 'sentinel-2b' AND band = 'B03'")
    assert len(b2) == 2


@pytest.mark.parametrize("style", ["pc", "es"])
def test_load_raster_by_common_name_equals_rasterio(stac, tmp_path, style):
    items = stac["items"] if style == "pc" else _make_items(tmp_path, "es")
    cat = geoduck.from_stac(items, tmp_path / "cat", progress=False)
    keys = list(S2_BANDS) if style == "pc" else list(S2_BANDS.values())
    for date in (None, DATES[1]):
        got = geoduck.load_raster(cat, _slice(date), bands=["red", "green", "blue"], merge="first")
        want, valid = _rasterio_mosaic(items, keys, date)
        assert got.values.shape == want.shape
        assert np.array_equal(np.asarray(got.values)[:, valid], want[:, valid])
        assert (np.asarray(got.values)[:, ~valid] == NODATA).all()
    with pytest.raises(ArgumentError, match="red"):
        geoduck.load_raster(cat, _slice(), bands=["swir"])


def test_append_skips_unchanged_and_reports_changed(stac, tmp_path):
    out = tmp_path / "cat"
    features = [it.to_dict() for it in stac["items"]]
    geoduck.from_stac(features[:3], out, progress=False)
    again = geoduck.from_stac(features, out, progress=False)
    r = again.build_report
    assert (r.indexed, r.files_indexed, r.unchanged, r.changed) == (3, 1, 3, ())
    assert len(again) == 12 and len(set(_rows(again))) == 12
    edited = copy.deepcopy(features[0])
    edited["properties"]["eo:cloud_cover"] = 99.0
    r2 = geoduck.from_stac([edited, *features[1:]], out, progress=False).build_report
    assert (r2.indexed, r2.unchanged, r2.changed) == (0, 3, (features[0]["id"],))
    # a new asset selection of indexed items adds only the new rows
    only_red = geoduck.from_stac(features, tmp_path / "red", assets=["B04"], progress=False)
    assert {r["band"] for r in _rows(only_red).values()} == {"B04"} and len(only_red) == 4


def _item_without_proj(path: Path) -> dict:
    """An item of one real GeoTIFF whose asset has no ``proj:*`` fields (its grid only in the header)."""
    from rasterio.warp import transform_geom

    with rasterio.open(path) as src:
        geom = transform_geom(src.crs, "EPSG:4326", shapely.geometry.mapping(shapely.box(*src.bounds)))
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": "L7", "geometry": geom,
        "properties": {"datetime": "2000-07-01T00:00:00Z"}, "links": [],
        "assets": {"image": {"href": str(path), "type": "image/tiff; application=geotiff"}},
    }  # fmt: skip


def test_corpus_asset_headers(stac, tmp_path, corpus_dir):
    path = corpus_dir / "stars" / "L7_ETMs.tif"
    with rasterio.open(path) as src:
        want = (src.crs.to_epsg(), tuple(src.transform)[:6], src.width, src.height, src.count, src.dtypes[0])
        pixels = src.read()
    item = _item_without_proj(path)
    bare = _rows(geoduck.from_stac([item], tmp_path / "bare", progress=False))["L7/image"]
    assert bare["crs"] is None and bare["transform"] is None and bare["width"] is None
    cat = geoduck.from_stac([item], tmp_path / "hdr", read_headers=True, progress=False)
    r = _rows(cat)["L7/image"]
    assert (int(r["crs"].split(":")[1]), tuple(r["transform"]), r["width"], r["height"], r["count"], r["dtype"]) == want
    t = r["transform"]
    sl = geoduck.GeoSlice((t[2], t[5] + t[4] * r["height"], t[2] + t[0] * r["width"], t[5]), r["crs"], (t[0], -t[4]))
    got = geoduck.load_raster(cat, sl, bands=["image"])
    assert np.array_equal(np.asarray(got.values), pixels)


def test_samplers_on_items_without_proj_point_to_read_headers(tmp_path, corpus_dir):
    """Rows without a native grid (items lacking proj:*) cannot be sampled natively: the errors
    name the fix (``read_headers=True`` / ``--read-headers``), which then gives chips equal to
    rasterio's windows of the file."""
    from geoduck.errors import CRSError

    path = corpus_dir / "stars" / "L7_ETMs.tif"
    bare = geoduck.from_stac([_item_without_proj(path)], tmp_path / "bare", progress=False)
    with pytest.raises(CRSError, match=r"has no native crs.*read_headers=True.*--read-headers"):
        geoduck.random_sampler(bare, chip_size=16, length=2)
    with pytest.raises(ArgumentError, match=r"no pixel size.*STAC items.*read_headers=True.*--read-headers"):
        geoduck.grid_sampler(bare, chip_size=16)
    with pytest.raises(ArgumentError, match=r"no native crs/native_bounds.*read_headers=True"):
        geoduck.GeoSlice.from_row(bare.to_arrow().to_pylist()[0])
    cat = geoduck.from_stac([_item_without_proj(path)], tmp_path / "hdr", read_headers=True, progress=False)
    with rasterio.open(path) as src:
        for chip in geoduck.random_sampler(cat, chip_size=16, length=3, seed=1):
            assert chip.crs == src.crs.to_string() and chip.shape == (16, 16)
            window = rasterio.windows.from_bounds(*chip.bounds, transform=src.transform)
            want = src.read(window=window.round_offsets().round_lengths())
            got = geoduck.load_raster(cat, chip, bands=["image"])
            assert np.array_equal(np.asarray(got.values), want)


def test_cli_build_stac(stac, tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        main, ["build", "stac", str(stac["ic"]), "-o", str(out), "--asset", "B04", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "4 items indexed" in res.output and "skipped item no-time" in res.output
    assert len(geoduck.open_catalog(out)) == 4
    shown = CliRunner().invoke(main, ["build", "stac", str(stac["ic"]), "-o", str(tmp_path / "bar")])
    assert shown.exit_code == 0, shown.output  # the progress bar counts items, the malformed ones too
    assert "indexing STAC items: 100%" in shown.output and "7/7" in shown.output
    bad = CliRunner().invoke(main, ["build", "stac", str(tmp_path / "missing.json"), "-o", str(out)])
    assert bad.exit_code == 1 and "does not exist" in bad.output


def test_bad_source_arguments(stac, tmp_path):
    with pytest.raises(ArgumentError, match="search"):
        geoduck.from_stac(stac["static"], tmp_path / "x", search={"collections": ["a"]}, progress=False)
    with pytest.raises(ArgumentError, match="assets"):
        geoduck.from_stac(stac["static"], tmp_path / "x", assets=[], progress=False)


# -- peer check: odc-stac ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grid",
    [
        (CRS, RES, (X0, Y0 - SIZE * RES, X0 + 2 * SIZE * RES, Y0)),  # the native grid
        # coarser and shifted: pixel centres 2 or 12 m inside source pixels (no nearest-neighbour ties)
        (CRS, 30.0, (X0 + 7, Y0 - 7 - 30 * 30, X0 + 7 + 30 * 60, Y0 - 7)),
        # another UTM zone: reprojected on read
        ("EPSG:32629", 25.0, (907_500.0, 4_509_100.0, 909_300.0, 4_510_400.0)),
    ],
)
def test_load_raster_equals_odc_stac_load(stac, tmp_path, grid):
    from odc.geo.geobox import GeoBox
    from odc.stac import load as odc_load

    crs, res, bounds = grid
    cat = geoduck.from_stac(stac["items"], tmp_path / "cat", progress=False)
    width, height = round((bounds[2] - bounds[0]) / res), round((bounds[3] - bounds[1]) / res)
    gbox = GeoBox((height, width), Affine(res, 0, bounds[0], 0, -res, bounds[3]), crs)
    ds = odc_load(stac["items"], bands=["B04", "B03", "B02"], geobox=gbox, resampling="nearest", groupby="time")
    for t in ds.time.values:
        day = str(t)[:10]
        got = geoduck.load_raster(
            cat,
            geoduck.GeoSlice(bounds, crs, res, start=day, end=day),
            bands=["red", "green", "blue"],
            resampling="nearest",
        )
        want = np.stack([ds[b].sel(time=t).values for b in ("B04", "B03", "B02")])
        assert got.values.shape == want.shape and math.isclose(got.transform.a, res)
        assert (want != NODATA).mean() > 0.5  # the grid lies on data
        assert np.array_equal(np.asarray(got.values), want)


def test_parts_with_different_property_columns(stac, tmp_path):
    """Batches whose items have different properties write parts with different columns; the
    catalog reads them together by name (a column a part lacks is null there)."""
    features = [it.to_dict() for it in stac["items"]]
    for i, f in enumerate(features):
        if i % 2:
            f["properties"]["view:sun_elevation"] = 30.0 + i
            f["properties"]["big"] = 2**70  # beyond BIGINT: kept in the JSON column
    cat = geoduck.from_stac(features, tmp_path / "cat", progress=False, part_rows=3)
    assert len(cat.build_report.parts) == 4
    rows = _rows(cat)
    for rid, r in rows.items():
        odd = r["scene_id"] in {f["id"] for f in features[1::2]}
        assert (r["view:sun_elevation"] is not None) == odd
        assert ("big" in json.loads(r["stac_properties"])) == odd
    assert len(cat.where('"view:sun_elevation" > 31')) == 3  # the last odd item's 3 assets
    geoduck.compact(tmp_path / "cat")  # one schema again, same rows
    assert _rows(geoduck.open_catalog(tmp_path / "cat")) == rows
