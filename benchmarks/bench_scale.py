"""Scale-out benchmark: a 10^7-row catalog whose parts are written by 2 workers, local processes
vs a dask ``LocalCluster``, then the query benchmark on it.

1. Synthetic rows (no image files behind them): 10,000 0.1° tiles × 1,000 days, the rows of
   ``bench_query.py``'s 10^7 catalog, generated with ``geoduck.testing.synthetic_catalog_table`` in
   chunks of ``--part-rows`` rows; each chunk is generated and written by the worker that generated
   it (``store.write_parts``: one Hilbert sort, cut into parts of at most 50,000 rows, row groups,
   atomic renames).
   Two workers either way: a 2-process ``ProcessPoolExecutor`` ("local") and a ``LocalCluster(
   n_workers=2, threads_per_worker=1, processes=True)`` ("dask"; cluster start-up timed apart).
   Both catalogs must hold the same rows (count, distinct ids, and a checksum of ids).
2. Real headers: ``build_raster_catalog`` over ``--files`` small GeoTIFFs (``bench_build.py``'s
   dataset), ``workers=2`` vs ``client=`` the LocalCluster (files/s, same rows checked).
3. Queries on the dask-built catalog: ``--queries`` bbox (0.3°) + calendar-month queries from
   ``bench_query.py``: ``to_arrow()`` and ``len()`` latency p50/p95, each answer checked against the
   exact count from the grid.

    .venv/bin/python benchmarks/bench_scale.py                 # 10^7 rows (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_scale.py --rows 1e6      # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402
import bench_query as Q  # noqa: E402

RESULTS = C.RESULTS_DIR / "bench_scale.json"
N_DAYS = Q.N_DAYS


def write_chunk(root: str, n_tiles: int, first_day: int, n_days: int) -> int:
    """Generate days ``[first_day, first_day + n_days)`` of every tile and write them as one part;
    returns the rows written. Runs in a worker (local process or dask worker)."""
    sys.path.insert(0, str(HERE))
    import _common
    import pandas as pd

    from geoduck import store
    from geoduck.testing import synthetic_catalog_table

    start = (pd.Timestamp(_common.FIRST_DAY) + pd.Timedelta(days=first_day)).strftime("%Y-%m-%d")
    table = synthetic_catalog_table(n_tiles, n_days, start=start, origin=_common.ORIGIN)
    store.write_parts(_common._global_ids(table, n_tiles, first_day, n_days), root)  # noqa: SLF001
    return table.num_rows


def chunks(rows: int, part_rows: int) -> tuple[int, list[tuple[int, int]]]:
    n_tiles = rows // N_DAYS
    per = max(1, part_rows // n_tiles)
    return n_tiles, [(d, min(per, N_DAYS - d)) for d in range(0, N_DAYS, per)]


def build_local(root: Path, rows: int, part_rows: int) -> float:
    n_tiles, plan = chunks(rows, part_rows)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        written = sum(pool.map(write_chunk, *zip(*[(str(root), n_tiles, d, n) for d, n in plan], strict=True)))
    elapsed = time.perf_counter() - t0
    assert written == rows, (written, rows)
    return elapsed


def build_dask(client: Any, root: Path, rows: int, part_rows: int) -> float:
    from distributed import as_completed

    n_tiles, plan = chunks(rows, part_rows)
    t0 = time.perf_counter()
    futures = [client.submit(write_chunk, str(root), n_tiles, d, n, pure=False) for d, n in plan]
    written = sum(f.result() for f in as_completed(futures))
    elapsed = time.perf_counter() - t0
    assert written == rows, (written, rows)
    return elapsed


def fingerprint(root: Path) -> dict[str, int]:
    import geoduck

    df = geoduck.sql(
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(hash(id)) AS h FROM c", c=geoduck.open_catalog(root)
    )
    return {"rows": int(df["n"][0]), "distinct_ids": int(df["ids"][0]), "id_checksum": int(df["h"][0])}


def header_builds(client: Any, n_files: int) -> dict[str, Any]:
    import bench_build as B

    import geoduck

    files = B.ensure_dataset(n_files)
    B.warm_page_cache(files)
    out: dict[str, Any] = {"files": n_files}
    tables = {}
    for name, kwargs in (("local_workers2", {"workers": 2}), ("dask_localcluster", {"client": client})):
        best = None
        for _ in range(2):  # the first run of each warms its workers (forkserver / imports)
            target = B.DATA_DIR / "out" / f"scale-{name}"
            shutil.rmtree(target, ignore_errors=True)
            t0 = time.perf_counter()
            cat = geoduck.build_raster_catalog(files, target, filename_regex=B.REGEX, progress=False, **kwargs)
            elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
            report = cat.build_report
            assert report.files_indexed == n_files and not report.errors, report.summary()
            tables[name] = cat.to_arrow().sort_by("id")
            out[f"{name}_parts"] = len(report.parts)
            shutil.rmtree(target, ignore_errors=True)
        out[f"{name}_s"] = best
        out[f"{name}_files_per_s"] = n_files / best
    assert tables["local_workers2"].equals(tables["dask_localcluster"]), "header builds differ"
    out["same_rows"] = True
    return out


def queries(root: Path, rows: int, n: int, seed: int) -> dict[str, Any]:
    qs = Q.make_queries(rows, n, seed)
    return Q.child_geoduck(str(root), qs, Q.expected_counts(rows, qs))


def print_table(res: dict[str, Any]) -> None:
    b, h, q = res["build"], res.get("headers"), res["queries"]
    lines = [("step", "local (2 processes)", "LocalCluster (2 workers)")]
    lines.append((f"write {res['rows']:,} rows, {b['parts']} parts: s", f"{b['local_s']:.1f}", f"{b['dask_s']:.1f}"))
    lines.append(("  rows/s", f"{b['local_rows_per_s']:,.0f}", f"{b['dask_rows_per_s']:,.0f}"))
    if h:
        lines.append(
            (
                f"build_raster_catalog, {h['files']:,} GeoTIFFs: files/s",
                f"{h['local_workers2_files_per_s']:,.0f}",
                f"{h['dask_localcluster_files_per_s']:,.0f}",
            )
        )
    lines.append(("cluster start-up s", "-", f"{res['cluster_start_s']:.1f}"))
    widths = [max(len(r[i]) for r in lines) for i in range(3)]
    for k, r in enumerate(lines):
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
        if k == 0:
            print("-|-".join("-" * w for w in widths))
    print()
    print(
        f"queries on the LocalCluster-built catalog ({q['to_arrow']['n']} bbox 0.3° + month queries, "
        f"{q['wrong_counts']} wrong counts): to_arrow p50 {q['to_arrow']['p50_ms']:.1f} ms, "
        f"p95 {q['to_arrow']['p95_ms']:.1f} ms; len p50 {q['len']['p50_ms']:.1f} ms, "
        f"p95 {q['len']['p95_ms']:.1f} ms; open {q['open_s'] * 1e3:.0f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=float, default=1e7, help="catalog rows (multiple of 1000; default %(default)g)")
    p.add_argument("--part-rows", type=int, default=1_000_000, help="rows per chunk (one task each)")
    p.add_argument("--files", type=int, default=2000, help="GeoTIFFs of the header build (0: skip)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    rows = int(args.rows)
    if rows % N_DAYS or rows < N_DAYS:
        p.error(f"--rows must be a multiple of {N_DAYS}")
    os.environ.setdefault("GEODUCK_OFFLINE", "1")
    from distributed import Client, LocalCluster

    machine = C.machine_info()
    loads = [C.load_average()]
    base = C.DATA_DIR / f"scale_n{rows}"
    local_root, dask_root = base / "local", base / "dask"
    shutil.rmtree(base, ignore_errors=True)
    res: dict[str, Any] = {"rows": rows}

    print(f"== writing {rows:,} rows with 2 local processes", flush=True)
    local_s = build_local(local_root, rows, args.part_rows)
    loads.append(C.load_average())
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    res["cluster_start_s"] = time.perf_counter() - t0
    try:
        client.run(lambda: __import__("geoduck"))  # import geoduck in the workers before timing
        print(f"== writing {rows:,} rows on a LocalCluster", flush=True)
        dask_s = build_dask(client, dask_root, rows, args.part_rows)
        loads.append(C.load_average())
        if args.files:
            print(f"== build_raster_catalog over {args.files} GeoTIFFs, workers=2 vs client", flush=True)
            res["headers"] = header_builds(client, args.files)
            loads.append(C.load_average())
    finally:
        client.close()
        cluster.close()
    from geoduck import store

    fp_local, fp_dask = fingerprint(local_root), fingerprint(dask_root)
    assert fp_local == fp_dask and fp_dask["rows"] == fp_dask["distinct_ids"] == rows, (fp_local, fp_dask)
    res["build"] = {
        "local_s": local_s,
        "dask_s": dask_s,
        "local_rows_per_s": rows / local_s,
        "dask_rows_per_s": rows / dask_s,
        "parts": len(store.list_parts(dask_root)),
        "part_rows": args.part_rows,
        "same_rows": True,
        "fingerprint": fp_dask,
        "bytes_on_disk": sum(p.stat().st_size for p in store.list_parts(dask_root)),
    }
    print(f"== {args.queries} queries", flush=True)
    res["queries"] = queries(dask_root, rows, args.queries, args.seed)
    loads.append(C.load_average())
    shutil.rmtree(local_root, ignore_errors=True)  # keep the dask-built one for inspection
    note = C.busy_note(loads)
    print()
    print_table(res)
    if note:
        print(f"NOTE: {note}")
    C.save(
        args.out,
        {
            "benchmark": "bench_scale",
            "machine": machine,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "settings": {
                "rows": rows,
                "part_rows": args.part_rows,
                "files": args.files,
                "queries": args.queries,
                "seed": args.seed,
                "workers": 2,
            },
            "load": loads,
            "disturbed": note,
            "results": res,
        },
    )


if __name__ == "__main__":
    main()
