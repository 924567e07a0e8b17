"""Remote query benchmark: the bbox + month queries of bench_query.py on a catalog in S3.

The catalog (10^7 rows by default: 10,000 0.1° tiles × 1,000 days in parts of 50,000 rows,
Hilbert-sorted per 100 days, with the part index; DuckDB-generated once under ``--data-dir``, see
``_common.synthetic_catalog_fast``) is uploaded to a moto S3 server on 127.0.0.1, started in its own
process behind a WSGI layer that sleeps ``--latency-ms`` before each request (the round trip of
a nearby object store) and counts requests and response bytes. Each approach runs in a fresh
child process, on the same queries, in the same run:

- geoduck: ``open_catalog("s3://…").query(bbox=, start=, end=).to_arrow()`` (parts pruned by the
  part index: one GET of the manifest, one LIST, one GET of the index on the first query; later
  queries one LIST while it shows the manifest and index unchanged; then DuckDB reads the parts
  kept);
- DuckDB alone: ``read_parquet('s3://…/*.parquet')`` with the same bbox and time predicates
  (DuckDB lists the parts and reads every footer, then the row groups whose statistics match);
- geopandas/pyarrow: ``geopandas.read_parquet(…, bbox=, filesystem=pyarrow S3FileSystem)`` plus the
  time filter (pyarrow's dataset reads every footer, then the matching row groups);
- geoduck over HTTP: ``open_catalog("http://…")`` (DuckDB and pyarrow cannot list a plain HTTP
  server, so there is no alternative to run beside it).

Per query: requests, bytes fetched, latency; per approach: peak RSS (VmHWM of the child) and the
requests of opening the catalog. Every answer's row count is checked against the grid.

    .venv/bin/python benchmarks/bench_remote_query.py                    # 10^7 rows, 20 ms latency
    .venv/bin/python benchmarks/bench_remote_query.py --size 1e6 --queries 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import bench_query as Q  # noqa: E402

RESULTS = C.RESULTS_DIR / "bench_remote_query.json"
BUCKET = "bench"
DAYS_PER_PART = 100
STATS_PATH = "/__bench_stats"
DEBUG = bool(os.environ.get("BENCH_DEBUG"))


# -- the server (its own process: `bench_remote_query.py --serve LATENCY_MS`) ---------------------


def serve(latency_s: float) -> None:
    """Run moto's S3 app on 127.0.0.1 (a free port, printed) behind a counting, delaying layer."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()
    stats = {"requests": 0, "bytes": 0, "methods": {}}

    def counted(environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO") == STATS_PATH:
            with lock:
                body = json.dumps(stats).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        time.sleep(latency_s)
        method = environ.get("REQUEST_METHOD", "?")
        chunks = list(app(environ, start_response))
        if DEBUG:
            print(
                method,
                environ.get("PATH_INFO"),
                environ.get("QUERY_STRING"),
                environ.get("HTTP_RANGE"),
                file=sys.stderr,
            )
        with lock:
            stats["requests"] += 1
            stats["bytes"] += sum(len(c) for c in chunks)
            stats["methods"][method] = stats["methods"].get(method, 0) + 1
        return chunks

    server = make_server("127.0.0.1", 0, counted, threaded=True, request_handler=MotoRequestHandler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def serve_http(folder: str, latency_s: float) -> None:
    """Serve ``folder`` over plain HTTP on 127.0.0.1 (a free port, printed): files and directory
    listings (HTML links, which fsspec's HTTP filesystem lists), delayed and counted like
    :func:`serve`."""
    import functools
    import http.server

    lock = threading.Lock()
    stats = {"requests": 0, "bytes": 0, "methods": {}}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # no line per request
            pass

        def _stats(self) -> bool:
            if self.path != STATS_PATH:
                return False
            with lock:
                body = json.dumps(stats).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True

        def _count(self, method: str) -> None:
            time.sleep(latency_s)
            with lock:
                stats["requests"] += 1
                stats["methods"][method] = stats["methods"].get(method, 0) + 1

        def copyfile(self, source: Any, outputfile: Any) -> None:
            data = source.read()
            with lock:
                stats["bytes"] += len(data)
            outputfile.write(data)

        def do_GET(self) -> None:
            if not self._stats():
                self._count("GET")
                super().do_GET()

        def do_HEAD(self) -> None:
            self._count("HEAD")
            super().do_HEAD()

    handler = functools.partial(Handler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def server_stats(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(endpoint + STATS_PATH) as r:
        return json.loads(r.read())


def env_for(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }


# -- approaches (each in a child process: `--child WHAT ENDPOINT SPEC`) -----------------------------


def _measure(endpoint: str, queries: list[dict], expected: list[int], run: Any) -> dict[str, Any]:
    rows, times, wrong = [], [], 0
    for q, want in zip(queries, expected, strict=True):
        s0 = server_stats(endpoint)
        t0 = time.perf_counter()
        n = run(q)
        dt = time.perf_counter() - t0
        s1 = server_stats(endpoint)
        rows.append(
            {"ms": dt * 1e3, "requests": s1["requests"] - s0["requests"], "bytes": s1["bytes"] - s0["bytes"], "rows": n}
        )
        times.append(dt)
        wrong += n != want
    return {
        "per_query": rows,
        "latency": Q._pct(times),
        "requests_mean": float(np.mean([r["requests"] for r in rows])),
        "requests_max": int(max(r["requests"] for r in rows)),
        "bytes_mean": float(np.mean([r["bytes"] for r in rows])),
        "wrong_counts": wrong,
    }


def child_geoduck(endpoint: str, uri: str, queries: list[dict], expected: list[int]) -> dict[str, Any]:
    import geoduck
    from geoduck import compiler, storage

    s0 = server_stats(endpoint)
    cat = geoduck.open_catalog(uri)
    s1 = server_stats(endpoint)
    out = _measure(endpoint, queries, expected, lambda q: cat.query(**q).to_arrow().num_rows)
    for row, q in zip(out["per_query"], queries, strict=True):
        b0 = server_stats(endpoint)
        bound = storage.bind(cat.query(**q).node)  # the requests of pruning: manifest, listing, index
        b1 = server_stats(endpoint)
        n = compiler.to_sql(bound, pretty=False).count("/part-")
        row["parts_read"] = n
        row["pruning_requests"] = b1["requests"] - b0["requests"]
        row["requests_per_part_read"] = (row["requests"] - row["pruning_requests"]) / n if n else None
    out["open_requests"] = s1["requests"] - s0["requests"]
    out["peak_rss_mib"] = C.peak_rss_mib()
    return out


def child_duckdb(endpoint: str, uri: str, queries: list[dict], expected: list[int]) -> dict[str, Any]:
    import duckdb

    from geoduck import engine

    con = duckdb.connect()
    engine.load_httpfs(con)
    con.execute(engine.s3_secret_sql() or "")
    con.execute("SET TimeZone = 'UTC'")
    glob = f"{uri}/*.parquet"

    def run(q: dict) -> int:
        x0, y0, x1, y1 = q["bbox"]
        s, e = (t.isoformat() for t in Q.interval(q))
        sql = (
            f"SELECT * FROM read_parquet('{glob}') WHERE bbox.xmin <= {x1} AND bbox.xmax >= {x0} "
            f"AND bbox.ymin <= {y1} AND bbox.ymax >= {y0} "
            f"AND start_datetime <= TIMESTAMPTZ '{e}' AND end_datetime >= TIMESTAMPTZ '{s}'"
        )
        return con.execute(sql).fetch_arrow_table().num_rows

    out = _measure(endpoint, queries, expected, run)
    out["open_requests"] = 0
    out["peak_rss_mib"] = C.peak_rss_mib()
    return out


def child_geopandas(endpoint: str, uri: str, queries: list[dict], expected: list[int]) -> dict[str, Any]:
    import geopandas as gpd
    import shapely
    from pyarrow import fs as pafs

    s3 = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=endpoint,
        scheme="http",
        allow_bucket_creation=False,
    )
    path = uri.removeprefix("s3://")

    def run(q: dict) -> int:
        s, e = Q.interval(q)
        df = gpd.read_parquet(path, bbox=q["bbox"], filesystem=s3)
        df = df[(df["start_datetime"] <= e) & (df["end_datetime"] >= s)]
        return int(df.intersects(shapely.box(*q["bbox"])).sum())

    out = _measure(endpoint, queries, expected, run)
    out["open_requests"] = 0
    out["peak_rss_mib"] = C.peak_rss_mib()
    return out


CHILDREN = {"geoduck": child_geoduck, "duckdb": child_duckdb, "geopandas": child_geopandas}


# -- driver ---------------------------------------------------------------------------------------


def upload(root: Path, endpoint: str, prefix: str) -> int:
    """Put the catalog's parts and part index under ``s3://bench/<prefix>/``; returns the bytes."""
    import fsspec

    from geoduck import store

    os.environ.update(env_for(endpoint))
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    files = [*store.list_parts(root), root / store.INDEX]
    for f in files:
        fs.put_file(str(f), f"{BUCKET}/{prefix}/{f.name}")
    return sum(f.stat().st_size for f in files)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=1e7, help="catalog rows (default %(default)g)")
    p.add_argument("--queries", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--latency-ms", type=float, default=20.0, help="delay before each request")
    p.add_argument("--data-dir", type=Path, default=C.DATA_DIR)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per child process")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--serve", type=float, metavar="LATENCY_MS", help=argparse.SUPPRESS)
    p.add_argument("--serve-http", nargs=2, metavar=("FOLDER", "LATENCY_MS"), help=argparse.SUPPRESS)
    p.add_argument("--child", nargs=4, metavar=("WHAT", "ENDPOINT", "URI", "SPEC"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve is not None:
        serve(args.serve / 1e3)
        return
    if args.serve_http:
        serve_http(args.serve_http[0], float(args.serve_http[1]) / 1e3)
        return
    if args.child:
        what, endpoint, uri, spec = args.child
        data = json.loads(Path(spec).read_text())
        queries = [dict(q, bbox=tuple(q["bbox"])) for q in data["queries"]]
        print(json.dumps(CHILDREN[what](endpoint, uri, queries, data["expected"])))
        return

    from geoduck import store

    size = int(args.size)
    n_tiles, n_days = Q.shape(size)
    root = C.synthetic_catalog_fast(
        args.data_dir / f"query_n{size}_d{DAYS_PER_PART}", n_tiles, n_days, dates_per_chunk=DAYS_PER_PART
    )
    if not (root / store.INDEX).is_file():
        store.update_index(root)
    queries = Q.make_queries(size, args.queries, args.seed)
    expected = Q.expected_counts(size, queries)
    spec = args.data_dir / f"remote_n{size}.queries.json"
    spec.write_text(json.dumps({"queries": queries, "expected": expected}))
    machine = C.machine_info()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.latency_ms)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        endpoint = f"http://127.0.0.1:{int(server.stdout.readline())}"
        t0 = time.perf_counter()
        uploaded = upload(root, endpoint, "cat")
        print(f"uploaded {uploaded / C.MIB:.0f} MiB in {time.perf_counter() - t0:.0f} s to {endpoint}", flush=True)
        env = {**os.environ, **env_for(endpoint)}
        results: dict[str, Any] = {}
        loads = [C.load_average()]
        for what in CHILDREN:
            cmd = [sys.executable, __file__, "--child", what, endpoint, f"s3://{BUCKET}/cat", str(spec)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
                res = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": proc.stderr[-2000:]}
            except subprocess.TimeoutExpired:
                res = {"error": f"timed out after {args.timeout:.0f} s"}
            results[what] = res
            loads.append(C.load_average())
            print(f"  {what}: {summary(res)}", flush=True)
    finally:
        server.kill()
        server.wait()
    # The same geoduck queries over a plain HTTP server (directory listings; DuckDB and pyarrow
    # cannot list one, so geoduck runs alone there).
    http = subprocess.Popen(
        [sys.executable, __file__, "--serve-http", str(root.parent), str(args.latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert http.stdout is not None
        endpoint = f"http://127.0.0.1:{int(http.stdout.readline())}"
        cmd = [sys.executable, __file__, "--child", "geoduck", endpoint, f"{endpoint}/{root.name}", str(spec)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            res = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": proc.stderr[-2000:]}
        except subprocess.TimeoutExpired:
            res = {"error": f"timed out after {args.timeout:.0f} s"}
        results["geoduck_http"] = res
        loads.append(C.load_average())
        print(f"  geoduck_http: {summary(res)}", flush=True)
    finally:
        http.kill()
        http.wait()
    print()
    print_table(results, len(store.list_parts(root)))
    note = C.busy_note(loads)
    if note:
        print(f"NOTE: {note}")
    C.save(
        args.out,
        {
            "benchmark": "bench_remote_query",
            "machine": machine,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "settings": {
                "rows": size,
                "parts": len(store.list_parts(root)),
                "queries": args.queries,
                "seed": args.seed,
                "latency_ms": args.latency_ms,
                "box_deg": Q.BOX_DEG,
                "uploaded_bytes": uploaded,
            },
            "disturbed": note,
            "results": results,
        },
    )


def summary(r: dict[str, Any]) -> str:
    if "error" in r:
        return "error: " + r["error"].strip().splitlines()[-1] if r["error"].strip() else "error"
    return (
        f"p50 {r['latency']['p50_ms']:.0f} ms, requests/query {r['requests_mean']:.1f} (max {r['requests_max']}), "
        f"{r['bytes_mean'] / C.MIB:.2f} MiB/query, peak RSS {r['peak_rss_mib']:.0f} MiB, wrong {r['wrong_counts']}"
    )


def print_table(results: dict[str, Any], parts: int) -> None:
    head = ("approach", "p50 / p95 ms", "requests/query mean (max)", "MiB/query", "peak RSS MiB", "open requests")
    cells = []
    for what, r in results.items():
        if "error" in r:
            cells.append((what, "error", "-", "-", "-", "-"))
            continue
        cells.append(
            (
                what,
                f"{r['latency']['p50_ms']:.0f} / {r['latency']['p95_ms']:.0f}",
                f"{r['requests_mean']:.1f} ({r['requests_max']})",
                f"{r['bytes_mean'] / C.MIB:.2f}",
                f"{r['peak_rss_mib']:.0f}",
                str(r.get("open_requests", "-")),
            )
        )
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print(f"({parts} parts)")
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
    for name in ("geoduck", "geoduck_http"):
        _per_part_line(name, results.get(name, {}))


def _per_part_line(name: str, g: dict[str, Any]) -> None:
    if "per_query" in g:
        per_part = [r["requests_per_part_read"] for r in g["per_query"] if r.get("requests_per_part_read")]
        print(
            f"{name} parts read per query: "
            + ", ".join(str(r["parts_read"]) for r in g["per_query"])
            + "; requests of pruning (manifest, listing, index): "
            + ", ".join(str(r["pruning_requests"]) for r in g["per_query"])
            + f"; requests per part read: mean {np.mean(per_part):.2f}, max {max(per_part):.2f}"
        )


if __name__ == "__main__":
    main()
