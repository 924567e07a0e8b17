"""Chip loading benchmark: ``geoduck.load_raster`` vs bare rasterio reads of the same windows.

Files (written once under ``benchmarks/data/load/``, git-ignored, reused when present): 20 tiles of
1024 × 1024 px, 4 bands uint16 (nodata 0), 10 m, in UTM zones 29/30/31 (7 + 7 + 6 tiles, 1 km
apart), each written as a tiled deflate GeoTIFF (256 px blocks) and as a COG (GDAL COG driver,
deflate, 512 px blocks, overviews). Chips are 256 × 256 px from ``geoduck.random_sampler``
(seeded), keeping only chips that lie on exactly one file so every approach reads the same data.

Cases (chips/s, one process):

* ``same-CRS``: chips on each file's own grid. geoduck ``load_raster`` (catalog lookup, read,
  validity, merge, GeoTensor) vs bare ``src.read(window=...)`` with every dataset kept open (the
  practical limit; windows precomputed) and bare ``rasterio.open`` per chip.
* ``cross-CRS``: chips on the EPSG:32630 grid over the zone-29 files. geoduck vs a bare
  ``WarpedVRT`` over kept-open datasets, with nearest (``WarpedVRT``'s default) and bilinear
  (``load_raster``'s default) resampling.
* ``stack``: 4 acquisitions per tile (the zone-30 files linked under 4 dates), ``merge="mean"``:
  geoduck with its read threads vs ``max_workers=1``.
* ``lookup``: µs per chip to find the files of a slice: geoduck's in-memory row index (slices looked
  up before, best of 3 passes, and new slices with every cache of slice answers cleared) vs the
  DuckDB catalog query (``INDEX_MAX_ROWS = 0``).

GDAL's block cache is limited to ``--cachemax`` MB (default 64, below the data size) so reads
decompress as they would over a large archive; approaches run interleaved for ``--rounds`` rounds
on fresh chips, and the table shows the best round (the JSON has every round) in chips per wall
second and per CPU second of the process (all threads; steadier when other jobs share the CPUs,
and the reference ratios use both). TorchGeo is not
benchmarked: ``pip install torchgeo`` would replace the CPU torch with a CUDA build.

    .venv/bin/python benchmarks/bench_load.py             # ~2 minutes
    .venv/bin/python benchmarks/bench_load.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys

_ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_ARGS.add_argument("--chips", type=int, default=600, help="chips per round (same-CRS)")
_ARGS.add_argument("--rounds", type=int, default=3)
_ARGS.add_argument("--cachemax", type=int, default=64, help="GDAL_CACHEMAX in MB")
_ARGS.add_argument("--quick", action="store_true", help="fewer chips and one round")
ARGS = _ARGS.parse_args() if __name__ == "__main__" else _ARGS.parse_args([])
os.environ["GDAL_CACHEMAX"] = str(ARGS.cachemax)  # before GDAL initialises
os.environ.setdefault("GEODUCK_OFFLINE", "1")

import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyproj  # noqa: E402
import rasterio  # noqa: E402
import rasterio.shutil  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402
from rasterio.transform import Affine  # noqa: E402
from rasterio.vrt import WarpedVRT  # noqa: E402
from rasterio.windows import Window  # noqa: E402

import geoduck  # noqa: E402
from geoduck.loaders import sources as gsources  # noqa: E402
from geoduck.testing import pattern, pixel_centres, write_raster  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "load"
RESULTS = HERE / "results" / "bench_load.json"
SIZE, RES, CHIP, BANDS = 1024, 10.0, 256, 4
DATE = "20230615"
TILES = {29: (-6.45, 7), 30: (-3.2, 7), 31: (0.6, 6)}
"""UTM zone → (lon of the first tile column, tiles): two rows of tiles at 40°N, 1 km apart."""
REGEX = r"_(?P<date>\d{8})\.tif$"


# -- data ---------------------------------------------------------------------------------------------


def _tile_transforms() -> list[tuple[int, Affine]]:
    out = []
    step = SIZE * RES + 1000.0
    for zone, (lon, n) in TILES.items():
        crs = pyproj.CRS.from_epsg(32600 + zone)
        x0, y0 = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lon, 40.1)
        x0, y0 = round(x0 / RES) * RES, round(y0 / RES) * RES
        for k in range(n):
            col, row = k % 4, k // 4
            out.append((zone, Affine(RES, 0, x0 + col * step, 0, -RES, y0 - row * step)))
    return out


def write_data() -> dict[str, list[Path]]:
    """The GeoTIFF and COG files (written once) and the 4-date stack of links to zone-30 COGs."""
    files: dict[str, list[Path]] = {"gtiff": [], "cog": [], "stack": []}
    for k, (zone, transform) in enumerate(_tile_transforms()):
        name = f"T{zone}_{k:02d}_{DATE}.tif"
        gtiff, cog = DATA / "gtiff" / name, DATA / "cog" / name
        if not (gtiff.exists() and cog.exists()):
            xs, ys = pixel_centres(transform, (SIZE, SIZE))
            lon, lat = pyproj.Transformer.from_crs(32600 + zone, 4326, always_xy=True).transform(xs, ys)
            base = pattern(lon, lat, 166)
            values = np.stack([np.maximum(base // (b + 1), 1) for b in range(BANDS)]).astype("uint16")
            write_raster(
                gtiff,
                values,
                crs=f"EPSG:{32600 + zone}",
                transform=transform,
                nodata=0,
                descriptions=[f"B{b + 2:02d}" for b in range(BANDS)],
            )
            cog.parent.mkdir(parents=True, exist_ok=True)
            rasterio.shutil.copy(gtiff, cog, driver="COG", compress="DEFLATE")
        files["gtiff"].append(gtiff)
        files["cog"].append(cog)
        if zone == 30:
            for date in ("20230601", "20230611", "20230621", "20230701"):
                link = DATA / "stack" / name.replace(DATE, date)
                if not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(cog)
                files["stack"].append(link)
    return files


def catalog_of(kind: str, paths: Sequence[Path]) -> geoduck.Catalog:
    out = DATA / f"catalog_{kind}"
    if out.exists():
        return geoduck.open_catalog(out)
    return geoduck.build_raster_catalog([str(p) for p in paths], out, filename_regex=REGEX, progress=False, workers=1)


# -- chips --------------------------------------------------------------------------------------------


def single_file_chips(
    cat: geoduck.Catalog, n: int, seed: int, crs: str | None = None
) -> list[tuple[geoduck.GeoSlice, str]]:
    """``n`` sampler chips that lie on exactly one file, with that file."""
    out: list[tuple[geoduck.GeoSlice, str]] = []
    sampler = geoduck.random_sampler(cat, chip_size=CHIP, resolution=RES, crs=crs, length=4 * n, seed=seed)
    for s in sampler:
        found = gsources.sources_for(cat, s)
        if len(found) == 1:
            out.append((s, found[0].filepath))
            if len(out) == n:
                return out
    raise RuntimeError(f"only {len(out)} single-file chips of {4 * n}")


def rate(fn: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Items per second of wall time."""
    return timed(fn, items)[0]


def timed(fn: Callable[[Any], object], items: Sequence[Any]) -> tuple[float, float]:
    """(items per wall second, items per CPU second of the whole process, all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - t0), len(items) / (time.process_time() - c0)


class Bare:
    """Bare rasterio readers over kept-open datasets (opened outside the timing)."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.ds = {p: rasterio.open(p) for p in sorted(set(paths))}

    def windows(self, chips: Sequence[tuple[geoduck.GeoSlice, str]]) -> list[tuple[str, Window]]:
        out = []
        for s, p in chips:
            t = self.ds[p].transform
            out.append((p, Window(round((s.bounds[0] - t.c) / t.a), round((t.f - s.bounds[3]) / -t.e), CHIP, CHIP)))
        return out

    def read(self, item: tuple[str, Window]) -> np.ndarray:
        return self.ds[item[0]].read(window=item[1])

    @staticmethod
    def read_open(item: tuple[str, Window]) -> np.ndarray:
        with rasterio.open(item[0]) as src:
            return src.read(window=item[1])

    def warp(self, chip: tuple[geoduck.GeoSlice, str], resampling: Resampling) -> np.ndarray:
        s, p = chip
        with WarpedVRT(
            self.ds[p], crs=s.crs, transform=s.transform, width=s.width, height=s.height, resampling=resampling
        ) as vrt:
            return vrt.read()


def interleaved(
    approaches: dict[str, Callable[[int], tuple[float, float]]], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) chips/s of each approach per round (round r uses chips of seed r)."""
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in approaches}
    for r in range(rounds):
        for name, run in approaches.items():
            out[name].append(run(r))
    return out


def summary(rates: list[tuple[float, float]]) -> dict[str, Any]:
    wall, cpu = [w for w, _ in rates], [c for _, c in rates]
    return {
        "best": max(wall),
        "median": statistics.median(wall),
        "best_cpu": max(cpu),
        "rounds_wall": wall,
        "rounds_cpu": cpu,
    }


def main() -> None:
    n = 150 if ARGS.quick else ARGS.chips
    rounds = 1 if ARGS.quick else ARGS.rounds
    t0 = time.perf_counter()
    files = write_data()
    cats = {kind: catalog_of(kind, files[kind]) for kind in files}
    print(f"data + catalogs ready in {time.perf_counter() - t0:.1f} s (GDAL_CACHEMAX={ARGS.cachemax} MB)")
    results: dict[str, Any] = {}

    for kind in ("gtiff", "cog"):
        cat = cats[kind]
        chips = {r: single_file_chips(cat, n, seed=r) for r in range(rounds + 1)}
        bare = Bare([p for c in chips.values() for _, p in c])
        wins = {r: bare.windows(c) for r, c in chips.items()}
        geoduck.load_raster(cat, chips[rounds][0][0])  # warm: row index, pools
        for r_chips, r_wins in zip(chips.values(), wins.values(), strict=True):  # warm the page cache
            rate(lambda c: geoduck.load_raster(cat, c[0]), r_chips[: n // 3])
            rate(bare.read, r_wins[: n // 3])
        per_chip = max(30, n // 6)
        runs = interleaved(
            {
                "geoduck": lambda r: timed(lambda c: geoduck.load_raster(cat, c[0]), chips[r]),
                "bare_kept_open": lambda r: timed(bare.read, wins[r]),
                "bare_open_per_chip": lambda r: timed(Bare.read_open, wins[r][:per_chip]),
            },
            rounds,
        )
        results[f"same_crs_{kind}"] = {k: summary(v) for k, v in runs.items()}
        # correctness spot check: geoduck equals the bare read
        s, p = chips[0][0]
        np.testing.assert_array_equal(geoduck.load_raster(cat, s).values, bare.read(wins[0][0]))

        zone29 = cat.where("crs = 'EPSG:32629'")
        xchips = {
            r: single_file_chips(zone29, max(50, n // 2), seed=100 + r, crs="EPSG:32630") for r in range(rounds + 1)
        }
        for r_chips in xchips.values():
            rate(lambda c: geoduck.load_raster(cat, c[0]), r_chips[: n // 6])
        for rs in (Resampling.nearest, Resampling.bilinear):
            runs = interleaved(
                {
                    "geoduck": lambda r, rs=rs: timed(
                        lambda c: geoduck.load_raster(cat, c[0], resampling=rs), xchips[r]
                    ),
                    "bare_warpedvrt": lambda r, rs=rs: timed(lambda c: bare.warp(c, rs), xchips[r]),
                },
                rounds,
            )
            results[f"cross_crs_{kind}_{rs.name}"] = {k: summary(v) for k, v in runs.items()}
        for ds in bare.ds.values():
            ds.close()

    stack = cats["stack"]
    schips = {
        r: [
            geoduck.GeoSlice(s.bounds, s.crs, s.resolution)  # all dates
            for s in geoduck.random_sampler(stack, chip_size=CHIP, resolution=RES, length=max(40, n // 6), seed=200 + r)
        ]
        for r in range(rounds)
    }
    assert len(gsources.sources_for(stack, schips[0][0])) == 4
    rate(lambda s: geoduck.load_raster(stack, s, merge="mean"), schips[0][:10])
    runs = interleaved(
        {
            "geoduck_threads": lambda r: timed(lambda s: geoduck.load_raster(stack, s, merge="mean"), schips[r]),
            "geoduck_1_thread": lambda r: timed(
                lambda s: geoduck.load_raster(stack, s, merge="mean", max_workers=1), schips[r]
            ),
        },
        rounds,
    )
    results["stack_mean_4_files"] = {k: summary(v) for k, v in runs.items()}

    results["dataloader_workers"] = dataloader_scaling(cats["gtiff"], n)

    cat = cats["cog"]
    lookups = [s for s, _ in single_file_chips(cat, 200, seed=999)]
    results["lookup_us_per_chip"] = {
        "row_index": 1e6 / max(rate(lambda s: gsources.sources_for(cat, s), lookups) for _ in range(3))
    }
    fresh = [s for s, _ in single_file_chips(cat, 200, seed=4321)]
    gsources.clear_cache()  # slices never looked up: each lookup works out its slice from scratch
    gsources.row_index(cat)
    results["lookup_us_per_chip"]["row_index_first"] = 1e6 / rate(lambda s: gsources.sources_for(cat, s), fresh)
    saved = gsources.INDEX_MAX_ROWS
    gsources.INDEX_MAX_ROWS = 0
    gsources.clear_cache()
    try:
        results["lookup_us_per_chip"]["duckdb"] = 1e6 / rate(lambda s: gsources.sources_for(cat, s), lookups[:100])
    finally:
        gsources.INDEX_MAX_ROWS = saved
        gsources.clear_cache()

    report(results, n, rounds)


def _load_values(cat: geoduck.Catalog, sl: geoduck.GeoSlice) -> np.ndarray:
    return geoduck.load_raster(cat, sl).values


def dataloader_scaling(cat: geoduck.Catalog, n: int) -> dict[str, Any]:
    """Chips/s through ``GeoIterableDataset`` + a torch DataLoader with 0, 1 and 2 worker
    processes (same-CRS chips, second epoch with persistent workers, so start-up is excluded):
    the speed-up from 1 to 2 workers."""
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed (pip install 'geoduck[torch]')"}
    from geoduck.torch import GeoIterableDataset

    chips = [s for s, _ in single_file_chips(cat, 2 * n, seed=4242)]
    out: dict[str, Any] = {}
    for workers in (0, 1, 2):
        ds = GeoIterableDataset(cat, chips, _load_values)
        loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=workers, persistent_workers=workers > 0)
        assert sum(len(b) for b in loader) == len(chips)  # epoch 1: worker start-up, warm caches
        t = time.perf_counter()
        count = sum(len(b) for b in loader)  # epoch 2: steady state
        elapsed = time.perf_counter() - t
        assert count == len(chips)
        out[f"workers_{workers}"] = count / elapsed
    out["speedup_2_vs_1"] = out["workers_2"] / out["workers_1"]
    return out


def report(results: dict[str, Any], n: int, rounds: int) -> None:
    rows = []
    cases = [c for c in results if c not in ("lookup_us_per_chip", "dataloader_workers")]
    for case in cases:
        res = results[case]
        ref_name = next((k for k in ("bare_kept_open", "bare_warpedvrt", "geoduck_1_thread") if k in res), None)
        for name, s in res.items():
            ratio = s["best"] / res[ref_name]["best"] if ref_name and name != ref_name else None
            cpu_ratio = s["best_cpu"] / res[ref_name]["best_cpu"] if ref_name and name != ref_name else None
            rows.append((case, name, s["best"], s["median"], ratio, s["best_cpu"], cpu_ratio))
    pct = lambda v: "" if v is None else f"{v:.0%}"  # noqa: E731
    print(
        f"\n{'case':<28} {'approach':<20} {'chips/s':>8} {'median':>7} {'vs ref':>7} {'chips/CPU-s':>12} {'vs ref':>7}"
    )
    for case, name, best, med, ratio, cpu, cpu_ratio in rows:
        print(f"{case:<28} {name:<20} {best:>8.0f} {med:>7.0f} {pct(ratio):>7} {cpu:>12.0f} {pct(cpu_ratio):>7}")
    dl = results.get("dataloader_workers", {})
    if "speedup_2_vs_1" in dl:
        print(
            f"\nDataLoader (same-CRS chips, batches of 16, steady state): 0 workers {dl['workers_0']:.0f}, "
            f"1 worker {dl['workers_1']:.0f}, 2 workers {dl['workers_2']:.0f} chips/s "
            f"({dl['speedup_2_vs_1']:.2f}x from 1 to 2 workers on 2 cores)"
        )
    lk = results["lookup_us_per_chip"]
    print(
        f"\nslice → files lookup: row index {lk['row_index']:.0f} µs/chip (slices seen before), "
        f"{lk['row_index_first']:.0f} µs/chip (new slices), DuckDB query {lk['duckdb']:.0f} µs/chip"
    )
    payload = {
        "benchmark": "bench_load",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gdal": rasterio.__gdal_version__,
            "rasterio": rasterio.__version__,
            "geoduck": geoduck.__version__,
        },
        "setup": {
            "tiles": sum(n for _, n in TILES.values()),
            "tile_px": SIZE,
            "bands": BANDS,
            "dtype": "uint16",
            "res_m": RES,
            "chip_px": CHIP,
            "zones": list(TILES),
            "chips_per_round": n,
            "rounds": rounds,
            "gdal_cachemax_mb": ARGS.cachemax,
            "torchgeo": "skipped: pip install torchgeo would pull a CUDA torch",
        },
        "results": results,
        "table": [
            {
                "case": c,
                "approach": a,
                "best_chips_per_s": round(b, 1),
                "median_chips_per_s": round(m, 1),
                "vs_reference": None if r is None else round(r, 3),
                "chips_per_cpu_s": round(cpu, 1),
                "cpu_vs_reference": None if cr is None else round(cr, 3),
            }
            for c, a, b, m, r, cpu, cr in rows
        ],
        "load_average_at_end": os.getloadavg(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2))
    print(f"\nwritten {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
