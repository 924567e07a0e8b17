"""Remote rasters: catalogs built from ``http://`` and ``s3://`` COG URLs, loaded through GDAL's
``/vsicurl/`` and ``/vsis3/``, served from 127.0.0.1 by the tests (an HTTP server with range requests,
:class:`geoduck.testing_http.RangeServer`, and a moto S3 server), never the network. Pixels are
compared with rasterio reading the local copies; the servers count requests, so the GDAL options
of :mod:`geoduck.header` are checked: no directory listing, no sidecar probes, a chip from an open
dataset costs a few range requests and never a whole file.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.merge
from click.testing import CliRunner
from rasterio.transform import from_origin
from rasterio.windows import Window
from s3_server import point_aws_at

import geoduck
from geoduck import header
from geoduck.cli import main
from geoduck.errors import BuildError, SourceError
from geoduck.loaders.raster import load_raster
from geoduck.slices import GeoSlice
from geoduck.testing_http import RangeServer, Request

CRS = "EPSG:32630"
RES = 10.0
SIZE = 512
BLOCK = 128
TILES = ((400_000.0, 4_500_000.0), (400_000.0 + SIZE * RES, 4_500_000.0))
"""Top-left corners of two adjacent tiles (UTM 30N, 10 m, 512 × 512 px)."""


def _write_cog(path: Path, x0: float, y0: float, seed: int) -> Path:
    """A 2-band uint16 COG (deflate, 128 px blocks, overviews), nodata 0: a smooth ramp plus
    noise (so tiles do not compress to nothing and every pixel is checkable)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    values = np.stack([rows * 7 + cols, cols * 5 + 3 * rows]).astype(np.uint16) + 1
    values += rng.integers(0, 1000, values.shape, dtype=np.uint16)
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=SIZE,
        height=SIZE,
        count=2,
        dtype="uint16",
        crs=CRS,
        transform=from_origin(x0, y0, RES, RES),
        nodata=0,
        compress="deflate",
        blocksize=BLOCK,
    ) as dst:
        dst.write(values)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    """A folder of real COGs written here plus one file of the real corpus (Landsat 7 crop)."""
    root = tmp_path_factory.mktemp("served")
    (root / "cogs").mkdir()
    for i, (x0, y0) in enumerate(TILES):
        _write_cog(root / "cogs" / f"tile_{i}.tif", x0, y0, seed=i)
    shutil.copy(corpus_dir / "stars" / "L7_ETMs.tif", root / "L7_ETMs.tif")
    return root


@pytest.fixture(scope="module")
def http(served: Path) -> Iterator[RangeServer]:
    with RangeServer(served) as server:
        yield server


def _tiles(root: Path) -> list[Path]:
    return sorted((root / "cogs").glob("tile_*.tif"))


def _oracle(files: list[Path], s: GeoSlice) -> np.ndarray:
    """The slice's pixels read from the local files by rasterio (first valid wins, nodata 0)."""
    with rasterio.Env():
        srcs = [rasterio.open(f) for f in files]
        try:
            values, _ = rasterio.merge.merge(srcs, bounds=s.bounds, res=s.resolution, nodata=0, method="first")
        finally:
            for src in srcs:
                src.close()
    return values


def _unexpected(requests: list[Request], allowed: set[str]) -> list[Request]:
    """Requests for anything but the served files: sidecars, folders, listings."""
    return [r for r in requests if r.path not in allowed]


# -- GDAL options -------------------------------------------------------------------------------


def test_aws_endpoint_url_becomes_gdal_s3_endpoint():
    opts = header.aws_options({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert opts == {"AWS_S3_ENDPOINT": "127.0.0.1:9000", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}
    # the S3-specific variable wins; https keeps GDAL's default scheme; the user's choices stay
    opts = header.aws_options(
        {
            "AWS_ENDPOINT_URL": "http://other:1",
            "AWS_ENDPOINT_URL_S3": "https://minio.example.org/",
            "AWS_VIRTUAL_HOSTING": "TRUE",
        }
    )
    assert opts == {"AWS_S3_ENDPOINT": "minio.example.org"}
    assert header.aws_options({"AWS_S3_ENDPOINT": "s3.local", "AWS_ENDPOINT_URL": "http://x:1"}) == {}
    assert header.aws_options({}) == {}


def test_remote_options_are_defaults_but_never_list_directories(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("GDAL_INGESTED_BYTES_AT_OPEN", raising=False)
    url = "https://example.org/a.tif"
    assert header.gdal_options("/data/a.tif") == {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}
    opts = header.gdal_options(url)
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR" and opts["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    assert opts["GDAL_INGESTED_BYTES_AT_OPEN"] == "32768"
    monkeypatch.setenv("GDAL_INGESTED_BYTES_AT_OPEN", "65536")  # the user's value wins (GDAL reads it)
    assert "GDAL_INGESTED_BYTES_AT_OPEN" not in header.gdal_options(url)
    with rasterio.Env(GDAL_HTTP_MULTIRANGE="SERIAL", GDAL_DISABLE_READDIR_ON_OPEN="TRUE"):
        inner = header.gdal_options(url)
    assert "GDAL_HTTP_MULTIRANGE" not in inner and inner["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert header.gdal_options("s3://bucket/a.tif")["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"


# -- HTTP ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_catalog(http: RangeServer, served: Path, tmp_path_factory: pytest.TempPathFactory):
    urls = [http.url_of(p) for p in _tiles(served)] + [http.url_of(served / "L7_ETMs.tif")]
    http.take()
    cat = geoduck.build_raster_catalog(urls, tmp_path_factory.mktemp("http") / "cat", progress=False, workers=1)
    return cat, urls, http.take()


def test_http_build_reads_headers_with_few_requests(http_catalog, http, served, tmp_path):
    cat, urls, requests = http_catalog
    assert cat.build_report.errors == () and cat.build_report.indexed == 3
    local = geoduck.build_raster_catalog(
        [*_tiles(served), served / "L7_ETMs.tif"], tmp_path / "local", progress=False, workers=1
    )
    got = cat.to_arrow().sort_by("filepath")
    want = local.to_arrow().sort_by("filepath")
    assert got["filepath"].to_pylist() == sorted(urls)
    for column in ("crs", "width", "height", "count", "dtype", "nodata", "res_x", "res_y", "transform", "bbox"):
        assert got[column].to_pylist() == want[column].to_pylist(), column
    # size and mtime are not stat-able remotely: null (see README "Remote rasters")
    assert got["file_size"].null_count == 3 and got["file_mtime"].null_count == 3
    # per file: a HEAD and one range GET of the header; no listing, no sidecar, no whole file
    paths = {r.path for r in requests}
    assert paths == {"/" + Path(u.split("/", 3)[3]).as_posix() for u in urls}
    assert not any(r.whole_file for r in requests)
    assert len(requests) <= 2 * len(urls), requests

    again = geoduck.build_raster_catalog(urls, cat.node.root, progress=False, workers=1)
    assert again.build_report.unchanged == 3 and again.build_report.indexed == 0
    assert http.take() == []  # an unchanged remote file costs no request


def test_http_load_raster_matches_rasterio_on_local_files(http_catalog, served):
    cat, _, _ = http_catalog
    tiles = _tiles(served)
    x0, y0 = TILES[0]
    # straddling both tiles, on their grid
    s = GeoSlice((x0 + 400 * RES, y0 - 300 * RES, x0 + 656 * RES, y0 - 44 * RES), CRS, RES)
    got = load_raster(cat, s)
    np.testing.assert_array_equal(np.asarray(got.values), _oracle(tiles, s))
    # the real corpus file: the whole grid, every band
    with rasterio.open(served / "L7_ETMs.tif") as src:
        b = src.bounds
        s7 = GeoSlice((b.left, b.bottom, b.right, b.top), src.crs, src.res)
        want = src.read()
    got7 = load_raster(cat, s7)
    np.testing.assert_array_equal(np.asarray(got7.values), want)


def test_http_sampler_chips_cost_few_range_requests(http_catalog, http, served):
    cat, urls, _ = http_catalog
    tiles_cat = cat.where("filepath LIKE '%/cogs/%'")
    sampler = geoduck.random_sampler(tiles_cat, chip_size=256, resolution=RES, crs=CRS, length=12, seed=3)
    tiles = _tiles(served)
    allowed = {"/cogs/" + p.name for p in tiles}
    seen: list[Request] = []
    opened: set[Path] = set()
    counted = 0
    with rasterio.Env():
        extents = {}
        for p in tiles:
            with rasterio.open(p) as src:
                extents[p] = src.bounds
    http.take()
    for s in sampler:
        got = np.asarray(load_raster(tiles_cat, s, max_workers=1).values)  # read in this thread
        np.testing.assert_array_equal(got, _oracle(tiles, s))
        requests = http.take()
        seen += requests
        xmin, ymin, xmax, ymax = s.bounds
        files = {p for p, b in extents.items() if xmin < b.right and b.left < xmax and ymin < b.top and b.bottom < ymax}
        if files <= opened:  # every file of this chip is open in this thread already
            counted += 1
            assert not any(r.method == "HEAD" or r.whole_file for r in requests), requests
            # 256 px over 128 px blocks: at most 3 block rows per file, consecutive blocks merged
            assert len(requests) <= 3 * len(files), requests
        opened |= files
    assert counted >= 6  # most chips came from datasets already open
    assert _unexpected(seen, allowed) == []
    assert not any(r.whole_file for r in seen)


def test_http_missing_file_is_reported_by_url(http, served, tmp_path):
    missing = f"{http.url}/cogs/nope.tif"
    found = http.url_of(_tiles(served)[0])
    cat = geoduck.build_raster_catalog([missing, found], tmp_path / "cat", progress=False, workers=1)
    assert cat.build_report.indexed == 1
    ((path, reason),) = cat.build_report.errors
    assert path == missing and "404" in reason and missing in reason
    with pytest.raises(BuildError, match=r"nope\.tif.*404"):
        geoduck.build_raster_catalog([missing], tmp_path / "none", progress=False, workers=1)
    with pytest.raises(SourceError, match=r"nope\.tif"):
        header.read_header(missing)


def test_cli_builds_from_urls(http, served, tmp_path):
    urls = [http.url_of(p) for p in _tiles(served)]
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["build", "raster", "-o", str(out), "--workers", "1", "--no-progress", *urls])
    assert result.exit_code == 0, result.output
    assert "2 rows from 2 files indexed" in result.output
    assert sorted(geoduck.open_catalog(out).to_arrow()["filepath"].to_pylist()) == urls


def test_cli_builds_from_a_file_of_urls(http, served, tmp_path):
    """``--from-file`` (a file, or ``-`` for stdin) adds listed URLs to PATHS; building again
    appends only the URLs not yet indexed, without a request for the known ones."""
    tiles = [http.url_of(p) for p in _tiles(served)]
    fresh = served / "fromfile" / "L7_ETMs.tif"  # a URL no GDAL cache of this process has seen
    fresh.parent.mkdir(exist_ok=True)
    shutil.copy(served / "L7_ETMs.tif", fresh)
    l7 = http.url_of(fresh)
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# two tiles\n{tiles[0]}\n\n  {tiles[1]}  \n")
    out = tmp_path / "cli"
    args = ["build", "raster", "-o", str(out), "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--from-file", str(listing)])
    assert result.exit_code == 0, result.output
    assert "2 rows from 2 files indexed" in result.output
    assert sorted(geoduck.open_catalog(out).to_arrow()["filepath"].to_pylist()) == tiles
    http.take()
    result = CliRunner().invoke(main, [*args, l7, "--from-file", "-"], input=f"{tiles[0]}\n{tiles[1]}\n")
    assert result.exit_code == 0, result.output
    assert "1 rows from 1 files indexed, 2 unchanged" in result.output
    cat = geoduck.open_catalog(out)
    assert sorted(cat.to_arrow()["filepath"].to_pylist()) == sorted([*tiles, l7])
    assert {r.path for r in http.take()} == {"/fromfile/L7_ETMs.tif"}  # the known tiles cost no request
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    result = CliRunner().invoke(main, [*args, "--from-file", str(empty)])
    assert result.exit_code == 1 and "no PATHS" in result.output


# -- S3 (moto) ----------------------------------------------------------------------------------


class _Counting:
    """WSGI middleware recording (method, path, query, range) of every request."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[tuple[str, str, str, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.requests.append(
                (
                    environ["REQUEST_METHOD"],
                    environ["PATH_INFO"],
                    environ.get("QUERY_STRING", ""),
                    environ.get("HTTP_RANGE"),
                )
            )
        return self.app(environ, start_response)

    def take(self) -> list[tuple[str, str, str, str | None]]:
        with self.lock:
            out, self.requests = self.requests, []
        return out


@pytest.fixture(scope="module")
def s3(served: Path) -> Iterator[_Counting]:
    """A moto S3 server on 127.0.0.1 (counting requests) holding the served files in bucket
    ``geoduck-cogs``, with the AWS variables pointing at it (restored after)."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log(self, type, message, *args):  # noqa: A002 - werkzeug's signature
            pass

    app = _Counting(moto_server.DomainDispatcherApplication(moto_server.create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mp = pytest.MonkeyPatch()
    try:
        point_aws_at(mp, f"http://127.0.0.1:{server.server_port}")
        client = boto3.client("s3")
        client.create_bucket(Bucket="geoduck-cogs")
        for p in [*_tiles(served), served / "L7_ETMs.tif"]:
            client.upload_file(str(p), "geoduck-cogs", p.relative_to(served).as_posix())
        app.take()
        yield app
    finally:
        mp.undo()
        server.shutdown()
        thread.join(timeout=5)


def test_s3_catalog_loads_like_local_files(s3, served, tmp_path):
    tiles = _tiles(served)
    uris = [f"s3://geoduck-cogs/cogs/{p.name}" for p in tiles]
    cat = geoduck.build_raster_catalog(uris, tmp_path / "cat", progress=False, workers=1)
    assert cat.build_report.errors == () and cat.build_report.indexed == 2
    assert sorted(cat.to_arrow()["filepath"].to_pylist()) == uris
    x0, y0 = TILES[0]
    s = GeoSlice((x0 + 300 * RES, y0 - 400 * RES, x0 + 812 * RES, y0 - 144 * RES), CRS, RES)
    np.testing.assert_array_equal(np.asarray(load_raster(cat, s, max_workers=1).values), _oracle(tiles, s))
    sampler = geoduck.random_sampler(cat, chip_size=256, resolution=RES, crs=CRS, length=6, seed=5)
    for chip in sampler:
        np.testing.assert_array_equal(np.asarray(load_raster(cat, chip, max_workers=1).values), _oracle(tiles, chip))
    requests = s3.take()
    keys = {f"/geoduck-cogs/cogs/{p.name}" for p in tiles}
    assert requests and {path for _, path, _, _ in requests} == keys  # no listing, no sidecar key
    assert all(query == "" for _, _, query, _ in requests)  # no ListObjects (list-type/prefix)
    assert all(method in ("GET", "HEAD") for method, _, _, _ in requests)
    assert not any(method == "GET" and rng is None for method, _, _, rng in requests)  # never a whole object
    # in this thread both files are open now: another chip is a few range GETs
    load_raster(
        cat, GeoSlice((x0 + 100 * RES, y0 - 356 * RES, x0 + 356 * RES, y0 - 100 * RES), CRS, RES), max_workers=1
    )
    again = s3.take()
    assert len(again) <= 3 and all(m == "GET" and r is not None for m, _, _, r in again), again


def test_s3_unreachable_endpoint_is_a_clear_error(s3, monkeypatch):
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    with pytest.raises(SourceError, match=r"s3://geoduck-cogs/cogs/tile_0.tif"):
        header.read_header("s3://geoduck-cogs/cogs/tile_0.tif")


def test_window_read_of_an_open_remote_dataset_matches_local(http, served):
    """The header module's own opener: same header facts and pixels as the local file."""
    path = _tiles(served)[1]
    with header.open_dataset(http.url_of(path)) as ds, rasterio.open(path) as local:
        assert header.RasterHeader.of(ds, path=str(path)) == header.RasterHeader.of(local, path=str(path))
        win = Window(37, 201, 256, 256)
        np.testing.assert_array_equal(ds.read(window=win), local.read(window=win))
