"""Every README example runs: the ```python blocks of each ``##`` section, in order, in one fresh
namespace inside a temporary working directory that a per-section setup fills with the synthetic
files and catalogs the section names (``data/s2/``, ``catalog/`` …); the ``geoduck …`` lines of its
```bash blocks run through the CLI (click's runner) in the same directory, argv split by bash itself.
Checks after a block or a command assert what the README says it gives.

A block that cannot run carries ``<!-- not-run: reason -->`` on the line before it (at most
:data:`MAX_NOT_RUN`). A new section with code needs an entry in :data:`SETUPS`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from s3_server import point_aws_at
from stac_api import stac_api

import geoduck
from geoduck.cli import main
from geoduck.testing import (
    DEMO_TILES,
    LANDSAT_REGEX,
    SENTINEL2_REGEX,
    synthetic_archive,
    synthetic_cube,
    synthetic_labels,
    synthetic_landsat_archive,
    synthetic_sentinel2_archive,
)

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_NOT_RUN = 3
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.*?)\s*-->$")


# -- README parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    section: str
    """The ``## `` heading it is under."""
    lang: str
    line: int
    """1-based README line of its first code line."""
    code: str
    not_run: str | None
    """The reason of a ``<!-- not-run: … -->`` line right before it, else None."""


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` in order, each with its ``##`` section."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            start = i + 1
            end = start
            while not lines[end].startswith("```"):
                end += 1
            before = lines[i - 1].strip() if i else ""
            marker = NOT_RUN.match(before)
            blocks.append(
                Block(section, fence.group(1), start + 1, "\n".join(lines[start:end]), marker and marker["reason"])
            )
            i = end
        i += 1
    return blocks


def commands(block: Block) -> list[tuple[int, str]]:
    """The ``geoduck …`` command lines of a bash block (``\\`` continuations joined, comment-only
    lines skipped), with their README line numbers."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for k, raw in enumerate(block.code.splitlines()):
        line = raw.strip()
        if pending is None and (not line or line.startswith("#")):
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line)
        else:
            pending = (block.line + k, line)
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1].rstrip())
            continue
        if pending[1].startswith("geoduck "):
            out.append(pending)
        pending = None
    return out


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


def _argv(command: str, cwd: Path) -> list[str]:
    """``command`` split into words as bash does (quotes, ``$(…)``, comments), run in ``cwd``."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    operators = [tok for tok in lexer if tok and set(tok) <= set("|&;<>()")]
    assert not operators, f"not one plain command: {command!r} ({operators})"
    done = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {command}"], cwd=cwd, capture_output=True, check=True, timeout=30
    )
    return done.stdout.decode().split("\0")[:-1]


# -- sections: setups and checks --------------------------------------------------------------------

JUNE = (dt.date(2023, 5, 20), dt.date(2023, 6, 5), dt.date(2023, 6, 20), dt.date(2023, 7, 20))
"""Archive dates; tile k is acquired k days later (synthetic_archive)."""

Setup = Callable[[Path, ExitStack], dict[str, Any]]


def _band_catalogs(root: Path, *, qa: bool = False) -> None:
    """``data/l2a/`` (Sentinel-2 band files) and ``data/landsat/`` archives, catalogs ``s2/``, ``landsat/``."""
    s2 = synthetic_sentinel2_archive(root / "data/l2a", scl=qa)
    l8 = synthetic_landsat_archive(root / "data/landsat", qa_pixel=qa)
    geoduck.build_raster_catalog(s2, root / "s2", filename_regex=SENTINEL2_REGEX, progress=False, workers=1)
    geoduck.build_raster_catalog(l8, root / "landsat", filename_regex=LANDSAT_REGEX, progress=False, workers=1)


def setup_use(root: Path, stack: ExitStack) -> dict[str, Any]:
    synthetic_archive(root / "data/s2", tiles=DEMO_TILES[:3], dates=JUNE)
    synthetic_cube(root / "data/era5/t2m_2023.nc")
    synthetic_labels(root / "data/labels/fields_202306.geojson")
    _band_catalogs(root)
    return {}


def check_use(ns: dict[str, Any]) -> None:
    """The June query gives exactly the rows a brute-force filter gives; the loads are on ``sl``."""
    from shapely.geometry import box

    cat, june, sl = ns["cat"], ns["june"], ns["sl"]
    assert cat.build_report.indexed == 12 and not cat.build_report.errors
    rows = cat.to_geopandas()
    aoi = geoduck.geo.transformer("EPSG:32630", "EPSG:4326")
    lonlat = box(*aoi.transform_bounds(300_000, 4_380_000, 400_000, 4_480_000, densify_pts=21))
    expect = rows[
        rows.intersects(lonlat)
        & (rows["start_datetime"] <= "2023-06-30T23:59:59.999999Z")
        & (rows["end_datetime"] >= "2023-06-01T00:00:00Z")
    ]
    assert sorted(ns["gdf"]["id"]) == sorted(expect["id"]) and len(june) == len(expect) == 4
    assert set(ns["gdf"]["tile"]) == {"30TTK", "30TVK"}
    assert set(ns["gdf"]["start_datetime"].dt.month) == {6}
    assert len(ns["pairs"]) > 0 and {"left_id", "right_id"} <= set(ns["pairs"].to_arrow().column_names)
    assert set(ns["train"].to_arrow()["split"].to_pylist()) == {"train"}
    assert ns["mosaic"].values.shape == (3, *sl.shape) and ns["mosaic"].transform == sl.transform
    assert ns["mask"].values.shape[-2:] == sl.shape and int(np.asarray(ns["mask"].values).max()) > 0


def _catalog(paths: Any, out: Path, regex: str | None = None) -> geoduck.Catalog:
    return geoduck.build_raster_catalog(paths, out, filename_regex=regex, progress=False, workers=1)


TINY = {"size": 36, "res": 4000.0}
"""synthetic_archive options for setups that only need rows: 36 px tiles (the same 144 km extent)."""

S2_VERBOSE = r"""
(?P<sensor>S2[AB])_(?P<tile>\d{2}[A-Z]{3})_(?P<date>\d{8})_\d+_L2A/   # product folder
(?P<band>B\d[\dA]|SCL)\.tif$                                       # band file
"""


def setup_command_line(root: Path, stack: ExitStack) -> dict[str, Any]:
    import geopandas as gpd
    import shapely

    synthetic_archive(root / "data/s2", tiles=DEMO_TILES[1:3], dates=JUNE, **TINY)
    synthetic_sentinel2_archive(root / "data/l2a")
    (root / "s2_regex.txt").write_text(S2_VERBOSE)
    src = _catalog(root / "data/s2", root / "src", r"S2_(?P<tile>\w{5})_(?P<date>\d{8})\.tif$")
    src.to_stac_geoparquet(root / "items.parquet")
    _catalog(root / "data/s2", root / "imagery", r"S2_(?P<tile>\w{5})_(?P<date>\d{8})\.tif$")
    synthetic_labels(root / "data/labels/fields_202306.geojson")
    for name in ("labels", "other"):
        geoduck.build_vector_catalog(
            root / "data/labels", root / name, filename_regex=r"_(?P<date>\d{6})", progress=False, workers=1
        )
    _catalog(synthetic_landsat_archive(root / "data/landsat"), root / "landsat", LANDSAT_REGEX)
    scenes = gpd.GeoDataFrame(
        {"name": ["a", "b"], "acquired": ["2023-06-15", "2023-06-20"]},
        geometry=[shapely.box(-5, 40, -4.5, 40.5), shapely.box(-4.5, 40.5, -4, 41)],
        crs="EPSG:4326",
    )
    scenes.to_file(root / "scenes.gpkg", driver="GPKG")
    return {}


def check_query_csv(output: str, root: Path) -> None:
    import pandas as pd

    rows = pd.read_csv(root / "june.csv")
    assert len(rows) == 4 and set(rows["tile"]) == {"30TTK", "30TVK"}
    assert set(pd.to_datetime(rows["start_datetime"]).dt.month) == {6}


def check_info(output: str, root: Path) -> None:
    assert re.search(r"^rows\s+8$", output, re.M), output  # 2 tiles × 4 dates


def check_sql(output: str, root: Path) -> None:
    assert re.search(r"^30TTK\s+4$", output, re.M) and re.search(r"^30TVK\s+4$", output, re.M), output


def check_gti(output: str, root: Path) -> None:
    import rasterio

    with rasterio.open(root / "mosaic.gti.gpkg") as ds:
        assert ds.count == 3 and ds.res == (500.0, 500.0) and ds.crs.to_epsg() == 32630


def setup_stac(root: Path, stack: ExitStack) -> dict[str, Any]:
    """Sentinel-2 band files as STAC items (pystac, proj:*, eo:bands common names, cloud cover),
    as stac-geoparquet, a static catalog, an ItemCollection file and a STAC API on 127.0.0.1."""
    import pystac
    import rasterio
    import stac_geoparquet
    from shapely.geometry import box, mapping

    common = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B05": "rededge", "B11": "swir16"}
    paths = synthetic_sentinel2_archive(root / "data/l2a")
    items: list[pystac.Item] = []
    for k, folder in enumerate(sorted({p.parent for p in paths})):
        sensor, tile, date = folder.name.split("_")[:3]
        item = pystac.Item(
            folder.name, None, None, dt.datetime.strptime(date + "10", "%Y%m%d%H").replace(tzinfo=dt.UTC),
            {"eo:cloud_cover": 5.0 if folder.name.startswith("S2B_30TYK") else 30.0 + k,
             "platform": f"sentinel-{sensor[1:].lower()}"},
            collection="sentinel-2-l2a",
        )  # fmt: skip
        for band in sorted(folder.glob("*.tif")):
            with rasterio.open(band) as ds:
                lonlat = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
                item.geometry, item.bbox = mapping(box(*lonlat)), list(lonlat)
                item.add_asset(
                    band.stem,
                    pystac.Asset(
                        str(band), media_type=pystac.MediaType.COG, roles=["data"],
                        extra_fields={
                            "proj:code": ds.crs.to_string(), "proj:shape": [ds.height, ds.width],
                            "proj:transform": list(ds.transform)[:6],
                            "eo:bands": [{"name": band.stem, "common_name": common[band.stem]}],
                            "raster:bands": [{"data_type": "uint32", "nodata": 0}],
                        },
                    ),
                )  # fmt: skip
        items.append(item)
    features = [it.to_dict() for it in items]
    stac_geoparquet.arrow.to_parquet(stac_geoparquet.arrow.parse_stac_items_to_arrow(features), root / "s2-l2a.parquet")
    (root / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    static = pystac.Catalog("root", "static catalog")
    coll = pystac.Collection(
        "sentinel-2-l2a", "test",
        pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])),
    )  # fmt: skip
    static.add_child(coll)
    for it in items:
        coll.add_item(it.clone())
    static.normalize_hrefs(str(root / "static"))
    static.save(pystac.CatalogType.SELF_CONTAINED)
    url = stack.enter_context(stac_api(features)).base
    stack.enter_context(pytest.MonkeyPatch.context()).setenv("STAC_API_URL", url)
    return {"stac_api_url": url}


def check_stac_in(ns: dict[str, Any]) -> None:
    """4 items × 6 bands; the clear S2B item alone; its red/green/blue are B04/B03/B02 pixels."""
    from geoduck.testing import band_value

    # each source holds the same 4 items (different JSON, so "changed"), none is indexed twice
    assert len(ns["cat"]) == 24 and ns["cat"].build_report.indexed == 0
    clear = ns["clear"].to_arrow()
    assert set(clear["scene_id"].to_pylist()) == {"S2B_30TYK_20230615_0_L2A"}
    rgb, sl = np.asarray(ns["rgb"].values), ns["sl"]
    xs = sl.transform.c + sl.resolution[0] * (np.arange(sl.shape[1]) + 0.5)
    ys = sl.transform.f - sl.resolution[1] * (np.arange(sl.shape[0]) + 0.5)
    x, y = np.meshgrid(xs, ys)
    for i, band in enumerate((4, 3, 2)):
        np.testing.assert_array_equal(rgb[i], band_value(x, y, band))


def check_gti_python(ns: dict[str, Any]) -> None:
    """The GTI mosaic holds the June B04 pixels of the zone-30 tile (band number 4 in every pixel)."""
    mosaic = ns["mosaic"]
    assert mosaic.shape[0] == 1 and (mosaic[0] // 100_000_000 == 4).all()


def setup_foreign(root: Path, stack: ExitStack) -> dict[str, Any]:
    import geopandas as gpd
    import pandas as pd
    import shapely

    gpd.GeoDataFrame(
        {"scene_id_x": ["s1", "s2"], "acquired": ["2023-06-15", "2023-06-20"], "href": ["a.tif", "b.tif"]},
        geometry=[shapely.box(-5, 40, -4.5, 40.5), shapely.box(-4.5, 40.5, -4, 41)],
        crs="EPSG:4326",
    ).to_file(root / "scenes.gpkg", driver="GPKG")
    pd.DataFrame(
        {"name": ["f1"], "wkt": ["POLYGON ((400000 4400000, 410000 4400000, 410000 4410000, 400000 4400000))"],
         "t0": ["2023-06-01"], "t1": ["2023-06-30"]}
    ).to_csv(root / "footprints.csv", index=False)  # fmt: skip
    _band_catalogs(root)
    return {}


def check_foreign(ns: dict[str, Any]) -> None:
    june = geoduck.open_catalog("cat/").query(bbox=(-5, 40, -4, 41), start="2023-06-01", end="2023-06-30")
    assert sorted(june.to_arrow()["id"].to_pylist()) == ["a", "b"]
    assert sorted(ns["cat"].to_arrow()["id"].to_pylist()) == ["f1", "s1", "s2"]


def setup_catalog(root: Path, stack: ExitStack) -> dict[str, Any]:
    from geoduck.testing import Tile

    synthetic_sentinel2_archive(root / "data/sentinel-s2-l2a-cogs", scl=True)
    synthetic_landsat_archive(root / "data/landsat", qa_pixel=True)
    synthetic_archive(
        root / "data/l1c", tiles=[Tile("30TYK", 32630, (-0.004, 40.0))], size=120, res=10.0, qa60=True,
        dates=[dt.date(2023, 6, 5), dt.date(2023, 6, 15), dt.date(2023, 6, 25)], hole_every=0,
    )  # fmt: skip
    return {}


def check_sources(ns: dict[str, Any]) -> None:
    """Provenance: the rows' won values add up to the valid output values; newest first."""
    values = np.asarray(ns["composite"].values)
    sources = ns["sources"]
    assert int(sources["pixels"].sum()) == int((values != ns["composite"].fill_value_default).sum()) > 0
    assert list(sources["start_datetime"]) == sorted(sources["start_datetime"], reverse=True)


def check_polygons(ns: dict[str, Any]) -> None:
    """The polygons cover exactly the flagged pixels (10 m pixels: 100 m² each)."""
    flag, gdf = ns["flag"], ns["gdf"]
    assert flag.sum() > 0 and abs(gdf.area.sum() - flag.sum() * 100.0) < 1e-6 * gdf.area.sum()


def setup_scaling(root: Path, stack: ExitStack) -> dict[str, Any]:
    from geoduck.testing import Tile

    tiles = [Tile("30TVK", 32630, (-3.75, 40.0)), Tile("30TVL", 32630, (-3.74, 40.0))]
    synthetic_archive(root / "shared/archive", tiles=tiles, size=300, res=10.0, dates=JUNE[1:3])
    return {}


def check_map_chips(ns: dict[str, Any]) -> None:
    """The stitched COG equals the local loop's results stitched; one chip file per chip."""
    import rasterio

    slices, cat = ns["slices"], ns["cat"]
    expect = geoduck.stitch([ns["fn"](geoduck.load_raster(cat, s)) for s in slices], slices, method="average")
    with rasterio.open("prediction.tif") as ds:
        np.testing.assert_allclose(ds.read(), np.asarray(expect.values), rtol=1e-6)
    assert len(list(Path("chips").glob("chip_*.tif"))) == len(slices) == len(ns["values"])


def setup_remote(root: Path, stack: ExitStack) -> dict[str, Any]:
    """COGs served over HTTP (RangeServer) and from a moto S3 bucket ``my-bucket``, on 127.0.0.1."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    from werkzeug.serving import WSGIRequestHandler, make_server

    from geoduck.testing_http import RangeServer

    files = synthetic_archive(root / "src", tiles=[DEMO_TILES[2]], dates=JUNE[1:3], **TINY)
    served = root / "served/cogs"
    served.mkdir(parents=True)
    for name, src in (("T30TVK_20230615.tif", files[0]), ("a.tif", files[0])):
        (served / name).write_bytes(src.read_bytes())
    server = stack.enter_context(RangeServer(root / "served"))

    class Quiet(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
            pass

    app = moto_server.DomainDispatcherApplication(moto_server.create_backend_app)
    s3 = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=s3.serve_forever, daemon=True)
    thread.start()
    stack.callback(thread.join, 5)
    stack.callback(s3.shutdown)
    env = stack.enter_context(pytest.MonkeyPatch.context())
    point_aws_at(env, f"http://127.0.0.1:{s3.server_port}")
    env.setenv("COGS", server.url + "/cogs")
    client = boto3.client("s3")
    client.create_bucket(Bucket="my-bucket")
    client.upload_file(str(files[1]), "my-bucket", "cogs/T30TVK_20230620.tif")
    client.upload_file(str(files[1]), "my-bucket", "b.tif")
    (root / "urls.txt").write_text(f"# the README's --from-file list\n{server.url}/cogs/a.tif\ns3://my-bucket/b.tif\n")
    return {"cogs": server.url + "/cogs"}


def check_from_file(output: str, root: Path) -> None:
    """The URLs of ``urls.txt`` were indexed by the command before it, so the list adds nothing."""
    paths = [r["filepath"] for r in geoduck.open_catalog(root / "catalog")]
    listed = [line for line in (root / "urls.txt").read_text().splitlines() if not line.startswith("#")]
    assert set(listed) <= set(paths) and len(paths) == len(set(paths)), paths


def check_remote(ns: dict[str, Any]) -> None:
    """The chip equals the same load from local copies of the two files."""
    local = _catalog(sorted(Path("src").rglob("*.tif")), Path("local"))
    assert len(ns["cat"]) == 2 and not ns["cat"].build_report.errors
    expect = geoduck.load_raster(local, ns["sl"])
    np.testing.assert_array_equal(np.asarray(ns["chip"].values), np.asarray(expect.values))
    assert (np.asarray(expect.values) != 0).any()


def check_ml(ns: dict[str, Any]) -> None:
    """Random chips carry their row's interval; folds are saved with the chips; the stitched
    prediction is the model's output where one chip covers a pixel."""
    import pyarrow.parquet as pq
    import rasterio

    train, cat = ns["train"], ns["cat"]
    intervals = {(r["start_datetime"], r["end_datetime"]) for r in cat}
    assert all((c.start, c.end) in intervals for c in list(train)[:50])
    saved = pq.read_table("train_folds.parquet")
    assert saved.num_rows == len(train) and saved["fold"].to_pylist() == ns["folds"]["fold"].tolist()
    folds = ns["folds"]
    # -1: within the buffer of another fold. Which folds keep items depends on where the random chips
    # fell (row ids hash the temporary paths), so check the invariants, not that all five survive.
    kept = folds[folds["fold"] >= 0]
    assert set(kept["fold"]) <= set(range(5)) and kept["fold"].nunique() >= 2
    assert (kept.groupby("block")["fold"].nunique() == 1).all()  # a block goes to one fold whole
    tiles = ns["tiles"]
    with rasterio.open("prediction.tif") as ds:
        first = geoduck.load_raster(cat, tiles[0]).values[:1] / 10_000
        window = ds.read(window=ds.window(*tiles[0].bounds))
    assert window.shape == first.shape and np.isclose(window[0, 0, 0], first[0, 0, 0])


def check_stac_out(ns: dict[str, Any]) -> None:
    """One item per scene (4), in a collection, as static catalog and as stac-geoparquet."""
    import pyarrow.parquet as pq

    collection = json.loads(Path("stac/collection.json").read_text())
    assert collection["type"] == "Collection"
    assert len(list(Path("stac").glob("*/*.json"))) == 4 == pq.read_table("june.parquet").num_rows


SETUPS: dict[str, Setup] = {
    "Use": setup_use,
    "Command line": setup_command_line,
    "STAC and GDAL": setup_stac,
    "Other tools' tables, BI databases, GeoParquet 2.0": setup_foreign,
    "The catalog": setup_catalog,
    "Remote rasters": setup_remote,
    "Scaling out": setup_scaling,
}

PY_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "mask = geoduck.load_vector(labels, sl": check_use,
    "ds = GeoIterableDataset(": check_ml,
    'june.to_stac_geoparquet("june.parquet", collection_href': check_stac_out,
    'rgb = geoduck.load_raster(clear, sl, bands=["red"': check_stac_in,
    "mixed.to_gti(": check_gti_python,
    'cat = geoduck.import_table("footprints.csv"': check_foreign,
    "unused = sources.loc": check_sources,
    "gdf = geoduck.polygons_from_mask(": check_polygons,
    "chip = geoduck.load_raster(cat, sl)": check_remote,
    "values = geoduck.map_chips(": check_map_chips,
}
"""A line of a python block → a check run on the namespace right after that block."""

CLI_CHECKS: dict[str, Callable[[str, Path], None]] = {
    "geoduck query catalog/ --bbox 300000": check_query_csv,
    "geoduck info catalog/": check_info,
    "geoduck sql catalog/": check_sql,
    "geoduck export gti mosaic.gti.gpkg": check_gti,
    "geoduck build raster -o catalog --from-file urls.txt": check_from_file,
}
"""The start of a command → a check of its output (and the working directory) after it ran."""

COVERED_ELSEWHERE = {"geoduck demo ": ("tests/test_cli.py", 'invoke(main, ["demo"')}
"""Commands too slow to run again here → (test file, text of the test that runs them)."""


# -- tests ------------------------------------------------------------------------------------------


def _sections() -> list[str]:
    seen: list[str] = []
    for b in BLOCKS:
        if b.section in SETUPS and b.section not in seen:
            seen.append(b.section)
    return seen


def _runnable(b: Block) -> bool:
    return b.not_run is None and (b.lang == "python" or (b.lang == "bash" and bool(commands(b))))


def test_every_example_has_a_setup_and_few_are_not_run():
    python = [b for b in BLOCKS if b.lang == "python"]
    assert len(python) >= 15
    not_run = [b for b in BLOCKS if b.not_run is not None]
    assert len(not_run) <= MAX_NOT_RUN, [(b.line, b.not_run) for b in not_run]
    assert all(len(b.not_run or "") >= 10 for b in not_run), "each not-run marker needs a reason"
    missing = sorted({b.section for b in BLOCKS if _runnable(b) and b.section not in SETUPS})
    assert not missing, f"README sections with examples but no setup in tests/test_readme.py: {missing}"
    assert set(SETUPS) <= {b.section for b in BLOCKS if _runnable(b)}, "a setup for a section without examples"
    for key in PY_CHECKS:
        assert sum(key in b.code for b in BLOCKS if b.lang == "python") == 1, f"check key not in one block: {key!r}"
    cli = [c for b in BLOCKS if b.lang == "bash" for _, c in commands(b)]
    for key in CLI_CHECKS:
        assert sum(c.startswith(key) for c in cli) == 1, f"check key not one command: {key!r}"


def test_parser_finds_commands_and_markers():
    text = (
        "## A\n<!-- not-run: needs a cluster -->\n```python\nx = 1\n```\n"
        "```bash\ngeoduck info c/ \\\n  --x 1  # y\n    # z\nmake demo\n```\n"
    )
    blocks = parse_blocks(text)
    assert [(b.section, b.lang, b.line, b.not_run) for b in blocks] == [
        ("A", "python", 4, "needs a cluster"),
        ("A", "bash", 7, None),
    ]
    assert commands(blocks[1]) == [(7, "geoduck info c/ --x 1  # y")]
    assert _argv("geoduck info 'a b' \"$(echo c)\"  # comment", Path.cwd()) == ["geoduck", "info", "a b", "c"]
    with pytest.raises(AssertionError, match="not one plain command"):
        _argv("geoduck info c/ | head", Path.cwd())


def _close_clients(ns: dict[str, Any]) -> None:
    """Close the dask clients (and their in-process clusters) an example opened."""
    for value in ns.values():
        if type(value).__name__ == "Client" and type(value).__module__.startswith("distributed"):
            cluster = value.cluster
            value.close()
            if cluster is not None:
                cluster.close()


def test_commands_covered_elsewhere_are_run_there():
    for key, (path, text) in COVERED_ELSEWHERE.items():
        assert any(c.startswith(key) for b in BLOCKS if b.lang == "bash" for _, c in commands(b)), key
        assert text in (README.parent / path).read_text(encoding="utf-8"), (key, path)


@pytest.mark.parametrize("section", _sections())
def test_readme_section_runs(section: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    ran = 0
    with ExitStack() as stack:
        ns: dict[str, Any] = {"__name__": "readme_example", "geoduck": geoduck}  # as after `import geoduck`
        stack.callback(_close_clients, ns)
        ns.update(SETUPS[section](tmp_path, stack))
        for block in (b for b in BLOCKS if b.section == section and _runnable(b)):
            if block.lang == "python":
                exec(compile("\n" * (block.line - 1) + block.code, str(README), "exec"), ns)  # noqa: S102
                for key, check in PY_CHECKS.items():
                    if key in block.code:
                        check(ns)
            else:
                for line, command in commands(block):
                    if any(command.startswith(key) for key in COVERED_ELSEWHERE):
                        continue
                    argv = _argv(command, tmp_path)
                    result = CliRunner().invoke(main, argv[1:], catch_exceptions=False)
                    assert result.exit_code == 0, f"README.md:{line}: {command}\n{result.output}"
                    for key, cli_check in CLI_CHECKS.items():
                        if command.startswith(key):
                            cli_check(result.output, tmp_path)
            ran += 1
    assert ran > 0
