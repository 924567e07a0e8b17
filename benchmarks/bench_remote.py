"""Remote chips benchmark: 256 × 256 chips from COGs served over HTTP with injected latency.

Files (written once under ``benchmarks/data/remote/``, git-ignored, reused when present): 6 COGs of
2048 × 2048 px, 3 bands uint16 (nodata 0), 10 m, EPSG:32630, deflate, 512 px blocks, overviews.
They are served from 127.0.0.1 by :class:`geoduck.testing_http.RangeServer` (a child process,
HTTP range requests, keep-alive) sleeping ``--latency`` seconds (default 20 ms) before each answer,
and indexed by ``geoduck.build_raster_catalog`` from their URLs. Chips come from
``geoduck.random_sampler`` (seeded), keeping chips that lie on exactly one file so every approach
reads the same window of the same URL.

Approaches (same chips, each in its own fresh process so no GDAL cache is shared; approaches
interleaved for ``--rounds`` rounds, the order rotated, fresh chips per round):

* ``geoduck``: ``load_raster(catalog, slice)`` (catalog lookup, GDAL options of
  :mod:`geoduck.header`, datasets kept open per thread).
* ``rasterio, open per chip``: ``with rasterio.open(url) as src: src.read(window=w)`` with
  rasterio's default GDAL options (GDAL lists the folder and probes sidecars).
* ``rasterio, kept open``: one ``rasterio.open(url)`` per file, kept, with the same defaults.
* ``rasterio, kept open + geoduck's GDAL options``: the same inside ``geoduck.header.gdal_env``:
  separates the effect of the options from the effect of keeping datasets open.

Reported per approach: chips per wall second and HTTP requests per chip (all requests of the round,
opens included, over the chips), best round; the JSON has every round. Every approach's pixels are
checked against the same per-chip checksums.

    .venv/bin/python benchmarks/bench_remote.py            # ~1-2 minutes
    .venv/bin/python benchmarks/bench_remote.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys

_ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_ARGS.add_argument("--chips", type=int, default=120, help="chips per round")
_ARGS.add_argument("--rounds", type=int, default=3)
_ARGS.add_argument("--latency", type=float, default=0.020, help="seconds the server waits before each answer")
_ARGS.add_argument("--quick", action="store_true", help="fewer chips and one round")
_ARGS.add_argument("--data", type=str, default=None, help="folder of the COGs (default: benchmarks/data/remote)")
_ARGS.add_argument("--child", nargs=2, metavar=("APPROACH", "CHIPS_JSON"), help=argparse.SUPPRESS)
ARGS = _ARGS.parse_args() if __name__ == "__main__" else _ARGS.parse_args([])
os.environ.setdefault("GEODUCK_OFFLINE", "1")

import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = Path(ARGS.data) if ARGS.data else HERE / "data" / "remote"
RESULTS = HERE / "results" / "bench_remote.json"
CRS = "EPSG:32630"
RES = 10.0
SIZE = 2048
N_FILES = 6
CHIP = 256
APPROACHES = (
    "geoduck",
    "rasterio, open per chip",
    "rasterio, kept open",
    "rasterio, kept open + geoduck's GDAL options",
)


def write_files() -> list[Path]:
    """The COGs (written once; reused when present)."""
    DATA.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(N_FILES):
        path = DATA / f"cog_{i}.tif"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        rows, cols = np.mgrid[0:SIZE, 0:SIZE]
        values = np.stack([(rows * (b + 1) + cols * (3 - b)) % 5000 for b in range(3)]).astype(np.uint16) + 1
        values += rng.integers(0, 64, values.shape, dtype=np.uint16)
        tmp = path.with_suffix(".tmp.tif")
        with rasterio.open(
            tmp,
            "w",
            driver="COG",
            width=SIZE,
            height=SIZE,
            count=3,
            dtype="uint16",
            crs=CRS,
            transform=from_origin(400_000 + i * (SIZE + 100) * RES, 4_500_000, RES, RES),
            nodata=0,
            compress="deflate",
            blocksize=512,
        ) as dst:
            dst.write(values)
        tmp.rename(path)
    return paths


def checksum(values: np.ndarray) -> int:
    return int(values.astype(np.int64).sum() % (1 << 61)) ^ int((values.astype(np.int64) * 31).max())


# -- children: one approach over a list of chips, in a fresh process -----------------------------


def run_child(approach: str, chips_json: str) -> None:
    spec = json.loads(Path(chips_json).read_text())
    chips = spec["chips"]
    sums: list[int] = []
    if approach == "geoduck":
        import geoduck
        from geoduck.loaders.raster import load_raster
        from geoduck.loaders.sources import sources_for
        from geoduck.slices import GeoSlice

        cat = geoduck.open_catalog(spec["catalog"])
        slices = [GeoSlice(tuple(c["bounds"]), CRS, RES) for c in chips]
        sources_for(cat, slices[0])  # the catalog's in-memory index, built once (no file opened)
        t0 = time.perf_counter()
        for s in slices:
            sums.append(checksum(np.asarray(load_raster(cat, s).values)))
        wall = time.perf_counter() - t0
    elif approach == "rasterio, open per chip":
        t0 = time.perf_counter()
        for c in chips:
            with rasterio.open(c["url"]) as src:
                sums.append(checksum(src.read(window=Window(c["col"], c["row"], CHIP, CHIP))))
        wall = time.perf_counter() - t0
    else:
        from contextlib import nullcontext

        from geoduck.header import gdal_env

        tuned = approach.endswith("GDAL options")
        opened: dict[str, Any] = {}
        t0 = time.perf_counter()
        for c in chips:
            src = opened.get(c["url"])
            if src is None:
                with gdal_env(c["url"]) if tuned else nullcontext():
                    src = opened[c["url"]] = rasterio.open(c["url"])
            sums.append(checksum(src.read(window=Window(c["col"], c["row"], CHIP, CHIP))))
        wall = time.perf_counter() - t0
        for src in opened.values():
            src.close()
    print(json.dumps({"wall": wall, "sums": sums}))


# -- parent -------------------------------------------------------------------------------------


def pick_chips(cat: Any, files: dict[str, tuple[float, float]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` chips from the sampler lying on exactly one file: URL, bounds, pixel window."""
    import geoduck

    out: list[dict[str, Any]] = []
    sampler = geoduck.random_sampler(cat, chip_size=CHIP, resolution=RES, crs=CRS, length=4 * n, seed=seed)
    for s in sampler:
        xmin, ymin, xmax, ymax = s.bounds
        on = [
            (url, x0, y0)
            for url, (x0, y0) in files.items()
            if x0 <= xmin and xmax <= x0 + SIZE * RES and y0 - SIZE * RES <= ymin and ymax <= y0
        ]
        if len(on) == 1:
            url, x0, y0 = on[0]
            col, row = round((xmin - x0) / RES), round((y0 - ymax) / RES)
            out.append({"url": url, "bounds": list(s.bounds), "col": col, "row": row})
        if len(out) == n:
            break
    return out


def main() -> None:
    if ARGS.child:
        run_child(*ARGS.child)
        return
    import geoduck
    from geoduck.testing_http import RangeServer

    n_chips = 30 if ARGS.quick else ARGS.chips
    rounds = 1 if ARGS.quick else ARGS.rounds
    paths = write_files()
    rows: dict[str, list[dict[str, float]]] = {a: [] for a in APPROACHES}
    with RangeServer(DATA, latency=ARGS.latency) as server, tempfile.TemporaryDirectory() as tmp:
        urls = [server.url_of(p) for p in paths]
        t0 = time.perf_counter()
        cat = geoduck.build_raster_catalog(urls, Path(tmp) / "cat", progress=False, workers=2)
        build_s = time.perf_counter() - t0
        build_requests = len(server.take())
        files = {}
        for p, url in zip(paths, urls, strict=True):
            with rasterio.open(p) as src:
                files[url] = (src.transform.c, src.transform.f)
        for r in range(rounds):
            chips = pick_chips(cat, files, n_chips, seed=100 + r)
            chips_json = Path(tmp) / f"chips_{r}.json"
            chips_json.write_text(json.dumps({"catalog": str(Path(tmp) / "cat"), "chips": chips}))
            reference: list[int] | None = None
            order = APPROACHES[r % len(APPROACHES) :] + APPROACHES[: r % len(APPROACHES)]  # no order bias
            for approach in order:
                server.take()
                out = subprocess.run(
                    [sys.executable, __file__, "--child", approach, str(chips_json)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                requests = server.take()
                if reference is None:
                    reference = result["sums"]
                elif result["sums"] != reference:
                    raise SystemExit(f"{approach}: pixels differ from {order[0]} in round {r}")
                rows[approach].append(
                    {
                        "chips": len(chips),
                        "wall_s": result["wall"],
                        "chips_per_s": len(chips) / result["wall"],
                        "requests": len(requests),
                        "requests_per_chip": len(requests) / len(chips),
                        "head_requests": sum(r.method == "HEAD" for r in requests),
                        "not_the_file": sum(r.path.rsplit("/", 1)[-1] not in {p.name for p in paths} for r in requests),
                    }
                )
                print(f"round {r} {approach}: {rows[approach][-1]['chips_per_s']:.1f} chips/s", file=sys.stderr)

    best = {a: max(v, key=lambda x: x["chips_per_s"]) for a, v in rows.items()}
    print(f"\n256×256 chips from {N_FILES} COGs over HTTP, {ARGS.latency * 1000:.0f} ms per request, {n_chips} chips")
    print(f"catalog build from {len(paths)} URLs: {build_s:.2f} s, {build_requests} requests\n")
    print(f"{'approach':<48} {'chips/s':>8} {'requests/chip':>14} {'HEAD':>5} {'sidecar/dir':>12}")
    for a in APPROACHES:
        b = best[a]
        print(
            f"{a:<48} {b['chips_per_s']:>8.1f} {b['requests_per_chip']:>14.2f} "
            f"{b['head_requests']:>5d} {b['not_the_file']:>12d}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": {
                    "python": platform.python_version(),
                    "gdal": rasterio.__gdal_version__,
                    "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg(),
                },
                "latency_s": ARGS.latency,
                "files": {"count": N_FILES, "size_px": SIZE, "bands": 3, "block_px": 512},
                "build": {"seconds": build_s, "requests": build_requests},
                "best": best,
                "rounds": rows,
            },
            indent=2,
        )
    )
    print(f"\nsaved {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
