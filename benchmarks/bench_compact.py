"""Query latency on a catalog of 1,000 small parts, before and after ``geoduck.compact``.

An append-heavy catalog (many builds or a distributed build) ends up with many small parts; every
query then reads ~1,000 Parquet footers. This script writes 10^6 tile × date rows as 1,000 parts,
runs 100 bbox + month queries (results to Arrow, checked against exact counts), compacts, and
runs them again. Prints a table; JSON in benchmarks/results/bench_compact.json.

    .venv/bin/python benchmarks/bench_compact.py [--parts 1000] [--rows 1000000] [--queries 100]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import bench_query as Q  # noqa: E402

import geoduck  # noqa: E402
from geoduck import store  # noqa: E402
from geoduck.testing import synthetic_catalog_table  # noqa: E402


def write_many_parts(root: Path, rows: int, parts: int) -> None:
    n_tiles, n_days = Q.shape(rows)
    table = synthetic_catalog_table(n_tiles, n_days, tile_deg=0.1, origin=C.ORIGIN, start=C.FIRST_DAY)
    # Appends arrive in time order (daily builds): part k holds a slice of consecutive rows.
    per = -(-table.num_rows // parts)
    for offset in range(0, table.num_rows, per):
        store.write_part(table.slice(offset, per), root)


def time_queries(root: Path, queries: list[dict], expected: list[int], repeat: int = 2) -> dict:
    cat = geoduck.open_catalog(root)
    cat.query(**queries[0]).to_arrow()  # warm-up: connection, page cache
    best = []
    for q, n in zip(queries, expected, strict=True):
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            got = cat.query(**q).to_arrow().num_rows
            runs.append(time.perf_counter() - t)
            assert got == n, (q, got, n)
        best.append(min(runs))
    ms = np.array(best) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "parts": len(store.list_parts(root)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args(argv)
    root = C.DATA_DIR / f"compact_{args.rows}_{args.parts}"
    if root.exists():
        shutil.rmtree(root)
    t = time.perf_counter()
    write_many_parts(root, args.rows, args.parts)
    write_s = time.perf_counter() - t
    queries = Q.make_queries(args.rows, args.queries, seed=7)
    expected = Q.expected_counts(args.rows, queries)
    before = time_queries(root, queries, expected)
    t = time.perf_counter()
    report = geoduck.compact(root)
    compact_s = time.perf_counter() - t
    after = time_queries(root, queries, expected)
    assert report.rows == args.rows and geoduck.validate(root) == []
    rows = [("before: many small parts", before), ("after geoduck.compact", after)]
    print(
        f"\n{args.rows:,} rows; {args.queries} bbox + month queries to Arrow (best of 2 each); "
        f"compaction {compact_s:.1f} s (writing the parts took {write_s:.1f} s)"
    )
    print(f"{'catalog':<28}{'parts':>7}{'p50 ms':>10}{'p95 ms':>10}")
    for name, r in rows:
        print(f"{name:<28}{r['parts']:>7}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}")
    C.save(
        C.RESULTS_DIR / "bench_compact.json",
        {
            "benchmark": "bench_compact",
            "machine": C.machine_info(),
            "rows": args.rows,
            "queries": args.queries,
            "write_parts_s": write_s,
            "compact_s": compact_s,
            "before": before,
            "after": after,
            "speedup_p50": before["p50_ms"] / after["p50_ms"],
            "load_average": C.load_average(),
        },
    )
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
