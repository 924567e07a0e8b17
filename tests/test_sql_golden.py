"""Golden-file snapshots of the SQL compiled for every relation node type, and SQL-injection tests.

The goldens live in ``tests/golden/<case>.sql``; after an intended change of the compiler regenerate
them with ``GEODUCK_UPDATE_GOLDEN=1 pytest tests/test_sql_golden.py`` and review the diff.

Injection: values holding quotes, semicolons, comment markers and dollar quotes — as ``where`` string
literals, catalog directory names and ``union`` names — must never change the structure of the SQL:
sqlglot and DuckDB's own parser both see one statement in which the value is only a string constant,
and the statement is, literal for literal, the one compiled from a harmless value.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
import shapely
import sqlglot
from shapely.geometry import MultiPolygon, box
from sqlglot import exp

import geoduck
from geoduck import compiler, schema, store
from geoduck.expr import Difference, Intersect, JoinPlan, Node, Pad, Scan, SpatialFilter, TimeFilter, Union, Where
from geoduck.testing import synthetic_catalog_table

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("GEODUCK_UPDATE_GOLDEN", "") not in ("", "0")

S2 = Scan("/data/catalogs/s2")
L8 = Scan("/data/catalogs/landsat 8")
AOI = box(-5.5, 39.25, -4.0, 40.75)
AM = MultiPolygon([box(170.0, -5.0, 180.0, 5.0), box(-180.0, -5.0, -170.0, 5.0)])
T0 = pd.Timestamp("2023-01-01", tz="UTC")
T1 = pd.Timestamp("2023-06-30T23:59:59.999999", tz="UTC")
COLUMNS = (
    "id",
    "filepath",
    "backend",
    "geometry",
    "bbox",
    "start_datetime",
    "end_datetime",
    "crs",
    "native_bounds",
    "schema_version",
    "tile",
)
PLAN = JoinPlan(cell=0.25, bucket_us=86_400_000_001)  # what catalog.join_plan gives when ids may repeat
PLAN_UNIQUE = JoinPlan(cell=0.25, bucket_us=86_400_000_001, distinct=False)  # … and when they cannot
SPATIAL = SpatialFilter(S2, shapely.to_wkb(AOI), (AOI.bounds,))
UNION = Union(S2, L8, "s2", "landsat 8", False, False, False)
UNION_DEDUPE = Union(S2, L8, "s2", "landsat 8", False, False, True)
PAD = Pad(S2, 3 * 86_400_000_000, 86_400_000_000)

CASES: dict[str, Node] = {
    "scan": S2,
    "spatial_filter": SPATIAL,
    "spatial_filter_antimeridian": SpatialFilter(S2, shapely.to_wkb(AM), tuple(p.bounds for p in AM.geoms)),
    "time_filter": TimeFilter(S2, T0, T1),
    "time_filter_open_end": TimeFilter(S2, T0, None),
    "where": Where(S2, "tile = 'T29SND' AND cloud_cover < 20"),
    "chain_spatial_time_where": Where(TimeFilter(SPATIAL, T0, T1), "tile = 'T29SND'"),
    "union": UNION,
    "union_dedupe": UNION_DEDUPE,
    "union_nested": Union(UNION, Scan("/data/catalogs/labels"), "s2+landsat 8", "labels", True, False, False),
    "union_dedupe_where": Where(UNION_DEDUPE, "source = 'landsat 8'"),
    "intersect": Intersect(S2, L8, False, PLAN, COLUMNS, COLUMNS),
    "intersect_spatial_only": Intersect(S2, L8, True, PLAN, COLUMNS, COLUMNS),
    "intersect_unique_ids": Intersect(S2, L8, False, PLAN_UNIQUE, COLUMNS, COLUMNS),
    "intersect_of_filters": Intersect(SPATIAL, TimeFilter(L8, T0, T1), False, PLAN, COLUMNS, COLUMNS),
    "difference": Difference(S2, L8, False, PLAN),
    "difference_spatial_only": Difference(S2, L8, True, PLAN),
    "pad": PAD,
    "pad_then_time_filter": TimeFilter(PAD, T0, T1),
}


# -- golden snapshots -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_sql_matches_golden(name):
    sql = compiler.to_sql(CASES[name]) + "\n"
    path = GOLDEN / f"{name}.sql"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(sql)
    assert path.is_file(), f"missing golden {path}; run with GEODUCK_UPDATE_GOLDEN=1"
    assert sql == path.read_text(), f"{name}: compiled SQL differs from {path} (GEODUCK_UPDATE_GOLDEN=1 to accept)"
    statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    assert len(statements) == 1 and isinstance(statements[0], exp.Query)
    assert duckdb_statements(sql) == 1


def test_no_stale_goldens():
    assert {p.stem for p in GOLDEN.glob("*.sql")} == set(CASES)


def test_goldens_show_the_documented_shapes():
    """A few properties of the snapshots worth stating outright."""
    spatial = (GOLDEN / "spatial_filter.sql").read_text()
    assert spatial.index('"bbox".xmin <=') < spatial.index("ST_INTERSECTS")
    assert spatial.count("READ_PARQUET") == 1 and spatial.count("SELECT") == 1  # filters merged into the scan
    chain = (GOLDEN / "chain_spatial_time_where.sql").read_text()
    assert chain.count("SELECT") == 1 and chain.count("WHERE") == 1
    # a filter over computed columns (padding) or a QUALIFY (dedupe) wraps it, so it sees the output
    padded = (GOLDEN / "pad_then_time_filter.sql").read_text()
    assert padded.index("REPLACE") < padded.index(") AS _rel") < padded.index("WHERE")
    dedupe = (GOLDEN / "union_dedupe_where.sql").read_text()
    assert dedupe.index("QUALIFY") < dedupe.rindex("WHERE")
    for name in ("intersect", "difference"):
        text = (GOLDEN / f"{name}.sql").read_text()
        assert "0.25" in text and "86400000001" in text  # the plan's cell and bucket as literals


# -- helpers --------------------------------------------------------------------------------------


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def duckdb_statements(sql: str, constants: list | None = None) -> int:
    """Number of statements DuckDB's parser sees in ``sql``; collects its string constants."""
    con = duckdb.connect()
    raw = con.execute("SELECT json_serialize_sql($1::VARCHAR)", [sql]).fetchone()[0]
    parsed = json.loads(raw)
    assert not parsed.get("error"), parsed
    if constants is not None:

        def walk(node):
            if isinstance(node, dict):
                if node.get("type") == "VALUE_CONSTANT":
                    constants.append(node["value"].get("value"))
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(parsed["statements"])
    return len(parsed["statements"])


def blank_strings(sql: str) -> str:
    """``sql`` re-rendered with every string literal emptied: its structure."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    for lit in list(tree.find_all(exp.Literal)):
        if lit.is_string:
            lit.replace(exp.Literal.string(""))
    return tree.sql(dialect="duckdb")


def assert_value_only_in_literals(sql: str, value: str, benign_sql: str, literal: str | None = None) -> None:
    """One statement (for sqlglot and DuckDB); ``literal`` (default: ``value``) is inside a string
    constant; nothing of ``value`` outside string constants; the same structure as ``benign_sql``."""
    literal = value if literal is None else literal
    statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    assert len(statements) == 1
    strings = [lit.this for lit in statements[0].find_all(exp.Literal) if lit.is_string]
    assert any(literal in s for s in strings), (literal, strings)
    skeleton = blank_strings(sql)
    assert blank_strings(benign_sql) == skeleton
    for fragment in {value, *(p.strip() for p in value.replace("'", ";").split(";") if len(p.strip()) > 3)}:
        assert fragment not in skeleton, fragment
    constants: list = []
    assert duckdb_statements(sql, constants) == 1
    assert any(isinstance(c, str) and literal in c for c in constants), (literal, constants)


PAYLOADS = [
    "'; DROP TABLE x; --",
    "x' OR 1=1 --",
    "*/ DROP TABLE x; /*",
    "/* ; DROP TABLE x",
    "$$; DROP TABLE x; $$",
    "$tag$ x $tag$",
    "back\\'slash'; SELECT 1",
    "semi;colon\n-- newline comment\nDROP TABLE x",
    "''''",
]


# -- where literals -------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_where_literal_payload_compiles_to_one_literal(payload):
    columns = ["id", "tile"]
    tree = compiler.parse_predicate(f"tile = {quote(payload)}", columns)
    benign = compiler.parse_predicate(f"tile = {quote('benign')}", columns)
    sql = compiler.to_sql(Where(S2, tree.sql(dialect="duckdb")))
    benign_sql = compiler.to_sql(Where(S2, benign.sql(dialect="duckdb")))
    assert_value_only_in_literals(sql, payload, benign_sql)
    eq = [e for e in sqlglot.parse_one(sql, read="duckdb").find_all(exp.EQ) if isinstance(e.expression, exp.Literal)]
    assert [e.expression.this for e in eq] == [payload]


@pytest.fixture(scope="module")
def payload_catalog(tmp_path_factory) -> geoduck.Catalog:
    """One row per payload, whose ``tile`` is that payload."""
    n = len(PAYLOADS)
    table = synthetic_catalog_table(n, 1)
    i = table.schema.get_field_index("tile")
    table = table.set_column(i, table.schema.field("tile"), pa.array(PAYLOADS))
    out = tmp_path_factory.mktemp("payloads") / "cat"
    store.write_part(table, out)
    return geoduck.open_catalog(out)


def test_where_payloads_select_exactly_their_row(payload_catalog):
    for payload in PAYLOADS:
        rel = payload_catalog.where(f"tile = {quote(payload)}")
        assert rel.to_arrow().column("tile").to_pylist() == [payload]
        benign = payload_catalog.where("tile = 'benign'")
        assert_value_only_in_literals(rel.sql_text, payload, benign.sql_text)
        # and through user SQL
        out = payload_catalog.sql(f"SELECT tile FROM catalog WHERE tile = {quote(payload)}")
        assert list(out["tile"]) == [payload]
    assert len(payload_catalog) == len(PAYLOADS)  # nothing was dropped


# -- catalog paths --------------------------------------------------------------------------------

PATH_NAMES = [
    "it's; DROP TABLE x; --",
    "x */ DROP TABLE t; /* y",  # nested directories: the path holds '*/' and '/*'
    "a $$ b $$",
    "s*t",  # glob characters: must not read the sibling 'sXt'
    "e [1] f",
    "q?q",
]


def _write(root: Path, n_tiles: int) -> Path:
    store.write_part(synthetic_catalog_table(n_tiles, 1), root)
    return root


@pytest.fixture(scope="module")
def path_catalogs(tmp_path_factory) -> tuple[dict[str, geoduck.Catalog], geoduck.Catalog, geoduck.Catalog]:
    root = tmp_path_factory.mktemp("paths")
    # decoys a glob would also match if the directory's own characters were not escaped
    for decoy in ("sXt", "e 1 f", "qzq"):
        _write(root / decoy, 7)
    cats = {name: geoduck.open_catalog(_write(root / name, 3)) for name in PATH_NAMES}
    return cats, geoduck.open_catalog(_write(root / "benign", 1)), geoduck.open_catalog(_write(root / "other", 2))


@pytest.mark.parametrize("name", PATH_NAMES)
def test_catalog_path_payloads(path_catalogs, name):
    cats, benign, _ = path_catalogs
    cat = cats[name]
    assert len(cat) == 3
    assert len(cat.query(bbox=(-11.0, 34.0, -9.0, 36.0), start="2020-01-01")) == 3
    root = cat.node.root
    glob_literal = store.part_glob(root)
    assert glob_literal.startswith(glob.escape(root)) and (glob_literal == os.path.join(root, "*.parquet")) == (
        not glob.has_magic(root)
    )
    assert_value_only_in_literals(cat.sql_text, name, benign.sql_text, literal=glob_literal)
    assert_value_only_in_literals(
        cat.where("tile = 'T000001'").sql_text, name, benign.where("tile = 'T000001'").sql_text, literal=glob_literal
    )


def test_catalog_path_payloads_in_joins_unions_and_sql(path_catalogs):
    cats, benign, other = path_catalogs
    names = list(cats)
    everything = cats[names[0]]
    for name in names[1:]:
        everything = everything.union(cats[name])
    rows = everything.to_arrow()
    assert rows.num_rows == 3 * len(cats)
    names_of_dirs = sorted(os.path.basename(c.node.root) for c in cats.values())
    assert sorted(set(rows.column("source").to_pylist())) == names_of_dirs
    # user SQL (a sandboxed connection allowed to read exactly these folders) reads only them
    counts = everything.sql("SELECT source, count(*) AS n FROM catalog GROUP BY source")
    assert set(counts["n"]) == {3} and len(counts) == len(cats)
    n = geoduck.sql("SELECT count(*) AS n FROM a JOIN b USING (tile)", a=cats["s*t"], b=cats["e [1] f"])
    assert int(n["n"][0]) == 3
    # inside a join plan, on both sides
    pairs = everything.intersect(other, spatial_only=True).to_arrow()
    assert pairs.num_rows == len(brute_pairs(everything, other)) > 0
    cat = cats[names[0]]
    literal = store.part_glob(cat.node.root)
    assert_value_only_in_literals(
        cat.intersect(other).sql_text, names[0], benign.intersect(other).sql_text, literal=literal
    )
    assert_value_only_in_literals(
        other.difference(cat).sql_text, names[0], other.difference(benign).sql_text, literal=literal
    )


def brute_pairs(a: geoduck.Catalog, b: geoduck.Catalog) -> list[tuple[str, str]]:
    fa, fb = a.to_geopandas(), b.to_geopandas()
    return [
        (i, j)
        for i, g in zip(fa["id"], fa.geometry, strict=True)
        for j, h in zip(fb["id"], fb.geometry, strict=True)
        if g.intersects(h)
    ]


# -- union names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_union_name_payloads(payload_catalog, payload):
    left = payload_catalog.named(payload)
    right = payload_catalog.named(payload[::-1] + "'")
    u = left.union(right)
    benign = payload_catalog.named("benign").union(payload_catalog.named("other"))
    assert_value_only_in_literals(u.sql_text, payload, benign.sql_text)
    assert_value_only_in_literals(u.sql_text, right.name, benign.sql_text)
    sources = u.to_arrow().column("source").to_pylist()
    assert sources.count(payload) == sources.count(right.name) == len(PAYLOADS)
    assert u.name == f"{payload}+{right.name}"
    # nested: the union's own name never enters the SQL; the inner names stay
    nested = payload_catalog.named("third").union(u)
    assert sorted(set(nested.to_arrow().column("source").to_pylist())) == sorted({"third", payload, right.name})
    assert nested.name not in blank_strings(nested.sql_text)
    assert duckdb_statements(nested.sql_text) == 1


def test_payload_in_intersect_columns_and_schema_constants(payload_catalog):
    """Values that reach intersect output (tile = payload) stay data, never SQL."""
    out = payload_catalog.intersect(payload_catalog.where(f"tile = {quote(PAYLOADS[0])}"), spatial_only=True)
    rows = out.to_arrow().select(["left_tile", "right_tile"]).to_pylist()
    assert {r["right_tile"] for r in rows} == {PAYLOADS[0]}
    assert schema.ID in out.columns
