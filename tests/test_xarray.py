"""xarray backend: NetCDF (netcdf4, h5netcdf) and Zarr (v2, v3) cubes whose values encode their own
coordinates (``value = lon * 1000 + lat``, or ``x``/``y`` in projected cubes), so every load is
checked by value at the slice's pixel centres: exactly with nearest resampling; with bilinear (on
grids no coarser than the source: GDAL widens the kernel when downsampling) exactly where the value
is linear in the source grid, or within GDAL's approximate-transformer error (0.125 source pixel)
across CRSs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
import xarray as xr
from click.testing import CliRunner

import geoduck
from geoduck import GeoSlice, build_xarray_catalog, load_xarray
from geoduck.builders.common import resolve_paths
from geoduck.cli import main
from geoduck.errors import BuildError, CRSError, NoDataError

UTC = dt.UTC
DAY = pd.Timestamp("2020-01-01")


def day(n: int) -> pd.Timestamp:
    """Midnight of 2020-01-<n> (n may exceed 31)."""
    return DAY + pd.Timedelta(days=n - 1)


def lonlat_cube(
    lons: np.ndarray, lats: np.ndarray, days: list[int] | None = None, *, tag: float = 0.0, name: str = "v"
) -> xr.Dataset:
    """CF lon/lat cube: ``value = tag * 1e7 + lon * 1000 + lat`` (+ ``day * 1e5`` with times)."""
    plane = lons[None, :] * 1000.0 + lats[:, None] + tag * 1e7
    coords = {
        "lat": ("lat", lats, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", lons, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    if days is None:
        return xr.Dataset({name: (("lat", "lon"), plane)}, coords=coords)
    cube = np.stack([plane + d * 1e5 for d in days])
    return xr.Dataset({name: (("time", "lat", "lon"), cube)}, coords={**coords, "time": [day(d) for d in days]})


def utm_cube(*, grid_mapping: bool = True) -> xr.Dataset:
    """10 × 10 cells of 100 m in UTM 31N (EPSG:32631), north-up; ``east``/``north`` = x/y centres."""
    x = 500_050.0 + 100.0 * np.arange(10)
    y = 4_600_950.0 - 100.0 * np.arange(10)
    xx, yy = np.meshgrid(x, y)
    attrs = {"grid_mapping": "crs"} if grid_mapping else {}
    ds = xr.Dataset(
        {"east": (("y", "x"), xx, attrs), "north": (("y", "x"), yy, attrs)},
        coords={
            "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"}),
            "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
        },
    )
    if grid_mapping:
        ds["crs"] = xr.DataArray(0, attrs=pyproj.CRS.from_epsg(32631).to_cf())
    return ds


def write(ds: xr.Dataset, path: Path, kind: str = "netcdf4") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in ("zarr2", "zarr3"):
        ds.to_zarr(path, zarr_format=int(kind[-1]), consolidated=kind == "zarr2", mode="w")
    else:
        ds.to_netcdf(path, engine=kind)
    return path


def rows_of(cat: geoduck.Catalog) -> list[dict]:
    return sorted(cat, key=lambda r: (r["filepath"], r["variable"]))


def nearest(centres: np.ndarray, values: np.ndarray, period: float | None = None) -> np.ndarray:
    """The centre nearest each value (distance modulo ``period`` for longitudes)."""
    d = centres[None, :] - values[:, None]
    if period is not None:
        d = (d + period / 2) % period - period / 2
    return centres[np.abs(d).argmin(axis=1)]


def utc(ts: pd.Timestamp) -> dt.datetime:
    return ts.to_pydatetime().replace(tzinfo=UTC)


LONS = 10.25 + 0.5 * np.arange(16)  # edges 10 .. 18
LATS = 47.75 - 0.5 * np.arange(16)  # descending, edges 40 .. 48


# -- engines, footprints, values ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["netcdf4", "h5netcdf", "zarr2", "zarr3"])
def test_engines_build_and_load_exact(tmp_path, kind):
    suffix = ".zarr" if kind.startswith("zarr") else ".nc"
    path = write(lonlat_cube(LONS, LATS, [1, 2, 3]), tmp_path / "in" / f"cube{suffix}", kind)
    engine = "h5netcdf" if kind == "h5netcdf" else None
    cat = build_xarray_catalog(tmp_path / "in", tmp_path / "cat", engine=engine, progress=False)

    (row,) = rows_of(cat)
    assert row["filepath"] == str(path) and row["backend"] == "xarray"
    assert row["engine"] == {"netcdf4": "netcdf4", "h5netcdf": "h5netcdf"}.get(kind, "zarr")
    assert (row["variable"], row["time_var"], row["n_timesteps"]) == ("v", "time", 3)
    assert row["crs"] == "EPSG:4326"  # CF lon/lat coordinates without a grid mapping
    # footprint from cell edges: centres ± half a cell
    assert row["native_bounds"] == {"xmin": 10.0, "ymin": 40.0, "xmax": 18.0, "ymax": 48.0}
    assert row["bbox"] == pytest.approx({"xmin": 10.0, "ymin": 40.0, "xmax": 18.0, "ymax": 48.0})
    assert (row["start_datetime"], row["end_datetime"]) == (utc(day(1)), utc(day(3)))
    assert row["file_size"] is not None and row["file_mtime"] is not None

    sl = GeoSlice((11.1, 41.1, 16.1, 46.1), "EPSG:4326", 0.3, start="2020-01-02", end="2020-01-03")
    ds = load_xarray(cat, sl, resampling="nearest")
    assert ds["v"].dims == ("time", "y", "x") and ds["v"].shape == (2, *sl.shape)
    assert list(ds["time"].values) == [np.datetime64("2020-01-02"), np.datetime64("2020-01-03")]
    x, y = ds["x"].values, ds["y"].values
    assert x[0] == pytest.approx(11.25) and y[0] == pytest.approx(45.95)  # pixel centres
    expected = nearest(LONS, x)[None, :] * 1000 + nearest(LATS, y)[:, None]
    np.testing.assert_array_equal(ds["v"].values[0], expected + 2e5)
    np.testing.assert_array_equal(ds["v"].values[1], expected + 3e5)
    # bilinear on a linear field, same CRS (affine pixel mapping): exact up to rounding
    bil = load_xarray(cat, sl)["v"].values[0]
    np.testing.assert_allclose(bil, x[None, :] * 1000 + y[:, None] + 2e5, rtol=0, atol=1e-6)


def test_descending_and_ascending_latitude_agree(tmp_path):
    write(lonlat_cube(LONS, LATS), tmp_path / "desc" / "d.nc")
    write(lonlat_cube(LONS, LATS[::-1]), tmp_path / "asc" / "a.nc")
    cats = [build_xarray_catalog(tmp_path / d, tmp_path / f"cat_{d}", progress=False) for d in ("desc", "asc")]
    assert [rows_of(c)[0]["native_bounds"] for c in cats] == [
        {"xmin": 10.0, "ymin": 40.0, "xmax": 18.0, "ymax": 48.0}
    ] * 2
    sl = GeoSlice((10.65, 40.35, 17.25, 47.65), "EPSG:4326", 0.4)  # no centre on a cell edge
    desc, asc = (load_xarray(c, sl, resampling="nearest")["v"].values for c in cats)
    np.testing.assert_array_equal(desc, asc)
    x, y = 10.65 + 0.4 * (np.arange(sl.width) + 0.5), 47.65 - 0.4 * (np.arange(sl.height) + 0.5)
    np.testing.assert_array_equal(desc, nearest(LONS, x)[None, :] * 1000 + nearest(LATS, y)[:, None])


def test_global_0_360_grid(tmp_path):
    lons, lats = 5.0 + 10.0 * np.arange(36), -85.0 + 10.0 * np.arange(18)  # 0..360, ascending lat
    write(lonlat_cube(lons, lats), tmp_path / "global.nc")
    cat = build_xarray_catalog(tmp_path / "global.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)
    assert row["native_bounds"] == {"xmin": 0.0, "ymin": -90.0, "xmax": 360.0, "ymax": 90.0}
    assert row["bbox"] == {"xmin": -180.0, "ymin": -90.0, "xmax": 180.0, "ymax": 90.0}
    assert row["geometry"].area == pytest.approx(360 * 180)
    assert len(cat.query(bbox=(-10, 0, -5, 5))) == 1 and len(cat.query(bbox=(170, -80, 190, -70))) == 1

    # across the 0/360 seam: x < 0 reads the 350..360 cells, x > 0 the 0..10 ones
    sl = GeoSlice((-29.0, -19.0, 31.0, 21.0), "EPSG:4326", 3.0)
    v = load_xarray(cat, sl, resampling="nearest")["v"].values
    x, y = -29.0 + 3.0 * (np.arange(sl.width) + 0.5), 21.0 - 3.0 * (np.arange(sl.height) + 0.5)
    expected = nearest(lons, x, period=360.0)[None, :] * 1000 + nearest(lats, y)[:, None]
    np.testing.assert_array_equal(v, expected)
    assert expected[0, 9] == 355_000 + 15 and expected[0, 10] == 5_000 + 15  # x = -0.5 and 2.5


def test_regional_350_370_grid(tmp_path):
    lons, lats = 350.5 + np.arange(20), 49.5 - np.arange(10)  # crosses 360 (= 0°E)
    write(lonlat_cube(lons, lats), tmp_path / "regional.nc")
    cat = build_xarray_catalog(tmp_path / "regional.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)
    assert row["native_bounds"] == {"xmin": 350.0, "ymin": 40.0, "xmax": 370.0, "ymax": 50.0}
    assert row["bbox"] == pytest.approx({"xmin": -10.0, "ymin": 40.0, "xmax": 10.0, "ymax": 50.0})
    assert row["geometry"].geom_type == "Polygon" and row["geometry"].area == pytest.approx(200)
    assert len(cat.query(bbox=(5, 42, 6, 43))) == 1
    assert len(cat.query(bbox=(-6, 42, -5, 43))) == 1
    assert len(cat.query(bbox=(20, 42, 21, 43))) == 0

    sl = GeoSlice((-4.8, 41.2, 4.2, 48.4), "EPSG:4326", 0.6)
    x, y = -4.8 + 0.6 * (np.arange(sl.width) + 0.5), 48.4 - 0.6 * (np.arange(sl.height) + 0.5)
    v = load_xarray(cat, sl, resampling="nearest")["v"].values
    np.testing.assert_array_equal(v, nearest(lons, x + 360.0)[None, :] * 1000 + nearest(lats, y)[:, None])
    bil = load_xarray(cat, sl, resampling="bilinear")["v"].values  # linear in the 350..370 frame
    np.testing.assert_allclose(bil, (x[None, :] + 360.0) * 1000 + y[:, None], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("crs", "bounds", "res"),
    [
        ("EPSG:4326", (170, -10, 190, 10), 0.7),  # lon/lat slice drawn past 180
        ("EPSG:32660", (700_000, -300_000, 1_100_000, 300_000), 20_000),  # UTM 60N across ±180°
    ],
)
def test_slices_across_the_antimeridian(tmp_path, crs, bounds, res):
    lons, lats = -179.5 + np.arange(360.0), -89.5 + np.arange(180.0)  # a -180..180 global grid
    write(lonlat_cube(lons, lats), tmp_path / "g.nc")
    cat = build_xarray_catalog(tmp_path / "g.nc", tmp_path / "cat", progress=False)
    out = load_xarray(cat, GeoSlice(bounds, crs, res), resampling="nearest")
    xx, yy = np.meshgrid(out["x"].values, out["y"].values)
    lon, lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(xx, yy)
    lon = (lon + 180.0) % 360.0 - 180.0
    assert lon.min() < -179 and lon.max() > 179  # both sides of the antimeridian
    expected = (nearest(lons, lon.ravel(), 360.0) * 1000 + nearest(lats, lat.ravel())).reshape(lon.shape)
    # away from cell edges (GDAL's approximate transformer may move a point by 0.125 source cell)
    clear = (np.abs((lon % 1.0) - 0.5) < 0.3) & (np.abs((lat % 1.0) - 0.5) < 0.3)
    assert clear.mean() > 0.3
    np.testing.assert_array_equal(out["v"].values[clear], expected[clear])


def test_projected_cube_with_grid_mapping(tmp_path):
    write(utm_cube(), tmp_path / "utm.nc")
    cat = build_xarray_catalog(tmp_path / "utm.nc", tmp_path / "cat", progress=False)
    rows = rows_of(cat)
    assert [r["variable"] for r in rows] == ["east", "north"]
    assert len({r["id"] for r in rows}) == 2
    for r in rows:
        assert r["crs"] == "EPSG:32631"
        assert r["native_bounds"] == {"xmin": 500_000.0, "ymin": 4_600_000.0, "xmax": 501_000.0, "ymax": 4_601_000.0}
        assert r["start_datetime"] is None and r["end_datetime"] is None and r["n_timesteps"] is None
    to_lonlat = pyproj.Transformer.from_crs(32631, 4326, always_xy=True)
    lon, lat = to_lonlat.transform([500_000, 501_000, 500_000, 501_000], [4_600_000, 4_600_000, 4_601_000, 4_601_000])
    assert rows[0]["geometry"].buffer(1e-9).contains(shapely.multipoints(np.column_stack([lon, lat])))

    # same CRS, other resolution and origin: nearest exact; bilinear (finer grid) exact on a linear field
    sl = GeoSlice((500_120, 4_600_130, 500_870, 4_600_880), "EPSG:32631", 150)
    x, y = 500_195.0 + 150 * np.arange(5), 4_600_805.0 - 150 * np.arange(5)
    ds = load_xarray(cat, sl, resampling="nearest")
    np.testing.assert_array_equal(
        ds["east"].values, np.broadcast_to(nearest(500_050.0 + 100 * np.arange(10), x), (5, 5))
    )
    np.testing.assert_array_equal(ds["north"].values[:, 0], nearest(4_600_050.0 + 100 * np.arange(10), y))
    fine = GeoSlice((500_120, 4_600_130, 500_870, 4_600_880), "EPSG:32631", 75)
    bil = load_xarray(cat, fine)
    x, y = 500_157.5 + 75 * np.arange(10), 4_600_842.5 - 75 * np.arange(10)
    np.testing.assert_allclose(bil["east"].values, np.broadcast_to(x, (10, 10)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(bil["north"].values[:, 2], y, rtol=0, atol=1e-6)

    # into lon/lat: bilinear within GDAL's approximate-transform error (0.125 source px = 12.5 m)
    clon, clat = to_lonlat.transform(500_500, 4_600_500)
    geo = GeoSlice((clon - 0.004, clat - 0.003, clon + 0.004, clat + 0.003), "EPSG:4326", 0.0005)
    out = load_xarray(cat, geo)
    lons, lats = np.meshgrid(out["x"].values, out["y"].values)
    ex, ny = pyproj.Transformer.from_crs(4326, 32631, always_xy=True).transform(lons, lats)
    np.testing.assert_allclose(out["east"].values, ex, rtol=0, atol=12.5)
    np.testing.assert_allclose(out["north"].values, ny, rtol=0, atol=12.5)
    assert out["spatial_ref"].attrs["crs_wkt"] == pyproj.CRS.from_epsg(4326).to_wkt()
    assert out["east"].encoding["grid_mapping"] == "spatial_ref"


def test_crs_from_spatial_ref_coordinate_and_crs_wkt_attribute(tmp_path):
    write(utm_cube(), tmp_path / "utm.nc")
    cat = build_xarray_catalog(tmp_path / "utm.nc", tmp_path / "cat", progress=False)
    sl = GeoSlice((500_100, 4_600_100, 500_900, 4_600_900), "EPSG:32631", 200)
    loaded = load_xarray(cat, sl)
    for name in loaded.data_vars:  # no grid_mapping attribute: only the spatial_ref coordinate
        loaded[name].encoding.pop("grid_mapping")
    write(loaded, tmp_path / "again" / "loaded.nc")
    glob_attr = utm_cube(grid_mapping=False).assign_attrs(crs_wkt=pyproj.CRS.from_epsg(32631).to_wkt())
    write(glob_attr, tmp_path / "again" / "global_attr.nc")
    rows = rows_of(build_xarray_catalog(tmp_path / "again", tmp_path / "cat2", progress=False))
    assert [(Path(r["filepath"]).name, r["variable"], r["crs"]) for r in rows] == [
        ("global_attr.nc", "east", "EPSG:32631"),
        ("global_attr.nc", "north", "EPSG:32631"),
        ("loaded.nc", "east", "EPSG:32631"),
        ("loaded.nc", "north", "EPSG:32631"),
    ]
    assert rows[2]["native_bounds"] == dict(zip(("xmin", "ymin", "xmax", "ymax"), sl.grid_bounds, strict=True))


def test_crs_is_rioxarray_compatible(tmp_path):
    rioxarray = pytest.importorskip("rioxarray")
    assert rioxarray
    write(utm_cube(), tmp_path / "utm.nc")
    cat = build_xarray_catalog(tmp_path / "utm.nc", tmp_path / "cat", progress=False)
    sl = GeoSlice((500_100, 4_600_100, 500_900, 4_600_900), "EPSG:32631", 200)
    ds = load_xarray(cat, sl)
    assert ds.rio.crs.to_epsg() == 32631 and ds.rio.transform() == sl.transform


# -- time ---------------------------------------------------------------------------------------


def test_time_concat_sorted_and_duplicate_rule(tmp_path):
    d = tmp_path / "in"
    write(lonlat_cube(LONS, LATS, list(range(1, 11)), tag=1), d / "a_days01-10.nc")
    write(lonlat_cube(LONS, LATS, list(range(11, 21)), tag=2), d / "b_days11-20.nc")
    holed = lonlat_cube(LONS, LATS, [10], tag=3)  # day 10 again, after a_… by filepath
    write(holed, d / "c_day10.nc")
    write(lonlat_cube(LONS, LATS, [12], tag=4), d / "0_day12.nc")  # day 12 again, before b_…
    a = lonlat_cube(LONS, LATS, list(range(1, 11)), tag=1)
    a["v"][9, :4, :4] = np.nan  # a hole on day 10 in the first file: the next file fills it
    write(a, d / "a_days01-10.nc")
    cat = build_xarray_catalog(d, tmp_path / "cat", progress=False)
    assert len(cat) == 4

    sl = GeoSlice((10, 40, 18, 48), "EPSG:4326", 0.5, start="2020-01-05", end="2020-01-15")
    ds = load_xarray(cat, sl, resampling="nearest")
    times = pd.DatetimeIndex(ds["time"].values)
    assert list(times) == [day(n) for n in range(5, 16)]  # 11 steps, sorted, day 10 and 12 once
    v = ds["v"].values
    tag = np.round((v - LONS[None, None, :] * 1000 - LATS[None, :, None]) / 1e7)
    days = np.round((v - tag * 1e7 - LONS[None, None, :] * 1000 - LATS[None, :, None]) / 1e5)
    np.testing.assert_array_equal(days, np.broadcast_to(np.arange(5, 16)[:, None, None], v.shape))
    expected_tag = np.array([1] * 6 + [2] * 5, dtype=float)[:, None, None] * np.ones(v.shape)
    expected_tag[5, :4, :4] = 3  # day 10: a_… wins, c_… fills a_…'s hole only
    expected_tag[7] = 4  # day 12: 0_… sorts before b_…
    np.testing.assert_array_equal(tag, expected_tag)

    # the catalog's interval query agrees: the four files overlap days 5–15
    assert len(cat.query(start="2020-01-05", end="2020-01-15")) == 4
    assert len(cat.query(start="2020-01-16", end="2020-01-30")) == 1


def test_static_variable_has_null_interval(tmp_path):
    ds = lonlat_cube(LONS, LATS, [1, 2])
    ds["elev"] = (("lat", "lon"), lonlat_cube(LONS, LATS)["v"].values)
    write(ds, tmp_path / "mixed.nc")
    cat = build_xarray_catalog(tmp_path / "mixed.nc", tmp_path / "cat", progress=False)
    elev, v = rows_of(cat)
    assert (elev["variable"], elev["time_var"], elev["n_timesteps"]) == ("elev", None, None)
    assert elev["start_datetime"] is None and elev["end_datetime"] is None
    assert (v["variable"], v["n_timesteps"]) == ("v", 2)
    assert [r["variable"] for r in cat.query(start="2021-01-01", end="2021-02-01")] == ["elev"]

    sl = GeoSlice((11, 41, 13, 43), "EPSG:4326", 0.5, start="2021-01-01")
    out = load_xarray(cat, sl, resampling="nearest")
    assert out["elev"].dims == ("y", "x") and "v" not in out
    x, y = 11.25 + 0.5 * np.arange(4), 42.75 - 0.5 * np.arange(4)
    np.testing.assert_array_equal(out["elev"].values, x[None, :] * 1000 + y[:, None])
    both = load_xarray(cat, GeoSlice((11, 41, 13, 43), "EPSG:4326", 0.5), variables=["v", "elev"])
    assert both["v"].dims == ("time", "y", "x") and both["elev"].dims == ("y", "x")


def test_cftime_calendars(tmp_path):
    lons, lats = LONS[:4], LATS[:4]
    base = lonlat_cube(lons, lats)["v"].values

    def cube(days: list[int], calendar: str, start: str) -> xr.Dataset:
        ds = xr.Dataset(
            {"v": (("time", "lat", "lon"), np.stack([base] * len(days)))},
            coords={
                "lat": ("lat", lats, {"units": "degrees_north"}),
                "lon": ("lon", lons, {"units": "degrees_east"}),
                "time": ("time", np.array(days, float), {"units": f"days since {start}", "calendar": calendar}),
            },
        )
        return xr.decode_cf(ds, decode_times=False)

    write(cube([0, 59, 364], "noleap", "2001-01-01"), tmp_path / "ok" / "noleap.nc")
    cat = build_xarray_catalog(tmp_path / "ok", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)  # noleap labels kept: day 59 is 1 March, day 364 is 31 December
    assert (row["start_datetime"], row["end_datetime"]) == (
        dt.datetime(2001, 1, 1, tzinfo=UTC),
        dt.datetime(2001, 12, 31, tzinfo=UTC),
    )
    out = load_xarray(cat, GeoSlice((10, 46, 12, 48), "EPSG:4326", 0.5, start="2001-02-01"))
    assert list(out["time"].values) == [np.datetime64("2001-03-01"), np.datetime64("2001-12-31")]

    bad = write(cube([0, 59], "360_day", "2000-01-01"), tmp_path / "bad" / "d360.nc")  # 30 Feb
    with pytest.raises(BuildError, match=r"d360\.nc.*2000-02-30.*'360_day'.*convert_calendar"):
        build_xarray_catalog(tmp_path / "bad", tmp_path / "cat_bad", progress=False)
    assert bad.exists()


def test_time_var_names_the_time_dimension(tmp_path):
    ds = lonlat_cube(LONS, LATS, [1, 2]).rename({"time": "t"})
    write(ds, tmp_path / "t.nc")
    with pytest.raises(BuildError, match=r"t\.nc.*time_var='t'"):
        build_xarray_catalog(tmp_path / "t.nc", tmp_path / "cat0", progress=False)
    (row,) = rows_of(build_xarray_catalog(tmp_path / "t.nc", tmp_path / "cat", time_var="t", progress=False))
    assert (row["time_var"], row["n_timesteps"], row["end_datetime"]) == ("t", 2, utc(day(2)))


# -- nodata, CRS errors, inputs ------------------------------------------------------------------


def test_fill_value_is_respected(tmp_path):
    ints = np.arange(16 * 16, dtype="int16").reshape(16, 16)
    ints[2:5, 3:6] = -999
    floats = lonlat_cube(LONS, LATS)["v"].values.astype("float32")
    floats[7, 8] = -9999.0
    ds = xr.Dataset({"i": (("lat", "lon"), ints), "f": (("lat", "lon"), floats)}, coords=lonlat_cube(LONS, LATS).coords)
    ds.to_netcdf(tmp_path / "fill.nc", encoding={"i": {"_FillValue": -999}, "f": {"_FillValue": -9999.0}})
    cat = build_xarray_catalog(tmp_path / "fill.nc", tmp_path / "cat", progress=False)

    sl = GeoSlice((9, 40, 18, 48), "EPSG:4326", 0.5)  # one column west of the cube: uncovered
    out = load_xarray(cat, sl, resampling="nearest")
    i, f = out["i"].values, out["f"].values
    assert i.dtype == np.float32 and f.dtype == np.float32
    assert np.isnan(i[:, :2]).all() and np.isnan(f[:, :2]).all()  # outside the cube: NaN, not 0
    expected = np.where(ints == -999, np.nan, ints.astype("float32"))
    np.testing.assert_array_equal(i[:, 2:], expected)
    assert np.isnan(f[7, 10]) and np.isnan(f[:, 2:]).sum() == 1
    assert f[0, 2] == np.float32(LONS[0] * 1000 + LATS[0])


def test_no_crs_is_an_error_naming_the_file(tmp_path):
    write(utm_cube(grid_mapping=False), tmp_path / "nocrs.nc")
    with pytest.raises(BuildError, match=r"nocrs\.nc.*no CRS.*crs="):
        build_xarray_catalog(tmp_path / "nocrs.nc", tmp_path / "cat0", progress=False)
    cat = build_xarray_catalog(tmp_path / "nocrs.nc", tmp_path / "cat", crs="EPSG:32631", progress=False)
    assert {r["crs"] for r in cat} == {"EPSG:32631"}

    # lat/lon *names* without CF units/standard_name are not enough to assume EPSG:4326
    plain = lonlat_cube(LONS, LATS)
    for c in ("lat", "lon"):
        plain[c].attrs.clear()
    write(plain, tmp_path / "plain" / "names_only.nc")
    with pytest.raises(BuildError, match=r"names_only\.nc.*no CRS"):
        build_xarray_catalog(tmp_path / "plain", tmp_path / "cat1", progress=False)
    # a projected crs= for degree coordinates is refused
    write(lonlat_cube(LONS, LATS), tmp_path / "cf" / "cf.nc")
    with pytest.raises(BuildError, match="longitude/latitude coordinates but crs="):
        build_xarray_catalog(tmp_path / "cf", tmp_path / "cat2", crs="EPSG:32631", progress=False)
    with pytest.raises(CRSError):
        build_xarray_catalog(tmp_path / "cf", tmp_path / "cat3", crs="EPSG:999999", progress=False)


def test_variables_and_errors(tmp_path):
    write(utm_cube(), tmp_path / "utm.nc")
    cat = build_xarray_catalog(tmp_path / "utm.nc", tmp_path / "cat", variables=["north"], progress=False)
    assert [r["variable"] for r in cat] == ["north"]
    with pytest.raises(BuildError, match=r"none of variables=\['nope'\]"):
        build_xarray_catalog(tmp_path / "utm.nc", tmp_path / "cat1", variables="nope", progress=False)
    with pytest.raises(geoduck.errors.ArgumentError, match="engine="):
        build_xarray_catalog(tmp_path / "utm.nc", tmp_path / "cat2", engine="scipy", progress=False)
    with pytest.raises(NoDataError):
        load_xarray(cat, GeoSlice((0, 0, 1000, 1000), "EPSG:32631", 100))
    sl = GeoSlice((500_100, 4_600_100, 500_900, 4_600_900), "EPSG:32631", 200)
    with pytest.raises(NoDataError, match="variables=\\['east'\\]"):
        load_xarray(cat, sl, variables=["east"])


def test_zarr_stores_are_items_not_searched(tmp_path):
    d = tmp_path / "data"
    write(lonlat_cube(LONS, LATS), d / "a.zarr", "zarr2")
    write(lonlat_cube(LONS, LATS), d / "sub" / "b.zarr", "zarr3")
    write(lonlat_cube(LONS, LATS), d / "sub" / "c.nc")
    (d / "notes.txt").write_text("x")
    expected = [str(d / "a.zarr"), str(d / "sub" / "b.zarr"), str(d / "sub" / "c.nc")]
    assert resolve_paths(d, (".nc",), (".zarr",)) == expected
    # a glob keeps what it matches (any suffix, as for rasters) but never the insides of a store
    assert resolve_paths(str(d / "**"), (".nc",), (".zarr",)) == [expected[0], str(d / "notes.txt"), *expected[1:]]
    assert resolve_paths(str(d / "**" / "*.zarr"), (".nc",), (".zarr",)) == expected[:2]
    assert resolve_paths(d / "a.zarr", (".nc",), (".zarr",)) == expected[:1]
    assert resolve_paths(d, (".nc",)) == expected[2:]  # without the hook (rasters): unchanged


def test_cli_build_xarray(tmp_path):
    write(utm_cube(grid_mapping=False), tmp_path / "nocrs.nc")
    out = tmp_path / "cat"
    result = CliRunner().invoke(
        main,
        [
            "build",
            "xarray",
            str(tmp_path / "nocrs.nc"),
            "-o",
            str(out),
            "--variables",
            "east",
            "--variables",
            "north",
            "--time-var",
            "time",
            "--crs",
            "EPSG:32631",
            "--engine",
            "h5netcdf",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 rows from 1 files indexed" in result.output
    assert {(r["variable"], r["engine"], r["crs"]) for r in geoduck.open_catalog(out)} == {
        ("east", "h5netcdf", "EPSG:32631"),
        ("north", "h5netcdf", "EPSG:32631"),
    }
    bad = CliRunner().invoke(
        main, ["build", "xarray", str(tmp_path / "nocrs.nc"), "-o", str(tmp_path / "c2"), "--no-progress"]
    )
    assert bad.exit_code == 1 and "nocrs.nc" in bad.output and "crs=" in bad.output
