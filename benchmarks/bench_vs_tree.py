"""bench_query, bench_intersect and bench_load of this tree against another checkout, interleaved.

Each benchmark runs for the other tree and for this one back to back, in two passes (the second in
the reverse order), so both see the same machine load; both read the same data (the other tree's
``benchmarks/data`` is linked to this tree's when it has none). Writes
``benchmarks/results/bench_round2_vs_pre13.json`` (``--out``): the compared numbers per pass, the
load average around each run and every run's own JSON. The other tree is only read and run (its
``benchmarks/results/bench_load.json``, which bench_load always rewrites, is restored with git).

    .venv/bin/python benchmarks/bench_vs_tree.py --other /work/wt/pre13     # ~25 minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
COMMANDS = {
    "query": ["bench_query.py", "--sizes", "1e5,1e6", "--skip-baselines"],
    "intersect": ["bench_intersect.py", "--cases", "1e4,1e5", "--skip-arrow", "--skip-check", "--skip-overlay"],
    "load": ["bench_load.py", "--quick"],
}
WRITES_OUT = {"query", "intersect"}
"""Benchmarks taking ``--out`` (bench_load always writes benchmarks/results/bench_load.json)."""


def run(tree: Path, bench: str, timeout: float) -> dict[str, Any]:
    """Run one benchmark of ``tree`` and return its JSON, with the load averages around it."""
    script, *args = COMMANDS[bench]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, str(tree / "benchmarks" / script), *args]
        if bench in WRITES_OUT:
            cmd += ["--out", str(out)]
        env = {**os.environ, "PYTHONPATH": str(tree), "GEODUCK_OFFLINE": "1"}
        before = os.getloadavg()[0]
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        after = os.getloadavg()[0]
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        if bench not in WRITES_OUT:
            out = tree / "benchmarks" / "results" / "bench_load.json"
        result = json.loads(out.read_text())
        if bench not in WRITES_OUT:
            subprocess.run(["git", "checkout", "--", str(out.relative_to(tree))], cwd=tree, check=False)
    result["load_average_around_run"] = [before, after]
    return result


def _query(res: dict) -> dict[str, tuple[float, str, str]]:
    out = {}
    for r in res["results"]:
        g = r["geoduck"]
        for key, label in (
            ("to_arrow", "to_arrow p50"),
            ("len", "len p50"),
            ("duckdb_only_to_arrow", "DuckDB alone p50"),
        ):
            out[f"bench_query {r['rows']:.0e} rows: {label}"] = (g[key]["p50_ms"], "ms", "lower")
    return out


def _intersect(res: dict) -> dict[str, tuple[float, str, str]]:
    out = {}
    for r in res["results"]:
        out[f"bench_intersect {r['case']}: len()"] = (r["len"]["total_s"], "s", "lower")
        out[f"bench_intersect {r['case']}: pair ids"] = (r["ids"]["total_s"], "s", "lower")
    return out


def _load(res: dict) -> dict[str, tuple[float, str, str]]:
    out = {}
    for case, approaches in res["results"].items():
        name = "geoduck_threads" if "geoduck_threads" in approaches else "geoduck"
        if name not in approaches:
            continue
        out[f"bench_load {case}: geoduck"] = (approaches[name]["best"], "chips/s", "higher")
        out[f"bench_load {case}: geoduck per CPU s"] = (approaches[name]["best_cpu"], "chips/CPU s", "higher")
    lk = res["results"]["lookup_us_per_chip"]
    out["bench_load slice→files lookup, row index (slices seen before)"] = (lk["row_index"], "µs/chip", "lower")
    # the other tree may lack the "new slices" figure: it kept no answers per slice, so its
    # row_index figure is the cost of a new slice too
    first = lk.get("row_index_first", lk["row_index"])
    out["bench_load slice→files lookup, row index (new slices)"] = (first, "µs/chip", "lower")
    out["bench_load slice→files lookup, DuckDB"] = (lk["duckdb"], "µs/chip", "lower")
    return out


METRICS: dict[str, Callable[[dict], dict[str, tuple[float, str, str]]]] = {
    "query": _query,
    "intersect": _intersect,
    "load": _load,
}


def _revision(tree: Path) -> str:
    cmd = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--other", type=Path, required=True, help="the other checkout (e.g. a worktree at 4f62168)")
    p.add_argument("--label", default="pre13", help="name of the other tree in the results")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark run")
    p.add_argument("--out", type=Path, default=HERE / "results" / "bench_round2_vs_pre13.json")
    p.add_argument("--rev", default=None, help="this tree's revision for the results (default: git HEAD)")
    args = p.parse_args()
    other = args.other.resolve()
    data = other / "benchmarks" / "data"
    if not data.exists() and not data.is_symlink():
        (HERE / "data").mkdir(exist_ok=True)
        data.symlink_to(HERE / "data")
    trees = {args.label: other, "branch": TREE}
    head = {name: _revision(tree) for name, tree in trees.items()}
    head["branch"] = args.rev or head["branch"]
    raw: dict[str, dict] = {}
    order: list[str] = []
    for n in range(args.passes):
        names = list(trees) if n % 2 == 0 else list(reversed(trees))
        benches = list(COMMANDS) if n % 2 == 0 else list(reversed(COMMANDS))
        for bench in benches:
            for name in names:
                key = f"pass{n + 1} {name} {bench}"
                print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {key} (load {os.getloadavg()[0]:.1f})", flush=True)
                raw[key] = run(trees[name], bench, args.timeout)
                order.append(key)
                args.out.write_text(json.dumps({"partial": True, "order": order, "raw": raw}, indent=1))
    rows = []
    for bench, metrics in METRICS.items():
        per = {name: [metrics(raw[f"pass{n + 1} {name} {bench}"]) for n in range(args.passes)] for name in trees}
        for metric, (_, unit, better) in per["branch"][0].items():
            values = {name: [m[metric][0] for m in per[name] if metric in m] for name in trees}
            if not all(values.values()):
                continue
            mean = {name: sum(v) / len(v) for name, v in values.items()}
            rows.append(
                {
                    "metric": metric,
                    "unit": unit,
                    "better": better,
                    args.label: values[args.label],
                    "branch": values["branch"],
                    f"ratio_branch_over_{args.label}": mean["branch"] / mean[args.label],
                }
            )
    label = args.label
    table = [
        f"| metric | unit | {label} ({head[label]}) per pass | branch ({head['branch']}) per pass "
        f"| branch / {label} (mean) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        fmt = lambda vs: " / ".join(f"{v:.3g}" for v in vs)  # noqa: E731
        table.append(
            f"| {r['metric']} | {r['unit']} ({r['better']} is better) | {fmt(r[label])} | {fmt(r['branch'])} "
            f"| {r[f'ratio_branch_over_{label}']:.2f} |"
        )
    payload = {
        "benchmark": f"bench_query + bench_intersect + bench_load: {label} tree ({head[label]}) vs this branch "
        f"({head['branch']}), interleaved",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commands": {k: " ".join(v) for k, v in COMMANDS.items()},
        "order": order,
        "load_average_around_run": {k: v["load_average_around_run"] for k, v in raw.items()},
        "rows": rows,
        "table_markdown": "\n".join(table),
        "raw": raw,
    }
    args.out.write_text(json.dumps(payload, indent=1))
    print("\n".join(table))


if __name__ == "__main__":
    main()
