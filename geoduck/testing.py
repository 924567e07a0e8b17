"""Synthetic archives for tests, benchmarks, the demo and users' own experiments.

Rasters here encode their own coordinates, so any mosaic or reprojection result can be checked
exactly: ``coordinate_raster`` stores each pixel centre's x/y (native CRS) or lon/lat in its bands,
and ``synthetic_archive`` paints a smooth function of lon/lat, seamless across UTM zones.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import rasterio
from rasterio.transform import Affine

from .errors import ArgumentError
from .geo import WGS84, norm_crs, transformer

if TYPE_CHECKING:
    import pyarrow as pa

ARCHIVE_REGEX = r"S2_(?P<tile>[0-9]{2}[A-Z]{3})_(?P<date>\d{8})\.tif$"
"""File name regex of :func:`synthetic_archive` files: ``S2_<tile>_<YYYYMMDD>.tif``."""


def write_raster(
    path: str | os.PathLike[str],
    values: np.ndarray,
    *,
    crs: str,
    transform: Affine,
    nodata: float | None = None,
    tiled: bool = True,
    blocksize: int = 256,
    descriptions: Sequence[str] | None = None,
) -> Path:
    """Write a (bands, h, w) or (h, w) array as a (tiled, deflate) GeoTIFF."""
    arr = values[None] if values.ndim == 2 else values
    profile = dict(
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        compress="deflate",
    )
    if tiled and arr.shape[1] >= blocksize and arr.shape[2] >= blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
    return path


def pixel_centres(transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """x and y (h, w) arrays of pixel centres of a grid."""
    h, w = shape
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    xs = transform.c + cols * transform.a + rows * transform.b
    ys = transform.f + cols * transform.d + rows * transform.e
    return xs, ys


def coordinate_raster(
    path: str | os.PathLike[str],
    *,
    crs: str,
    origin: tuple[float, float],
    res: float,
    shape: tuple[int, int],
    encode: Literal["native", "lonlat"] = "native",
    nodata: float | None = None,
    hole: tuple[slice, slice] | None = None,
    extra_band: float | None = None,
) -> Path:
    """A float64 GeoTIFF whose band 1/2 hold each pixel centre's x/y (``native``) or lon/lat.

    ``origin`` is the top-left corner (x, y); ``hole`` (row slice, col slice) is set to ``nodata``;
    ``extra_band`` adds a constant third band (e.g. a file tag to tell sources apart in a mosaic).
    """
    transform = Affine(res, 0.0, origin[0], 0.0, -res, origin[1])
    xs, ys = pixel_centres(transform, shape)
    if encode == "lonlat":
        xs, ys = transformer(norm_crs(crs), WGS84).transform(xs, ys)
    bands = [xs, ys] + ([np.full(shape, extra_band)] if extra_band is not None else [])
    values = np.stack(bands).astype("float64")
    if hole is not None:
        if nodata is None:
            raise ArgumentError("a hole needs a nodata value")
        values[(slice(None), *hole)] = nodata
    return write_raster(path, values, crs=crs, transform=transform, nodata=nodata)


def pattern(lon: np.ndarray, lat: np.ndarray, day_of_year: int = 180) -> np.ndarray:
    """A smooth, seasonal uint16 'landscape' in 1..10000 of lon/lat degrees (0 is nodata).

    Waves of 0.8°/0.6°/0.35° wavelength make any seam or misregistration in a mosaic visible.
    """
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    base = np.sin(lon * 2 * np.pi / 0.8) * np.cos(lat * 2 * np.pi / 0.6) + 0.5 * np.sin((lon + lat) * 2 * np.pi / 0.35)
    season = 0.75 + 0.25 * np.sin(2 * np.pi * (day_of_year - 80) / 365.0)
    return np.clip((base + 1.6) / 3.2 * 9000 * season + 500, 1, 10000).astype("uint16")


@dataclass(frozen=True)
class Tile:
    """A synthetic tile: a square of ``size`` pixels at ``res`` metres in a UTM zone, centred on
    ``centre_lonlat``; neighbours 1.5° apart overlap by ~16 km at the default 288 px × 500 m."""

    name: str
    epsg: int
    centre_lonlat: tuple[float, float]


DEMO_TILES: tuple[Tile, ...] = (
    Tile("29TNE", 32629, (-6.75, 40.0)),
    Tile("30TTK", 32630, (-5.25, 40.0)),
    Tile("30TVK", 32630, (-3.75, 40.0)),
    Tile("30TWK", 32630, (-2.25, 40.0)),
    Tile("30TYK", 32630, (-0.75, 40.0)),
    Tile("31TBE", 32631, (0.75, 40.0)),
)
"""Six tiles in a row along 40°N over UTM zones 29, 30 and 31 (edges at 6°W and 0°)."""


def tile_transform(tile: Tile, size: float, res: float) -> Affine:
    """Top-left-anchored transform of ``tile``, snapped to the ``res`` grid of its UTM zone."""
    x, y = transformer(WGS84, norm_crs(f"EPSG:{tile.epsg}")).transform(*tile.centre_lonlat)
    half = size * res / 2
    x0 = round((x - half) / res) * res
    y0 = round((y + half) / res) * res
    return Affine(res, 0.0, x0, 0.0, -res, y0)


def archive_dates(years: Sequence[int] = (2022, 2023), per_year: int = 4) -> list[dt.date]:
    """``per_year`` acquisition dates per year, evenly spread (the 15th of every 12/per_year months)."""
    step = 12 // per_year
    return [dt.date(y, m, 15) for y in years for m in range(2, 13, step)][: len(years) * per_year]


def synthetic_archive(
    out_dir: str | os.PathLike[str],
    *,
    tiles: Sequence[Tile] = DEMO_TILES,
    dates: Sequence[dt.date] | None = None,
    size: int = 288,
    res: float = 500.0,
    bands: int = 3,
    hole_every: int = 5,
    qa60: bool = False,
) -> list[Path]:
    """Write a Sentinel-2-like archive: one uint16 GeoTIFF per tile × date, nodata 0.

    Names are ``S2_<tile>_<YYYYMMDD>.tif`` (see :data:`ARCHIVE_REGEX`); each tile is acquired
    ``tile index`` days after the nominal date (different orbits). Band ``b`` holds
    ``pattern(lon, lat, doy) // (b + 1)``; every ``hole_every``-th file has a nodata 'cloud' hole.
    The default (6 tiles × 8 dates) gives 48 files in 3 UTM zones over two years.

    With ``qa60``, each file gets clouds and a last band ``"QA60"`` (Sentinel-2 L1C style, under
    the file's nodata 0, so a clear 0 *is* the nodata value): :func:`qa60_band` sets bit 10 over
    an opaque cloud, bit 11 over a cirrus stripe and bit 5 (which no cloud test uses) over a
    third area; the data bands hold a bright 10000 under both kinds of cloud.
    """
    dates = list(dates) if dates is not None else archive_dates()
    out = Path(out_dir)
    paths: list[Path] = []
    k = 0
    for ti, tile in enumerate(tiles):
        transform = tile_transform(tile, size, res)
        xs, ys = pixel_centres(transform, (size, size))
        lon, lat = transformer(norm_crs(f"EPSG:{tile.epsg}"), WGS84).transform(xs, ys)
        for d in dates:
            acquired = d + dt.timedelta(days=ti)
            base = pattern(lon, lat, acquired.timetuple().tm_yday)
            values = np.stack([base // (b + 1) for b in range(bands)]).astype("uint16")
            values[values == 0] = 1
            hole = np.zeros((size, size), dtype=bool)
            if hole_every and k % hole_every == 0:
                rr, cc = np.ogrid[:size, :size]
                hole = (rr - size * 0.4) ** 2 + (cc - size * 0.6) ** 2 < (size * 0.22) ** 2
                values[:, hole] = 0
            names = [f"B{b + 2:02d}" for b in range(bands)]
            if qa60:
                qa = qa60_band(size, k)
                qa[hole] = 0
                values[:, (qa & QA60_CLOUD_BITS) != 0] = 10000
                values = np.concatenate([values, qa[None]])
                names.append("QA60")
            name = f"S2_{tile.name}_{acquired:%Y%m%d}.tif"
            paths.append(
                write_raster(
                    out / tile.name / name,
                    values,
                    crs=f"EPSG:{tile.epsg}",
                    transform=transform,
                    nodata=0,
                    descriptions=names,
                )
            )
            k += 1
    return paths


QA60_CLOUD_BITS = (1 << 10) | (1 << 11)
"""QA60 bits of opaque clouds (10) and cirrus (11)."""


def _disc(size: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    rr, cc = np.ogrid[: size[0], : size[1]]
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 < radius**2


def qa60_band(size: int, seed: int) -> np.ndarray:
    """A (size, size) uint16 QA60 band: 0 (clear) except an opaque-cloud disc (bit 10), a cirrus
    stripe (bit 11) and a disc with bit 5 only (not a cloud bit), placed by ``seed``."""
    rng = np.random.default_rng(seed)
    qa = np.zeros((size, size), dtype="uint16")
    cy, cx = rng.uniform(0.15, 0.85, 2) * size
    qa[_disc((size, size), (cy, cx), size * 0.18)] |= 1 << 10
    r0 = int(rng.uniform(0.0, 0.85) * size)
    qa[r0 : r0 + max(1, size // 10)] |= 1 << 11
    oy, ox = rng.uniform(0.15, 0.85, 2) * size
    qa[_disc((size, size), (oy, ox), size * 0.12)] |= 1 << 5
    return qa


# -- band-file archives: one file per band, real product file names ----------------------------------

LANDSAT_REGEX = (
    r"(?P<sensor>L[COTE]0\d)_L2SP_(?P<wrs>\d{6})_(?P<date>\d{8})_\d{8}_\d{2}_T[12]_"
    r"(?P<band>(?:SR|ST)_B\d+|QA_PIXEL)\.TIF$"
)
"""Regex of :func:`synthetic_landsat_archive` files (Landsat Collection 2 Level-2 names, e.g.
``LC08_L2SP_199032_20230615_20230622_02_T1_SR_B4.TIF``): groups sensor, wrs (path/row), date, band."""

SENTINEL2_REGEX = (
    r"(?P<sensor>S2[AB])_(?P<tile>\d{2}[A-Z]{3})_(?P<date>\d{8})_\d+_L2A/"
    r"(?P<band>B\d[\dA]|SCL)\.tif$"
)
"""Regex of :func:`synthetic_sentinel2_archive` files (``S2B_30TYK_20230615_0_L2A/B04.tif``, the
layout of the Sentinel-2 L2A COGs on AWS): it contains ``/``, so it is matched against paths
relative to the scanned folder. Groups sensor, tile, date, band."""

BAND_NODATA = 0
"""Nodata of the band-file archives (:func:`band_value` never produces it)."""


def band_value(x: np.ndarray, y: np.ndarray, band: int) -> np.ndarray:
    """The uint32 value of band number ``band`` at native pixel centres ``x``, ``y`` (metres):
    ``band·10^8 + (⌊x/10⌋ mod 10^4)·10^4 + ⌊y/10⌋ mod 10^4``, so a pixel tells which band it
    comes from and where its centre is (to 10 m), and any stacking or resampling is checkable."""
    xi = np.floor(np.asarray(x, float) / 10.0).astype(np.int64) % 10_000
    yi = np.floor(np.asarray(y, float) / 10.0).astype(np.int64) % 10_000
    return (band * 100_000_000 + xi * 10_000 + yi).astype("uint32")


def band_number(name: str) -> int:
    """The number in a band name: ``"SR_B4"`` → 4, ``"B08"`` → 8, ``"B8A"`` → 8."""
    digits = "".join(ch for ch in name.rsplit("B", 1)[-1] if ch.isdigit())
    return int(digits)


BAND_TILES: tuple[Tile, ...] = (
    Tile("30TYK", 32630, (-0.004, 40.0)),
    Tile("31TBE", 32631, (0.004, 40.0)),
)
"""Two small tiles either side of the UTM 30/31 zone edge (0°E) that overlap across it."""


def _band_file(
    path: Path,
    tile: Tile,
    origin: tuple[float, float],
    res: float,
    size: int,
    name: str,
    hole: tuple[slice, slice] | None = None,
) -> Path:
    transform = Affine(res, 0.0, origin[0], 0.0, -res, origin[1])
    xs, ys = pixel_centres(transform, (size, size))
    values = band_value(xs, ys, band_number(name))
    if hole is not None:
        values[hole] = BAND_NODATA
    return write_raster(path, values, crs=f"EPSG:{tile.epsg}", transform=transform, nodata=BAND_NODATA)


def synthetic_sentinel2_archive(
    out_dir: str | os.PathLike[str],
    *,
    tiles: Sequence[Tile] = BAND_TILES,
    dates: Sequence[dt.date] = (dt.date(2023, 6, 15), dt.date(2023, 6, 20)),
    size: int = 120,
    bands_10m: Sequence[str] = ("B02", "B03", "B04", "B08"),
    bands_20m: Sequence[str] = ("B05", "B11"),
    hole: dict[str, tuple[slice, slice]] | None = None,
    scl: bool = False,
) -> list[Path]:
    """Write a Sentinel-2-L2A-like archive, one uint32 COG-style GeoTIFF per band:
    ``<out>/<tile[:2]>/<tile[2]>/<tile[3:]>/S2{B,A}_<tile>_<YYYYMMDD>_0_L2A/<band>.tif``
    (:data:`SENTINEL2_REGEX`). Each tile × date is a scene; ``bands_10m`` are ``size`` px at
    10 m, ``bands_20m`` ``size/2`` px at 20 m over the same extent (origins on the 20 m grid);
    values are :func:`band_value`, nodata 0. ``hole`` maps ``"<scene folder>/<band>"`` to a
    (rows, cols) block set to nodata. Default: 2 tiles in UTM zones 30/31 × 2 dates = 4 scenes.
    With ``scl``, each scene also gets ``SCL.tif``, a 20 m uint8 scene classification
    (:func:`scl_band`, nodata 0).
    """
    out = Path(out_dir)
    paths: list[Path] = []
    for k, d in enumerate(dates):
        sensor = "S2B" if k % 2 == 0 else "S2A"
        for tile in tiles:
            t = tile_transform(tile, size / 2, 20.0)  # the 10 m extent, on the 20 m grid
            origin = (t.c, t.f)
            folder = f"{sensor}_{tile.name}_{d:%Y%m%d}_0_L2A"
            base = out / tile.name[:2] / tile.name[2] / tile.name[3:] / folder
            for res, names in ((10.0, bands_10m), (20.0, bands_20m)):
                for name in names:
                    paths.append(
                        _band_file(
                            base / f"{name}.tif",
                            tile,
                            origin,
                            res,
                            int(size * 10 / res),
                            name,
                            (hole or {}).get(f"{folder}/{name}"),
                        )
                    )
            if scl:
                n = size // 2
                transform = Affine(20.0, 0.0, origin[0], 0.0, -20.0, origin[1])
                classes = scl_band(n, seed=len(paths))
                paths.append(
                    write_raster(base / "SCL.tif", classes, crs=f"EPSG:{tile.epsg}", transform=transform, nodata=0)
                )
    return paths


SCL_CLOUDS = (3, 8, 9, 10)
"""Sentinel-2 L2A scene classes to reject: cloud shadow, cloud medium/high probability, thin cirrus."""


def scl_band(size: int, seed: int) -> np.ndarray:
    """A (size, size) uint8 Sentinel-2 SCL band: vegetation (4) and bare soil (5) halves, a cloud
    (9, high-probability core inside an 8 ring), its shadow (3) and a thin-cirrus (10) stripe,
    placed by ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.full((size, size), 4, dtype="uint8")
    out[:, size // 2 :] = 5
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    out[_disc((size, size), (cy, cx), size * 0.2)] = 8
    out[_disc((size, size), (cy, cx), size * 0.1)] = 9
    out[_disc((size, size), (cy + size * 0.15, cx - size * 0.15), size * 0.1) & (out < 8)] = 3
    r0 = int(rng.uniform(0.0, 0.9) * size)
    out[r0 : r0 + max(1, size // 12)] = 10
    return out


LANDSAT_SCENES: tuple[tuple[str, Tile], ...] = (("199032", BAND_TILES[0]), ("198032", BAND_TILES[1]))
"""(WRS-2 path/row, tile) of :func:`synthetic_landsat_archive` scenes."""


def synthetic_landsat_archive(
    out_dir: str | os.PathLike[str],
    *,
    scenes: Sequence[tuple[str, Tile]] = LANDSAT_SCENES,
    dates: Sequence[dt.date] = (dt.date(2023, 6, 15), dt.date(2023, 6, 23)),
    size: int = 40,
    bands: Sequence[str] = ("SR_B2", "SR_B3", "SR_B4", "SR_B5"),
    qa_pixel: bool = False,
) -> list[Path]:
    """Write a Landsat-Collection-2-Level-2-like archive, one uint32 GeoTIFF per band at 30 m
    (``size`` px): ``<out>/<product id>/<product id>_<band>.TIF`` with product ids such as
    ``LC08_L2SP_199032_20230615_20230622_02_T1`` (:data:`LANDSAT_REGEX`; processed 7 days after
    acquisition; LC08 and LC09 alternate by date). Values are :func:`band_value`, nodata 0.
    Default: 2 path/rows in UTM zones 30/31 × 2 dates = 4 scenes of 4 bands. With ``qa_pixel``,
    each scene also gets ``<product id>_QA_PIXEL.TIF`` (:func:`qa_pixel_band`, uint16, nodata 1 =
    fill, as Collection 2)."""
    out = Path(out_dir)
    paths: list[Path] = []
    for k, d in enumerate(dates):
        sensor = "LC08" if k % 2 == 0 else "LC09"
        for wrs, tile in scenes:
            t = tile_transform(tile, size, 30.0)
            origin = (t.c, t.f)
            product = f"{sensor}_L2SP_{wrs}_{d:%Y%m%d}_{d + dt.timedelta(days=7):%Y%m%d}_02_T1"
            for name in bands:
                paths.append(_band_file(out / product / f"{product}_{name}.TIF", tile, origin, 30.0, size, name))
            if qa_pixel:
                transform = Affine(30.0, 0.0, origin[0], 0.0, -30.0, origin[1])
                qa = qa_pixel_band(size, seed=len(paths))
                path = out / product / f"{product}_QA_PIXEL.TIF"
                paths.append(write_raster(path, qa, crs=f"EPSG:{tile.epsg}", transform=transform, nodata=1))
    return paths


QA_PIXEL_CLEAR, QA_PIXEL_CLOUD, QA_PIXEL_SHADOW, QA_PIXEL_SNOW = 21824, 22280, 23888, 30048
"""Landsat Collection 2 QA_PIXEL values: clear land (bit 6), high-confidence cloud (bits 1, 3),
cloud shadow (bit 4), snow (bit 5); fill is 1 (bit 0)."""


def qa_pixel_band(size: int, seed: int) -> np.ndarray:
    """A (size, size) uint16 Landsat QA_PIXEL band: clear land, a cloud disc, its shadow, a snow
    patch and a fill (1) corner, placed by ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.full((size, size), QA_PIXEL_CLEAR, dtype="uint16")
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    out[_disc((size, size), (cy, cx + size * 0.12), size * 0.15)] = QA_PIXEL_SHADOW
    out[_disc((size, size), (cy, cx), size * 0.15)] = QA_PIXEL_CLOUD
    sy, sx = rng.uniform(0.1, 0.9, 2) * size
    out[_disc((size, size), (sy, sx), size * 0.08)] = QA_PIXEL_SNOW
    out[: size // 8, : size // 8] = 1
    return out


def synthetic_catalog_table(
    n_tiles: int,
    n_dates: int,
    *,
    tile_deg: float = 0.1,
    origin: tuple[float, float] = (-10.0, 35.0),
    overlap: float = 0.0,
    start: str = "2020-01-01",
    step_days: int = 1,
    length_days: int = 1,
    static: bool = False,
    seed: int | None = None,
    extra: dict[str, str] | None = None,
    prefix: str = "synthetic",
) -> pa.Table:
    """A schema-v1 raster catalog table of ``n_tiles`` square tiles × ``n_dates`` intervals.

    Tiles are ``tile_deg`` lon/lat squares on a near-square grid from ``origin`` (grown by
    ``overlap`` degrees on each side so neighbours overlap); interval ``k`` covers
    ``[start + k·step_days, start + k·step_days + length_days − 1 µs]`` (all static if ``static``).
    ``seed`` jitters the tile positions. No image files exist behind these rows: they are for
    query/intersect benchmarks and tests; paths (hence ids) are ``/<prefix>/<tile>_<date>.tif``.
    Columns ``tile`` and ``extra`` keys are string columns.
    """
    import pandas as pd
    import pyarrow as pa
    import shapely

    from . import schema
    from .builders.common import item_id

    cols = int(np.ceil(np.sqrt(n_tiles)))
    idx = np.arange(n_tiles)
    x0 = origin[0] + (idx % cols) * tile_deg - overlap
    y0 = origin[1] + (idx // cols) * tile_deg - overlap
    if seed is not None:
        rng = np.random.default_rng(seed)
        x0 = x0 + rng.uniform(-tile_deg / 2, tile_deg / 2, n_tiles)
        y0 = y0 + rng.uniform(-tile_deg / 2, tile_deg / 2, n_tiles)
    size = tile_deg + 2 * overlap
    x1, y1 = x0 + size, y0 + size
    n = n_tiles * n_dates
    tile_of = np.tile(idx, n_dates)
    date_of = np.repeat(np.arange(n_dates), n_tiles)
    geoms = shapely.box(x0[tile_of], y0[tile_of], x1[tile_of], y1[tile_of])
    t0 = pd.Timestamp(start, tz="UTC").as_unit("us")
    starts = t0 + pd.to_timedelta(date_of * step_days, unit="D")
    ends = starts + pd.Timedelta(days=length_days) - pd.Timedelta(microseconds=1)
    names = np.array([f"T{i:06d}" for i in range(n_tiles)])[tile_of]
    paths = [f"/{prefix}/{names[i]}_{date_of[i]:05d}.tif" for i in range(n)]
    box = lambda a, b, c, d: pa.StructArray.from_arrays(  # noqa: E731
        [pa.array(a), pa.array(b), pa.array(c), pa.array(d)], names=list(schema.BBOX_KEYS)
    )
    ts = pa.array(starts, type=schema.TIMESTAMP) if not static else pa.nulls(n, schema.TIMESTAMP)
    te = pa.array(ends, type=schema.TIMESTAMP) if not static else pa.nulls(n, schema.TIMESTAMP)
    data = {
        schema.ID: pa.array([item_id("raster", p) for p in paths]),
        schema.FILEPATH: pa.array(paths),
        schema.BACKEND: pa.array(["raster"] * n),
        schema.GEOMETRY: pa.array(shapely.to_wkb(geoms), pa.binary()),
        schema.BBOX: box(x0[tile_of], y0[tile_of], x1[tile_of], y1[tile_of]),
        schema.START: ts,
        schema.END: te,
        schema.CRS: pa.array(["EPSG:4326"] * n),
        schema.NATIVE_BOUNDS: box(x0[tile_of], y0[tile_of], x1[tile_of], y1[tile_of]),
        schema.VERSION: pa.array(np.ones(n, dtype="int32")),
        "width": pa.array(np.full(n, 256)),
        "height": pa.array(np.full(n, 256)),
        "count": pa.array(np.ones(n, dtype="int32")),
        "dtype": pa.array(["uint16"] * n),
        "nodata": pa.nulls(n, pa.float64()),
        "res_x": pa.array(np.full(n, size / 256)),
        "res_y": pa.array(np.full(n, size / 256)),
        "transform": pa.nulls(n, pa.list_(pa.float64())),
        "tile": pa.array(names),
        **{k: pa.array([v] * n) for k, v in (extra or {}).items()},
        schema.FILE_SIZE: pa.nulls(n, pa.int64()),
        schema.FILE_MTIME: pa.nulls(n, schema.TIMESTAMP),
    }
    arrow_schema = schema.catalog_schema("raster", ["tile", *(extra or {})])
    return pa.Table.from_pydict(data, schema=arrow_schema)


def write_synthetic_catalog(
    out_dir: str | os.PathLike[str], n_tiles: int, n_dates: int, *, part_rows: int = 1_000_000, **kwargs
) -> Path:
    """Write :func:`synthetic_catalog_table` rows (date-major) as catalog parts: each run of
    ``part_rows`` rows, like one append, is written with :func:`geoduck.store.write_parts` (sorted
    together, cut into parts of at most :data:`~geoduck.store.MAX_PART_ROWS` rows)."""
    from . import store

    table = synthetic_catalog_table(n_tiles, n_dates, **kwargs)
    for offset in range(0, table.num_rows, part_rows):
        store.write_parts(table.slice(offset, part_rows), out_dir)
    return Path(out_dir)


def synthetic_cube(
    path: str | os.PathLike[str],
    *,
    bounds: tuple[float, float, float, float] = (-8.0, 39.0, 2.0, 41.5),
    res: float = 0.25,
    start: str = "2023-01-01",
    days: int = 365,
    variable: str = "t2m",
) -> Path:
    """A CF NetCDF cube on a lon/lat grid (EPSG:4326 by CF convention), daily steps from ``start``.

    ``t2m`` (°C) = a seasonal cycle + a smooth function of lon/lat, so loads can be checked.
    """
    import pandas as pd
    import xarray as xr

    lon = np.arange(bounds[0] + res / 2, bounds[2], res)
    lat = np.arange(bounds[3] - res / 2, bounds[1], -res)  # descending, as most reanalyses
    time = pd.date_range(start, periods=days, freq="D")
    doy = time.dayofyear.to_numpy()[:, None, None]
    field = (
        15.0
        - 10.0 * np.cos(2 * np.pi * (doy - 20) / 365.0)
        + 3.0 * np.sin(np.radians(lon)[None, None, :] * 30)
        - 0.8 * (lat[None, :, None] - 40.0)
    )
    ds = xr.Dataset(
        {
            variable: (
                ("time", "lat", "lon"),
                field.astype("float32"),
                {"units": "degC", "long_name": "2 m temperature"},
            )
        },
        coords={
            "time": time,
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="netcdf4", encoding={variable: {"_FillValue": -9999.0}})
    return path


def synthetic_labels(
    path: str | os.PathLike[str],
    *,
    crs: str = "EPSG:32630",
    origin: tuple[float, float] = (230_000.0, 4_390_000.0),
    size: float = 12_000.0,
    grid: tuple[int, int] = (3, 5),
    gap: float = 4_000.0,
) -> Path:
    """A GeoJSON of square 'field' polygons (laid out in ``crs``, stored as lon/lat per RFC 7946)
    with an integer ``class_id`` in 1..3 and a ``field_id``."""
    import geopandas as gpd
    from shapely.geometry import box as shapely_box

    rows, cols = grid
    geoms, classes = [], []
    for r in range(rows):
        for c in range(cols):
            x0 = origin[0] + c * (size + gap)
            y0 = origin[1] + r * (size + gap)
            geoms.append(shapely_box(x0, y0, x0 + size, y0 + size))
            classes.append(1 + (r * cols + c) % 3)
    gdf = gpd.GeoDataFrame({"class_id": classes, "field_id": range(len(geoms))}, geometry=geoms, crs=crs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
    return path
