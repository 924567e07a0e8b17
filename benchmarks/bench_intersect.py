"""Intersect benchmark: spatiotemporal intersect of two tile × date catalogs.

Catalogs are written once under ``benchmarks/data/ix_*`` (git-ignored) like
``geoduck.testing.write_synthetic_catalog``: 0.1° tiles on a near-square grid from (-10°, 35°).
The right side's tiles are jittered (seed 7, up to ±half a tile) so each left tile overlaps ~4 right
tiles. Cases (left × right):

- ``1e4``: 100 tiles × 100 days each (daily × daily);
- ``1e5``: 100 tiles × 1,000 days each;
- ``1e6``: 1,000 tiles × 1,000 days each;
- ``mixed_1e5`` / ``mixed_1e6``: the daily left side of 1e5 / 1e6 × a monthly right side
  (``step_days=30, length_days=30``) of 3,000 / 30,000 tiles × 34 periods (1.02·10^5 / 1.02·10^6
  rows over the same ~1,000 days; its grid extends beyond the left's, like a larger product).

Every geoduck measurement runs in a fresh child process: wall time of ``a.intersect(b)`` (join
planning) plus the call below (DuckDB/spatial start-up excluded, done first), and the peak RSS of
that process (``VmHWM``, imports included) right after the call:

- ``len(a.intersect(b))``;
- ``a.intersect(b).sql("SELECT left_id, right_id FROM catalog")`` (the pair ids as a DataFrame);
- ``a.intersect(b).to_arrow()`` (every column, footprint intersections included).

``intersect()`` itself (join planning: two small statistics queries) is timed separately.
Correctness: at 1e4 and 1e5 (and mixed_1e5) the (left_id, right_id) pairs must equal a brute-force
answer: ``geopandas.sjoin`` on the bbox polygons (of all rows at 1e4; of the distinct footprints,
expanded to their rows, above) + closed-interval overlap + ``shapely.intersects``, and appear once.
Baseline: ``geopandas.overlay(how="intersection")`` + interval filter at 1e4 (at 1e5 × 1e5 it would
produce ~4·10^8 spatial pairs: infeasible).

    .venv/bin/python benchmarks/bench_intersect.py
    .venv/bin/python benchmarks/bench_intersect.py --cases 1e4,1e5,mixed_1e5   # small
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

RESULTS = C.RESULTS_DIR / "bench_intersect.json"
JITTER_SEED = 7

# name: (left (tiles, dates, step, length), right (tiles, dates, step, length))
CASES: dict[str, tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = {
    "1e4": ((100, 100, 1, 1), (100, 100, 1, 1)),
    "1e5": ((100, 1000, 1, 1), (100, 1000, 1, 1)),
    "1e6": ((1000, 1000, 1, 1), (1000, 1000, 1, 1)),
    "mixed_1e5": ((100, 1000, 1, 1), (3000, 34, 30, 30)),
    "mixed_1e6": ((1000, 1000, 1, 1), (30000, 34, 30, 30)),
}
CHECKED = ("1e4", "1e5", "mixed_1e5")
OVERLAY = ("1e4",)


def catalogs(case: str) -> tuple[Path, Path]:
    (lt, ld, ls, ll), (rt, rd, rs, rl) = CASES[case]
    left = C.synthetic_catalog(f"ix_{lt}x{ld}_d{ls}", lt, ld, step_days=ls, length_days=ll)
    right = C.synthetic_catalog(
        f"ix_{rt}x{rd}_d{rs}_l{rl}_j{JITTER_SEED}", rt, rd, step_days=rs, length_days=rl, seed=JITTER_SEED
    )
    return left, right


# -- children -------------------------------------------------------------------------------------


def child_geoduck(what: str, left: str, right: str) -> dict[str, Any]:
    import geoduck
    from geoduck import engine

    a, b = geoduck.open_catalog(left), geoduck.open_catalog(right)
    t0 = time.perf_counter()
    engine.shared_connection()  # DuckDB + spatial start-up, not part of the measurement
    geoduck.sql("SELECT 1 AS x FROM a LIMIT 0", a=a, b=b)  # likewise the sandboxed SQL connection
    connect_s = time.perf_counter() - t0
    base_rss = C.peak_rss_mib()
    t0 = time.perf_counter()
    rel = a.intersect(b)  # join planning: one statistics query per side
    plan_s = time.perf_counter() - t0
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    if what == "len":
        out["pairs"] = len(rel)
    elif what == "ids":
        frame = rel.sql("SELECT left_id, right_id FROM catalog")
    elif what == "arrow":
        table = rel.to_arrow()
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = C.peak_rss_mib()  # before any checking below
    if what == "ids":
        out["pairs"] = len(frame)
        out["distinct_pairs"] = int((~frame.duplicated()).sum())
        out["digest"] = C.digest((frame["left_id"] + "|" + frame["right_id"]).tolist())
    elif what == "arrow":
        out["pairs"] = table.num_rows
        out["columns"] = table.num_columns
        out["arrow_mib"] = table.nbytes / C.MIB
    out.update(
        plan_s=plan_s,
        total_s=plan_s + out["seconds"],
        connect_s=connect_s,
        plan=str(rel.node.plan),
        rss_before_mib=base_rss,
    )
    return out


def _read(root: str):
    import geopandas as gpd

    return gpd.read_parquet(root, columns=["id", "geometry", "start_datetime", "end_datetime"])


def child_bruteforce(left: str, right: str) -> dict[str, Any]:
    """sjoin on bbox polygons + interval overlap + exact intersects: the reference pair set."""
    import geopandas as gpd
    import shapely

    t0 = time.perf_counter()
    L, R = _read(left), _read(right)

    def footprints(df):
        """Distinct footprints (rows grouped by their WKB) with their row positions."""
        wkb = shapely.to_wkb(df.geometry.values)
        keys, inverse = np.unique(wkb, return_inverse=True)
        return keys, inverse.ravel()

    lk, linv = footprints(L)
    rk, rinv = footprints(R)
    lg, rg = shapely.from_wkb(lk), shapely.from_wkb(rk)
    lb = gpd.GeoDataFrame(geometry=shapely.box(*np.array(shapely.bounds(lg)).T))
    rb = gpd.GeoDataFrame(geometry=shapely.box(*np.array(shapely.bounds(rg)).T))
    sj = gpd.sjoin(lb, rb, predicate="intersects")  # bbox candidates (of distinct footprints)
    fl, fr = sj.index.to_numpy(), sj["index_right"].to_numpy()
    exact = shapely.intersects(lg[fl], rg[fr])
    fl, fr = fl[exact], fr[exact]
    lrows = {k: np.flatnonzero(linv == k) for k in np.unique(fl)}
    rrows = {k: np.flatnonzero(rinv == k) for k in np.unique(fr)}
    ls = L["start_datetime"].to_numpy().astype("datetime64[us]").astype(np.int64)
    le = L["end_datetime"].to_numpy().astype("datetime64[us]").astype(np.int64)
    rs = R["start_datetime"].to_numpy().astype("datetime64[us]").astype(np.int64)
    re = R["end_datetime"].to_numpy().astype("datetime64[us]").astype(np.int64)
    lid, rid = L["id"].to_numpy(dtype=object), R["id"].to_numpy(dtype=object)
    pairs: list[str] = []
    for a, b in zip(fl, fr, strict=True):
        i, j = lrows[a], rrows[b]
        hit = (ls[i][:, None] <= re[j][None, :]) & (le[i][:, None] >= rs[j][None, :])
        ii, jj = np.nonzero(hit)
        pairs.extend(f"{x}|{y}" for x, y in zip(lid[i[ii]], rid[j[jj]], strict=True))
    return {
        "pairs": len(pairs),
        "distinct_pairs": len(set(pairs)),
        "digest": C.digest(pairs),
        "seconds": time.perf_counter() - t0,
        "footprint_pairs": int(len(fl)),
        "peak_rss_mib": C.peak_rss_mib(),
    }


def child_overlay(left: str, right: str) -> dict[str, Any]:
    import geopandas as gpd

    t0 = time.perf_counter()
    L, R = _read(left), _read(right)
    read_s = time.perf_counter() - t0
    ov = gpd.overlay(L, R, how="intersection", keep_geom_type=False)
    spatial = len(ov)
    ov = ov[(ov["start_datetime_1"] <= ov["end_datetime_2"]) & (ov["end_datetime_1"] >= ov["start_datetime_2"])]
    ov = ov[~ov.geometry.is_empty]
    pairs = (ov["id_1"] + "|" + ov["id_2"]).tolist()
    return {
        "pairs": len(pairs),
        "spatial_pairs": spatial,
        "digest": C.digest(pairs),
        "read_s": read_s,
        "seconds": time.perf_counter() - t0,
        "peak_rss_mib": C.peak_rss_mib(),
    }


# -- driver ---------------------------------------------------------------------------------------


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    (lt, ld, _, ll), (rt, rd, _, rl) = CASES[case]
    print(f"== {case}: {lt:,} tiles × {ld:,} ({ll}-day) × {rt:,} tiles × {rd:,} ({rl}-day)", flush=True)
    left, right = catalogs(case)
    out: dict[str, Any] = {
        "case": case,
        "left_rows": lt * ld,
        "right_rows": rt * rd,
        "left_interval_days": ll,
        "right_interval_days": rl,
        "load": [C.load_average()],
    }
    steps = [("len", ["geoduck", "len"]), ("ids", ["geoduck", "ids"])]
    if not args.skip_arrow:
        steps.append(("arrow", ["geoduck", "arrow"]))
    if case in CHECKED and not args.skip_check:
        steps.append(("bruteforce", ["bruteforce"]))
    if case in OVERLAY and not args.skip_overlay:
        steps.append(("overlay", ["overlay"]))
    for name, child in steps:
        repeats = args.repeat if child[0] == "geoduck" else 1
        runs = [
            C.run_child([__file__, "--child", *child, str(left), str(right)], timeout=args.timeout)
            for _ in range(repeats)
        ]
        ok = [r for r in runs if "error" not in r]
        res = dict(min(ok, key=lambda r: r["seconds"])) if ok else runs[0]
        if len(ok) > 1:
            res["all_seconds"] = [r["seconds"] for r in ok]
            res["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
        out[name] = res
        out["load"].append(C.load_average())
        print(f"  {name}: {summary(res)}", flush=True)
    ids, ref = out.get("ids", {}), out.get("bruteforce") or out.get("overlay")
    if ref and "digest" in ids and "digest" in ref:
        out["correct"] = (
            ids["digest"] == ref["digest"] and ids["pairs"] == ref["pairs"] and ids["distinct_pairs"] == ids["pairs"]
        )
        print(f"  pairs equal to the brute-force answer, each once: {out['correct']}", flush=True)
    if "overlay" in out and "digest" in out["overlay"] and "digest" in ids:
        out["overlay_equal"] = out["overlay"]["digest"] == ids["digest"]
    return out


def summary(r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    extra = f" (+ intersect() planning {r['plan_s'] * 1e3:.0f} ms)" if "plan_s" in r else ""
    return f"{r['seconds']:.2f} s{extra}, peak {r['peak_rss_mib']:.0f} MiB, {r['pairs']:,} pairs"


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        "case",
        "left × right rows",
        "pairs",
        "len() s / MiB",
        "pair ids s / MiB",
        "to_arrow s / MiB",
        "brute force s",
        "overlay s",
        "exact",
    )

    def cell(r: dict[str, Any] | None, mem: bool = True) -> str:
        if not r:
            return "-"
        if "error" in r:
            return r["error"][:30]
        return f"{r.get('total_s', r['seconds']):.2f} / {r['peak_rss_mib']:.0f}" if mem else f"{r['seconds']:.1f}"

    cells = []
    for r in results:
        pairs = next((r[k]["pairs"] for k in ("len", "ids") if "pairs" in r.get(k, {})), None)
        cells.append(
            (
                r["case"],
                f"{r['left_rows']:,} × {r['right_rows']:,}",
                f"{pairs:,}" if pairs is not None else "-",
                cell(r.get("len")),
                cell(r.get("ids")),
                cell(r.get("arrow")),
                cell(r.get("bruteforce"), False),
                cell(r.get("overlay"), False),
                str(r.get("correct", "-")),
            )
        )
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--cases",
        default="1e4,1e5,1e6,mixed_1e5,mixed_1e6",
        help=f"comma-separated, of {', '.join(CASES)} (default %(default)s)",
    )
    p.add_argument("--repeat", type=int, default=2, help="runs of each geoduck measurement (best kept)")
    p.add_argument("--skip-arrow", action="store_true", help="skip the all-columns to_arrow()")
    p.add_argument("--skip-check", action="store_true", help="skip the brute-force pair check")
    p.add_argument("--skip-overlay", action="store_true", help="skip geopandas.overlay")
    p.add_argument("--timeout", type=float, default=900, help="seconds per child process")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        fn = {"geoduck": child_geoduck, "bruteforce": child_bruteforce, "overlay": child_overlay}[kind]
        print(json.dumps(fn(*rest)))
        return
    machine = C.machine_info()
    results = [run_case(c, args) for c in args.cases.split(",")]
    note = C.busy_note([v for r in results for v in r["load"]])
    print()
    print_table(results)
    if note:
        print(f"NOTE: {note}")
    C.save(
        args.out,
        {
            "benchmark": "bench_intersect",
            "machine": machine,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "settings": {
                "repeat": args.repeat,
                "jitter_seed": JITTER_SEED,
                "cases": {k: CASES[k] for k in args.cases.split(",")},
            },
            "disturbed": note,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
