"""Build benchmark: geoduck's raster catalog build vs a bare header-reading loop.

Generates small GeoTIFFs (64×64 uint16, a grid of tiles in each of 3 UTM zones, dates in the file
names) under ``benchmarks/data/`` (git-ignored; reused when present), warms the page cache, then
measures on the same files:

(a) files/s of ``geoduck.build_raster_catalog`` (the whole build, parts written, fresh ``out_dir``),
    in this process after an untimed warm-up build (so its forkserver is already running);
(b) files/s of a bare ``rasterio.open(p)`` → ``.bounds``, ``.crs`` loop, 1 process and a 2-process
    ``multiprocessing.Pool`` (chunked), pool start-up included; also with the GDAL option geoduck sets
    (GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR), for reference;
(c) peak memory of the geoduck build at ``--files`` and ``--big-files`` files, each build in a fresh
    child process so the high-water marks belong to that build alone (their files/s include the
    start-up of a fresh process: forkserver and imports).

The approaches of (a) and (b) run interleaved ``--repeat`` times; the table shows files/s of the
median time (the JSON also has every time and the best) and CPU µs per file summed over every
process involved. geoduck runs right after the 2-process loop; the median of their paired ratios is
the comparison least affected by other load on the machine.

Memory: with psutil, the peak of the summed RSS of the process and its descendants (sampled);
without it, ``resource.getrusage`` maxrss of RUSAGE_SELF plus RUSAGE_CHILDREN (the largest single
descendant, collected after the forkserver is stopped), and, as a cross-check, the sampled sum of
VmRSS over the process tree read from ``/proc``.

    .venv/bin/python benchmarks/bench_build.py                       # 2,000 + 20,000 files
    .venv/bin/python benchmarks/bench_build.py --files 300 --skip-big  # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import Affine

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
RESULTS = HERE / "results" / "bench_build.json"

ZONES = (29, 30, 31)
"""UTM zones (north, EPSG 326xx) of the tile grids."""
GRID = 10
"""Tiles per side of each zone's grid: 3 × 10 × 10 = 300 tiles."""
SIZE, RES = 64, 100.0
"""Pixels per side and metres per pixel of a tile."""
FIRST_DATE, DATE_STEP_DAYS = dt.date(2020, 1, 1), 5
REGEX = r"^T(?P<zone>\d{2})_(?P<tile>r\d{2}c\d{2})_(?P<date>\d{8})\.tif$"
"""Names are ``T<zone>_r<row>c<col>_<YYYYMMDD>.tif``, in ``<zone>/<tile>/`` directories."""

MIB = 1024 * 1024


# -- data -----------------------------------------------------------------------------------------


def _specs(n: int) -> Iterator[tuple[str, int, Affine]]:
    """(relative path, EPSG, transform) of the first ``n`` files: every tile for date 0, then 1, …"""
    tiles = [(z, r, c) for z in ZONES for r in range(GRID) for c in range(GRID)]
    step = SIZE * RES
    for k in range(n):
        zone, r, c = tiles[k % len(tiles)]
        date = FIRST_DATE + dt.timedelta(days=DATE_STEP_DAYS * (k // len(tiles)))
        x0 = 500_000.0 + (c - GRID / 2) * step  # around the zone's central meridian
        y0 = 4_430_000.0 - r * step  # ~40°N
        tile = f"r{r:02d}c{c:02d}"
        rel = f"{zone}/{tile}/T{zone}_{tile}_{date:%Y%m%d}.tif"
        yield rel, 32600 + zone, Affine(RES, 0.0, x0, 0.0, -RES, y0)


def _write_tiles(job: tuple[str, list[tuple[str, int, Affine]]]) -> int:
    root, specs = job
    values = (np.arange(SIZE * SIZE, dtype="uint16").reshape(SIZE, SIZE) % 1000) + 1
    for rel, epsg, transform in specs:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=SIZE,
            height=SIZE,
            count=1,
            dtype="uint16",
            crs=f"EPSG:{epsg}",
            transform=transform,
            nodata=0,
        ) as dst:
            dst.write(values, 1)
    return len(specs)


def ensure_dataset(n: int, data_dir: Path = DATA_DIR) -> list[str]:
    """The ``n`` benchmark files (generated with 2 processes unless a complete set exists)."""
    root = data_dir / f"n{n}"
    manifest = root / "MANIFEST.txt"
    if manifest.is_file():
        files = manifest.read_text().split()
        if len(files) == n and all(os.path.isfile(f) for f in files):
            print(f"reusing {n} files in {root}", flush=True)
            return files
    if root.exists():
        shutil.rmtree(root)
    specs = list(_specs(n))
    t0 = time.perf_counter()
    jobs = [(str(root), specs[i : i + 500]) for i in range(0, n, 500)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        written = sum(pool.imap_unordered(_write_tiles, jobs))
    assert written == n
    files = [str(root / rel) for rel, _, _ in specs]
    manifest.write_text("\n".join(files) + "\n")
    print(f"generated {n} files in {root} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return files


def warm_page_cache(files: Sequence[str]) -> None:
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass


# -- the bare loop --------------------------------------------------------------------------------


def _bare(path: str) -> tuple[tuple[float, float, float, float], str]:
    with rasterio.open(path) as src:
        return tuple(src.bounds), src.crs.to_wkt()


def _bare_env(path: str) -> tuple[tuple[float, float, float, float], str]:
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        return _bare(path)


def bare_loop(files: Sequence[str], processes: int, fn: Callable[[str], Any] = _bare, chunksize: int = 32) -> float:
    """Seconds to read bounds and CRS of every file (pool start-up included)."""
    t0 = time.perf_counter()
    if processes == 1:
        out = [fn(p) for p in files]
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            out = list(pool.imap_unordered(fn, files, chunksize=chunksize))
    elapsed = time.perf_counter() - t0
    assert len(out) == len(files)
    return elapsed


# -- the geoduck build ----------------------------------------------------------------------------


def _fresh_out(data_dir: Path) -> Path:
    return data_dir / "out" / f"cat-{uuid.uuid4().hex[:8]}"


def geoduck_build(files: Sequence[str], out_dir: Path) -> float:
    """Seconds of one whole build into ``out_dir`` (removed afterwards); checks every file indexed."""
    import geoduck

    try:
        t0 = time.perf_counter()
        cat = geoduck.build_raster_catalog(list(files), out_dir, filename_regex=REGEX, progress=False)
        elapsed = time.perf_counter() - t0
        report = cat.build_report
        assert report is not None and report.files_indexed == len(files) and not report.errors, report
        return elapsed
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# -- CPU time -------------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` plus those of its children it has reaped (``/proc/<pid>/stat``)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])  # fields 14-17 of proc(5)
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """CPU seconds used so far by this process, its reaped children and the multiprocessing forkserver
    with the workers it has reaped (geoduck's workers are the forkserver's children, not ours)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # noqa: SLF001 - running, not reaped
    return total + (_proc_cpu(pid) if pid else 0.0)


def measure(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process involved) of ``fn()``."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu_seconds() - c0


# -- memory ---------------------------------------------------------------------------------------


def _tree_pids(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def _rss_proc(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


class TreeRSSSampler:
    """Peak of the summed RSS of this process and its descendants, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        try:
            import psutil  # type: ignore[import-not-found]

            self.method = "psutil: sampled sum of RSS over the process and its descendants"
            me = psutil.Process()

            def sample() -> int:
                procs = [me, *me.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                return total
        except ImportError:
            self.method = "/proc: sampled sum of VmRSS over the process and its descendants"

            def sample() -> int:
                return sum(_rss_proc(pid) for pid in _tree_pids(os.getpid()))

        self._sample = sample
        self.has_psutil = self.method.startswith("psutil")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _memory_child(paths_file: str, out_dir: str) -> None:
    """Run in a fresh process: one build; print seconds and memory figures as JSON."""
    import geoduck  # noqa: F401 - imported before the baseline like a user script would

    files = Path(paths_file).read_text().split()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cpu0 = cpu_seconds()
    with TreeRSSSampler() as sampler:
        seconds = geoduck_build(files, Path(out_dir))
    # Workers are children of the forkserver: stop it so their rusage reaches RUSAGE_CHILDREN.
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # noqa: SLF001
    if stop is not None:
        stop()
    cpu = cpu_seconds() - cpu0  # the forkserver (start-up included) and its workers are reaped now
    self_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    children_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "files": len(files),
                "sampler_method": sampler.method,
                "has_psutil": sampler.has_psutil,
                "tree_rss_peak_mib": sampler.peak / MIB,
                "rusage_self_maxrss_mib": self_max / MIB,
                "rusage_children_maxrss_mib": children_max / MIB,
                "rusage_self_before_build_mib": base / MIB,
            }
        )
    )


def memory_run(files: Sequence[str], data_dir: Path) -> dict[str, Any]:
    lst = data_dir / "out" / f"paths-{len(files)}.txt"
    lst.parent.mkdir(parents=True, exist_ok=True)
    lst.write_text("\n".join(files) + "\n")
    proc = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(lst), str(_fresh_out(data_dir))],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["has_psutil"]:
        res["peak_mib"] = res["tree_rss_peak_mib"]
        res["peak_method"] = res["sampler_method"]
    else:
        res["peak_mib"] = res["rusage_self_maxrss_mib"] + res["rusage_children_maxrss_mib"]
        res["peak_method"] = (
            "resource.getrusage: maxrss of RUSAGE_SELF + RUSAGE_CHILDREN (the largest "
            "single descendant: a worker or the forkserver), psutil not installed"
        )
    res["files_per_s"] = len(files) / res["seconds"]
    return res


# -- main -----------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import duckdb
    import pyproj

    import geoduck

    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = round(int(fh.readline().split()[1]) / MIB, 1)  # KiB → GiB
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "geoduck": geoduck.__version__,
        "geoduck_path": str(Path(geoduck.__file__).parent),
        "duckdb": duckdb.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
        "numpy": np.__version__,
    }


def _row(approach: str, files: int, runs: list[tuple[float, float]], peak: float | None) -> dict[str, Any]:
    """A table row from (wall, CPU) seconds of each run: files/s of the median wall time (and of the
    best, for reference), CPU µs per file (median; all processes: less sensitive to other load)."""
    seconds, cpu = [w for w, _ in runs], [c for _, c in runs]
    return {
        "approach": approach,
        "files": files,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "files_per_s": files / statistics.median(seconds),
        "files_per_s_best": files / min(seconds),
        "cpu_us_per_file": statistics.median(cpu) / files * 1e6,
        "peak_mib": peak,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("approach", "files", "files/s", "peak MiB", "CPU µs/file")
    cells = [
        (
            r["approach"],
            f"{r['files']:,}",
            f"{r['files_per_s']:.0f}",
            f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-",
            f"{r['cpu_us_per_file']:.0f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print(
            "| "
            + " | ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths, strict=True)))
            + " |"
        )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=2000, help="files of the throughput runs")
    ap.add_argument("--big-files", type=int, default=20000, help="files of the big memory run")
    ap.add_argument("--skip-big", action="store_true", help="skip the big memory run")
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions of each approach (median kept)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--json", type=Path, default=RESULTS, help="where to save the results")
    ap.add_argument("--memory-child", nargs=2, metavar=("PATHS_FILE", "OUT_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        _memory_child(*args.memory_child)
        return

    info = machine_info()
    load_before = os.getloadavg()
    print(
        f"machine: {info['cores']} cores, Python {info['python']}, duckdb {info['duckdb']}, "
        f"rasterio {info['rasterio']}, GDAL {info['gdal']}",
        flush=True,
    )
    files = ensure_dataset(args.files, args.data_dir)
    big = None if args.skip_big else ensure_dataset(args.big_files, args.data_dir)

    # Warm-up: page cache (every byte of every file), then one untimed pass of each approach.
    warm_page_cache(files)
    bare_loop(files, 1)
    geoduck_build(files, _fresh_out(args.data_dir))

    approaches: dict[str, Callable[[], object]] = {  # geoduck right after bare2: paired runs
        "bare1": lambda: bare_loop(files, 1),
        "bare2": lambda: bare_loop(files, 2),
        "geoduck": lambda: geoduck_build(files, _fresh_out(args.data_dir)),
        "bare1_env": lambda: bare_loop(files, 1, _bare_env),
        "bare2_env": lambda: bare_loop(files, 2, _bare_env),
    }
    timings: dict[str, list[tuple[float, float]]] = {k: [] for k in approaches}
    for i in range(args.repeat):
        for name, fn in approaches.items():
            timings[name].append(measure(fn))
        print(
            f"repeat {i + 1}/{args.repeat}: "
            + ", ".join(f"{k} {len(files) / v[-1][0]:.0f} files/s" for k, v in timings.items()),
            flush=True,
        )

    n = len(files)
    memory = {n: memory_run(files, args.data_dir)}
    if big is not None:
        warm_page_cache(big)
        memory[len(big)] = memory_run(big, args.data_dir)

    rows = [
        _row("bare rasterio.open loop, 1 process", n, timings["bare1"], None),
        _row("bare rasterio.open loop, 2 processes (Pool, chunks of 32)", n, timings["bare2"], None),
        _row("bare loop + GDAL_DISABLE_READDIR_ON_OPEN, 1 process", n, timings["bare1_env"], None),
        _row("bare loop + GDAL_DISABLE_READDIR_ON_OPEN, 2 processes", n, timings["bare2_env"], None),
        _row("geoduck build_raster_catalog (warm process)", n, timings["geoduck"], None),
    ]
    rows += [
        _row(
            "geoduck build_raster_catalog (fresh process, memory run)",
            count,
            [(m["seconds"], m["cpu_seconds"])],
            m["peak_mib"],
        )
        for count, m in memory.items()
    ]
    print()
    print_table(rows)
    ratio = rows[4]["files_per_s"] / rows[1]["files_per_s"]
    ratio_best = rows[4]["files_per_s_best"] / rows[1]["files_per_s_best"]
    ratio_paired = statistics.median(b / g for (b, _), (g, _) in zip(timings["bare2"], timings["geoduck"], strict=True))
    print(
        f"\ngeoduck / bare 2-process loop (files/s): {ratio:.0%} of the median, {ratio_best:.0%} of the "
        f"best, {ratio_paired:.0%} median of the paired runs (target >= 85%)"
    )
    print(f"peak memory: {memory[n]['peak_method']}")
    if big is not None:
        small_m, big_m = memory[n], memory[len(big)]
        print(
            f"peak memory {len(big):,} vs {n:,} files: {big_m['peak_mib'] / small_m['peak_mib']:.2f}x "
            f"(sampled process-tree RSS: {small_m['tree_rss_peak_mib']:.0f} → "
            f"{big_m['tree_rss_peak_mib']:.0f} MiB)"
        )

    result = {
        "benchmark": "bench_build",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "dataset": {
            "tile_pixels": [SIZE, SIZE],
            "dtype": "uint16",
            "res_m": RES,
            "utm_zones": ZONES,
            "tiles": len(ZONES) * GRID * GRID,
            "filename_regex": REGEX,
            "page_cache": "warm (every file read once, plus one untimed pass of each approach)",
        },
        "repeat": args.repeat,
        "rows": rows,
        "geoduck_vs_bare_2proc": ratio,
        "geoduck_vs_bare_2proc_best": ratio_best,
        "geoduck_vs_bare_2proc_paired_median": ratio_paired,
        "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
        "target": ">= 0.85 of the bare 2-process loop, memory flat",
        "memory_runs": {str(count): m for count, m in memory.items()},
        "reference": {
            "bare_1_process_files_per_s": 428,
            "bare_2_processes_files_per_s": 956,
            "torchgeo_rasterdataset_files_per_s": 185,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
