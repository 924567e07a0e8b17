"""STAC → geoduck → STAC: items built with pystac over real COGs, indexed by ``from_stac`` and
exported again (static catalog and stac-geoparquet) keep their ids, geometries, datetimes, hrefs,
asset keys, properties and projection fields."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest
import rasterio
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from rasterio.transform import Affine
from shapely.geometry import box, mapping, shape
from test_stac_export import _item_files, _validate  # the offline stac-validator set-up

import geoduck
from geoduck.testing import write_raster

UTC = dt.UTC


def _cog(path, crs, transform, shape_=(20, 30)):
    values = (np.arange(shape_[0] * shape_[1]) % 251).astype("uint8").reshape(shape_)
    return write_raster(path, values, crs=crs, transform=transform, nodata=0)


def _lonlat(path) -> dict:
    """The file's footprint in lon/lat as rasterio reports it (a plain box is enough here)."""
    with rasterio.open(path) as ds:
        from rasterio.warp import transform_bounds

        return mapping(box(*transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)))


def _add_asset(item: pystac.Item, key: str, path, common_name: str | None) -> None:
    with rasterio.open(path) as ds:
        asset = pystac.Asset(href=str(path), media_type=pystac.MediaType.COG, roles=["data"])
        item.add_asset(key, asset)
        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        proj.transform = list(ds.transform)[:6]
        proj.shape = [ds.height, ds.width]
        proj.bbox = list(ds.bounds)
        EOExtension.ext(asset, add_if_missing=True).bands = [Band.create(name=key, common_name=common_name)]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt")
    data = root / "data"
    items = []
    # 1: an instant, two bands at 10/20 m in UTM 30N, scalar and nested properties
    it = pystac.Item(
        "S2A_30TVK_20230615",
        geometry=None,
        bbox=None,
        datetime=dt.datetime(2023, 6, 15, 10, 56, 19, 24_000, tzinfo=UTC),
        properties={"eo:cloud_cover": 12.5, "platform": "sentinel-2a", "s2:processing": {"baseline": "05.09"}},
    )
    red = _cog(data / "a" / "B04.tif", "EPSG:32630", Affine(10, 0, 500_000, 0, -10, 4_400_000))
    nir = _cog(data / "a" / "B08.tif", "EPSG:32630", Affine(20, 0, 500_000, 0, -20, 4_400_000), (10, 15))
    it.geometry, it.bbox = _lonlat(red), list(shape(_lonlat(red)).bounds)
    ProjectionExtension.ext(it, add_if_missing=True).code = "EPSG:32630"
    _add_asset(it, "B04", red, "red")
    _add_asset(it, "B08", nir, "nir")
    items.append(it)
    # 2: a range (datetime null), one band
    it = pystac.Item(
        "monthly_2023_06",
        geometry=None,
        bbox=None,
        datetime=None,
        start_datetime=dt.datetime(2023, 6, 1, tzinfo=UTC),
        end_datetime=dt.datetime(2023, 6, 30, 23, 59, 59, tzinfo=UTC),
        properties={"eo:cloud_cover": 3.0, "platform": "sentinel-2b"},
    )
    comp = _cog(data / "m" / "red.tif", "EPSG:32630", Affine(30, 0, 500_300, 0, -30, 4_399_900))
    it.geometry, it.bbox = _lonlat(comp), list(shape(_lonlat(comp)).bounds)
    ProjectionExtension.ext(it, add_if_missing=True).code = "EPSG:32630"
    _add_asset(it, "red", comp, "red")
    items.append(it)
    # 3: across the antimeridian (UTM 60N, lon 178.8 … 180.6), geometry split at ±180°
    it = pystac.Item(
        "pacific_20230620",
        geometry={
            "type": "MultiPolygon",
            "coordinates": [
                [[[178.8, 9.9], [180.0, 9.9], [180.0, 10.8], [178.8, 10.8], [178.8, 9.9]]],
                [[[-180.0, 9.9], [-179.4, 9.9], [-179.4, 10.8], [-180.0, 10.8], [-180.0, 9.9]]],
            ],
        },
        bbox=[178.8, 9.9, -179.4, 10.8],
        datetime=dt.datetime(2023, 6, 20, 22, 10, tzinfo=UTC),
        properties={"eo:cloud_cover": 40.0, "platform": "sentinel-2a"},
    )
    pac = _cog(data / "p" / "B04.tif", "EPSG:32660", Affine(10_000, 0, 700_000, 0, -10_000, 1_200_000), (10, 20))
    ProjectionExtension.ext(it, add_if_missing=True).code = "EPSG:32660"
    _add_asset(it, "B04", pac, "red")
    items.append(it)
    coll = pystac.Collection(
        "sentinel-2-l2a",
        "round trip",
        pystac.Extent(
            pystac.SpatialExtent([[-180, -90, 180, 90]]),
            pystac.TemporalExtent([[dt.datetime(2023, 1, 1, tzinfo=UTC), None]]),
        ),
    )
    coll.add_items(items)
    coll.normalize_hrefs(str(root / "src"))
    coll.make_all_asset_hrefs_relative()  # from_stac resolves them against each item file
    coll.save(pystac.CatalogType.SELF_CONTAINED)
    return root, {i.id: i for i in pystac.Collection.from_file(str(root / "src" / "collection.json")).get_items()}


def _effective(item: pystac.Item, asset: pystac.Asset, name: str):
    return asset.extra_fields.get(name, item.properties.get(name))


def _same_items(got: dict[str, pystac.Item], want: dict[str, pystac.Item]) -> None:
    assert sorted(got) == sorted(want)
    for item_id, w in want.items():
        g = got[item_id]
        assert g.collection_id == "sentinel-2-l2a"
        assert shape(g.geometry).equals_exact(shape(w.geometry), 0.0)  # exactly the same coordinates
        assert g.geometry["type"] == w.geometry["type"]
        assert g.bbox == pytest.approx(w.bbox)
        assert g.datetime == w.datetime
        assert g.common_metadata.start_datetime == w.common_metadata.start_datetime
        assert g.common_metadata.end_datetime == w.common_metadata.end_datetime
        for key in ("eo:cloud_cover", "platform", "s2:processing"):
            assert g.properties.get(key) == w.properties.get(key)
        # geoduck's bookkeeping columns are not STAC: never exported
        assert not {"stac_key", "stac_properties", "scene_id", "band", "common_name"} & set(g.properties)
        extra = {k for k, v in g.properties.items() if v is not None} - set(w.properties)  # (columnar: nulls)
        assert extra <= {"created", "updated"}, (item_id, extra)
        assert sorted(g.assets) == sorted(w.assets)
        for key, wa in w.assets.items():
            ga = g.assets[key]
            assert ga.get_absolute_href() == wa.get_absolute_href()
            for name in ("proj:code", "proj:transform", "proj:shape", "proj:bbox"):
                assert _effective(g, ga, name) == _effective(w, wa, name), (item_id, key, name)
            assert ga.extra_fields["eo:bands"] == wa.extra_fields["eo:bands"]
            assert "stac_key" not in ga.extra_fields


def test_static_catalog_round_trip(source, tmp_path):
    root, want = source
    cat = geoduck.from_stac(root / "src" / "collection.json", tmp_path / "cat", progress=False)
    out = cat.to_stac(tmp_path / "out")
    coll = pystac.Collection.from_file(str(out))
    assert coll.id == "sentinel-2-l2a"
    _same_items({i.id: i for i in coll.get_items(recursive=True)}, want)
    assert "stac_key" in cat.to_arrow().column_names  # the catalog has it; the export does not
    for path in [out, *_item_files(out.parent)]:  # stac-validator accepts every file (offline schemas)
        assert "stac_key" not in path.read_text()
        ok, message = _validate(path)
        assert ok, message
    xmin, _, xmax, _ = coll.extent.spatial.bboxes[0]
    # the shortest arc over lon -3° and 178.8° … -179.4°: east from 178.8° across ±180° to -3°
    assert (xmin, xmax) == (178.8, max(want[i].bbox[2] for i in ("S2A_30TVK_20230615", "monthly_2023_06")))


def test_stac_geoparquet_round_trip(source, tmp_path):
    import rustac
    from stac_geoparquet.arrow import parse_stac_items_to_parquet, stac_table_to_items

    root, want = source
    dicts = [i.to_dict(transform_hrefs=False) for i in want.values()]
    for d, item in zip(dicts, want.values(), strict=True):  # stac-geoparquet holds absolute hrefs
        for key, asset in d["assets"].items():
            asset["href"] = item.assets[key].get_absolute_href()
    parse_stac_items_to_parquet(dicts, output_path=str(tmp_path / "in.parquet"))
    cat = geoduck.from_stac(tmp_path / "in.parquet", tmp_path / "cat", progress=False)
    path = cat.to_stac_geoparquet(tmp_path / "out.parquet", collection_href="https://example.test/{collection}")
    via_sgp = {d["id"]: pystac.Item.from_dict(d) for d in stac_table_to_items(pq.read_table(path))}
    via_rustac = {
        d["id"]: pystac.Item.from_dict(json.loads(json.dumps(d))) for d in rustac.read_sync(str(path))["features"]
    }
    _same_items(via_sgp, want)
    _same_items(via_rustac, want)
    assert "stac_key" not in pq.read_schema(path).names
    again = geoduck.from_stac(path, tmp_path / "cat2", progress=False)  # and back in: the same rows
    keep = ["id", "filepath", "scene_id", "band", "start_datetime", "end_datetime", "crs", "geometry", "eo:cloud_cover"]
    a = cat.to_arrow().select(keep).sort_by("id")
    b = again.to_arrow().select(keep).sort_by("id")
    assert a.to_pylist() == b.to_pylist()
