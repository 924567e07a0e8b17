"""STAC benchmark: ``geoduck.from_stac`` vs ``stac_geoparquet`` reading the same items, and
``geoduck.load_raster`` vs ``odc.stac.load`` on the same items and grid.

* ``index``: N synthetic Sentinel-2-like items (3 COG band assets each, ``proj:code``,
  ``proj:shape``, ``proj:transform``, ``raster:bands``, ``eo:bands``, ``eo:cloud_cover``, a nested
  property) written as stac-geoparquet to a temporary folder (not timed).
  Items per second for: ``stac_geoparquet.arrow.stac_table_to_items`` over the file (the items as
  dicts: what any reader of the file pays first), and ``geoduck.from_stac`` of the file into a new
  catalog (reading, rows, footprints, typed columns, sorted atomic parts written).
* ``load``: 4 tiles × 4 dates × 3 bands of 512² uint16 COGs (20 m, EPSG:32630), the items in
  memory. The same grids (the whole 2 × 2-tile area at 40 m, and 256² chips at 20 m) loaded per
  date with nearest resampling by ``geoduck.load_raster(bands=["red","green","blue"])`` on the
  STAC-built catalog and by ``odc.stac.load(items of that date, geobox=..., resampling="nearest")``;
  the pixels are checked equal, then timed (best of ``--rounds``).

    .venv/bin/python benchmarks/bench_stac.py             # 10^4 items (~1 minute)
    .venv/bin/python benchmarks/bench_stac.py --items 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_ARGS.add_argument("--items", type=int, default=10_000, help="synthetic items for the index case")
_ARGS.add_argument("--rounds", type=int, default=3)
_ARGS.add_argument("--chips", type=int, default=20, help="256² chips per round (load case)")
ARGS = _ARGS.parse_args() if __name__ == "__main__" else _ARGS.parse_args([])
os.environ.setdefault("GEODUCK_OFFLINE", "1")

import datetime as dt  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, busy_note, load_average, machine_info, save  # noqa: E402

warnings.simplefilter("ignore")  # odc-geo/georeader deprecation noise

CRS = "EPSG:32630"
BANDS = {"B04": "red", "B03": "green", "B02": "blue"}


def _item(i: int, x0: float, y0: float, size: int, res: float, when: dt.datetime, hrefs: dict[str, str]) -> dict:
    from pyproj import Transformer

    t = _item.transformer if hasattr(_item, "transformer") else Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    _item.transformer = t  # type: ignore[attr-defined]
    x1, y1 = x0 + size * res, y0 - size * res
    lon, lat = t.transform([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
    ring = [[a, b] for a, b in zip(lon, lat, strict=True)]
    assets = {
        key: {
            "href": hrefs[key],
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "proj:shape": [size, size],
            "proj:transform": [res, 0.0, x0, 0.0, -res, y0],
            "eo:bands": [{"name": key, "common_name": common}],
            "raster:bands": [{"data_type": "uint16", "nodata": 0}],
        }
        for key, common in BANDS.items()
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": f"S2_{i:07d}",
        "collection": "synthetic-s2",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lon), min(lat), max(lon), max(lat)],
        "properties": {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": "sentinel-2a" if i % 2 else "sentinel-2b",
            "eo:cloud_cover": float(i % 100),
            "proj:code": CRS,
            "s2:processing": {"baseline": "05.09"},
        },
        "links": [],
        "assets": assets,
    }


def synthetic_items(n: int) -> list[dict]:
    """``n`` items on a 100 × (n/100) grid of 10 km tiles, one date each."""
    t0 = dt.datetime(2023, 1, 1, 10, 30)
    out = []
    for i in range(n):
        x0, y0 = 200_000.0 + 10_000.0 * (i % 100), 4_000_000.0 + 10_000.0 * ((i // 100) % 400)
        hrefs = {k: f"https://example.com/s2/{i:07d}/{k}.tif" for k in BANDS}
        out.append(_item(i, x0, y0, 1098, 10.0, t0 + dt.timedelta(days=i // 40_000), hrefs))
    return out


def geoparquet_file(n: int, folder: Path) -> Path:
    import stac_geoparquet

    path = folder / f"items_{n}.parquet"
    reader = stac_geoparquet.arrow.parse_stac_items_to_arrow(synthetic_items(n), chunk_size=8192)
    stac_geoparquet.arrow.to_parquet(reader, path)
    return path


def bench_index(n: int, rounds: int) -> dict[str, Any]:
    from stac_geoparquet.arrow import stac_table_to_items

    import geoduck

    folder = Path(tempfile.mkdtemp(prefix="bench_stac_items_"))
    path = geoparquet_file(n, folder)
    times: dict[str, list[float]] = {"stac_geoparquet": [], "geoduck.from_stac": []}
    for _ in range(rounds):
        t = time.perf_counter()
        pf = pq.ParquetFile(path)
        reader = pa.RecordBatchReader.from_batches(pf.schema_arrow, pf.iter_batches(batch_size=1000))
        count = sum(1 for _ in stac_table_to_items(reader))
        times["stac_geoparquet"].append(time.perf_counter() - t)
        assert count == n
        out = Path(tempfile.mkdtemp(prefix="bench_stac_"))
        try:
            t = time.perf_counter()
            cat = geoduck.from_stac(path, out / "cat", progress=False)
            times["geoduck.from_stac"].append(time.perf_counter() - t)
            assert len(cat) == 3 * n and cat.build_report.errors == ()
        finally:
            shutil.rmtree(out)
    shutil.rmtree(folder)
    return {
        "items": n,
        "rows": 3 * n,
        "seconds": times,
        "items_per_s": {k: round(n / min(v)) for k, v in times.items()},
    }


def load_fixture(root: Path, size: int = 512, res: float = 20.0) -> list[dict]:
    """4 tiles × 4 dates × 3 bands of seeded-noise COGs; their items (absolute hrefs)."""
    import rasterio
    from rasterio.transform import Affine

    rng = np.random.default_rng(0)
    items = []
    for d in range(4):
        when = dt.datetime(2023, 6, 1 + 7 * d, 10, 30)
        for k in range(4):
            x0, y0 = 400_000.0 + (k % 2) * size * res, 4_500_000.0 - (k // 2) * size * res
            hrefs = {}
            for key in BANDS:
                path = root / f"t{k}_d{d}_{key}.tif"
                values = rng.integers(1, 10_000, (size, size), dtype=np.uint16)
                profile = dict(driver="COG", width=size, height=size, count=1, dtype="uint16", crs=CRS,
                               transform=Affine(res, 0, x0, 0, -res, y0), nodata=0, compress="deflate")  # fmt: skip
                with rasterio.open(path, "w", **profile) as dst:
                    dst.write(values, 1)
                hrefs[key] = str(path)
            items.append(_item(d * 4 + k, x0, y0, size, res, when, hrefs))
    return items


def bench_load(rounds: int, n_chips: int) -> dict[str, Any]:
    import pystac
    from affine import Affine
    from odc.geo.geobox import GeoBox
    from odc.stac import load as odc_load

    import geoduck

    root = Path(tempfile.mkdtemp(prefix="bench_stac_load_"))
    try:
        items = load_fixture(root)
        cat = geoduck.from_stac(items, root / "cat", progress=False)
        by_day: dict[str, list[pystac.Item]] = {}
        for d in items:
            by_day.setdefault(d["properties"]["datetime"][:10], []).append(pystac.Item.from_dict(d))
        rng = np.random.default_rng(1)
        extent = (400_000.0, 4_500_000.0 - 2 * 512 * 20.0, 400_000.0 + 2 * 512 * 20.0, 4_500_000.0)
        grids = {"area 40 m (512²)": [(extent, 40.0)]}
        chips = []
        for _ in range(n_chips):
            x = extent[0] + 20.0 * rng.integers(0, 2 * 512 - 256)
            y = extent[1] + 20.0 * rng.integers(0, 2 * 512 - 256)
            chips.append(((x, y, x + 256 * 20.0, y + 256 * 20.0), 20.0))
        grids["chips 20 m (256²)"] = chips
        out: dict[str, Any] = {}
        for name, cases in grids.items():
            jobs = [(b, r, day) for b, r in cases for day in by_day]

            def run_geoduck(jobs: list = jobs) -> list[np.ndarray]:
                return [
                    np.asarray(
                        geoduck.load_raster(
                            cat,
                            geoduck.GeoSlice(b, CRS, r, start=day, end=day),
                            bands=["red", "green", "blue"],
                            resampling="nearest",
                        ).values
                    )
                    for b, r, day in jobs
                ]

            def run_odc(jobs: list = jobs) -> list[np.ndarray]:
                res = []
                for b, r, day in jobs:
                    w, h = round((b[2] - b[0]) / r), round((b[3] - b[1]) / r)
                    gbox = GeoBox((h, w), Affine(r, 0, b[0], 0, -r, b[3]), CRS)
                    ds = odc_load(by_day[day], bands=list(BANDS), geobox=gbox, resampling="nearest", groupby="time")
                    res.append(np.stack([ds[k].values[0] for k in BANDS]))
                return res

            same = all(np.array_equal(a, b) for a, b in zip(run_geoduck(), run_odc(), strict=True))
            times: dict[str, list[float]] = {"geoduck.load_raster": [], "odc.stac.load": []}
            for _ in range(rounds):
                for key, fn in (("geoduck.load_raster", run_geoduck), ("odc.stac.load", run_odc)):
                    t = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - t)
            out[name] = {
                "loads": len(jobs),
                "pixels_equal": same,
                "seconds": times,
                "loads_per_s": {k: round(len(jobs) / min(v), 1) for k, v in times.items()},
            }
        return out
    finally:
        shutil.rmtree(root)


def main() -> None:
    loads = [load_average()]
    index = bench_index(ARGS.items, ARGS.rounds)
    loads.append(load_average())
    load = bench_load(ARGS.rounds, ARGS.chips)
    loads.append(load_average())
    print(f"\nindex {index['items']:,} items (3 assets each) from stac-geoparquet, best of {ARGS.rounds}")
    print(f"{'reader':<34}{'items/s':>12}")
    for k, v in index["items_per_s"].items():
        print(f"{k:<34}{v:>12,}")
    print(f"\nload per date, nearest, best of {ARGS.rounds}")
    print(f"{'grid':<22}{'loads':>6}{'geoduck /s':>12}{'odc.stac /s':>13}{'equal':>7}")
    for name, r in load.items():
        lps = r["loads_per_s"]
        print(
            f"{name:<22}{r['loads']:>6}{lps['geoduck.load_raster']:>12}{lps['odc.stac.load']:>13}{r['pixels_equal']!s:>7}"
        )
    payload = {
        "benchmark": "bench_stac",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": vars(ARGS),
        "machine": machine_info(),
        "load_average": loads,
        "note": busy_note(loads),
        "index": index,
        "load": load,
    }
    name = "bench_stac.json" if ARGS.items == 10_000 else f"bench_stac_{ARGS.items}.json"
    save(RESULTS_DIR / name, payload)


if __name__ == "__main__":
    main()
