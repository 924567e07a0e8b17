"""CLI cold start: wall time of fresh ``geoduck`` processes vs the DuckDB CLI on the same parts.

Catalog: the tile × date catalog of ``bench_query.py`` (``--size`` rows, default 10^6: 1,000 0.1°
tiles × 1,000 days, parts of ``--days-per-part`` days; written once under ``benchmarks/data/`` and
reused). Commands, each a new process (so every run pays interpreter start and imports; the
files themselves are in the page cache, and geoduck's bytecode in ``__pycache__`` as in an installed
package, after an untimed warm-up run of each):

- ``geoduck --help``  vs  ``duckdb -help`` and a bare ``python -c pass`` (the floor of any Python CLI);
- ``geoduck info CAT``  vs  the DuckDB CLI computing the same figures (rows per backend, bounds,
  time extent) with ``read_parquet`` on the parts;
- ``geoduck query CAT --bbox … --start … --end … --format csv`` (one 0.3° × month query of
  ``bench_query.py``)  vs  the DuckDB CLI running the SQL geoduck compiles for it (``sql_text``:
  the same parts and predicates) as CSV with the geometry as WKT and without the bbox columns, as
  geoduck writes it; and the same statements through ``python -c "import duckdb; …"`` (Python +
  the duckdb module, no geoduck).

The DuckDB CLI is the native ``duckdb`` binary of the ``duckdb-cli`` package (its pip launcher,
``.venv/bin/duckdb``, the one tests/test_database.py uses, adds a Python start); without it the
Python baseline alone is reported. Every command runs ``--runs`` times, round-robin (so load
spikes hit all alike); best and median wall times are reported, and the answers' rows are checked
against the exact count from the grid. ``--before REV`` also times the geoduck commands of git
revision REV (its ``geoduck/`` and ``sql/`` exported to a temporary folder) in the same rounds.
One ``python -X importtime`` run of the query says where the geoduck process spends its imports,
and a few instrumented runs how its wall time splits (start, imports, connection, query + CSV).

    .venv/bin/python benchmarks/bench_cli.py                    # 10^6 rows, 10 runs
    .venv/bin/python benchmarks/bench_cli.py --size 1e5 --runs 5 --before 5f127ab
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import bench_query as Q  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = C.RESULTS_DIR / "bench_cli.json"
HELP_GOAL_S = 0.3
QUERY_GAP_GOAL_S = 0.3
DROPPED = ("bbox", "native_bounds", "transform")
"""Columns ``geoduck query --format csv`` leaves out."""


# -- commands -------------------------------------------------------------------------------------


def duckdb_binary() -> tuple[Path | None, str]:
    """The native DuckDB CLI binary, else the pip launcher next to this Python, else None."""
    spec = importlib.util.find_spec("duckdb_cli")
    if spec is not None and spec.origin is not None:
        native = Path(spec.origin).with_name("duckdb")
        if native.is_file() and os.access(native, os.X_OK):
            return native, "native duckdb binary (duckdb-cli package)"
    launcher = Path(sys.executable).with_name("duckdb")
    if launcher.is_file():
        return launcher, "duckdb-cli pip launcher (a Python script that runs the binary)"
    return None, "no duckdb CLI installed: Python + duckdb module baseline only"


def geoduck_command(src: Path) -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment running the ``geoduck`` CLI of the checkout at ``src``."""
    script = Path(sys.executable).with_name("geoduck")
    if "\ndef run(" not in (src / "geoduck" / "cli.py").read_text():  # a revision whose script ran main()
        return [sys.executable, "-c", "import sys; from geoduck.cli import main; sys.exit(main())"], _env(
            PYTHONPATH=str(src)
        )
    argv = [str(script)] if script.is_file() else [sys.executable, "-m", "geoduck"]
    return argv, _env(PYTHONPATH=str(src))


def _env(**extra: str) -> dict[str, str]:
    """This environment, with bytecode caching on (as in an installed package, whose modules are
    compiled once: the warm-up run writes the ``__pycache__`` of the checkout), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def duckdb_scripts(root: Path, q: dict[str, Any]) -> dict[str, list[str]]:
    """The SQL statements the DuckDB baselines run for ``info`` and ``query``."""
    import geoduck
    from geoduck import engine

    ext = engine.spatial_extension_path()
    load = f"LOAD '{ext}'" if ext is not None else "LOAD spatial"
    rel = geoduck.open_catalog(root).query(bbox=q["bbox"], start=q["start"], end=q["end"])
    glob = f"read_parquet('{root}/*.parquet')"
    select = f"SELECT * EXCLUDE ({', '.join(DROPPED)}) REPLACE (ST_AsText(geometry) AS geometry) FROM ({rel.sql_text})"
    return {
        "query": [load, "SET TimeZone = 'UTC'", select],  # the CLI in .mode csv
        "query_copy": [load, "SET TimeZone = 'UTC'", f"COPY ({select}) TO '/dev/stdout' (FORMAT csv, HEADER)"],
        "info": [
            "SET TimeZone = 'UTC'",
            f"SELECT backend, count(*) AS n FROM {glob} GROUP BY 1 ORDER BY 1",
            f"SELECT count(*) AS rows, min(bbox.xmin), min(bbox.ymin), max(bbox.xmax), max(bbox.ymax), "
            f"min(start_datetime), max(end_datetime) FROM {glob}",
        ],
    }


def plan(root: Path, q: dict[str, Any], before: Path | None) -> list[dict[str, Any]]:
    """Every timed command: name, what it is the alternative of, argv, env, stdin."""
    duck, _ = duckdb_binary()
    sql = duckdb_scripts(root, q)
    bbox = [str(v) for v in q["bbox"]]
    query_args = ["query", str(root), "--bbox", *bbox, "--start", q["start"], "--end", q["end"], "--format", "csv"]
    out: list[dict[str, Any]] = []
    sources = [("geoduck", REPO)] + ([("geoduck before", before)] if before is not None else [])
    for label, src in sources:
        argv, env = geoduck_command(src)
        out += [
            {"name": f"{label} --help", "task": "help", "argv": [*argv, "--help"], "env": env},
            {"name": f"{label} info", "task": "info", "argv": [*argv, "info", str(root)], "env": env},
            {"name": f"{label} query csv", "task": "query", "argv": [*argv, *query_args], "env": env},
        ]
    out.append({"name": "python -c pass", "task": "help", "argv": [sys.executable, "-c", "pass"]})
    if duck is not None:
        out += [
            {"name": "duckdb -help", "task": "help", "argv": [str(duck), "-help"]},
            {"name": "duckdb CLI info", "task": "info", "argv": [str(duck)], "stdin": _cli_script(sql["info"])},
            {"name": "duckdb CLI query csv", "task": "query", "argv": [str(duck)], "stdin": _cli_script(sql["query"])},
        ]
    py = "import sys, duckdb\ncon = duckdb.connect()\nfor s in sys.stdin.read().split(';\\n')[:-1]:\n    con.execute(s)"
    out.append(
        {
            "name": "python + duckdb module query csv",
            "task": "query",
            "argv": [sys.executable, "-c", py],
            "stdin": "".join(f"{s};\n" for s in sql["query_copy"]),
        }
    )
    return out


def _cli_script(statements: list[str]) -> str:
    return ".mode csv\n" + "".join(f"{s};\n" for s in statements)


def run_once(cmd: dict[str, Any]) -> tuple[float, str]:
    """Wall seconds and stdout of one fresh process."""
    t = time.perf_counter()
    proc = subprocess.run(
        cmd["argv"],
        input=cmd.get("stdin"),
        capture_output=True,
        text=True,
        env=cmd.get("env", _env()),
        timeout=600,
        cwd=tempfile.gettempdir(),
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd['name']}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return wall, proc.stdout


def check(cmd: dict[str, Any], out: str, expected_rows: int, total_rows: int) -> None:
    """The answer is right: every CSV query output has the exact number of rows; info says the size."""
    if cmd["task"] == "query":
        lines = [line for line in out.splitlines() if line]
        header = lines[0].split(",")
        assert header[0] == "id" and "geometry" in header and not set(DROPPED) & set(header), (cmd["name"], header)
        assert len(lines) - 1 == expected_rows, (cmd["name"], len(lines) - 1, expected_rows)
    elif cmd["task"] == "info" and cmd["name"].startswith("geoduck"):
        assert f"rows           {total_rows}\n" in out, out
    elif cmd["task"] == "info":
        assert f"raster,{total_rows}" in out, out


# -- imports --------------------------------------------------------------------------------------


def import_breakdown(cmd: dict[str, Any], top: int = 10) -> dict[str, float]:
    """Milliseconds of import time (self times summed per top-level package) of one run of
    ``cmd`` under ``python -X importtime``, largest first."""
    argv = cmd["argv"]
    script = argv[0] if argv[0] != sys.executable else None
    full = [sys.executable, "-X", "importtime", *([script] if script else []), *argv[1:]]
    proc = subprocess.run(full, capture_output=True, text=True, env=cmd.get("env", _env()), timeout=600)
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.removeprefix("import time:").split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + float(self_us) / 1e3
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:top])


_STAGES = """
import json, os, sys, time
t0 = time.perf_counter()
import geoduck.catalog
from geoduck.cli import main
t1 = time.perf_counter()
from geoduck import engine
engine.cursor()
t2 = time.perf_counter()
try:
    main(sys.argv[1:], prog_name="geoduck")
except SystemExit:
    pass
t3 = time.perf_counter()
sys.stdout.flush()
print(json.dumps({"imports_s": t1 - t0, "connect_s": t2 - t1, "query_s": t3 - t2}), file=sys.stderr)
sys.stderr.flush()
engine.close_connections()  # and the end of geoduck.cli.run after a read-only command
os._exit(0)
"""


def query_stages(cmd: dict[str, Any], runs: int) -> dict[str, float]:
    """Median seconds of the stages of ``geoduck query`` in a fresh process: interpreter start (the
    wall time not spent below, and its exit as :func:`geoduck.cli.run` ends a read-only command),
    imports (``geoduck.catalog``, the CLI), the DuckDB connection with the spatial extension and
    macros, and the query with its CSV output."""
    args = cmd["argv"][cmd["argv"].index("query") :]
    child = {**cmd, "argv": [sys.executable, "-c", _STAGES, *args]}
    rows = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(child["argv"], capture_output=True, text=True, env=child["env"], timeout=600)
        wall = time.perf_counter() - t
        stages = json.loads(proc.stderr.strip().splitlines()[-1])
        stages["start_and_exit_s"] = wall - sum(stages.values())
        rows.append(stages)
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


# -- driver ---------------------------------------------------------------------------------------


def export_revision(rev: str, dest: Path) -> Path:
    """``geoduck/`` and ``sql/`` of git revision ``rev`` under ``dest``."""
    archive = dest / "src.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "geoduck", "sql"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def summarize(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {name: {"best_s": min(ts), "median_s": statistics.median(ts), "runs": len(ts)} for name, ts in times.items()}


def print_table(stats: dict[str, dict[str, float]], cmds: list[dict[str, Any]]) -> None:
    head = ("task", "command", "best s", "median s")
    rows = [
        (c["task"], c["name"], f"{stats[c['name']]['best_s']:.3f}", f"{stats[c['name']]['median_s']:.3f}") for c in cmds
    ]
    rows.sort(key=lambda r: ("help", "info", "query").index(r[0]))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=1e6, help="catalog rows (default %(default)s)")
    p.add_argument("--days-per-part", type=int, default=100, help="days of rows per part (as bench_query.py)")
    p.add_argument("--runs", type=int, default=10, help="timed runs of each command")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--before", default=None, metavar="REV", help="also time the geoduck CLI of this git revision")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    from geoduck import store

    size = int(args.size)
    n_tiles, n_days = Q.shape(size)
    root = C.synthetic_catalog(
        f"query_n{size}_d{args.days_per_part}", n_tiles, n_days, part_rows=n_tiles * args.days_per_part
    )
    if not (root / store.INDEX).is_file():
        store.update_index(root)
    q = Q.make_queries(size, 1, args.seed)[0]
    expected = Q.expected_counts(size, [q])[0]
    duck, duck_note = duckdb_binary()
    tmp = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    try:
        before = export_revision(args.before, tmp) if args.before else None
        cmds = plan(root, q, before)
        loads = [C.load_average()]
        for cmd in cmds:  # warm-up (page cache, .pyc files) and answer check
            _, out = run_once(cmd)
            check(cmd, out, expected, size)
        times: dict[str, list[float]] = {c["name"]: [] for c in cmds}
        for _ in range(args.runs):
            for cmd in cmds:
                times[cmd["name"]].append(run_once(cmd)[0])
            loads.append(C.load_average())
        query_cmd = next(c for c in cmds if c["name"] == "geoduck query csv")
        imports = import_breakdown(query_cmd)
        stages = query_stages(query_cmd, max(3, args.runs // 2))
        loads.append(C.load_average())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stats = summarize(times)
    print(
        f"\n{size:,} rows, {len(store.list_parts(root))} parts; query {q['bbox']} {q['start']}..{q['end']} "
        f"({expected} rows); {args.runs} runs of each fresh process; DuckDB CLI: {duck_note}"
    )
    print_table(stats, cmds)
    med = {name: s["median_s"] for name, s in stats.items()}
    goals: dict[str, Any] = {"help_median_s": med["geoduck --help"], "help_goal_s": HELP_GOAL_S}
    goals["help_met"] = med["geoduck --help"] <= HELP_GOAL_S
    if "duckdb CLI query csv" in med:
        gap = med["geoduck query csv"] - med["duckdb CLI query csv"]
        goals.update(query_gap_s=gap, query_gap_goal_s=QUERY_GAP_GOAL_S, query_met=gap <= QUERY_GAP_GOAL_S)
        print(f"geoduck query − DuckDB CLI (medians): {gap:+.3f} s (goal ≤ +{QUERY_GAP_GOAL_S} s)")
    print(f"geoduck --help median {med['geoduck --help']:.3f} s (goal ≤ {HELP_GOAL_S} s)")
    print(
        "geoduck query stages, medians: "
        + ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.3f} s" for k, v in stages.items())
    )
    print("imports of one `geoduck query` run, ms (self time per top-level package):")
    print("  " + ", ".join(f"{k} {v:.0f}" for k, v in imports.items()))
    note = C.busy_note(loads)
    if note:
        print(f"NOTE: {note}")
    C.save(
        args.out,
        {
            "benchmark": "bench_cli",
            "machine": C.machine_info(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "settings": {
                "rows": size,
                "days_per_part": args.days_per_part,
                "parts": len(store.list_parts(root)),
                "runs": args.runs,
                "query": q,
                "expected_rows": expected,
                "duckdb_cli": str(duck) if duck else None,
                "duckdb_cli_note": duck_note,
                "before": args.before,
            },
            "commands": [{"name": c["name"], "task": c["task"], "argv": c["argv"]} for c in cmds],
            "results": stats,
            "runs_s": times,
            "goals": goals,
            "query_imports_ms": imports,
            "query_stages_s": stages,
            "load": loads,
        },
    )


if __name__ == "__main__":
    main()
