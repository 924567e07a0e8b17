"""Query benchmark: bbox + month queries on tile × date catalogs of 10^5, 10^6 and 10^7 rows.

Catalogs: 0.1° square tiles on a near-square grid × daily rows (100 / 1,000 / 10,000 tiles ×
1,000 days), written once under ``benchmarks/data/query_n*`` (git-ignored) exactly as
``geoduck.testing.write_synthetic_catalog(dir, tiles, 1000, part_rows=tiles * D)`` writes them — rows
are date-major, so each append holds ``D = --days-per-part`` consecutive days of every tile, like a
catalog appended in time order, and is written as Hilbert-ordered parts of at most 50,000 rows
(``store.write_parts``) — and reused. Queries: ``--queries`` seeded random 0.3° × 0.3° boxes inside
the grid, each with a random calendar month (~500 result rows).

Per size it measures, on the same queries (every answer's row count is checked against the exact
count computed from the grid):

- geoduck: ``open_catalog(dir).query(bbox=, start=, end=).to_arrow()`` latency p50/p95 over 3 rounds
  of the query set (catalog opened once; a few warm-up queries first), and ``len()`` of the same
  relation; and "DuckDB alone": the same SQL, compiled beforehand, fetched to Arrow as ``to_arrow()``
  fetches it (the engine's share of the latency; the rest is geoduck's AOI handling, compilation and
  part pruning);
- (a) ``geopandas.read_parquet(dir, bbox=)`` + interval filter + exact ``intersects`` on the catalog
  itself (Hilbert-sorted parts with the bbox covering: pruning works for geopandas too), and (a')
  the same on one file of the same rows in random order written with pyarrow's defaults (what a
  user who never sorted has; see :func:`unsorted_file`);
- (b) in-memory GeoDataFrame + ``pandas.IntervalIndex.overlaps`` + ``sindex.query``: load time
  (read + IntervalIndex + STRtree) and peak RSS (in a fresh child process), then per-query latency;
- row groups whose bbox/time statistics overlap the query (what a Parquet reader must read) vs total.

    .venv/bin/python benchmarks/bench_query.py                      # 1e5, 1e6, 1e7
    .venv/bin/python benchmarks/bench_query.py --sizes 1e5,1e6      # small
    .venv/bin/python benchmarks/bench_query.py --inmem-max 1e6      # skip (b) at 10^7 (~14 GB)
    .venv/bin/python benchmarks/bench_query.py --sizes 1e6 --days-per-part 1000 --skip-baselines
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

RESULTS = C.RESULTS_DIR / "bench_query.json"
N_DAYS = 1000
BOX_DEG = 0.3
REPEAT = 3
"""Rounds over the query set in the geoduck measurement."""


# -- queries --------------------------------------------------------------------------------------


def shape(size: int) -> tuple[int, int]:
    """(tiles, days) of a catalog of ``size`` rows."""
    return size // N_DAYS, N_DAYS


def make_queries(size: int, n: int, seed: int) -> list[dict[str, Any]]:
    n_tiles, n_days = shape(size)
    boxes = C.tile_boxes(n_tiles)
    xmin, ymin = boxes[:, 0].min(), boxes[:, 1].min()
    xmax, ymax = boxes[:, 2].max(), boxes[:, 3].max()
    first = pd.Timestamp(C.FIRST_DAY)
    months = pd.date_range(first, first + pd.Timedelta(days=n_days - 1), freq="MS")
    months = [m for m in months if m + pd.offsets.MonthEnd(0) <= first + pd.Timedelta(days=n_days - 1)]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = float(np.round(rng.uniform(xmin, xmax - BOX_DEG), 6))
        y = float(np.round(rng.uniform(ymin, ymax - BOX_DEG), 6))
        m = months[int(rng.integers(len(months)))]
        out.append(
            {
                "bbox": (x, y, round(x + BOX_DEG, 6), round(y + BOX_DEG, 6)),
                "start": m.date().isoformat(),
                "end": (m + pd.offsets.MonthEnd(0)).date().isoformat(),
            }
        )
    return out


def expected_counts(size: int, queries: list[dict[str, Any]]) -> list[int]:
    """Exact answer sizes from the grid: tiles meeting the box × days meeting the month."""
    n_tiles, n_days = shape(size)
    boxes = C.tile_boxes(n_tiles)
    day0 = pd.Timestamp(C.FIRST_DAY)
    out = []
    for q in queries:
        x0, y0, x1, y1 = q["bbox"]
        tiles = int(((boxes[:, 0] <= x1) & (boxes[:, 2] >= x0) & (boxes[:, 1] <= y1) & (boxes[:, 3] >= y0)).sum())
        d0 = (pd.Timestamp(q["start"]) - day0).days
        d1 = (pd.Timestamp(q["end"]) - day0).days
        days = max(0, min(d1, n_days - 1) - max(d0, 0) + 1)
        out.append(tiles * days)
    return out


def interval(q: dict[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The closed query interval in UTC (a date-only end includes its whole day, as in geoduck)."""
    s = pd.Timestamp(q["start"], tz="UTC")
    e = pd.Timestamp(q["end"], tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return s, e


# -- row groups -----------------------------------------------------------------------------------


def row_group_stats(root: Path) -> np.ndarray:
    """(groups, 6): xmin, ymin, xmax, ymax, min start (µs), max end (µs) of every row group."""
    import pyarrow.parquet as pq

    from geoduck import store

    rows = []
    for part in store.list_parts(root):
        md = pq.ParquetFile(part).metadata
        names = {md.row_group(0).column(j).path_in_schema: j for j in range(md.num_columns)}
        for g in range(md.num_row_groups):
            rg = md.row_group(g)

            def st(name: str, rg=rg):
                return rg.column(names[name]).statistics

            s, e = st("start_datetime"), st("end_datetime")
            rows.append(
                (
                    st("bbox.xmin").min,
                    st("bbox.ymin").min,
                    st("bbox.xmax").max,
                    st("bbox.ymax").max,
                    pd.Timestamp(s.min).value // 1000 if s.has_min_max else -(2**62),
                    pd.Timestamp(e.max).value // 1000 if e.has_min_max else 2**62,
                )
            )
    return np.array(rows, dtype="float64")


def groups_read(stats: np.ndarray, q: dict[str, Any]) -> int:
    x0, y0, x1, y1 = q["bbox"]
    s, e = (t.value // 1000 for t in interval(q))
    hit = (
        (stats[:, 0] <= x1)
        & (stats[:, 2] >= x0)
        & (stats[:, 1] <= y1)
        & (stats[:, 3] >= y0)
        & (stats[:, 4] <= e)
        & (stats[:, 5] >= s)
    )
    return int(hit.sum())


# -- approaches (each run in its own child process: `bench_query.py --child <what> ...`) ----------


def _pct(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "n": len(values),
    }


def child_geoduck(root: str, queries: list[dict[str, Any]], expected: list[int]) -> dict[str, Any]:
    import geoduck

    t0 = time.perf_counter()
    cat = geoduck.open_catalog(root)
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = cat.query(**queries[0]).to_arrow().num_rows
    first_s = time.perf_counter() - t0
    for q in queries[1:4]:  # warm-up
        cat.query(**q).to_arrow()
    arrow, counts, wrong = [], [], 0
    for _ in range(REPEAT):  # every query REPEAT times (the p50/p95 are over all of them)
        for q, want in zip(queries, expected, strict=True):
            t0 = time.perf_counter()
            table = cat.query(**q).to_arrow()
            arrow.append(time.perf_counter() - t0)
            wrong += table.num_rows != want
        for q in queries:
            t0 = time.perf_counter()
            len(cat.query(**q))
            counts.append(time.perf_counter() - t0)
    # The engine alone: the same compiled SQL (rendered beforehand) run on one cursor, so the
    # difference to `to_arrow` above is geoduck's own per-query work (AOI, compile, part pruning).
    from geoduck import compiler, engine

    sqls = [compiler.to_sql(cat.query(**q).node, pretty=False) for q in queries]
    raw = []
    for _ in range(REPEAT):
        for sql_text in sqls:
            t0 = time.perf_counter()
            engine.fetch_arrow(sql_text)  # what to_arrow() runs, minus building the SQL
            raw.append(time.perf_counter() - t0)
    return {
        "open_s": open_s,
        "first_query_s": first_s,
        "first_rows": first,
        "to_arrow": _pct(arrow),
        "len": _pct(counts),
        "duckdb_only_to_arrow": _pct(raw),
        "wrong_counts": wrong,
        "peak_rss_mib": C.peak_rss_mib(),
    }


def child_geopandas(root: str, queries: list[dict[str, Any]], expected: list[int]) -> dict[str, Any]:
    import geopandas as gpd
    import shapely

    times, wrong = [], 0
    for q, want in zip(queries, expected, strict=True):
        s, e = interval(q)
        t0 = time.perf_counter()
        df = gpd.read_parquet(root, bbox=q["bbox"])
        df = df[(df["start_datetime"] <= e) & (df["end_datetime"] >= s)]
        df = df[df.intersects(shapely.box(*q["bbox"]))]
        times.append(time.perf_counter() - t0)
        wrong += len(df) != want
    return {"query": _pct(times), "wrong_counts": wrong, "peak_rss_mib": C.peak_rss_mib()}


def child_inmemory(root: str, queries: list[dict[str, Any]], expected: list[int]) -> dict[str, Any]:
    import geopandas as gpd
    import shapely

    t0 = time.perf_counter()
    gdf = gpd.read_parquet(root)
    read_s = time.perf_counter() - t0
    iv = pd.IntervalIndex.from_arrays(gdf["start_datetime"], gdf["end_datetime"], closed="both")
    sindex = gdf.sindex
    sindex.query(shapely.box(0, 0, 1, 1))  # STRtree is built lazily: build it now
    load_s = time.perf_counter() - t0
    times, wrong = [], 0
    for q, want in zip(queries, expected, strict=True):
        s, e = interval(q)
        t0 = time.perf_counter()
        in_time = iv.overlaps(pd.Interval(s, e, closed="both"))
        idx = sindex.query(shapely.box(*q["bbox"]), predicate="intersects")
        hits = gdf.iloc[np.sort(idx[in_time[idx]])]
        times.append(time.perf_counter() - t0)
        wrong += len(hits) != want
    return {
        "read_s": read_s,
        "load_s": load_s,
        "query": _pct(times),
        "wrong_counts": wrong,
        "peak_rss_mib": C.peak_rss_mib(),
    }


CHILDREN = {
    "geoduck": child_geoduck,
    "geopandas": child_geopandas,
    "geopandas_unsorted": child_geopandas,
    "inmemory": child_inmemory,
}


def unsorted_file(root: Path, size: int) -> Path:
    """The catalog's rows as one GeoParquet file in random order (seed 0), written by pyarrow with
    its defaults (row groups of 2^20 rows) and the parts' ``geo`` metadata: what a user has who
    wrote a table of footprints without geoduck. Written once, reused."""
    import pyarrow.parquet as pq

    from geoduck import store

    path = root.parent / f"query_n{size}_unsorted.parquet"
    if path.is_file():
        return path
    parts = store.list_parts(root)
    table = pa.concat_tables(pq.read_table(p) for p in parts)
    order = np.random.default_rng(0).permutation(table.num_rows)
    table = table.take(pa.array(order)).replace_schema_metadata(pq.read_schema(parts[0]).metadata)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.rename(path)
    os.sync()  # its write-back must not overlap the timed runs
    return path


# -- driver ---------------------------------------------------------------------------------------


def run_size(size: int, days_per_part: int, args: argparse.Namespace) -> dict[str, Any]:
    n_tiles, n_days = shape(size)
    print(f"== {size:,} rows ({n_tiles:,} tiles × {n_days:,} days, parts of {days_per_part} days)", flush=True)
    root = C.synthetic_catalog(f"query_n{size}_d{days_per_part}", n_tiles, n_days, part_rows=n_tiles * days_per_part)
    queries = make_queries(size, args.queries, args.seed)
    expected = expected_counts(size, queries)
    stats = row_group_stats(root)
    read = [groups_read(stats, q) for q in queries]
    from geoduck import store

    out: dict[str, Any] = {
        "rows": size,
        "tiles": n_tiles,
        "days": n_days,
        "days_per_part": days_per_part,
        "parts": len(store.list_parts(root)),
        "row_group_size": store.ROW_GROUP_SIZE,
        "row_groups_total": len(stats),
        "row_groups_read_mean": float(np.mean(read)),
        "row_groups_read_p50": float(np.median(read)),
        "row_groups_read_max": int(max(read)),
        "result_rows_p50": float(np.median(expected)),
        "queries": len(queries),
        "bytes_on_disk": sum(p.stat().st_size for p in store.list_parts(root)),
        "load": [C.load_average()],
    }
    spec = root.parent / f"query_n{size}.queries.json"
    spec.write_text(json.dumps({"queries": queries, "expected": expected}))
    plan = [("geoduck", len(queries), root)]
    if not args.skip_baselines:
        n_gpd = args.gpd_queries if size >= 10**7 else len(queries)
        plan.append(("geopandas", n_gpd, root))
        plan.append(("geopandas_unsorted", n_gpd, unsorted_file(root, size)))
        if size <= args.inmem_max:
            plan.append(("inmemory", len(queries), root))
    for what, n, path in plan:
        res = C.run_child([__file__, "--child", what, str(path), str(spec), str(n)], timeout=args.timeout)
        out[what] = res
        out["load"].append(C.load_average())
        print(f"  {what}: {summary(what, res)}", flush=True)
    return out


def summary(what: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    if what == "geoduck":
        return (
            f"to_arrow p50 {r['to_arrow']['p50_ms']:.1f} ms, p95 {r['to_arrow']['p95_ms']:.1f} ms; "
            f"len p50 {r['len']['p50_ms']:.1f} ms; DuckDB alone p50 "
            f"{r['duckdb_only_to_arrow']['p50_ms']:.1f} ms; open {r['open_s'] * 1e3:.0f} ms; "
            f"wrong {r['wrong_counts']}"
        )
    if what in ("geopandas", "geopandas_unsorted"):
        return f"p50 {r['query']['p50_ms']:.0f} ms, p95 {r['query']['p95_ms']:.0f} ms; wrong {r['wrong_counts']}"
    return (
        f"load {r['load_s']:.1f} s, peak {r['peak_rss_mib']:.0f} MiB; p50 {r['query']['p50_ms']:.1f} ms, "
        f"p95 {r['query']['p95_ms']:.1f} ms; wrong {r['wrong_counts']}"
    )


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        "rows",
        "days/part",
        "geoduck arrow p50/p95 ms",
        "geoduck len p50",
        "DuckDB alone p50",
        "(a) gpd bbox p50/p95 ms",
        "(a') unsorted file p50 ms",
        "(b) in-mem load s / GiB",
        "(b) query p50/p95 ms",
        "row groups read / total",
    )
    cells = []
    for r in results:
        g, a, b = r.get("geoduck", {}), r.get("geopandas", {}), r.get("inmemory")
        u = r.get("geopandas_unsorted", {})
        cells.append(
            (
                f"10^{int(round(np.log10(r['rows'])))}",
                str(r["days_per_part"]),
                f"{fmt_ms(g['to_arrow']['p50_ms'])} / {fmt_ms(g['to_arrow']['p95_ms'])}" if "to_arrow" in g else "-",
                fmt_ms(g["len"]["p50_ms"]) if "len" in g else "-",
                fmt_ms(g["duckdb_only_to_arrow"]["p50_ms"]) if "duckdb_only_to_arrow" in g else "-",
                f"{fmt_ms(a['query']['p50_ms'])} / {fmt_ms(a['query']['p95_ms'])}" if "query" in a else "-",
                fmt_ms(u["query"]["p50_ms"]) if "query" in u else "-",
                f"{b['load_s']:.1f} / {b['peak_rss_mib'] / 1024:.1f}" if b and "load_s" in b else "-",
                f"{fmt_ms(b['query']['p50_ms'])} / {fmt_ms(b['query']['p95_ms'])}" if b and "query" in b else "-",
                f"{r['row_groups_read_mean']:.1f} / {r['row_groups_total']}",
            )
        )
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e5,1e6,1e7", help="catalog rows, comma-separated (default %(default)s)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--gpd-queries", type=int, default=20, help="(a) queries at 10^7 (each takes seconds)")
    p.add_argument("--inmem-max", type=float, default=1e7, help="largest size to run (b) at")
    p.add_argument("--days-per-part", default="100", help="days of rows per part, comma-separated layouts")
    p.add_argument("--skip-baselines", action="store_true", help="geoduck only (no (a), (b))")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per child process")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", nargs=4, metavar=("WHAT", "ROOT", "QUERIES", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        what, root, spec, n = args.child
        data = json.loads(Path(spec).read_text())
        queries = [dict(q, bbox=tuple(q["bbox"])) for q in data["queries"][: int(n)]]
        print(json.dumps(CHILDREN[what](root, queries, data["expected"][: int(n)])))
        return
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    args.inmem_max = int(args.inmem_max)
    machine = C.machine_info()
    layouts = [int(d) for d in args.days_per_part.split(",")]
    results = [run_size(s, d, args) for s in sizes for d in layouts]
    loads = [v for r in results for v in r["load"]]
    note = C.busy_note(loads)
    print()
    print_table(results)
    if note:
        print(f"NOTE: {note}")
    C.save(
        args.out,
        {
            "benchmark": "bench_query",
            "machine": machine,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "settings": {
                "queries": args.queries,
                "seed": args.seed,
                "box_deg": BOX_DEG,
                "gpd_queries_at_1e7": args.gpd_queries,
                "inmem_max": args.inmem_max,
                "days_per_part": layouts,
            },
            "disturbed": note,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
