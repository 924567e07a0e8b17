"""Stress: appenders, compactors and readers on one catalog at once, SIGKILLed at random points.

Each round starts ``--appenders`` + ``--compactors`` + ``--readers`` processes on one catalog and,
for ``--round-seconds``, SIGKILLs a random one every ``--kill-every`` seconds on average
(restarting it at once); at the end of the round every process is SIGKILLed wherever it is.
After ``--rounds`` rounds, rounds are added while fewer than ``--min-commits`` commits,
``--min-kills`` kills or ``--min-reads`` reads were seen (a busy machine does less per round), up
to ``--max-seconds``. After every round the oracle checks the catalog exactly:

- an *append* is one ``build_raster_catalog`` call over a group of 1-4 new GeoTIFFs (one commit,
  one part); each appender owns its groups and logs ``begin g`` before and ``end g`` after the
  call, and after a kill re-runs its unfinished group with the same files;
- **lost**: a group logged ``end`` whose files are not all in the catalog;
- **duplicated**: a file path twice in the catalog (geoduck read, and a plain DuckDB glob read after
  the recovering ``compact``);
- **partial**: a group with some but not all of its files in the catalog;
- readers (``to_arrow``, iteration, ``len``, ``Catalog.sql``, a time ``query``) check every result
  for duplicates and partial groups, and that counts never go down; any exception is an anomaly.

Prints a table per round and saves JSON (default ``benchmarks/results/stress_concurrency.json``).
Not part of ``make test``; ``tests/test_concurrency.py`` runs a short version.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGEX = r"_(?P<date>\d{8})\.tif$"
NAME = re.compile(r"a(\d+)_g(\d+)_n(\d)_i\d_\d{8}\.tif$")


# -- groups: what each appender commits ------------------------------------------------------------


def group_files(src: Path, appender: int, group: int) -> list[Path]:
    """The 1-4 file paths of ``group`` of ``appender`` (size and date fixed by the numbers)."""
    n = 1 + (appender * 7919 + group * 104_729) % 4
    day = dt.date(2023, 1, 1) + dt.timedelta(days=group % 365)
    return [src / f"a{appender:02d}" / f"a{appender:02d}_g{group:05d}_n{n}_i{i}_{day:%Y%m%d}.tif" for i in range(n)]


def write_group(files: list[Path], appender: int, group: int) -> None:
    """Write the group's tiny GeoTIFFs (temp + rename: a killed writer leaves no half file)."""
    import numpy as np
    from rasterio.transform import Affine

    from geoduck.testing import write_raster

    for i, path in enumerate(files):
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        x0 = 300_000 + appender * 20_000 + (group % 50) * 400
        y0 = 4_400_000 + (group // 50) * 400 + i * 100
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.tif")
        write_raster(
            tmp,
            np.full((1, 4, 4), group % 60_000, "uint16"),
            crs="EPSG:32630",
            transform=Affine(25, 0, x0, 0, -25, y0),
            tiled=False,
        )
        os.replace(tmp, path)


def group_key(path: str) -> tuple[int, int, int] | None:
    """(appender, group, group size) from a file name, None for a file no appender wrote."""
    m = NAME.search(path)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def check_rows(paths: list[str]) -> list[str]:
    """Duplicated paths and partial groups among a read's rows."""
    problems = []
    counts = collections.Counter(paths)
    dups = [p for p, c in counts.items() if c > 1]
    if dups:
        problems.append(f"duplicated: {len(dups)} paths, e.g. {os.path.basename(dups[0])}")
    groups: dict[tuple[int, int], list[int]] = {}
    for p in counts:
        key = group_key(p)
        if key is not None:
            groups.setdefault(key[:2], [0, key[2]])[0] += 1
    partial = [k for k, (have, n) in groups.items() if have != n]
    if partial:
        problems.append(f"partial: {len(partial)} groups, e.g. a{partial[0][0]} g{partial[0][1]}")
    return problems


# -- roles (child processes) -------------------------------------------------------------------------


def _log(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def run_appender(work: Path, index: int) -> None:
    import geoduck

    log = work / "logs" / f"appender-{index}.log"
    begun, ended = read_appender_log(log)
    group = max(begun | ended, default=-1)
    if group in ended or group < 0:
        group += 1  # else: re-run the unfinished group with the same files
    while True:
        files = group_files(work / "src", index, group)
        write_group(files, index, group)
        with open(log, "a") as fh:
            fh.write(f"begin {group}\n")
        try:
            cat = geoduck.build_raster_catalog(
                [str(f) for f in files], work / "catalog", filename_regex=REGEX, workers=1, progress=False
            )
            errors = cat.build_report.errors
        except Exception as exc:  # noqa: BLE001 - an anomaly, recorded
            errors = ((str(files[0]), f"{type(exc).__name__}: {exc}"),)
        if errors:
            _log(
                work / "logs" / f"anomalies-appender-{index}-{os.getpid()}.jsonl",
                {"what": "append failed", "detail": str(errors[0])[:300]},
            )
            time.sleep(0.05)
            continue
        with open(log, "a") as fh:
            fh.write(f"end {group}\n")
        group += 1


def read_appender_log(log: Path) -> tuple[set[int], set[int]]:
    begun: set[int] = set()
    ended: set[int] = set()
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                (begun if parts[0] == "begin" else ended).add(int(parts[1]))
    return begun, ended


def run_compactor(work: Path, index: int, seed: int) -> None:
    import geoduck
    from geoduck.errors import BuildError

    rng = random.Random(seed)
    log = work / "logs" / f"compactor-{index}-{os.getpid()}.log"
    while True:
        try:
            geoduck.compact(work / "catalog", part_rows=rng.choice([5, 20, 60, 500]))
        except BuildError:  # another compaction holds the lock
            time.sleep(0.02)
            continue
        except Exception as exc:  # noqa: BLE001 - an anomaly, recorded
            _log(
                work / "logs" / f"anomalies-compactor-{index}-{os.getpid()}.jsonl",
                {"what": "compaction failed", "detail": f"{type(exc).__name__}: {exc}"[:300]},
            )
            time.sleep(0.05)
            continue
        with open(log, "a") as fh:
            fh.write("1\n")
        time.sleep(rng.uniform(0, 0.2))


def run_reader(work: Path, index: int, seed: int) -> None:
    import geoduck

    rng = random.Random(seed)
    cat = geoduck.open_catalog(work / "catalog")
    log = work / "logs" / f"reader-{index}-{os.getpid()}.log"
    anomalies = work / "logs" / f"anomalies-reader-{index}-{os.getpid()}.jsonl"
    last: dict[str, int] = {}
    while True:
        how = rng.choice(["to_arrow", "iter", "len", "sql", "query"])
        try:
            if how == "to_arrow":
                paths = cat.to_arrow()["filepath"].to_pylist()
            elif how == "iter":
                paths = [row["filepath"] for row in cat]
            elif how == "sql":
                paths = cat.sql("SELECT filepath FROM catalog")["filepath"].tolist()
            elif how == "query":
                paths = cat.query(start="2023-01-01", end="2023-03-31").to_arrow()["filepath"].to_pylist()
            else:
                paths = None
                count = len(cat)
        except Exception as exc:  # noqa: BLE001 - an anomaly, recorded
            _log(anomalies, {"what": f"read failed ({how})", "detail": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        problems = [] if paths is None else check_rows(paths)
        count = len(paths) if paths is not None else count
        if count < last.get(how, 0):
            problems.append(f"count went down: {last[how]} -> {count}")
        last[how] = count
        for problem in problems:
            _log(anomalies, {"what": f"{how}: {problem}"})
        with open(log, "a") as fh:
            fh.write("1\n")


# -- the driver ----------------------------------------------------------------------------------


def _count_lines(work: Path, pattern: str, prefix: str = "") -> int:
    return sum(
        sum(1 for line in p.read_text().splitlines() if line.startswith(prefix)) for p in (work / "logs").glob(pattern)
    )


def _role_main(role: str, index: int, work: Path, seed: int, driver: int) -> None:
    from geoduck.builders.common import exit_with_parent

    os.environ["GEODUCK_OFFLINE"] = "1"
    exit_with_parent(driver)  # a killed driver leaves no process behind
    {
        "appender": lambda: run_appender(work, index),
        "compactor": lambda: run_compactor(work, index, seed),
        "reader": lambda: run_reader(work, index, seed),
    }[role]()


def _context() -> multiprocessing.context.BaseContext:
    """Processes fork from a forkserver that has imported geoduck already, so a restart after a
    kill costs milliseconds, not the seconds of importing GDAL/DuckDB/Arrow again."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["__main__", "geoduck", "geoduck.builders.raster", "geoduck.maintenance", "duckdb", "rasterio"]
    )
    return ctx


def _start(
    ctx: multiprocessing.context.BaseContext, role: str, index: int, work: Path, seed: int
) -> multiprocessing.process.BaseProcess:
    proc = ctx.Process(target=_role_main, args=(role, index, work, seed, os.getpid()), name=f"{role}-{index}")
    proc.start()
    return proc


def verify(work: Path, n_appenders: int) -> dict:
    """The oracle after a round (no process running): exact rows by geoduck and by plain DuckDB."""
    import duckdb

    import geoduck
    from geoduck import store

    root = work / "catalog"
    problems: list[str] = []
    before = geoduck.open_catalog(root).to_arrow()["filepath"].to_pylist()
    problems += [f"geoduck read: {p}" for p in check_rows(before)]
    present = set(before)
    committed = in_flight = 0
    for a in range(n_appenders):
        begun, ended = read_appender_log(work / "logs" / f"appender-{a}.log")
        for g in sorted(begun | ended):
            files = {str(f) for f in group_files(work / "src", a, g)}
            have = len(files & present)
            if g in ended:
                committed += len(files)
                if have != len(files):
                    problems.append(f"lost: a{a} g{g} committed, {have} of {len(files)} files in the catalog")
            elif have == len(files):
                in_flight += len(files)  # killed after its commit, before logging it
    strays = [p for p in present if group_key(p) is None and "seed" not in p]
    if strays:
        problems.append(f"{len(strays)} rows of no appender, e.g. {strays[0]}")
    geoduck.compact(root)  # finishes or rolls back what a killed compaction left
    after = geoduck.open_catalog(root).to_arrow()["filepath"].to_pylist()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    plain = con.execute(f"SELECT filepath FROM read_parquet('{store.part_glob(root)}')").fetchall()
    con.close()
    if sorted(after) != sorted(before):
        problems.append(f"rows changed by the recovering compaction: {len(before)} -> {len(after)}")
    if sorted(p for (p,) in plain) != sorted(after):
        problems.append(f"plain DuckDB glob read {len(plain)} rows, geoduck {len(after)}")
    seeds = sum(1 for p in present if "seed" in p)
    if len(after) != committed + in_flight + seeds:
        problems.append(f"count: {len(after)} rows, expected {committed + in_flight + seeds}")
    return {
        "rows": len(after),
        "files_committed": committed,
        "files_in_flight": in_flight,
        "seed_rows": seeds,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--round-seconds", type=float, default=60.0)
    ap.add_argument("--appenders", type=int, default=6)
    ap.add_argument("--compactors", type=int, default=1)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--kill-every", type=float, default=1.5, help="mean seconds between random kills")
    ap.add_argument("--min-commits", type=int, default=0, help="add rounds until this many commits ...")
    ap.add_argument("--min-kills", type=int, default=0, help="... kills ...")
    ap.add_argument(
        "--min-reads", type=int, default=0, help="... and reads were seen (a slow machine gets more rounds)"
    )
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="but start no round after this many seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "stress_concurrency.json")
    ap.add_argument("--role", choices=["appender", "compactor", "reader"], help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role is not None:
        {
            "appender": lambda: run_appender(args.workdir, args.index),
            "compactor": lambda: run_compactor(args.workdir, args.index, args.seed),
            "reader": lambda: run_reader(args.workdir, args.index, args.seed),
        }[args.role]()
        return 0

    work = args.workdir or Path(tempfile.mkdtemp(prefix="geoduck-stress-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    ctx = _context()
    ctx.Process(target=time.sleep, args=(0,)).start()  # start the forkserver before this process uses DuckDB
    import geoduck

    seed_files = [work / "src" / "seed" / f"seed_{i}_20230101.tif" for i in range(2)]
    write_group(seed_files, 99, 0)  # the catalog exists before readers open it
    geoduck.build_raster_catalog(
        [str(f) for f in seed_files], work / "catalog", filename_regex=REGEX, workers=1, progress=False
    )
    roles = (
        [("appender", i) for i in range(args.appenders)]
        + [("compactor", i) for i in range(args.compactors)]
        + [("reader", i) for i in range(args.readers)]
    )
    kills: collections.Counter[str] = collections.Counter()
    rounds = []
    anomalies: list[str] = []
    started = time.monotonic()
    print(f"{'round':>5} {'commits':>8} {'kills':>6} {'reads':>7} {'compactions':>11} {'rows':>7} {'anomalies':>9}")

    def enough() -> bool:
        return (
            sum(r["commits"] for r in rounds) >= args.min_commits
            and sum(r["kills"] for r in rounds) >= args.min_kills
            and sum(r["reads"] for r in rounds) >= args.min_reads
        )

    r = -1
    while (r := r + 1) < args.rounds or (not enough() and time.monotonic() - started < args.max_seconds):
        commits0, reads0 = _count_lines(work, "appender-*.log", "end"), _count_lines(work, "reader-*.log")
        compactions0, kills0 = _count_lines(work, "compactor-*.log"), sum(kills.values())
        procs = {role: _start(ctx, role[0], role[1], work, rng.randrange(10**9)) for role in roles}
        end = time.monotonic() + args.round_seconds
        while (now := time.monotonic()) < end:
            time.sleep(min(rng.expovariate(1 / args.kill_every), end - now))
            if time.monotonic() >= end:
                break
            role = rng.choice(roles)
            if procs[role].is_alive():
                procs[role].kill()
                kills[role[0]] += 1
            procs[role].join()
            procs[role] = _start(ctx, role[0], role[1], work, rng.randrange(10**9))
        for role, proc in procs.items():  # the end of the round kills everything wherever it is
            if proc.is_alive():
                proc.kill()
                kills[role[0]] += 1
            proc.join()
        result = verify(work, args.appenders)
        records = [
            json.loads(line)
            for p in sorted((work / "logs").glob("anomalies-*.jsonl"))
            for line in p.read_text().splitlines()
        ]
        new = [r["what"] + (f": {r['detail']}" if "detail" in r else "") for r in records]
        for p in (work / "logs").glob("anomalies-*.jsonl"):
            p.unlink()
        round_anomalies = new + result["problems"]
        anomalies += [f"round {r}: {a}" for a in round_anomalies]
        row = {
            "round": r,
            "commits": _count_lines(work, "appender-*.log", "end") - commits0,
            "kills": sum(kills.values()) - kills0,
            "reads": _count_lines(work, "reader-*.log") - reads0,
            "compactions": _count_lines(work, "compactor-*.log") - compactions0,
            "rows": result["rows"],
            "anomalies": len(round_anomalies),
        }
        rounds.append(row)
        print(
            f"{r:>5} {row['commits']:>8} {row['kills']:>6} {row['reads']:>7} {row['compactions']:>11} "
            f"{row['rows']:>7} {row['anomalies']:>9}",
            flush=True,
        )
    final = verify(work, args.appenders)
    report = {
        "rounds": rounds,
        "commits": sum(r["commits"] for r in rounds),
        "kills": dict(kills) | {"total": sum(kills.values())},
        "reads": sum(r["reads"] for r in rounds),
        "compactions": sum(r["compactions"] for r in rounds),
        "final_rows": final["rows"],
        "files_committed": final["files_committed"] + final["files_in_flight"] + final["seed_rows"],
        "anomalies": anomalies + final["problems"],
        "processes": len(roles),
        "round_seconds": args.round_seconds,
        "kill_every_s": args.kill_every,
        "seconds": round(time.monotonic() - started, 1),
        "minimums_reached": enough(),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "geoduck": geoduck.__version__,
    }
    print(
        f"total: {report['commits']} commits, {report['kills']['total']} kills, {report['reads']} reads, "
        f"{report['compactions']} compactions, {report['final_rows']} rows "
        f"(expected {report['files_committed']}), {len(report['anomalies'])} anomalies"
    )
    for a in report["anomalies"][:20]:
        print("  ", a)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    return 1 if report["anomalies"] else 0


if __name__ == "__main__":
    sys.exit(main())
