"""``geoduck demo``: the whole pipeline on a built-in synthetic archive.

archive (48 GeoTIFFs, UTM 29/30/31, 2022–2023) → catalog → summary → bbox + time query →
mosaic across two UTM zones; a NetCDF cube and a GeoJSON label file in catalogs of their own,
paired with the imagery and loaded on the same grid → ``mosaic.tif`` (COG) + ``demo.png``.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import store
from .builders.raster import build_raster_catalog
from .builders.vector import build_vector_catalog
from .builders.xarray import build_xarray_catalog
from .catalog import Catalog
from .geo import WGS84, transformer
from .io import save_cog
from .loaders.raster import load_raster
from .loaders.vector import load_vector
from .loaders.xarray import load_xarray
from .slices import GeoSlice
from .testing import (
    ARCHIVE_REGEX,
    SENTINEL2_REGEX,
    band_number,
    synthetic_archive,
    synthetic_cube,
    synthetic_labels,
    synthetic_sentinel2_archive,
)

AOI_LONLAT = (-6.9, 39.55, -5.1, 40.45)
"""Demo AOI (lon/lat): straddles the UTM 29/30 edge at 6°W."""

MOSAIC_CRS = "EPSG:32630"
MOSAIC_RES = 250.0
QUERY_START, QUERY_END = "2023-05-01", "2023-08-31"
SINGLE_START, SINGLE_END = "2023-05-01", "2023-05-31"


@dataclass(frozen=True)
class DemoResult:
    """Paths and numbers of one demo run."""

    catalog_dir: Path
    mosaic_path: Path
    png_path: Path
    n_files: int
    n_rows: int
    n_query_rows: int


def summary(catalog: Catalog) -> str:
    """A short human summary of a catalog: rows, parts, extent, time span, CRSs."""
    bounds = catalog.total_bounds
    t0, t1 = catalog.temporal_extent
    by_crs = catalog.sql("SELECT crs, count(*) AS n FROM catalog GROUP BY crs ORDER BY crs")
    lines = [
        f"rows           {len(catalog)}",
        f"bounds (lon/lat) {tuple(round(v, 4) for v in bounds) if bounds else None}",
        f"time extent    {t0} .. {t1}",
        "rows per CRS   " + ", ".join(f"{c}: {n}" for c, n in zip(by_crs["crs"], by_crs["n"], strict=True)),
    ]
    return "\n".join(lines)


def mosaic_slice() -> GeoSlice:
    """The demo mosaic grid: the AOI reprojected to UTM 30N at 250 m, summer 2023."""
    xs, ys = transformer(WGS84, MOSAIC_CRS).transform(
        [AOI_LONLAT[0], AOI_LONLAT[2], AOI_LONLAT[0], AOI_LONLAT[2]],
        [AOI_LONLAT[1], AOI_LONLAT[1], AOI_LONLAT[3], AOI_LONLAT[3]],
    )
    snap = MOSAIC_RES
    bounds = (
        np.floor(min(xs) / snap) * snap,
        np.floor(min(ys) / snap) * snap,
        np.ceil(max(xs) / snap) * snap,
        np.ceil(max(ys) / snap) * snap,
    )
    return GeoSlice(bounds, MOSAIC_CRS, MOSAIC_RES, start=QUERY_START, end=QUERY_END)


@dataclass(frozen=True)
class Extras:
    """The cube and label backends of the demo, loaded on the mosaic grid."""

    cube: Catalog
    labels: Catalog
    cube_mean: np.ndarray
    """Mean t2m (°C) over the query interval on the mosaic grid."""
    label_mask: np.ndarray
    """class_id (0 = background) on the mosaic grid."""


def render_png(catalog: Catalog, query: Catalog, tensor, single, extras: Extras, path: Path) -> None:
    """Footprints of all three backends with the AOI and the query's hits (top); mosaic,
    one month with its nodata hole and the labels, and the cube's mean on the same grid (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from shapely.geometry import box

    gdf = catalog.to_geopandas()
    hits = set(query.to_geopandas()["id"])
    fig = plt.figure(figsize=(15, 9.2))
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 1.45])
    ax1 = fig.add_subplot(grid[0, :])
    colors = {"EPSG:32629": "#1b9e77", "EPSG:32630": "#d95f02", "EPSG:32631": "#7570b3"}
    footprints = gdf.drop_duplicates("tile")
    for crs, group in footprints.groupby("crs"):
        color = colors.get(crs, "grey")
        group.plot(ax=ax1, facecolor=color, alpha=0.22, edgecolor=color, linewidth=1.2)
        ax1.fill([], [], color=color, alpha=0.4, label=f"raster {crs}: {(gdf['crs'] == crs).sum()} files")
    for _, row in footprints.iterrows():
        c = row.geometry.centroid
        ax1.annotate(row["tile"], (c.x, c.y + 0.42), ha="center", fontsize=9)
    gdf[gdf["id"].isin(hits)].drop_duplicates("tile").boundary.plot(ax=ax1, color="black", linewidth=1.8)
    extras.cube.to_geopandas().boundary.plot(ax=ax1, color="royalblue", linewidth=1.4, linestyle="-.")
    ax1.plot([], [], color="royalblue", linestyle="-.", label="xarray cube (t2m, daily 2023)")
    extras.labels.to_geopandas().plot(ax=ax1, facecolor="none", edgecolor="black", hatch="////", linewidth=0.8)
    ax1.fill([], [], facecolor="none", edgecolor="black", hatch="////", label="vector labels (May 2023)")
    ax1.plot(*box(*AOI_LONLAT).exterior.xy, color="crimson", linewidth=2.2, linestyle="--", label="query AOI")
    for lon in (-6.0, 0.0):
        ax1.axvline(lon, color="grey", linewidth=0.8, linestyle=":")
    ax1.set_title(
        f"catalogs: {len(gdf)} raster rows (6 tiles × 8 dates), 1 cube row, 1 label row; query "
        f"{QUERY_START}..{QUERY_END} → {len(hits)} raster rows (black outlines)",
        fontsize=11,
    )
    ax1.set_xlabel("longitude (°)")
    ax1.set_ylabel("latitude (°)")
    ax1.legend(loc="upper left", fontsize=8, ncol=6, bbox_to_anchor=(0.0, -0.2))
    ax1.set_aspect(1 / np.cos(np.radians(40)))

    values = np.asarray(tensor)
    h, w = values.shape[-2:]
    t = tensor.transform
    extent = (t.c / 1000, (t.c + w * t.a) / 1000, (t.f + h * t.e) / 1000, t.f / 1000)
    ax2 = fig.add_subplot(grid[1, 0])
    band = values[0].astype(float)
    band[values[0] == tensor.fill_value_default] = np.nan
    im = ax2.imshow(band, extent=extent, cmap="viridis")
    ax2.set_title(f"raster mosaic: {w}×{h} px @ {MOSAIC_RES:g} m, {MOSAIC_CRS}, merge='last'", fontsize=10)
    ax2.set_xlabel("easting (km)")
    ax2.set_ylabel("northing (km)")
    ax3 = fig.add_subplot(grid[1, 1])
    one = np.asarray(single)[0].astype(float)
    valid = np.asarray(single)[0] != single.fill_value_default
    one[~valid] = np.nan
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e0e0e0")
    vmin, vmax = im.get_clim()
    ax3.imshow(one, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax)
    from matplotlib.colors import ListedColormap

    classes = np.ma.masked_equal(extras.label_mask, 0)
    ax3.imshow(
        classes,
        extent=extent,
        cmap=ListedColormap(["white", "gold", "red"]),
        vmin=1,
        vmax=3,
        alpha=0.75,
        interpolation="nearest",
    )
    ax3.set_title(
        f"{SINGLE_START[:7]} only: {valid.mean():.1%} valid (grey: nodata hole);\n"
        f"vector labels rasterized: class 1/2/3 white/gold/red",
        fontsize=10,
    )
    ax3.set_xlabel("easting (km)")
    ax4 = fig.add_subplot(grid[1, 2])
    im4 = ax4.imshow(extras.cube_mean, extent=extent, cmap="inferno")
    ax4.set_title(f"xarray cube: t2m mean {QUERY_START[:7]}..{QUERY_END[:7]},\nsame grid", fontsize=10)
    ax4.set_xlabel("easting (km)")
    fig.colorbar(im4, ax=ax4, shrink=0.6, label="°C")
    fig.tight_layout()
    fig.savefig(path, dpi=95)
    plt.close(fig)


def run_extras(out: Path, catalog: Catalog, sl: GeoSlice, *, echo=print) -> Extras:
    """Steps 6–7: a NetCDF cube and a GeoJSON label file in catalogs of their own."""
    cube_file = synthetic_cube(out / "cube" / "t2m_2023.nc")
    label_file = synthetic_labels(out / "labels" / "fields_202305.geojson")
    cube = build_xarray_catalog(cube_file, out / "catalog_cube", progress=False)
    labels = build_vector_catalog(
        label_file, out / "catalog_labels", filename_regex=r"fields_(?P<date>\d{6})", progress=False
    )
    echo(f"6. xarray cube {cube_file.name}: {len(cube)} row (variable t2m, 365 daily steps, EPSG:4326)")
    ds = load_xarray(cube, sl)
    mean = ds["t2m"].mean("time").values
    echo(f"   load_xarray on the mosaic grid: {dict(ds.sizes)}, mean t2m {np.nanmean(mean):.1f} °C")
    pairs = catalog.intersect(labels)
    tiles = sorted(set(pairs.sql("SELECT left_tile FROM catalog")["left_tile"]))
    echo(
        f"7. vector labels {label_file.name}: {len(labels)} row (15 fields, May 2023); "
        f"imagery.intersect(labels) → {len(pairs)} pairs (tiles {', '.join(tiles)})"
    )
    may = dataclasses.replace(sl, start=SINGLE_START, end=SINGLE_END)
    mask = load_vector(labels, may, task="semantic_segmentation", label_field="class_id")
    counts = {int(k): int(v) for k, v in zip(*np.unique(np.asarray(mask), return_counts=True), strict=True)}
    echo(f"   load_vector(semantic_segmentation) on the mosaic grid: pixels per class {counts}")
    return Extras(cube, labels, mean, np.asarray(mask))


def run_band_files(out: Path, *, echo=print) -> int:
    """Step 8: a Sentinel-2-like archive with one file per band (``<scene>/B04.tif``): scenes from
    the folder names, a 10 m RGB + 20 m SWIR stack across the UTM 30/31 edge. Returns the pixels
    checked against the archive's encoding (each pixel tells its band)."""
    s2_dir, cat_dir = out / "s2_archive", out / "catalog_s2"
    files = synthetic_sentinel2_archive(s2_dir)
    s2 = build_raster_catalog(s2_dir, cat_dir, filename_regex=SENTINEL2_REGEX, progress=False)
    scenes = s2.sql("SELECT scene_id, count(*) AS n FROM catalog GROUP BY 1 ORDER BY 1")
    echo(f"8. band files: {len(files)} GeoTIFFs ({', '.join(f'{r.scene_id}: {r.n}' for r in scenes.itertuples())})")
    lon, lat = 0.0, 40.0  # the UTM 30/31 edge
    x, y = transformer(WGS84, "EPSG:32631").transform(lon, lat)
    x, y = round(x / 10) * 10, round(y / 10) * 10
    sl = GeoSlice((x - 300, y - 300, x + 300, y + 300), "EPSG:32631", 10.0, start="2023-06-15", end="2023-06-15")
    bands = ["B04", "B03", "B02", "B11"]
    stack = load_raster(s2, sl, bands=bands, merge="first")
    values = np.asarray(stack)
    valid = values != stack.fill_value_default
    ok = all(np.all(values[k][valid[k]] // 100_000_000 == band_number(b)) for k, b in enumerate(bands))
    echo(
        f"   load_raster(bands={bands}) on a 10 m EPSG:32631 grid across the zone edge: {values.shape}, "
        f"{valid.all(axis=0).mean():.0%} covered, every pixel from its own band: {ok}"
    )
    return int(valid.sum())


def run_demo(out_dir: str | Path, *, echo=print) -> DemoResult:
    """Run the demo into ``out_dir`` (archive, catalog and outputs are re-created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    archive_dir, catalog_dir = out / "archive", out / "catalog"
    for d in (
        archive_dir,
        catalog_dir,
        out / "cube",
        out / "labels",
        out / "catalog_cube",
        out / "catalog_labels",
        out / "s2_archive",
        out / "catalog_s2",
    ):
        if d.exists():
            shutil.rmtree(d)

    echo(f"1. writing the synthetic archive to {archive_dir}")
    files = synthetic_archive(archive_dir)
    echo(f"   {len(files)} GeoTIFFs: 6 tiles in UTM zones 29/30/31 × 8 dates (2022–2023), nodata holes")

    echo(f"2. building the catalog in {catalog_dir}")
    catalog = build_raster_catalog(archive_dir, catalog_dir, filename_regex=ARCHIVE_REGEX, progress=False)
    report = catalog.build_report
    assert report is not None  # a build's catalog carries its report
    echo(f"   {report.summary()}")
    echo(f"   parts: {[p.name for p in store.list_parts(catalog_dir)]}")
    echo("3. catalog summary")
    for line in summary(catalog).splitlines():
        echo("   " + line)

    echo(f"4. query: bbox {AOI_LONLAT} (lon/lat), {QUERY_START} .. {QUERY_END}")
    query = catalog.query(bbox=AOI_LONLAT, start=QUERY_START, end=QUERY_END)
    hits = query.to_geopandas().sort_values(["start_datetime", "tile"])
    for _, row in hits.iterrows():
        echo(f"   {row['tile']}  {row['start_datetime']:%Y-%m-%d}  {row['crs']}  {Path(row['filepath']).name}")

    sl = mosaic_slice()
    echo(f"5. mosaic on {sl.crs} at {sl.resolution[0]:g} m, {sl.shape[1]}×{sl.shape[0]} px, merge='last'")
    tensor = load_raster(catalog, sl, merge="last")
    valid = float(np.mean(np.asarray(tensor)[0] != tensor.fill_value_default))
    echo(f"   {tensor.shape} {np.asarray(tensor).dtype}, {valid:.1%} of pixels covered")
    single = load_raster(catalog, dataclasses.replace(sl, start=SINGLE_START, end=SINGLE_END))
    echo(
        f"   {SINGLE_START[:7]} alone covers {np.mean(np.asarray(single)[0] != 0):.1%} "
        "(cloud hole in S2_29TNE_20230515.tif); merge='last' fills it from August"
    )
    extras = run_extras(out, catalog, sl, echo=echo)
    run_band_files(out, echo=echo)
    mosaic_path, png_path = out / "mosaic.tif", out / "demo.png"
    save_cog(tensor, mosaic_path)
    render_png(catalog, query, tensor, single, extras, png_path)
    echo(f"9. wrote {mosaic_path} (COG) and {png_path}")
    echo(f"   DuckDB CLI: SELECT tile, count(*) FROM read_parquet('{catalog_dir}/*.parquet') GROUP BY tile;")
    return DemoResult(catalog_dir, mosaic_path, png_path, len(files), len(catalog), len(hits))
