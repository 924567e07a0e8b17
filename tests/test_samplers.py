"""Samplers: reproducible, area-weighted random chips; covering grids; samples as GeoParquet; sharding.

Catalogs here are built from small coordinate rasters in UTM 30 (10 m pixels), so every footprint
and pixel grid is known exactly, plus the session's synthetic archive over UTM 29/30/31.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
from shapely.geometry import box

import geoduck
from geoduck.errors import ArgumentError, CRSError, NoDataError, SchemaError
from geoduck.samplers import RandomSampler, shard, utm_crs
from geoduck.slices import reproject_bounds
from geoduck.testing import coordinate_raster

UTM30 = "EPSG:32630"
RES = 10.0
X0, Y0 = 500_000.0, 4_400_000.0
DATED = r"_(?P<date>\d{8})\.tif$"
GEOD = pyproj.Geod(ellps="WGS84")

# (name, origin offset in pixels (col, row), shape (rows, cols), date): very different areas
SIZED = [
    ("small", (0, 0), (32, 32), "20230101"),
    ("medium", (200, 0), (64, 64), "20230201"),
    ("large", (0, 300), (96, 160), "20230301"),
]


def build(paths, out: Path, regex: str | None = DATED) -> geoduck.Catalog:
    return geoduck.build_raster_catalog([str(p) for p in paths], out, filename_regex=regex, progress=False, workers=1)


def write_tiles(root: Path, tiles) -> list[Path]:
    return [
        coordinate_raster(
            root / f"{name}_{date}.tif", crs=UTM30, res=RES, shape=shape, origin=(X0 + col * RES, Y0 - row * RES)
        )
        for name, (col, row), shape, date in tiles
    ]


@pytest.fixture(scope="module")
def sized(tmp_path_factory) -> geoduck.Catalog:
    root = tmp_path_factory.mktemp("sized")
    return build(write_tiles(root / "src", SIZED), root / "cat")


@pytest.fixture(scope="module")
def rows_by_id(sized) -> dict[str, dict]:
    return {r["id"]: r for r in sized}


def native_box(row: dict) -> tuple[float, float, float, float]:
    b = row["native_bounds"]
    return b["xmin"], b["ymin"], b["xmax"], b["ymax"]


def within(inner, outer, tol: float = 1e-6) -> bool:
    return (
        inner[0] >= outer[0] - tol
        and inner[1] >= outer[1] - tol
        and inner[2] <= outer[2] + tol
        and inner[3] <= outer[3] + tol
    )


def chi2_sf_even_df(x: float, df: int) -> float:
    """Survival function of χ² with an even number of degrees of freedom (closed form)."""
    m = df // 2
    return math.exp(-x / 2) * sum((x / 2) ** i / math.factorial(i) for i in range(m))


# -- random sampler -----------------------------------------------------------------------------------


def test_random_sampler_is_reproducible(sized):
    a = geoduck.random_sampler(sized, chip_size=16, resolution=RES, length=300, seed=7)
    b = geoduck.random_sampler(sized, chip_size=16, resolution=RES, length=300, seed=7)
    c = geoduck.random_sampler(sized, chip_size=16, resolution=RES, length=300, seed=8)
    assert isinstance(a, RandomSampler) and len(a) == 300
    assert list(a) == list(b) == list(a)  # same seed, and re-iterable
    assert a.row_ids == b.row_ids
    assert list(a) != list(c)
    assert sum(x != y for x, y in zip(a, c, strict=True)) > 250
    assert a[0] == list(a)[0] and a[-1] == list(a)[-1] and a[10:13] == list(a)[10:13]
    with pytest.raises(IndexError):
        a[300]
    assert list(a.reseed(8)) == list(c)
    assert all(s.shape == (16, 16) and s.resolution == (RES, RES) and s.crs == UTM30 for s in a)
    # a single draw of a chip: hashable, equal to its copy
    assert len(set(a)) == len(set(map(hash, a)))


def test_random_chips_lie_on_their_row_grid_inside_its_footprint(sized, rows_by_id):
    sampler = geoduck.random_sampler(sized, chip_size=(8, 24), resolution=RES, length=500, seed=1)
    for sl, rid in zip(sampler, sampler.row_ids, strict=True):
        row = rows_by_id[rid]
        nb = native_box(row)
        assert sl.crs == row["crs"] == UTM30
        assert sl.shape == (8, 24)
        assert within(sl.bounds, nb)
        # on the file's own pixel grid: whole-pixel offsets from its top-left corner
        assert (sl.bounds[0] - nb[0]) / RES == int((sl.bounds[0] - nb[0]) / RES)
        assert (nb[3] - sl.bounds[3]) / RES == int((nb[3] - sl.bounds[3]) / RES)
        assert (sl.start, sl.end) == (row["start_datetime"], row["end_datetime"])
    # placement is uniform: in the large row (160 × 96 px), chips reach both far edges
    large = [
        (sl, rows_by_id[rid])
        for sl, rid in zip(sampler, sampler.row_ids, strict=True)
        if rows_by_id[rid]["filepath"].endswith("large_20230301.tif")
    ]
    nb = native_box(large[0][1])
    xs = np.array([sl.bounds[0] for sl, _ in large])
    assert xs.min() < nb[0] + 20 * RES and xs.max() > nb[2] - 24 * RES - 20 * RES


def test_random_rows_are_area_weighted(sized, rows_by_id):
    n = 6000
    sampler = geoduck.random_sampler(sized, chip_size=4, resolution=RES, length=n, seed=2024)
    counts = Counter(sampler.row_ids)
    ids = sorted(rows_by_id)
    areas = np.array([abs(GEOD.geometry_area_perimeter(rows_by_id[i]["geometry"])[0]) for i in ids])
    observed = np.array([counts[i] for i in ids])
    # native areas are 32², 64² and 96·160 px: ratio ≈ 1 : 4 : 15
    assert sorted(areas / areas.min()) == pytest.approx([1, 4, 15], rel=1e-3)
    expected = n * areas / areas.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2_sf_even_df(chi2, df=2) > 1e-3, (observed, expected)
    # the test has power: equal weights would be rejected outright
    uniform = np.full(3, n / 3)
    assert chi2_sf_even_df(float(((observed - uniform) ** 2 / uniform).sum()), df=2) < 1e-12


def test_random_sampler_across_utm_zones(archive_catalog):
    rows = {r["id"]: r for r in archive_catalog}
    native = geoduck.random_sampler(archive_catalog, chip_size=32, resolution=500.0, length=400, seed=3)
    for sl, rid in zip(native, native.row_ids, strict=True):  # each row in its own zone
        assert sl.crs == rows[rid]["crs"]
        assert within(sl.bounds, native_box(rows[rid]))
    assert {s.crs for s in native} == {"EPSG:32629", "EPSG:32630", "EPSG:32631"}

    one = geoduck.random_sampler(archive_catalog, chip_size=32, resolution=500.0, length=200, seed=3, crs=UTM30)
    for sl, rid in zip(one, one.row_ids, strict=True):  # all in UTM 30, inside the row's envelope there
        assert sl.crs == UTM30
        assert within(sl.bounds, reproject_bounds(native_box(rows[rid]), rows[rid]["crs"], UTM30), 1e-3)

    utm = geoduck.random_sampler(
        archive_catalog, chip_size=32, resolution=500.0, length=200, seed=3, crs="utm"
    )  # tiles lie in the zone of their centre
    assert all(s.crs == rows[r]["crs"] for s, r in zip(utm, utm.row_ids, strict=True))
    assert utm_crs(-3.7, 40.4) == "EPSG:32630" and utm_crs(151.2, -33.9) == "EPSG:32756"
    assert utm_crs(179.9, 10) == "EPSG:32660" and utm_crs(180.1, 10) == "EPSG:32601"


def test_random_sampler_roi(archive_catalog, sized, rows_by_id):
    roi = box(-4.2, 39.6, -2.8, 40.3)  # lon/lat, over tiles 30TVK and 30TWK
    sampler = geoduck.random_sampler(archive_catalog, chip_size=8, resolution=500.0, length=300, seed=5, roi=roi)
    rows = {r["id"]: r for r in archive_catalog}
    assert {rows[r]["tile"] for r in sampler.row_ids} == {"30TVK", "30TWK"}
    to_utm = pyproj.Transformer.from_crs(4326, UTM30, always_xy=True)
    roi_utm = shapely.transform(
        shapely.segmentize(roi, 0.01), lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
    )
    assert all(roi_utm.buffer(1e-6).contains(box(*s.bounds)) for s in sampler)
    # tiles are drawn in proportion to their area inside the roi (VK: ~1.3° of its width, WK: ~0.3°).
    # Row ids hash the (temporary) file paths, so which rows a seed draws changes between test runs:
    # pool 8 seeds (2,400 draws, binomial sd ~0.008) for a bound that holds on every run.
    inside = {rows[r]["tile"]: rows[r]["geometry"].intersection(roi).area for r in sampler.row_ids}
    drawn = [
        rows[r]["tile"]
        for seed in range(8)
        for r in geoduck.random_sampler(
            archive_catalog, chip_size=8, resolution=500.0, length=300, seed=seed, roi=roi
        ).row_ids
    ]
    share = Counter(drawn)["30TVK"] / len(drawn)
    assert share == pytest.approx(inside["30TVK"] / sum(inside.values()), abs=0.035)

    # (geometry, crs): an roi in UTM 30 over the small and large rows only
    roi_native = box(X0 + 10 * RES, Y0 - 396 * RES, X0 + 150 * RES, Y0 - 20 * RES)
    s2 = geoduck.random_sampler(sized, chip_size=8, resolution=RES, length=200, seed=0, roi=(roi_native, UTM30))
    names = {Path(rows_by_id[r]["filepath"]).name.split("_")[0] for r in s2.row_ids}
    assert names == {"small", "large"}
    assert all(roi_native.contains(box(*s.bounds)) for s in s2)
    with pytest.raises(NoDataError, match="roi"):
        geoduck.random_sampler(
            sized, chip_size=64, resolution=RES, length=5, roi=(box(X0, Y0 - 100, X0 + 100, Y0), UTM30)
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(chip_size=0), ArgumentError, "chip_size"),
        (dict(chip_size=(8, 8, 8)), ArgumentError, "chip_size"),
        (dict(chip_size=8.5), ArgumentError, "chip_size"),
        (dict(resolution=-1), ArgumentError, "resolution"),
        (dict(length=0), ArgumentError, "length"),
        (dict(seed="a"), ArgumentError, "seed"),
        (dict(crs="EPSG:999999"), CRSError, "crs"),
        (dict(roi="POLYGON"), ArgumentError, "roi"),
    ],
)
def test_random_sampler_bad_arguments(sized, kwargs, error, match):
    args = dict(chip_size=8, resolution=RES, length=10) | kwargs
    with pytest.raises(error, match=match):
        geoduck.random_sampler(sized, **args)


def test_random_sampler_no_rows(sized):
    with pytest.raises(NoDataError):
        geoduck.random_sampler(
            sized.query(start="1990-01-01", end="1990-01-02"), chip_size=8, resolution=RES, length=10
        )


# -- grid sampler -------------------------------------------------------------------------------------

# An L-shaped union (UTM 30, 10 m): A 50×50 px, B 30×50 right of A, C 45×40 below A; SE is empty.
L_TILES = [
    ("a", (0, 0), (50, 50), "20230101"),
    ("b", (50, 0), (30, 50), "20230102"),
    ("c", (0, 50), (45, 40), "20230103"),
]


@pytest.fixture(scope="module")
def lshape(tmp_path_factory) -> geoduck.Catalog:
    root = tmp_path_factory.mktemp("lshape")
    return build(write_tiles(root / "src", L_TILES), root / "cat")


def union_mask() -> np.ndarray:
    """(95, 100) pixel mask of the L-shaped union, top-left at (X0, Y0)."""
    mask = np.zeros((95, 100), dtype=bool)
    for _, (col, row), (h, w), _ in L_TILES:
        mask[row : row + h, col : col + w] = True
    return mask


def chip_window(sl: geoduck.GeoSlice) -> tuple[slice, slice]:
    col, row = round((sl.bounds[0] - X0) / RES), round((Y0 - sl.bounds[3]) / RES)
    return slice(row, row + sl.height), slice(col, col + sl.width)


@pytest.mark.parametrize(("chip", "stride"), [(16, 12), (16, 16), ((10, 24), (7, 20)), (32, 5)])
def test_grid_covers_the_union_without_leaving_it(lshape, chip, stride):
    chips = geoduck.grid_sampler(lshape, chip_size=chip, stride=stride, resolution=RES)
    mask = union_mask()
    covered = np.zeros_like(mask)
    union = (X0, Y0 - 95 * RES, X0 + 100 * RES, Y0)
    for sl in chips:
        assert sl.crs == UTM30 and sl.interval == (None, None)  # rows have different dates
        assert within(sl.bounds, union, tol=0)  # never outside the union's bounds
        rows, cols = chip_window(sl)
        assert sl.bounds[0] == X0 + cols.start * RES and sl.bounds[3] == Y0 - rows.start * RES  # aligned
        assert mask[rows, cols].any()  # no empty chip
        covered[rows, cols] = True
    assert covered[mask].all()  # every pixel of the union is in some chip
    assert len(set(chips)) == len(chips)  # no duplicates
    # empty chips were skipped: the full grid has chips entirely in the empty south-east corner
    full = geoduck.grid_sampler(union, crs=UTM30, chip_size=chip, stride=stride, resolution=RES)
    assert len(full) > len(chips)
    assert {sl for sl in full if mask[chip_window(sl)].any()} == set(chips)


def test_grid_offsets_shift_the_last_chip_inward():
    chips = geoduck.grid_sampler((0, 0, 1000, 700), crs=UTM30, chip_size=32, stride=32, resolution=10)
    xs = sorted({s.bounds[0] for s in chips})
    ys = sorted({s.bounds[3] for s in chips}, reverse=True)
    assert xs == [0, 320, 640, 680]  # 100 px: 0, 32, 64 and the shifted 68
    assert ys == [700, 380, 320]  # 70 px: rows 0, 32 and the shifted 38
    assert len(chips) == 12 and chips[0].bounds == (0.0, 380.0, 320.0, 700.0)
    assert chips[-1].bounds == (680.0, 0.0, 1000.0, 320.0)
    # smaller than a chip: one chip at the top-left corner; overlapping stride
    assert [s.bounds for s in geoduck.grid_sampler((0, 0, 100, 50), crs=UTM30, chip_size=32, resolution=10)] == [
        (0.0, -270.0, 320.0, 50.0)
    ]
    three = geoduck.grid_sampler((0, 0, 40, 10), crs=UTM30, chip_size=(1, 2), stride=(1, 1), resolution=10)
    assert [s.bounds[0] for s in three] == [0, 10, 20]
    with pytest.raises(CRSError, match="crs"):
        geoduck.grid_sampler((0, 0, 1000, 700), chip_size=32, resolution=10)
    with pytest.raises(ArgumentError, match="stride"):
        geoduck.grid_sampler((0, 0, 1000, 700), crs=UTM30, chip_size=32, stride=0, resolution=10)


def test_grid_chips_carry_a_shared_interval(tmp_path):
    tiles = [("a", (0, 0), (20, 20), "20230615"), ("b", (20, 0), (20, 20), "20230615")]
    cat = build(write_tiles(tmp_path / "src", tiles), tmp_path / "cat")
    chips = geoduck.grid_sampler(cat, chip_size=10, resolution=RES)
    assert len(chips) == 8
    assert {s.interval for s in chips} == {
        (geoduck.GeoSlice((0, 0, 1, 1), UTM30, 1, "2023-06-15", "2023-06-15").interval)
    }


def test_grid_across_utm_zones(archive_catalog):
    chips = geoduck.grid_sampler(archive_catalog, chip_size=64, stride=48, resolution=500.0, crs="native")
    assert len(set(chips)) == len(chips)
    by_crs = Counter(s.crs for s in chips)
    assert set(by_crs) == {"EPSG:32629", "EPSG:32630", "EPSG:32631"}
    gdf = archive_catalog.to_geopandas()
    for crs, group in gdf.groupby("crs"):
        footprints = [
            box(b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in group.drop_duplicates("tile")["native_bounds"]
        ]
        union = shapely.union_all(footprints)
        mine = [s for s in chips if s.crs == crs]
        assert all(union.intersection(box(*s.bounds)).area > 0 for s in mine)
        ub = union.bounds
        assert all(within(s.bounds, ub) for s in mine)
        cover = shapely.union_all([box(*s.bounds) for s in mine])
        assert cover.contains(union.buffer(-1e-3))
    # chips in one CRS: the whole archive reprojected to UTM 30
    one = geoduck.grid_sampler(archive_catalog, chip_size=64, resolution=500.0, crs=UTM30)
    assert {s.crs for s in one} == {UTM30} and len(one) < len(chips)
    # the default: one CRS, the zone holding most of the area (4 of the 6 tiles are in UTM 30)
    assert geoduck.grid_sampler(archive_catalog, chip_size=64, resolution=500.0) == one


# -- samples as data --------------------------------------------------------------------------------


def test_samples_parquet_round_trip(tmp_path, sized, archive_catalog):
    rnd = list(geoduck.random_sampler(archive_catalog, chip_size=16, resolution=500.0, length=50, seed=9))
    grid = geoduck.grid_sampler(sized, chip_size=16, resolution=RES)
    odd = geoduck.GeoSlice(
        (0.1, 0.2, 0.7, 0.9), "EPSG:4326", (0.1, 0.05), start="2020-02-29T12:34:56.789012", end="2021"
    )
    slices = [*rnd, *grid, odd]
    path = geoduck.samples_to_parquet(
        slices, tmp_path / "chips.parquet", columns={"split": ["train"] * 50 + ["val"] * (len(slices) - 50)}
    )
    back = geoduck.samples_from_parquet(path)
    assert back == slices and [hash(s) for s in back] == [hash(s) for s in slices]
    assert [s.bounds for s in back] == [s.bounds for s in slices]  # bit-exact floats
    assert {type(v) for s in back for v in s.bounds} == {float}

    table = pq.read_table(path)
    assert table.column_names == [
        "chip",
        "geometry",
        "bbox",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
        "crs",
        "res_x",
        "res_y",
        "start_datetime",
        "end_datetime",
        "split",
    ]
    assert table.column("chip").to_pylist() == list(range(len(slices)))
    frame = gpd.read_parquet(path)  # a valid GeoParquet file in EPSG:4326
    assert frame.crs.to_epsg() == 4326
    for sl, geom in zip(slices, frame.geometry, strict=True):
        assert geom.equals_exact(sl.footprint(), 1e-9)
    assert frame.loc[0, "geometry"].bounds[0] == pytest.approx(table.column("bbox")[0]["xmin"].as_py())


def test_leakage_query_in_duckdb(tmp_path):
    chips = geoduck.grid_sampler((X0, Y0 - 2000, X0 + 4000, Y0), crs=UTM30, chip_size=40, stride=30, resolution=RES)
    train = [s for s in chips if s.bounds[0] < X0 + 2000]
    val = [s for s in chips if s.bounds[0] >= X0 + 2000]
    a = geoduck.samples_to_parquet(train, tmp_path / "train.parquet")
    b = geoduck.samples_to_parquet(val, tmp_path / "val.parquet")
    expected = sorted(
        (i, j)
        for i, s in enumerate(train)
        for j, t in enumerate(val)
        if box(*s.bounds).intersection(box(*t.bounds)).area > 0
    )
    assert expected  # overlapping strides leak across the split line
    con = geoduck.connect()
    rows = con.execute(
        "SELECT a.chip, b.chip FROM read_parquet(?) a JOIN read_parquet(?) b "
        "ON ST_Intersects(a.geometry, b.geometry) "
        "AND ST_Area(ST_Intersection(a.geometry, b.geometry)) > 1e-12 ORDER BY 1, 2",
        [str(a), str(b)],
    ).fetchall()
    assert rows == expected
    assert con.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE crs = 'EPSG:32630' AND res_x = 10", [str(a)]
    ).fetchone()[0] == len(train)


def test_samples_errors(tmp_path):
    with pytest.raises(ArgumentError, match="empty"):
        geoduck.samples_to_parquet([], tmp_path / "x.parquet")
    with pytest.raises(ArgumentError, match="GeoSlice"):
        geoduck.samples_to_parquet([(0, 0, 1, 1)], tmp_path / "x.parquet")
    sl = geoduck.GeoSlice((0, 0, 10, 10), UTM30, 1)
    with pytest.raises(ArgumentError, match="reserved"):
        geoduck.samples_to_parquet([sl], tmp_path / "x.parquet", columns={"crs": ["a"]})
    with pytest.raises(ArgumentError, match="2 values for 1"):
        geoduck.samples_to_parquet([sl], tmp_path / "x.parquet", columns={"split": ["a", "b"]})
    pq.write_table(
        pq.read_table(geoduck.samples_to_parquet([sl], tmp_path / "ok.parquet")).drop(["crs"]), tmp_path / "bad.parquet"
    )
    with pytest.raises(SchemaError, match="crs"):
        geoduck.samples_from_parquet(tmp_path / "bad.parquet")


# -- sharding across DataLoader workers -----------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_shard_splits_without_duplication(sized, workers):
    sampler = geoduck.random_sampler(sized, chip_size=8, resolution=RES, length=20, seed=0)
    parts = [list(shard(sampler, w, workers)) for w in range(workers)]
    assert sorted(len(p) for p in parts) == sorted(len(range(w, 20, workers)) for w in range(workers))
    flat = [s for p in parts for s in p]
    assert len(flat) == 20 and Counter(flat) == Counter(sampler)
    gen_parts = [list(shard(iter(range(20)), w, workers)) for w in range(workers)]  # plain iterables
    assert sorted(x for p in gen_parts for x in p) == list(range(20))
    assert gen_parts[0] == list(range(0, 20, workers))


def test_shard_bad_arguments():
    with pytest.raises(ArgumentError, match="worker_id"):
        list(shard([1, 2], 2, 2))
    with pytest.raises(ArgumentError, match="num_workers"):
        list(shard([1, 2], 0, 0))


def test_importing_geoduck_does_not_import_torch():
    code = "import sys, geoduck, geoduck.samplers, geoduck.stitch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_geoduck_torch_without_torch_says_how_to_install():
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"geoduck\[torch\]"):
            import geoduck.torch  # noqa: F401
    else:
        pytest.skip("torch is installed")


def test_torch_dataloader_workers(sized):
    torch = pytest.importorskip("torch")
    from geoduck.torch import GeoIterableDataset

    sampler = geoduck.random_sampler(sized, chip_size=8, resolution=RES, length=24, seed=0)
    ds = GeoIterableDataset(sized, sampler, lambda cat, sl: np.array(sl.bounds))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    got = sorted(tuple(t.tolist()) for t in loader)
    assert got == sorted(s.bounds for s in sampler)


def test_torch_dataloader_two_workers_yields_each_grid_chip_once(lshape):
    """Real chips loaded from GeoTIFFs in 2 DataLoader worker processes (fork): every grid chip
    exactly once, each with the pixels a load in this process gives."""
    torch = pytest.importorskip("torch")
    from geoduck.torch import GeoIterableDataset

    chips = geoduck.grid_sampler(lshape, chip_size=16, stride=12, resolution=RES)
    assert len(chips) > 8

    def load(cat, sl):
        return {"bounds": torch.tensor(sl.bounds), "x": torch.from_numpy(np.asarray(geoduck.load_raster(cat, sl)))}

    ds = GeoIterableDataset(lshape, chips, load)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
    seen = [tuple(b["bounds"].tolist()) for b in batches]
    assert sorted(seen) == sorted(sl.bounds for sl in chips)  # each exactly once
    by_bounds = {sl.bounds: sl for sl in chips}
    for b in batches[:6]:
        expected = np.asarray(geoduck.load_raster(lshape, by_bounds[tuple(b["bounds"].tolist())]))
        assert np.array_equal(b["x"].numpy(), expected)


def test_geo_iterable_dataset_shards_by_worker_info(sized, monkeypatch):
    """GeoIterableDataset against a stand-in torch: each worker gets its shard, together all chips."""
    import importlib
    import types

    info = {"value": None}
    fake = types.ModuleType("torch")
    fake.utils = types.ModuleType("torch.utils")
    fake.utils.data = types.ModuleType("torch.utils.data")
    fake.utils.data.IterableDataset = object
    fake.utils.data.get_worker_info = lambda: info["value"]
    fake.distributed = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: False)
    for name, mod in [("torch", fake), ("torch.utils", fake.utils), ("torch.utils.data", fake.utils.data)]:
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "geoduck.torch", raising=False)
    gt = importlib.import_module("geoduck.torch")
    try:
        sampler = geoduck.random_sampler(sized, chip_size=8, resolution=RES, length=10, seed=0)
        ds = gt.GeoIterableDataset(sized, sampler, lambda cat, sl: (cat is sized, sl))
        assert len(ds) == 10
        assert [sl for ok, sl in ds if ok] == list(sampler)  # main process: everything
        parts = []
        for wid in range(3):
            info["value"] = types.SimpleNamespace(id=wid, num_workers=3)
            parts.append([sl for _, sl in ds])
        assert [len(p) for p in parts] == [4, 3, 3]
        assert sorted(map(hash, sum(parts, []))) == sorted(map(hash, sampler))
        info["value"] = None
        ds.set_epoch(1)  # reseeds random samplers: new chips, same count
        assert [sl for _, sl in ds] == list(sampler.reseed(1)) != list(sampler)
    finally:
        sys.modules.pop("geoduck.torch", None)
        if hasattr(geoduck, "torch"):
            delattr(geoduck, "torch")
