"""Join benchmark: a user table (one label per row) joined to a catalog with ``Catalog.join``.

Catalogs: bench_query's ``query_n<size>_d100`` tile × date catalogs (written once under
``benchmarks/data/``, git-ignored, and reused). Cases:

- ``join 1e6``: 10^6 labels (``id``, integer ``fold``, string ``split``, in random order) joined
  onto the 10^6-row catalog: ``cat.join(labels)`` (the table is converted and checked: unique,
  non-null keys, no clashing names), then ``len()``, the ``id, fold`` of the ``split = 'train'``
  rows through ``fetch`` (what a sampler or loader reads), and every column (``to_arrow()``);
- the same read by plain DuckDB: the Arrow table registered on a connection and joined to
  ``read_parquet(<parts>)`` (the engine's share);
- ``where IN 5e4``: the old way, ``where("id IN (…)")`` with 50,000 ids on the 10^5-row catalog
  (``where()`` compiles and checks the predicate; then ``len()``), against ``join`` of the same
  50,000 ids.

Every measurement runs ``--repeat`` times in this process (warm DuckDB connection, the parts'
footers cached as in a session), best kept; row counts are checked against pandas.

    .venv/bin/python benchmarks/bench_join.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

RESULTS = C.RESULTS_DIR / "bench_join.json"


def catalog(size: int) -> Path:
    tiles = {100_000: 100, 1_000_000: 1_000}[size]
    return C.synthetic_catalog(f"query_n{size}_d100", tiles, 1000, part_rows=tiles * 100)


def labels(ids: pa.Array, count: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    chosen = ids.take(pa.array(rng.permutation(len(ids))[:count]))
    fold = rng.integers(0, 5, count)
    split = np.where(fold == 0, "val", "train")
    return pa.table({"id": chosen, "fold": pa.array(fold), "split": pa.array(split)})


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import geoduck
    from geoduck import compiler, engine

    out: dict[str, Any] = {"load": [C.load_average()]}
    big = geoduck.open_catalog(catalog(1_000_000))
    engine.shared_connection()
    ids = big.fetch("id").column(0).combine_chunks()
    table = labels(ids, len(ids), args.seed)
    train = int(np.sum(table.column("split").to_numpy(zero_copy_only=False) == "train"))
    res: dict[str, Any] = {"catalog_rows": len(ids), "label_rows": table.num_rows}
    res["join_s"], joined = best(lambda: big.join(table), args.repeat)
    res["len_s"], n = best(lambda: len(joined), args.repeat)
    res["fetch_train_s"], got = best(lambda: joined.where("split = 'train'").fetch("id", "fold"), args.repeat)
    res["to_arrow_s"], whole = best(joined.to_arrow, max(1, args.repeat - 1))
    res["correct"] = n == len(ids) and got.num_rows == train and whole.num_rows == len(ids)
    # plain DuckDB on the same parts and the same Arrow table
    parts = compiler.to_sql(big.node, pretty=False)
    con = engine.connect()
    con.register("labels", table)
    res["duckdb_len_s"], dn = best(
        lambda: con.execute(f"SELECT count(*) FROM ({parts}) AS c JOIN labels AS t ON c.id = t.id").fetchone(),
        args.repeat,
    )
    res["duckdb_fetch_train_s"], dt = best(
        lambda: con.execute(
            f"SELECT c.id, t.fold FROM ({parts}) AS c JOIN labels AS t ON c.id = t.id WHERE t.split = 'train'"
        ).to_arrow_table(),
        args.repeat,
    )
    res["duckdb_correct"] = dn[0] == len(ids) and dt.num_rows == train
    out["join_1e6"] = res
    out["load"].append(C.load_average())
    print(f"  join 1e6: {res}", flush=True)

    small = geoduck.open_catalog(catalog(100_000))
    sids = small.fetch("id").column(0).combine_chunks()
    sub = labels(sids, 50_000, args.seed)
    wanted = sub.column("id").to_pylist()
    old: dict[str, Any] = {"catalog_rows": len(sids), "ids": len(wanted)}
    predicate = f"id IN ({', '.join(repr(i) for i in wanted)})"
    old["where_s"], rel = best(lambda: small.where(predicate), 1)
    old["where_len_s"], wn = best(lambda: len(rel), 1)
    old["join_s"], jrel = best(lambda: small.join(sub.select(["id"])), args.repeat)
    old["join_len_s"], jn = best(lambda: len(jrel), args.repeat)
    old["correct"] = wn == jn == len(wanted)
    out["where_in_5e4"] = old
    out["load"].append(C.load_average())
    print(f"  where IN 5e4: {old}", flush=True)
    return out


def print_table(out: dict[str, Any]) -> None:
    j, w = out["join_1e6"], out["where_in_5e4"]
    rows = [
        ("join 10^6 labels onto 10^6 rows: join()", f"{j['join_s'] * 1e3:.0f} ms", "-"),
        ("  len()", f"{j['len_s'] * 1e3:.0f} ms", f"{j['duckdb_len_s'] * 1e3:.0f} ms"),
        (
            "  train rows' id, fold (fetch)",
            f"{j['fetch_train_s'] * 1e3:.0f} ms",
            f"{j['duckdb_fetch_train_s'] * 1e3:.0f} ms",
        ),
        ("  every column (to_arrow)", f"{j['to_arrow_s'] * 1e3:.0f} ms", "-"),
        ("50,000 ids on 10^5 rows: where('id IN …')", f"{w['where_s'] * 1e3:.0f} ms", "-"),
        ("  … then len()", f"{w['where_len_s'] * 1e3:.0f} ms", "-"),
        ("50,000 ids on 10^5 rows: join()", f"{w['join_s'] * 1e3:.0f} ms", "-"),
        ("  … then len()", f"{w['join_len_s'] * 1e3:.0f} ms", "-"),
    ]
    head = ("step", "geoduck", "plain DuckDB")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(wd) for h, wd in zip(head, widths, strict=True)))
    print("-|-".join("-" * wd for wd in widths))
    for r in rows:
        print(" | ".join(v.ljust(wd) for v, wd in zip(r, widths, strict=True)))
    print(f"correct: {j['correct']} (DuckDB {j['duckdb_correct']}), where-IN vs join counts equal: {w['correct']}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement (best kept)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    machine = C.machine_info()
    out = run(args)
    note = C.busy_note(out["load"])
    print()
    print_table(out)
    if note:
        print(f"NOTE: {note}")
    C.save(
        args.out,
        {
            "benchmark": "bench_join",
            "machine": machine,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "settings": {"repeat": args.repeat, "seed": args.seed},
            "disturbed": note,
            "results": out,
        },
    )


if __name__ == "__main__":
    main()
