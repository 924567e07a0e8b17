"""The ``geoduck`` CLI: demo end to end, build/info, and one-line errors for user mistakes."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio
from click.testing import CliRunner

from geoduck.cli import main
from geoduck.testing import ARCHIVE_REGEX, pattern, pixel_centres


def test_demo_writes_catalog_cog_and_png(tmp_path):
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert "48 rows from 48 files indexed" in result.output
    assert "EPSG:32629: 8, EPSG:32630: 32, EPSG:32631: 8" in result.output
    # The query straddles the UTM 29/30 edge: both tiles, May and August 2023.
    for line in ("29TNE  2023-05-15", "30TTK  2023-05-16", "29TNE  2023-08-15", "30TTK  2023-08-16"):
        assert line in result.output
    # Cube and labels: each 12 km field is 48 x 48 px at 250 m; 5 fields per class.
    assert "load_xarray on the mosaic grid: {'time': 123, 'x': 629, 'y': 422}" in result.output
    assert "imagery.intersect(labels) → 2 pairs (tiles 29TNE, 30TTK)" in result.output
    assert "pixels per class {0: 230878, 1: 11520, 2: 11520, 3: 11520}" in result.output
    # Band files: 2 tiles x 2 dates = 4 scenes of 6 band files, stacked across the UTM 30/31 edge.
    assert "S2B|30TYK|20230615: 6, S2B|31TBE|20230615: 6" in result.output
    assert "(4, 60, 60), 100% covered, every pixel from its own band: True" in result.output
    with rasterio.open(out / "mosaic.tif") as src:
        assert src.driver == "GTiff"
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.crs.to_epsg() == 32630
        assert src.res == (250.0, 250.0)
        values = src.read(1)
        xs, ys = pixel_centres(src.transform, values.shape)
    # The mosaic crosses the zone edge seamlessly: values follow the lon/lat pattern of the
    # August acquisitions (merge='last') wherever no cloud hole is involved.
    lon, lat = pyproj.Transformer.from_crs(32630, 4326, always_xy=True).transform(xs, ys)
    expected_aug29 = pattern(lon, lat, 227)  # 2023-08-15
    expected_aug30 = pattern(lon, lat, 228)  # 2023-08-16
    close = (np.abs(values.astype(float) - expected_aug29) < 150) | (
        np.abs(values.astype(float) - expected_aug30) < 150
    )
    assert close.mean() > 0.97
    assert (out / "demo.png").stat().st_size > 20_000


def test_build_and_info(tmp_path, archive):
    runner = CliRunner()
    archive_dir = archive[0].parent.parent
    cat = tmp_path / "cat"
    result = runner.invoke(
        main, ["build", "raster", str(archive_dir), "-o", str(cat), "--regex", ARCHIVE_REGEX, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "48 rows from 48 files indexed" in result.output
    again = runner.invoke(main, ["build", "raster", str(archive_dir), "-o", str(cat), "--no-progress"])
    assert "0 rows from 0 files indexed, 48 unchanged" in again.output
    info = runner.invoke(main, ["info", str(cat)])
    assert info.exit_code == 0, info.output
    assert "rows           48" in info.output
    assert "raster: 48" in info.output
    assert "schema version 1" in info.output
    assert "2022-02-15 00:00:00+00:00 .. 2023-11-20 23:59:59.999999+00:00" in info.output


def test_user_errors_are_one_line(tmp_path, archive):
    runner = CliRunner()
    missing = runner.invoke(main, ["info", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert missing.output.startswith("Error: catalog")
    assert "Traceback" not in missing.output
    bad_regex = runner.invoke(
        main, ["build", "raster", str(archive[0]), "-o", str(tmp_path / "c"), "--regex", r"(?P<date>\d{8})_nomatch"]
    )
    assert bad_regex.exit_code == 1
    assert "matches none of the 1 files" in bad_regex.output
    assert archive[0].name in bad_regex.output


def test_query_formats(tmp_path, archive_catalog):
    import geopandas as gpd
    import pandas as pd

    runner = CliRunner()
    root = archive_catalog.node.root
    args = [
        "query",
        root,
        "--bbox",
        "300000",
        "4380000",
        "400000",
        "4480000",
        "--crs",
        "EPSG:32630",
        "--start",
        "2023-05-01",
        "--end",
        "2023-05-31",
    ]
    expected = archive_catalog.query(
        bbox=(300000, 4380000, 400000, 4480000), crs="EPSG:32630", start="2023-05-01", end="2023-05-31"
    ).to_geopandas()
    assert len(expected) == 2  # 30TTK and 30TVK, each acquired once in May 2023
    table = runner.invoke(main, args)
    assert table.exit_code == 0, table.output
    assert f"({len(expected)} rows)" in table.output
    for tile in expected["tile"]:
        assert tile in table.output
    csv = runner.invoke(main, [*args, "--format", "csv", "-o", str(tmp_path / "q.csv")])
    assert csv.exit_code == 0, csv.output
    frame = pd.read_csv(tmp_path / "q.csv")
    assert sorted(frame["id"]) == sorted(expected["id"])
    assert frame["geometry"].str.startswith("POLYGON").all()
    gj = runner.invoke(main, [*args, "--format", "geojson", "-o", str(tmp_path / "q.geojson")])
    assert gj.exit_code == 0, gj.output
    read = gpd.read_file(tmp_path / "q.geojson")
    assert sorted(read["id"]) == sorted(expected["id"])
    assert read.geometry.area.sum() == pytest.approx(expected.geometry.area.sum(), rel=1e-6)
    pq_out = runner.invoke(main, [*args, "--format", "parquet", "-o", str(tmp_path / "sub")])
    assert pq_out.exit_code == 0, pq_out.output
    import geoduck

    sub = geoduck.open_catalog(tmp_path / "sub")
    assert sorted(sub.to_arrow()["id"].to_pylist()) == sorted(expected["id"])
    where = runner.invoke(main, [*args, "--where", "tile = '30TTK'", "--format", "csv"])
    assert where.output.count("30TTK") >= 1 and "29TNE" not in where.output
    projected = runner.invoke(main, ["query", root, "--bbox", "300000", "4380000", "400000", "4480000"])
    assert projected.exit_code == 1 and "pass its CRS" in projected.output


def test_sql_intersect_union(tmp_path, archive_catalog):
    runner = CliRunner()
    root = archive_catalog.node.root
    counts = runner.invoke(main, ["sql", root, "SELECT tile, count(*) AS n FROM catalog GROUP BY tile ORDER BY tile"])
    assert counts.exit_code == 0, counts.output
    assert counts.output.count(" 8\n") == 6
    refused = runner.invoke(main, ["sql", root, "COPY (SELECT 1) TO '/tmp/x.csv'"])
    assert refused.exit_code == 1 and refused.output.startswith("Error: only read-only queries")
    ix = runner.invoke(main, ["intersect", root, root, str(tmp_path / "ix")])
    assert ix.exit_code == 0, ix.output
    # Each tile is acquired on its own day, so only a row and itself overlap in time.
    assert "wrote 48 pairs" in ix.output
    un = runner.invoke(main, ["union", root, root, str(tmp_path / "un")])
    assert "wrote 96 rows" in un.output
    dedup = runner.invoke(main, ["union", root, root, str(tmp_path / "und"), "--dedupe"])
    assert "wrote 48 rows" in dedup.output
    info = runner.invoke(main, ["info", str(tmp_path / "ix")])
    assert "pairs: 48" in info.output
    path = runner.invoke(main, ["extension-path"])
    assert path.output.strip().splitlines()[0].endswith("spatial.duckdb_extension")
