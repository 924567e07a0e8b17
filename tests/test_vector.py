"""Vector labels: build_vector_catalog on GeoJSON / GPKG / GeoParquet / Shapefile in several CRSs,
load_vector for semantic segmentation, object detection and instance segmentation (exact pixel
counts and boxes on a UTM grid), the bbox-filtered reads, and pairing with a raster catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from georeader.geotensor import GeoTensor
from shapely.geometry import Point, box

import geoduck
from geoduck.builders.vector import VECTOR_EXTENSIONS, read_vector_header
from geoduck.cli import main
from geoduck.errors import ArgumentError, NoDataError
from geoduck.geo import footprint_wgs84, norm_crs
from geoduck.loaders.vector import LabelFieldError, VectorLabels
from geoduck.testing import coordinate_raster

UTM = "EPSG:32630"
X0, Y0 = 500_000.0, 4_400_000.0  # bottom-left of the 64 × 64 px, 10 m test grid (UTM 30N)
RES = 10.0
GRID = (X0, Y0, X0 + 640.0, Y0 + 640.0)


def utm_box(col0: int, row0: int, col1: int, row1: int) -> shapely.Polygon:
    """The UTM polygon covering grid pixels [col0, col1) × [row0, row1) (rows from the top)."""
    return box(X0 + col0 * RES, GRID[3] - row1 * RES, X0 + col1 * RES, GRID[3] - row0 * RES)


def frame(geoms, classes, crs: str = UTM, **columns) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"class_id": classes, **columns}, geometry=list(geoms), crs=crs)


# Class 3: 10 × 10 px; class 7: 8 × 4 px; class 5 overlaps class 3 (burnt after it);
# class 9 sticks out of the grid's right edge.
LABELS = frame(
    [utm_box(10, 24, 20, 34), utm_box(40, 5, 44, 13), utm_box(15, 30, 25, 40), utm_box(60, 50, 70, 54)],
    [3, 7, 5, 9],
)
GRID_SLICE = geoduck.GeoSlice(GRID, UTM, RES)


def build(paths, out: Path, **kwargs) -> geoduck.Catalog:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("workers", 1)
    return geoduck.build_vector_catalog(paths, out, **kwargs)


def rows_by_key(cat: geoduck.Catalog) -> dict[tuple[str, str], dict]:
    return {(Path(r["filepath"]).name, r["layer"]): r for r in cat.to_arrow().to_pylist()}


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """The same labels in several formats and CRSs, plus an empty GeoJSON and a GPKG with two
    layers (UTM and lon/lat), under ``tmp_path/in``."""
    root = tmp_path / "in"
    root.mkdir()
    out = {
        "geojson": root / "labels_20230615.geojson",
        "gpkg": root / "multi_20230616.gpkg",
        "parquet": root / "labels_20230617.parquet",
        "shp": root / "labels_20230618.shp",
        "empty": root / "empty_20230619.geojson",
    }
    LABELS.to_crs("EPSG:4326").to_file(out["geojson"])
    LABELS.to_file(out["gpkg"], layer="buildings")
    LABELS.iloc[:2].to_crs("EPSG:4326").to_file(out["gpkg"], layer="roads")
    LABELS.to_crs("EPSG:3857").to_parquet(out["parquet"])
    LABELS.to_crs("EPSG:32631").to_file(out["shp"])
    out["empty"].write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    return out


# -- build ----------------------------------------------------------------------------------------


def test_build_every_format_and_layer(files, tmp_path):
    cat = build(tmp_path / "in", tmp_path / "cat")
    rows = rows_by_key(cat)
    expected = {
        ("labels_20230615.geojson", "labels_20230615"): ("OGC:CRS84", "EPSG:4326", 4),
        ("multi_20230616.gpkg", "buildings"): ("EPSG:32630", UTM, 4),
        ("multi_20230616.gpkg", "roads"): ("EPSG:4326", "EPSG:4326", 2),
        ("labels_20230617.parquet", "labels_20230617"): ("EPSG:3857", "EPSG:3857", 4),
        ("labels_20230618.shp", "labels_20230618"): ("EPSG:32631", "EPSG:32631", 4),
    }
    assert set(rows) == set(expected)
    for key, (crs_text, crs, n) in expected.items():
        row = rows[key]
        assert row["backend"] == "vector" and row["n_features"] == n
        assert row["start_datetime"] is None and row["end_datetime"] is None  # no regex: static
        if crs_text != "OGC:CRS84":
            assert row["crs"] == crs_text
        else:  # GDAL reports the GeoJSON CRS as EPSG:4326 (lon/lat): either spelling is CRS84
            assert norm_crs(row["crs"]).equals(norm_crs("OGC:CRS84"), ignore_axis_order=True)
        layer = LABELS.iloc[:n].to_crs(crs)
        nb = row["native_bounds"]
        np.testing.assert_allclose(
            [nb[k] for k in ("xmin", "ymin", "xmax", "ymax")], layer.total_bounds, rtol=0, atol=1e-6
        )
        fp = shapely.from_wkb(row["geometry"])
        want = footprint_wgs84(tuple(layer.total_bounds), norm_crs(crs))
        assert fp.equals_exact(want, 1e-7)
        # the footprint contains every feature (reprojected to lon/lat)
        assert fp.buffer(1e-7).contains(shapely.union_all(layer.to_crs(4326).geometry.values))
    assert len({r["id"] for r in rows.values()}) == 5  # the GPKG's two layers get distinct ids
    report = cat.build_report
    assert (report.indexed, report.files_indexed) == (5, 4)
    assert report.errors == (
        (str(files["empty"]), "layer 'empty_20230619' of empty_20230619.geojson is empty (0 features); skipped"),
    )


def test_layer_option_and_regex_dates(files, tmp_path):
    cat = build(files["gpkg"], tmp_path / "one", layer="roads")
    [row] = cat.to_arrow().to_pylist()
    assert (row["layer"], row["n_features"]) == ("roads", 2)

    regex = r"_(?P<date>\d{8})\.\w+$"
    cat = build([files["geojson"], files["gpkg"], files["parquet"]], tmp_path / "dated", filename_regex=regex)
    got = {
        (Path(r["filepath"]).suffix, r["layer"]): (r["start_datetime"].isoformat(), r["end_datetime"].isoformat())
        for r in cat.to_arrow().to_pylist()
    }
    day = lambda d: (f"{d}T00:00:00+00:00", f"{d}T23:59:59.999999+00:00")  # noqa: E731
    assert got == {
        (".geojson", "labels_20230615"): day("2023-06-15"),
        (".gpkg", "buildings"): day("2023-06-16"),
        (".gpkg", "roads"): day("2023-06-16"),
        (".parquet", "labels_20230617"): day("2023-06-17"),
    }
    # layer= on files that lack it: reported per file, the build goes on
    cat = build([files["gpkg"], files["shp"]], tmp_path / "sel", layer="buildings")
    assert [r["layer"] for r in cat.to_arrow().to_pylist()] == ["buildings"]
    [(path, reason)] = cat.build_report.errors
    assert path == str(files["shp"]) and "has no layer 'buildings'" in reason


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
def test_crs_rules_and_empty_layers(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    # GeoJSON without a "crs" member: lon/lat by RFC 7946
    (root / "plain.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-3.5, 40.25]}}
                ],
            }
        )
    )
    frame([utm_box(0, 0, 5, 5)], [1], crs=None).to_file(root / "noprj.shp")  # no .prj
    frame([utm_box(0, 0, 5, 5)], [1], crs=None).to_parquet(root / "nullcrs.parquet")  # "crs": null
    table = pq.read_table(root / "nullcrs.parquet")  # without a "crs" key: OGC:CRS84 by the spec
    geo = json.loads(table.schema.metadata[b"geo"])
    del geo["columns"]["geometry"]["crs"]
    geo["columns"]["geometry"]["bbox"] = [-3.0, 40.0, -2.0, 41.0]
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(geo)}), root / "nokey.parquet")
    gpkg = root / "partly.gpkg"
    frame([utm_box(0, 0, 5, 5)], [1]).to_file(gpkg, layer="full")
    frame([], [], crs=UTM).to_file(gpkg, layer="hollow")
    cat = build(root, tmp_path / "cat")
    rows = rows_by_key(cat)
    assert set(rows) == {("plain.geojson", "plain"), ("partly.gpkg", "full"), ("nokey.parquet", "nokey")}
    assert rows[("nokey.parquet", "nokey")]["crs"] == "OGC:CRS84"
    assert shapely.from_wkb(rows[("nokey.parquet", "nokey")]["geometry"]).bounds == (-3.0, 40.0, -2.0, 41.0)
    point = rows[("plain.geojson", "plain")]
    assert point["native_bounds"] == {"xmin": -3.5, "ymin": 40.25, "xmax": -3.5, "ymax": 40.25}
    fp = shapely.from_wkb(point["geometry"])  # a one-point extent still gives a (tiny) polygon
    assert fp.geom_type == "Polygon" and fp.contains(Point(-3.5, 40.25)) and fp.area < 1e-12
    errors = dict(cat.build_report.errors)
    assert errors[str(root / "noprj.shp")].startswith("layer 'noprj' of noprj.shp has no CRS")
    assert errors[str(root / "nullcrs.parquet")].startswith("layer 'nullcrs' of nullcrs.parquet has no CRS")
    assert errors[str(gpkg)] == "layer 'hollow' of partly.gpkg is empty (0 features); skipped"
    assert cat.build_report.files_indexed == 3


@pytest.mark.parametrize("variant", ["bbox", "covering", "geometries"])
def test_geoparquet_extent_sources(tmp_path, variant):
    """The extent comes from the ``geo`` bbox, else the covering's statistics, else the geometries."""
    path = tmp_path / "p.parquet"
    LABELS.to_parquet(path, write_covering_bbox=variant == "covering", row_group_size=2)
    if variant != "bbox":
        table = pq.read_table(path)
        geo = json.loads(table.schema.metadata[b"geo"])
        del geo["columns"]["geometry"]["bbox"]
        pq.write_table(
            table.replace_schema_metadata({**table.schema.metadata, b"geo": json.dumps(geo)}), path, row_group_size=2
        )
    [row] = read_vector_header(str(path))
    assert [row["native_bounds"][k] for k in ("xmin", "ymin", "xmax", "ymax")] == list(LABELS.total_bounds)
    assert (row["crs"], row["layer"], row["n_features"]) == (UTM, "p", 4)


def test_build_errors(tmp_path):
    with pytest.raises(geoduck.errors.BuildError, match="could be indexed"):
        empty = tmp_path / "e.geojson"
        empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
        build(empty, tmp_path / "cat")
    assert ".fgb" in VECTOR_EXTENSIONS and ".geoparquet" in VECTOR_EXTENSIONS


# -- load ------------------------------------------------------------------------------------------


@pytest.fixture
def catalog(files, tmp_path) -> geoduck.Catalog:
    return build(tmp_path / "in", tmp_path / "cat")


def only(cat: geoduck.Catalog, filename: str, layer: str | None = None) -> geoduck.Catalog:
    rel = cat.where(f"filepath LIKE '%/{filename}'")
    return rel.where(f"layer = '{layer}'") if layer else rel


EXPECTED = np.zeros((64, 64), dtype=np.int64)
for _g, _c in zip(LABELS.geometry, LABELS.class_id, strict=True):  # burnt in order, clipped to the grid
    _x0, _y0, _x1, _y1 = _g.bounds
    EXPECTED[int((GRID[3] - _y1) / RES) : int((GRID[3] - _y0) / RES), int((_x0 - X0) / RES) : int((_x1 - X0) / RES)] = (
        _c
    )


@pytest.mark.parametrize(
    ("filename", "layer"),
    [
        ("multi_20230616.gpkg", "buildings"),  # same CRS as the slice
        ("labels_20230615.geojson", None),  # lon/lat
        ("labels_20230617.parquet", None),  # Web Mercator GeoParquet
        ("labels_20230618.shp", None),  # the neighbouring UTM zone
    ],
)
def test_semantic_segmentation_exact_in_every_format(catalog, filename, layer):
    y = geoduck.load_vector(
        only(catalog, filename, layer), GRID_SLICE, task="semantic_segmentation", label_field="class_id"
    )
    assert isinstance(y, GeoTensor)
    assert y.values.dtype == np.int64 and y.values.shape == (64, 64)
    assert y.transform == GRID_SLICE.transform and y.crs == rasterio.crs.CRS.from_user_input(UTM)
    assert y.fill_value_default == 0
    np.testing.assert_array_equal(y.values, EXPECTED)
    # the overlapping class 5 square was burnt last: it wins where it covers class 3
    assert (y.values == 3).sum() == 100 - 20 and (y.values == 5).sum() == 100
    assert (y.values == 7).sum() == 32 and (y.values == 9).sum() == 4 * 4


def test_semantic_without_label_field_and_all_touched(tmp_path):
    inner = box(X0 + 107, GRID[3] - 193, X0 + 193, GRID[3] - 107)  # centres of 8 × 8 px inside, touches 10 × 10
    path = tmp_path / "one.geojson"
    frame([inner], [4]).to_file(path)
    cat = build(path, tmp_path / "cat")
    y = geoduck.load_vector(cat, GRID_SLICE, task="semantic_segmentation")
    assert set(np.unique(y.values)) == {0, 1} and (y.values == 1).sum() == 64
    y = geoduck.load_vector(cat, GRID_SLICE, task="semantic_segmentation", all_touched=True)
    assert (y.values == 1).sum() == 100 and y.values[10:20, 10:20].all()


def test_object_detection_boxes(catalog):
    for filename, layer in (("multi_20230616.gpkg", "buildings"), ("labels_20230615.geojson", None)):
        d = geoduck.load_vector(
            only(catalog, filename, layer), GRID_SLICE, task="object_detection", label_field="class_id"
        )
        assert isinstance(d, VectorLabels) and d.masks is None
        assert d.transform == GRID_SLICE.transform and d.crs == UTM and d.shape == (64, 64)
        assert d.labels.dtype == np.int64 and d.boxes.dtype == np.float64
        np.testing.assert_array_equal(d.labels, [3, 7, 5, 9])
        # xmin ymin xmax ymax in pixels; class 9 (cols 60..70) is clipped at the right edge (64)
        np.testing.assert_allclose(
            d.boxes, [[10, 24, 20, 34], [40, 5, 44, 13], [15, 30, 25, 40], [60, 50, 64, 54]], atol=1e-3
        )  # 1 cm: lon/lat edges come back densified
    # a slice holding only the bottom-right corner: one box, shifted into its own pixel frame
    part = geoduck.GeoSlice((X0 + 500, Y0, X0 + 640, Y0 + 140), UTM, RES)
    d = geoduck.load_vector(
        only(catalog, "multi_20230616.gpkg", "buildings"), part, task="object_detection", label_field="class_id"
    )
    np.testing.assert_array_equal(d.labels, [9])
    np.testing.assert_allclose(d.boxes, [[10, 0, 14, 4]])
    assert len(d) == 1


def test_instance_segmentation_masks(catalog):
    m = geoduck.load_vector(
        only(catalog, "multi_20230616.gpkg", "buildings"),
        GRID_SLICE,
        task="instance_segmentation",
        label_field="class_id",
    )
    assert m.masks is not None and m.masks.dtype == bool and m.masks.shape == (4, 64, 64)
    np.testing.assert_array_equal(m.labels, [3, 7, 5, 9])
    assert m.masks.sum(axis=(1, 2)).tolist() == [100, 32, 100, 16]  # overlaps are kept per instance
    assert m.masks[0, 24:34, 10:20].all() and m.masks[2, 30:40, 15:25].all()
    np.testing.assert_allclose(m.boxes[1], [40, 5, 44, 13])


def test_sliver_has_a_box_but_no_mask(tmp_path):
    """A 3 m wide sliver covers no pixel centre: a detection box, but no instance (no mask)."""
    path = tmp_path / "sliver.gpkg"
    sliver = box(X0 + 101, GRID[3] - 200, X0 + 104, GRID[3] - 100)
    frame([sliver, utm_box(0, 0, 2, 2)], [2, 1]).to_file(path)
    cat = build(path, tmp_path / "cat")
    d = geoduck.load_vector(cat, GRID_SLICE, task="object_detection", label_field="class_id")
    np.testing.assert_allclose(d.boxes, [[10.1, 10, 10.4, 20], [0, 0, 2, 2]])
    m = geoduck.load_vector(cat, GRID_SLICE, task="instance_segmentation", label_field="class_id")
    assert m.labels.tolist() == [1] and m.masks.sum() == 4
    np.testing.assert_allclose(m.boxes, [[0, 0, 2, 2]])
    touched = geoduck.load_vector(cat, GRID_SLICE, task="instance_segmentation", all_touched=True)
    assert touched.masks.sum(axis=(1, 2)).tolist() == [10, 4]


def test_bbox_filter_limits_reading(tmp_path, monkeypatch):
    """Features are read with a bbox in the layer's CRS: a small slice reads a few of 400 features."""
    lon, lat = np.meshgrid(np.linspace(-6.0, 0.0, 20), np.linspace(38.0, 42.0, 20))
    pts = gpd.GeoDataFrame(
        {"class_id": np.arange(400) % 5 + 1},
        geometry=gpd.points_from_xy(lon.ravel(), lat.ravel()).buffer(0.001),
        crs=4326,
    )
    path = tmp_path / "many.gpkg"
    pts.to_file(path, layer="pts")
    cat = build(path, tmp_path / "cat")
    calls: list[dict] = []
    real = pyogrio.read_dataframe

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append({**kwargs, "n": len(out)})
        return out

    monkeypatch.setattr(pyogrio, "read_dataframe", spy)
    target = pts.to_crs(UTM).geometry.iloc[210].centroid  # one point, well inside the UTM zone
    x, y = round(target.x / 10) * 10, round(target.y / 10) * 10
    sl = geoduck.GeoSlice((x - 320, y - 320, x + 320, y + 320), UTM, RES)
    out = geoduck.load_vector(cat, sl, task="object_detection", label_field="class_id")
    [call] = calls
    assert call["layer"] == "pts" and call["columns"] == ["class_id"]
    bx0, by0, bx1, by1 = call["bbox"]  # lon/lat: the slice reprojected into the layer's CRS
    assert -6 < bx0 < bx1 < 0 and 38 < by0 < by1 < 42 and bx1 - bx0 < 0.02
    assert call["n"] == 1 and len(out) == 1 and out.labels.tolist() == [pts.class_id.iloc[210]]
    b = pts.iloc[[210]].to_crs(UTM).total_bounds  # the feature's UTM bounds in slice pixels
    want = [
        (b[0] - sl.bounds[0]) / RES,
        (sl.bounds[3] - b[3]) / RES,
        (b[2] - sl.bounds[0]) / RES,
        (sl.bounds[3] - b[1]) / RES,
    ]
    np.testing.assert_allclose(out.boxes[0], want, atol=0.01)


@pytest.mark.parametrize("covering", [False, True])
def test_geoparquet_reads_only_near_features(tmp_path, monkeypatch, covering):
    far = LABELS.set_geometry(LABELS.translate(xoff=50_000))  # 50 km east: never under the grid
    both = gpd.GeoDataFrame(pd_concat([LABELS, far]), crs=UTM)
    path = tmp_path / "b.parquet"
    both.to_parquet(path, write_covering_bbox=covering, row_group_size=4)
    cat = build(path, tmp_path / "cat")
    seen: list = []
    real = gpd.read_parquet
    monkeypatch.setattr(gpd, "read_parquet", lambda *a, **k: seen.append(k.get("bbox")) or real(*a, **k))
    y = geoduck.load_vector(cat, GRID_SLICE, task="semantic_segmentation", label_field="class_id")
    np.testing.assert_array_equal(y.values, EXPECTED)
    assert seen == ([GRID_SLICE.grid_bounds] if covering else [])


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def test_time_filter_and_errors(files, tmp_path):
    cat = build(files["gpkg"], tmp_path / "cat", filename_regex=r"_(?P<date>\d{8})\.gpkg$")
    on_day = geoduck.GeoSlice(GRID, UTM, RES, start="2023-06-16", end="2023-06-16")
    y = geoduck.load_vector(cat, on_day, task="semantic_segmentation", label_field="class_id")
    # both layers, in catalog order: 'roads' (classes 3 and 7 again) is burnt over 'buildings',
    # so class 3 wins back the corner class 5 had taken
    expected = EXPECTED.copy()
    expected[24:34, 10:20] = 3
    np.testing.assert_array_equal(y.values, expected)
    assert (y.values == 3).sum() == 100 and (y.values == 5).sum() == 80
    with pytest.raises(NoDataError, match="no vector row"):
        geoduck.load_vector(cat, geoduck.GeoSlice(GRID, UTM, RES, start="2023-06-17"), task="object_detection")
    with pytest.raises(NoDataError):  # outside every footprint
        geoduck.load_vector(cat, geoduck.GeoSlice((0, 0, 100, 100), UTM, RES), task="object_detection")
    # covered but no feature there: background, not an error
    empty_area = geoduck.GeoSlice((X0 + 300, Y0 + 100, X0 + 400, Y0 + 200), UTM, RES)
    assert not geoduck.load_vector(cat, empty_area, task="semantic_segmentation").values.any()
    assert len(geoduck.load_vector(cat, empty_area, task="object_detection")) == 0
    with pytest.raises(ArgumentError, match="task="):
        geoduck.load_vector(cat, on_day, task="panoptic")  # type: ignore[arg-type]
    with pytest.raises(LabelFieldError, match="'nope' is not a field"):
        geoduck.load_vector(cat, on_day, task="semantic_segmentation", label_field="nope")
    named = tmp_path / "names.geojson"
    frame([utm_box(0, 0, 5, 5)], [1], name=["tree"]).to_file(named)
    with pytest.raises(LabelFieldError, match="not integer class ids"):
        geoduck.load_vector(build(named, tmp_path / "c2"), GRID_SLICE, task="semantic_segmentation", label_field="name")
    import subprocess

    code = "import sys, geoduck; geoduck.load_vector; import geoduck.loaders.vector; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


# -- across backends -------------------------------------------------------------------------------


@pytest.fixture
def imagery(tmp_path) -> geoduck.Catalog:
    """Two 64 × 64 px, 10 m UTM rasters: one under the labels' grid, one 20 km east (no labels)."""
    a = coordinate_raster(tmp_path / "img" / "A.tif", crs=UTM, origin=(X0, GRID[3]), res=RES, shape=(64, 64))
    b = coordinate_raster(tmp_path / "img" / "B.tif", crs=UTM, origin=(X0 + 20_000, GRID[3]), res=RES, shape=(64, 64))
    return geoduck.build_raster_catalog([str(a), str(b)], tmp_path / "imgcat", progress=False, workers=1)


def test_intersect_pairs_load_both_sides(imagery, tmp_path):
    # lon/lat labels covering the grid's top-left quarter only
    path = tmp_path / "lbl.geojson"
    frame([utm_box(10, 24, 20, 34), utm_box(0, 0, 32, 32)], [3, 1]).iloc[::-1].to_crs(4326).to_file(path)
    labels = build(path, tmp_path / "lblcat")
    pairs = imagery.intersect(labels).to_arrow().to_pylist()
    assert [(Path(p["left_filepath"]).name, p["right_layer"]) for p in pairs] == [("A.tif", "lbl")]
    lon_lat = shapely.from_wkb(pairs[0]["geometry"])
    x0, y0, x1, y1 = gpd.GeoSeries([lon_lat], crs=4326).to_crs(UTM).total_bounds
    snap = lambda v, f: f(v / RES) * RES  # noqa: E731 - outward to the raster's grid, inside its bounds
    bounds = (
        max(snap(x0, np.floor), GRID[0]),
        max(snap(y0, np.floor), GRID[1]),
        min(snap(x1, np.ceil), GRID[2]),
        min(snap(y1, np.ceil), GRID[3]),
    )
    assert bounds[0] == X0 and bounds[3] == GRID[3] and abs(bounds[2] - (X0 + 320)) <= RES
    sl = geoduck.GeoSlice(bounds, UTM, RES)
    x = geoduck.load_raster(imagery, sl)
    y = geoduck.load_vector(labels, sl, task="semantic_segmentation", label_field="class_id")
    assert x.values.shape[1:] == y.values.shape == sl.shape
    assert x.transform == y.transform == sl.transform and x.crs == y.crs
    np.testing.assert_allclose(x.values[0, 0, 0], X0 + 5)  # pixel centre: same grid as the raster
    assert (y.values[24:34, 10:20] == 3).all() and (y.values[:32, :32] > 0).all()
    assert (y.values == 3).sum() == 100


def test_union_keeps_backend_columns(imagery, files, tmp_path):
    labels = build(files["gpkg"], tmp_path / "lblcat")
    rows = imagery.union(labels).to_arrow().to_pylist()
    assert sorted(r["backend"] for r in rows) == ["raster", "raster", "vector", "vector"]
    for r in rows:
        if r["backend"] == "raster":
            assert (r["width"], r["height"], r["count"]) == (64, 64, 2)
            assert r["layer"] is None and r["n_features"] is None
        else:
            assert r["layer"] in ("buildings", "roads") and r["n_features"] in (4, 2)
            assert r["width"] is None and r["transform"] is None and r["dtype"] is None
    with pytest.raises(ArgumentError, match="vector catalog"):
        geoduck.load_vector(imagery, GRID_SLICE, task="semantic_segmentation")


# -- CLI --------------------------------------------------------------------------------------------


def test_cli_build_vector(files, tmp_path):
    out = tmp_path / "clicat"
    result = CliRunner().invoke(
        main,
        [
            "build",
            "vector",
            str(tmp_path / "in"),
            "-o",
            str(out),
            "--layer",
            "buildings",
            "--no-progress",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 rows from 1 files indexed" in result.output
    assert "has no layer 'buildings'" in result.output  # the other files are reported
    assert [r["layer"] for r in geoduck.open_catalog(out).to_arrow().to_pylist()] == ["buildings"]
    result = CliRunner().invoke(
        main,
        [
            "build",
            "vector",
            str(files["geojson"]),
            "-o",
            str(tmp_path / "d"),
            "--regex",
            r"_(?P<date>\d{8})",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    [row] = geoduck.open_catalog(tmp_path / "d").to_arrow().to_pylist()
    assert row["start_datetime"].date().isoformat() == "2023-06-15"
