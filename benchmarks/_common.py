"""Shared helpers of bench_query.py and bench_intersect.py: synthetic tile × date catalogs written
once under ``benchmarks/data/`` (git-ignored) and reused, machine info, load checks, peak memory."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
RESULTS_DIR = HERE / "results"
ORIGIN = (-10.0, 35.0)
FIRST_DAY = "2020-01-01"
MIB = 1024 * 1024


# -- data -----------------------------------------------------------------------------------------


def _global_ids(table: pa.Table, n_tiles: int, first_index: int, n_dates: int) -> pa.Table:
    """Re-number a chunk's ``filepath``/``id`` by the global date index (what a single
    ``synthetic_catalog_table`` call over all dates would have written)."""
    from geoduck import schema
    from geoduck.builders.common import item_id

    tiles = table.column("tile").to_pylist()
    dates = np.repeat(np.arange(first_index, first_index + n_dates), n_tiles)
    paths = [f"/synthetic/{t}_{d:05d}.tif" for t, d in zip(tiles, dates.tolist(), strict=True)]
    ids = [item_id("raster", p) for p in paths]
    for name, values in ((schema.ID, ids), (schema.FILEPATH, paths)):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, pa.string()))
    return table


def synthetic_catalog(
    name: str,
    n_tiles: int,
    n_dates: int,
    *,
    part_rows: int = 1_000_000,
    step_days: int = 1,
    length_days: int = 1,
    seed: int | None = None,
    tile_deg: float = 0.1,
    force: bool = False,
) -> Path:
    """``benchmarks/data/<name>``: the rows of ``geoduck.testing.write_synthetic_catalog(dir,
    n_tiles, n_dates, part_rows=…, step_days=…, length_days=…, seed=…)`` (date-major, so each part
    holds ``part_rows // n_tiles`` consecutive dates of every tile), generated a part at a time so
    10^7 rows fit in a few GB. Reused when its parameters (and geoduck's row-group size and writer
    options) match."""
    from geoduck import store
    from geoduck.testing import synthetic_catalog_table

    root = DATA_DIR / name
    marker = DATA_DIR / f"{name}.json"
    params = {
        "n_tiles": n_tiles,
        "n_dates": n_dates,
        "part_rows": part_rows,
        "step_days": step_days,
        "length_days": length_days,
        "seed": seed,
        "tile_deg": tile_deg,
        "origin": ORIGIN,
        "start": FIRST_DAY,
        "row_group_size": store.ROW_GROUP_SIZE,
        "writer": store.parquet_options(pa.schema([])),
        "max_part_rows": store.MAX_PART_ROWS,
    }
    if not force and marker.is_file() and root.is_dir():
        if json.loads(marker.read_text()) == json.loads(json.dumps(params)):
            return root
    shutil.rmtree(root, ignore_errors=True)
    marker.unlink(missing_ok=True)
    dates_per_part = max(1, part_rows // n_tiles)
    t0 = time.perf_counter()
    for first in range(0, n_dates, dates_per_part):
        count = min(dates_per_part, n_dates - first)
        start = (pd.Timestamp(FIRST_DAY) + pd.Timedelta(days=first * step_days)).strftime("%Y-%m-%d")
        table = synthetic_catalog_table(
            n_tiles,
            count,
            start=start,
            step_days=step_days,
            length_days=length_days,
            seed=seed,
            tile_deg=tile_deg,
            origin=ORIGIN,
        )
        store.write_parts(_global_ids(table, n_tiles, first, count), root)
    marker.write_text(json.dumps(params))
    print(f"  generated {name}: {n_tiles:,} tiles × {n_dates:,} dates in {time.perf_counter() - t0:.0f} s", flush=True)
    return root


def tile_boxes(n_tiles: int, *, seed: int | None = None, tile_deg: float = 0.1) -> np.ndarray:
    """(n_tiles, 4) xmin, ymin, xmax, ymax of ``synthetic_catalog_table``'s tiles (same RNG use)."""
    cols = int(np.ceil(np.sqrt(n_tiles)))
    idx = np.arange(n_tiles)
    x0 = ORIGIN[0] + (idx % cols) * tile_deg
    y0 = ORIGIN[1] + (idx // cols) * tile_deg
    if seed is not None:
        rng = np.random.default_rng(seed)
        x0 = x0 + rng.uniform(-tile_deg / 2, tile_deg / 2, n_tiles)
        y0 = y0 + rng.uniform(-tile_deg / 2, tile_deg / 2, n_tiles)
    return np.stack([x0, y0, x0 + tile_deg, y0 + tile_deg], axis=1)


# -- machine --------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import duckdb
    import geopandas
    import shapely

    import geoduck

    mem = cpu = None
    try:
        with open("/proc/meminfo") as fh:
            mem = round(int(fh.readline().split()[1]) / MIB, 1)
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        pass
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(HERE.parent), "status", "--porcelain", "geoduck"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        head, dirty = None, None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "geoduck": geoduck.__version__,
        "git_head": head,
        "geoduck_worktree_dirty": dirty,
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "geopandas": geopandas.__version__,
        "shapely": shapely.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def busy_note(loads: list[float], cores: int | None = None) -> str | None:
    """A warning when the machine was loaded by other processes while timing."""
    cores = cores or os.cpu_count() or 1
    worst = max(loads) if loads else 0.0
    if worst > cores + 1:  # the benchmark itself keeps up to `cores` threads busy
        return (
            f"1-min load average reached {worst:.1f} on {cores} cores during the run: other "
            "processes competed for the CPU, timings may be inflated"
        )
    return None


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB: ``VmHWM`` of /proc/self/status (the high-water mark of this
    program's own address space), else ``ru_maxrss`` (which on Linux also counts the parent's RSS at
    fork time, so it overstates a child of a large parent)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: list[str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python <this script> <args>`` in a fresh process; it prints one JSON line last."""
    cmd = [sys.executable, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"saved {path}")


def digest(values: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest()[:16]
