"""``Catalog.join``: user tables (pandas, GeoDataFrame, Arrow) joined to a catalog inside the
same DuckDB query, checked against a pandas ``merge`` of the catalog's rows on random catalogs."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

import geoduck
from geoduck import engine
from geoduck.errors import JoinError
from geoduck.testing import write_synthetic_catalog

COMPARED = ["id", "tile", "start_datetime", "filepath"]


def _catalog(tmp_path, seed: int, n_tiles: int, n_dates: int) -> geoduck.Catalog:
    return geoduck.open_catalog(write_synthetic_catalog(tmp_path / f"c{seed}", n_tiles, n_dates, part_rows=37))


def _rows(cat: geoduck.Catalog) -> pd.DataFrame:
    return cat.to_arrow().to_pandas()


def _labels(ids: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """A user table over a random subset of the ids, plus ids the catalog does not have, with
    integer, float (some NaN), string (some None) and boolean columns."""
    chosen = list(rng.choice(ids, size=len(ids) // 2, replace=False)) + [f"absent-{i}" for i in range(5)]
    n = len(chosen)
    score = rng.normal(size=n)
    score[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame(
        {
            "id": chosen,
            "fold": rng.integers(0, 5, n),
            "score": score,
            "split": [None if r < 0.1 else ("train" if r < 0.7 else "val") for r in rng.random(n)],
            "keep": rng.random(n) < 0.5,
        }
    ).sample(frac=1.0, random_state=int(rng.integers(1 << 31)))


def _same(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    got = got[columns].sort_values("id").reset_index(drop=True)
    want = want[columns].sort_values("id").reset_index(drop=True)
    # missing values compared as missing (pandas merge gives NaN where Arrow gives None)
    got, want = (f.astype(object).where(f.notna(), None) for f in (got, want))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("how", ["inner", "left"])
def test_join_equals_pandas_merge_on_random_catalogs(tmp_path, seed, how):
    rng = np.random.default_rng(seed)
    cat = _catalog(tmp_path, seed, int(rng.integers(3, 12)), int(rng.integers(2, 9)))
    rows = _rows(cat)
    labels = _labels(rows["id"].tolist(), rng)
    joined = cat.join(labels, on="id", how=how)
    want = rows.merge(labels, on="id", how=how)
    assert joined.columns == [*rows.columns, "fold", "score", "split", "keep"]
    assert len(joined) == len(want) == (len(rows) if how == "left" else len(rows) // 2)
    _same(_rows(joined), want, [*COMPARED, "fold", "score", "split", "keep"])
    # composes: a predicate on a joined column, a space/time query before and after the join
    train = joined.where("split = 'train' AND fold >= 2")
    _same(_rows(train), want[(want["split"] == "train") & (want["fold"] >= 2)], [*COMPARED, "fold"])
    box = (-9.9, 35.05, -9.65, 35.3)
    queried = cat.query(bbox=box, start="2020-01-02").join(labels, how=how)
    oracle = _rows(cat.query(bbox=box, start="2020-01-02")).merge(labels, on="id", how=how)
    assert len(oracle) > 0
    _same(_rows(queried), oracle, [*COMPARED, "fold", "split"])
    _same(_rows(joined.query(bbox=box, start="2020-01-02")), oracle, [*COMPARED, "fold", "split"])


def test_join_on_several_keys_and_index_and_arrow(tmp_path):
    cat = _catalog(tmp_path, 5, 6, 4)
    rows = _rows(cat)
    per_scene = rows[["tile", "start_datetime"]].drop_duplicates().iloc[::2].copy()
    per_scene["cloud"] = np.arange(len(per_scene), dtype=float) / 10
    joined = cat.join(pa.Table.from_pandas(per_scene, preserve_index=False), on=["tile", "start_datetime"])
    _same(_rows(joined), rows.merge(per_scene, on=["tile", "start_datetime"]), [*COMPARED, "cloud"])
    # keys held in a named pandas index; an Arrow RecordBatch
    by_index = pd.DataFrame({"rank": np.arange(len(rows))}, index=pd.Index(rows["id"], name="id"))
    ranked = _rows(cat.join(by_index, how="left"))
    assert dict(zip(ranked["id"], ranked["rank"], strict=True)) == dict(zip(rows["id"], range(len(rows)), strict=True))
    batch = pa.RecordBatch.from_pydict({"id": rows["id"].tolist()[:3], "w": [1, 2, 3]})
    assert sorted(_rows(cat.join(batch))["w"]) == [1, 2, 3]


def test_joined_catalog_counts_unions_intersects_and_runs_sql(tmp_path):
    cat = _catalog(tmp_path, 7, 5, 3)
    rows = _rows(cat)
    splits = pd.DataFrame({"id": rows["id"], "split": np.where(np.arange(len(rows)) % 3 == 0, "val", "train")})
    joined = cat.join(splits)
    counts = joined.sql("SELECT split, count(*) AS n FROM catalog GROUP BY split ORDER BY split")
    assert counts.to_dict("list") == {"split": ["train", "val"], "n": [int((splits.split == "train").sum()), 5]}
    both = geoduck.sql(
        "SELECT count(*) AS n FROM a JOIN b USING (id) WHERE a.split = 'val'", a=joined, b=cat.join(splits, how="left")
    )
    assert both["n"].tolist() == [5]
    train, val = joined.where("split = 'train'"), joined.where("split = 'val'")
    assert len(train.union(val)) == len(rows)
    assert set(_rows(train.union(val))["split"]) == {"train", "val"}
    val_ids = splits.loc[splits.split == "val", "id"].tolist()
    plain_val = cat.where(f"id IN ({', '.join(repr(i) for i in val_ids)})")  # the old way, as oracle
    pairs = _rows(joined.intersect(val))
    want = _rows(cat.intersect(plain_val))
    assert len(pairs) > 0 and sorted(pairs["id"]) == sorted(want["id"])
    assert set(pairs["right_split"]) == {"val"}
    split_of = dict(zip(splits["id"], splits["split"], strict=True))
    assert pairs["left_split"].tolist() == [split_of[i] for i in pairs["left_id"]]
    assert sorted(_rows(joined.difference(val))["id"]) == sorted(_rows(cat.difference(plain_val))["id"])
    gdf = joined.to_geopandas()
    assert isinstance(gdf, gpd.GeoDataFrame) and gdf.crs.to_epsg() == 4326 and "split" in gdf
    written = joined.to_parquet(tmp_path / "written")  # a catalog again, with the joined column
    _same(_rows(written), rows.merge(splits, on="id"), [*COMPARED, "split"])


def test_user_values_never_enter_the_sql_text(tmp_path):
    cat = _catalog(tmp_path, 8, 3, 2)
    ids = _rows(cat)["id"].tolist()
    hostile = "x'); DROP TABLE t; --"
    joined = cat.join(pd.DataFrame({"id": ids, "note": [hostile] * len(ids)}))
    text = joined.sql_text
    assert hostile not in text and ids[0] not in text and "_geoduck_table_" in text
    assert set(_rows(joined)["note"]) == {hostile}
    # the registration does not leak onto other cursors
    name = text.split('"_geoduck_table_')[1].split('"')[0]
    with pytest.raises(Exception, match="_geoduck_table_"):
        engine.cursor().execute(f'SELECT * FROM "_geoduck_table_{name}"')


def test_geodataframe_geometry_is_dropped(tmp_path):
    cat = _catalog(tmp_path, 9, 4, 2)
    rows = _rows(cat)
    gdf = gpd.GeoDataFrame(
        {"id": rows["id"], "label": np.arange(len(rows))}, geometry=shapely.points(np.zeros(len(rows)), 0), crs=4326
    )
    joined = cat.join(gdf)
    assert joined.columns == [*rows.columns, "label"]
    got = joined.to_geopandas()
    assert shapely.equals(
        got.sort_values("id").geometry.values, cat.to_geopandas().sort_values("id").geometry.values
    ).all()
    gdf["other"] = gpd.GeoSeries(shapely.points(np.ones(len(rows)), 1))
    with pytest.raises(JoinError, match="geometry columns \\['other'\\]"):
        cat.join(gdf)


def test_join_errors_name_the_column_and_the_fix(tmp_path):
    cat = _catalog(tmp_path, 10, 3, 2)
    ids = _rows(cat)["id"].tolist()
    with pytest.raises(JoinError, match="key column 'id' is not in the table"):
        cat.join(pd.DataFrame({"ident": ids}))
    with pytest.raises(JoinError, match="key column 'ident' is not a catalog column"):
        cat.join(pd.DataFrame({"ident": ids}), on="ident")
    with pytest.raises(
        JoinError, match=r"clash with catalog columns \['tile'\].*rename\(columns=\{'Tile': 'user_Tile'\}\)"
    ):
        cat.join(pd.DataFrame({"id": ids, "Tile": 1}))
    with pytest.raises(JoinError, match="repeat 1 times.*drop_duplicates"):
        cat.join(pd.DataFrame({"id": [*ids, ids[0]], "v": 0}))
    with pytest.raises(JoinError, match="repeat"):
        cat.join(
            pd.DataFrame(
                {"tile": ["T000000", "T000000"], "start_datetime": [pd.Timestamp("2020-01-01", tz="UTC")] * 2}
            ),
            on=["tile", "start_datetime"],
        )
    with pytest.raises(JoinError, match="holds 1 null values"):
        cat.join(pd.DataFrame({"id": [ids[0], None], "v": [1, 2]}))
    with pytest.raises(JoinError, match="VARCHAR in the catalog but int64"):
        cat.join(pd.DataFrame({"id": [1, 2]}))
    with pytest.raises(JoinError, match="how= must be one of"):
        cat.join(pd.DataFrame({"id": ids}), how="outer")
    with pytest.raises(JoinError, match="on= must be"):
        cat.join(pd.DataFrame({"id": ids}), on=[])
    with pytest.raises(JoinError, match="takes a pandas DataFrame"):
        cat.join({"id": ids})
    assert issubclass(JoinError, ValueError) and issubclass(JoinError, geoduck.errors.GeoduckError)


def test_loaders_and_samplers_read_a_joined_catalog(archive_catalog):
    rows = _rows(archive_catalog)
    tiles = sorted(rows["tile"].unique())
    folds = pd.DataFrame({"tile": tiles, "fold": np.arange(len(tiles)) % 2})
    train = archive_catalog.join(folds, on="tile").where("fold = 0")
    kept = set(rows["tile"]) & set(tiles[::2])
    sampler = geoduck.random_sampler(train, chip_size=8, resolution=10.0, length=20, seed=3)
    for s in sampler:
        hits = _rows(archive_catalog.query(bbox=s.grid_bounds, crs=s.crs))
        assert set(hits["tile"]) & kept
    s = next(iter(sampler))
    got = geoduck.load_raster(train, s)
    want = geoduck.load_raster(archive_catalog.where(f"tile IN ({', '.join(repr(t) for t in kept)})"), s)
    np.testing.assert_array_equal(np.asarray(got.values), np.asarray(want.values))
