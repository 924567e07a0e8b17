"""GeoParquet 2.0 readiness: can parts carry the Parquet GEOMETRY logical type (with geospatial
statistics) beside the GeoParquet 1.1 ``bbox`` covering, and do the pinned readers still read them?

Writes the same Hilbert-sorted rows (``geoduck.testing.synthetic_catalog_table``) three ways:

- ``v1.1``: a geoduck part as today (WKB ``BYTE_ARRAY``, ``geo`` 1.1.0 with the bbox covering);
- ``v1.1+GEOMETRY``: the same, with the geometry column written as the GEOMETRY logical type by
  pyarrow (the column as a ``geoarrow.wkb`` extension array), so each row group carries
  geospatial statistics (its bbox), ``geo`` 1.1.0 and the ``bbox`` column unchanged;
- ``duckdb BOTH``: DuckDB 1.5.5 ``COPY … (GEOPARQUET_VERSION 'BOTH')`` of the same rows.

Then, each in a fresh process (so no extension type registered by this script leaks in): pyarrow,
geopandas (plain and ``bbox=``), pyogrio/GDAL, the duckdb CLI and geoduck read every file; and
DuckDB runs ``count(*) WHERE ST_Intersects(geometry, <box>)`` without bbox predicates (and with,
for reference): time and rows leaving the Parquet scan (fewer rows = row groups skipped).
Prints a table and saves ``benchmarks/results/bench_geoparquet2.json``.

    python benchmarks/bench_geoparquet2.py [--tiles 10000 --dates 20 --row-group 5000 --reps 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import RESULTS_DIR, load_average, machine_info  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent
BOX = (-9.0, 36.0, -8.7, 36.3)
"""The query box (lon/lat): ~0.3° of a 0.1° tile grid."""
FAR = (100.0, 0.0, 101.0, 1.0)
"""A box outside every row group: a reader using the statistics skips every row group."""


class GeoArrowWKB(pa.ExtensionType):
    """The ``geoarrow.wkb`` Arrow extension type (storage: binary), which pyarrow ≥ 21 writes as
    the Parquet GEOMETRY logical type with geospatial statistics."""

    def __init__(self, metadata: bytes = b"{}") -> None:
        self._metadata = metadata
        super().__init__(pa.binary(), "geoarrow.wkb")

    def __arrow_ext_serialize__(self) -> bytes:
        return self._metadata

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> GeoArrowWKB:
        return cls(serialized)


def write_files(out: Path, n_tiles: int, n_dates: int, row_group: int) -> dict[str, Path]:
    from geoduck import engine, schema, store
    from geoduck.testing import synthetic_catalog_table

    table = store.sort_rows(synthetic_catalog_table(n_tiles, n_dates, tile_deg=0.1, seed=1))
    files = {
        name: out / f"{i}" / "part-20260101T000000000000-000000000000.parquet"
        for i, name in enumerate(("v1.1", "v1.1+GEOMETRY", "duckdb BOTH"))
    }
    for path in files.values():
        path.parent.mkdir(parents=True)
    with open(files["v1.1"], "wb") as fh:
        store.write_parquet(table, fh, row_group_size=row_group)
    crs = json.dumps({"crs": schema.geo_metadata([], None)["columns"]["geometry"]["crs"]}).encode()
    i = table.schema.get_field_index(schema.GEOMETRY)
    geometry = pa.ExtensionArray.from_storage(GeoArrowWKB(crs), table.column(i).combine_chunks().cast(pa.binary()))
    both = table.set_column(i, pa.field(schema.GEOMETRY, geometry.type, nullable=False), geometry)
    with open(files["v1.1+GEOMETRY"], "wb") as fh:
        store.write_parquet(both, fh, row_group_size=row_group, geometry_type_names=store.geometry_types(table))
    con = engine.connect()
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{files['v1.1']}')) "
        f"TO '{files['duckdb BOTH']}' (FORMAT parquet, GEOPARQUET_VERSION 'BOTH', ROW_GROUP_SIZE {row_group})"
    )
    return files


def footer(path: Path) -> dict[str, Any]:
    """What the footer says about the geometry column: logical type, geospatial statistics."""
    md = pq.read_metadata(path)
    j = [md.schema.column(k).path for k in range(md.num_columns)].index("geometry")
    geo = json.loads((md.metadata or {}).get(b"geo", b"{}"))
    chunk = md.row_group(0).column(j)
    stats = chunk.geo_statistics.to_dict() if chunk.is_geo_stats_set else None
    return {
        "logical_type": str(md.schema.column(j).logical_type),
        "geo_stats_row_group_0": stats,
        "row_groups": md.num_row_groups,
        "geo_version": geo.get("version"),
        "covering": "covering" in geo.get("columns", {}).get("geometry", {}),
        "bytes": path.stat().st_size,
    }


READER = r"""
import json, sys, time
path, box, reader = sys.argv[1], tuple(map(float, sys.argv[2].split(","))), sys.argv[3]
out = {}
try:
    if reader == "pyarrow":
        import pyarrow.parquet as pq
        t = pq.read_table(path)
        out = {"rows": t.num_rows, "geometry_type": str(t.schema.field("geometry").type)}
    elif reader == "geopandas":
        import geopandas as gpd
        full = gpd.read_parquet(path)
        sub = gpd.read_parquet(path, bbox=box)
        out = {"rows": len(full), "bbox_rows": int(sub.intersects(__import__("shapely").box(*box)).sum()),
               "crs": full.crs.to_string() if full.crs else None}
    elif reader == "pyogrio":
        import pyogrio
        out = {"gdal": pyogrio.__gdal_version_string__, "parquet_driver": "Parquet" in pyogrio.list_drivers()}
        df = pyogrio.read_dataframe(path)
        out["rows"] = len(df)
    elif reader == "geoduck":
        import os, geoduck
        cat = geoduck.open_catalog(os.path.dirname(path))
        out = {"rows": len(cat), "bbox_rows": len(cat.query(bbox=box))}
    out["ok"] = True
except Exception as exc:
    out.update(ok=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
print(json.dumps(out))
"""


def read_with(path: Path, reader: str) -> dict[str, Any]:
    box = ",".join(map(str, BOX))
    if reader == "duckdb CLI":
        from geoduck import engine

        cli = Path(sys.executable).with_name("duckdb")
        sql = (
            f"LOAD '{engine.spatial_extension_path()}';\n.mode json\n"
            f"SELECT count(*) AS rows, count(*) FILTER (WHERE ST_Intersects(geometry, ST_MakeEnvelope({box}))) "
            f"AS bbox_rows, any_value(typeof(geometry)) AS geometry_type FROM read_parquet('{path}');"
        )
        run = subprocess.run([str(cli)], input=sql, capture_output=True, text=True, timeout=600)
        if run.returncode or run.stderr.strip():
            return {"ok": False, "error": (run.stderr or run.stdout).strip().splitlines()[0][:300]}
        return {"ok": True, **json.loads(run.stdout)[0]}
    run = subprocess.run(
        [sys.executable, "-c", READER, str(path), box, reader], capture_output=True, text=True, timeout=600
    )
    lines = run.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {"ok": False, "error": run.stderr.strip().splitlines()[-1][:300]}


def scan_rows(con: duckdb.DuckDBPyConnection, sql: str, profile: Path) -> int:
    """DuckDB's profiling metric OPERATOR_ROWS_SCANNED of the Parquet scan of ``sql``: 0 when the
    statistics let it skip every row group (measured: it stays at the full count when only some
    row groups are skipped, so the far box, outside all row groups, is the clean test; the near box
    shows pruning by its time)."""
    con.execute(f"PRAGMA enable_profiling = 'json'; PRAGMA profiling_output = '{profile}'")
    con.execute('SET custom_profiling_settings = \'{"OPERATOR_CARDINALITY": "true", "OPERATOR_ROWS_SCANNED": "true"}\'')
    con.execute(sql).fetchall()
    con.execute("PRAGMA disable_profiling")
    found: list[int] = []

    def walk(node: dict[str, Any]) -> None:
        if "SCAN" in str(node.get("operator_type", node.get("operator_name", ""))).upper():
            found.append(int(node.get("operator_rows_scanned", 0)))
        for child in node.get("children", []):
            walk(child)

    walk(json.loads(profile.read_text()))
    return sum(found)


def pruning(files: dict[str, Path], reps: int, tmp: Path) -> list[dict[str, Any]]:
    from geoduck import engine

    con = engine.connect()
    envelope = f"ST_MakeEnvelope({', '.join(map(str, BOX))})"
    bbox = f"bbox.xmin <= {BOX[2]} AND bbox.xmax >= {BOX[0]} AND bbox.ymin <= {BOX[3]} AND bbox.ymax >= {BOX[1]}"
    far = f"ST_MakeEnvelope({', '.join(map(str, FAR))})"
    far_bbox = f"bbox.xmin <= {FAR[2]} AND bbox.xmax >= {FAR[0]} AND bbox.ymin <= {FAR[3]} AND bbox.ymax >= {FAR[1]}"
    out = []
    for name, path in files.items():
        for label, where in (
            ("ST_Intersects only", f"ST_Intersects(geometry, {envelope})"),
            ("bbox + ST_Intersects", f"{bbox} AND ST_Intersects(geometry, {envelope})"),
            ("far: ST_Intersects", f"ST_Intersects(geometry, {far})"),
            ("far: bbox + ST_Int.", f"{far_bbox} AND ST_Intersects(geometry, {far})"),
        ):
            sql = f"SELECT count(*) FROM read_parquet('{path}') WHERE {where}"
            rows = con.execute(sql).fetchone()[0]  # warm (footer cache)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                con.execute(sql).fetchone()
                times.append((time.perf_counter() - t0) * 1e3)
            out.append(
                {
                    "file": name,
                    "query": label,
                    "rows": rows,
                    "scan_rows": scan_rows(con, sql, tmp / "profile.json"),
                    "p50_ms": float(np.median(times)),
                }
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=10_000)
    ap.add_argument("--dates", type=int, default=20)
    ap.add_argument("--row-group", type=int, default=5_000)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    loads = [load_average()]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        files = write_files(tmp, args.tiles, args.dates, args.row_group)
        footers = {name: footer(path) for name, path in files.items()}
        readers = ("pyarrow", "geopandas", "pyogrio", "duckdb CLI", "geoduck")
        matrix = {name: {r: read_with(path, r) for r in readers} for name, path in files.items()}
        prune = pruning(files, args.reps, tmp)
    loads.append(load_average())
    n = args.tiles * args.dates
    print(f"\n{n:,} rows, row groups of {args.row_group:,}; box {BOX}")
    print(f"\n{'file':<16} {'logical type':<22} {'geo stats (rg 0)':<40} {'geo':<6} covering")
    for name, f in footers.items():
        stats = f["geo_stats_row_group_0"]
        text = (
            "none"
            if stats is None
            else f"x {stats['xmin']:.2f}..{stats['xmax']:.2f} y {stats['ymin']:.2f}..{stats['ymax']:.2f}"
        )
        print(f"{name:<16} {f['logical_type'][:22]:<22} {text:<40} {str(f['geo_version']):<6} {f['covering']}")
    print(f"\n{'file':<16} " + " ".join(f"{r:<22}" for r in readers))
    for name, row in matrix.items():
        cells = []
        for r in readers:
            res = row[r]
            cells.append(f"{'ok ' + str(res.get('rows')) if res['ok'] else 'FAIL':<22}")
        print(f"{name:<16} " + " ".join(cells))
    for name, row in matrix.items():
        for r, res in row.items():
            if not res["ok"]:
                print(f"  {name} / {r}: {res['error']}")
    print(f"\n{'file':<16} {'query':<22} {'rows':>6} {'rows scanned':>12} {'p50 ms':>8}")
    for p in prune:
        print(f"{p['file']:<16} {p['query']:<22} {p['rows']:>6} {p['scan_rows']:>12} {p['p50_ms']:>8.2f}")
    result = {
        "rows": n,
        "row_group": args.row_group,
        "box": BOX,
        "versions": {"pyarrow": pa.__version__, "duckdb": duckdb.__version__},
        "footers": footers,
        "readers": matrix,
        "pruning": prune,
        "machine": machine_info(),
        "load_average": loads,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    target = RESULTS_DIR / "bench_geoparquet2.json"
    target.write_text(json.dumps(result, indent=1, default=str))
    print(f"\nsaved {target}")


if __name__ == "__main__":
    main()
