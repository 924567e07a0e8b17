"""Cubes as CF describes them: coordinate units (km, feet), cell/time/climatology bounds, longitudes
that wrap inside the file, curvilinear grids, and cubes dated only by their file name.

Expected values never come from geoduck itself: footprints from pyproj on the raw coordinates or
from the bounds arrays, intervals from the bounds arrays, loaded pixels from xarray's own
``sel(..., method="nearest")`` of the same cells."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
import xarray as xr

from geoduck import GeoSlice, build_xarray_catalog, load_xarray
from geoduck.cf import LENGTH_UNITS, length_unit_metres
from geoduck.errors import BuildError, NoDataError

UTC = dt.UTC
US_FOOT = 1200.0 / 3937.0

# Daymet's grid mapping (CF attributes as in its files); x/y in km.
DAYMET_LCC = {
    "grid_mapping_name": "lambert_conformal_conic",
    "standard_parallel": [25.0, 60.0],
    "longitude_of_central_meridian": -100.0,
    "latitude_of_projection_origin": 42.5,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
}
LCC = pyproj.CRS.from_cf(DAYMET_LCC)
XKM = 1000.5 + np.arange(30.0)  # km, cell edges 1000 .. 1030 km
YKM = -500.5 - np.arange(20.0)  # km, descending, edges -520 .. -500 km


def ts(text: str) -> dt.datetime:
    return pd.Timestamp(text).to_pydatetime().replace(tzinfo=UTC)


def rows_of(cat) -> list[dict]:
    return sorted(cat, key=lambda r: (r["filepath"], r["variable"]))


def daymet_like(path: Path) -> xr.Dataset:
    """A Daymet-shaped file: x/y in km, ``lambert_conformal_conic`` grid mapping, 2 daily steps
    labelled at noon with ``time_bnds`` [midnight, next midnight]; ``tmax = day·1e6 + col·1e3 + row``."""
    days = pd.date_range("2020-07-01 12:00", periods=2, freq="D")
    col, row = np.meshgrid(np.arange(XKM.size), np.arange(YKM.size))
    data = np.stack([(d + 1) * 1e6 + col * 1e3 + row for d in range(2)])
    bnds = np.stack([days - pd.Timedelta("12h"), days + pd.Timedelta("12h")], axis=1)
    ds = xr.Dataset(
        {
            "tmax": (("time", "y", "x"), data, {"grid_mapping": "lambert_conformal_conic", "units": "degC"}),
            "lambert_conformal_conic": ((), 0, DAYMET_LCC),
            "time_bnds": (("time", "nv"), bnds),
        },
        coords={
            "x": ("x", XKM, {"units": "km", "standard_name": "projection_x_coordinate"}),
            "y": ("y", YKM, {"units": "km", "standard_name": "projection_y_coordinate"}),
            "time": ("time", days, {"bounds": "time_bnds"}),
        },
    )
    ds.to_netcdf(path, encoding={"time": {"units": "hours since 1980-01-01 00:00:00"}})
    return xr.open_dataset(path)


def test_km_coordinates_lambert_conformal_daymet(tmp_path):
    raw = daymet_like(tmp_path / "daymet_v4_tmax_2020.nc")
    cat = build_xarray_catalog(tmp_path / "daymet_v4_tmax_2020.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)
    assert row["native_bounds"] == {
        "xmin": 1_000_000.0,
        "ymin": -520_000.0,
        "xmax": 1_030_000.0,
        "ymax": -500_000.0,
    }  # metres, the CRS's unit
    # footprint: pyproj on the raw km edges × 1000
    to_ll = pyproj.Transformer.from_crs(LCC, 4326, always_xy=True)
    t = np.linspace(0, 1, 50)
    ex = np.concatenate([1000 + 30 * t, np.full(50, 1030.0), 1030 - 30 * t, np.full(50, 1000.0)]) * 1e3
    ey = np.concatenate([np.full(50, -520.0), -520 + 20 * t, np.full(50, -500.0), -500 - 20 * t]) * 1e3
    truth = shapely.Polygon(np.column_stack(to_ll.transform(ex, ey)))
    assert row["geometry"].symmetric_difference(truth).area < 1e-4 * truth.area
    assert truth.area > 0.03  # ~30 × 20 km, not a 0.008° speck
    lon, lat = to_ll.transform(1_015_000, -510_000)
    assert len(cat.query(bbox=(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01))) == 1
    wrong_lon, wrong_lat = to_ll.transform(1015, -510)  # where metres-as-km would have put it
    assert len(cat.query(bbox=(wrong_lon - 0.1, wrong_lat - 0.1, wrong_lon + 0.1, wrong_lat + 0.1))) == 0
    # time_bnds: [2020-07-01T00, 2020-07-03T00) as a closed interval
    assert (row["start_datetime"], row["end_datetime"]) == (ts("2020-07-01"), ts("2020-07-02 23:59:59.999999"))

    # a slice in metres of the same LCC CRS: pixel centres 250 m off the cell centres
    sl = GeoSlice(
        (1_002_250, -515_750, 1_022_250, -503_750),
        LCC.to_wkt(),
        1000.0,
        start="2020-07-02 01:00",
        end="2020-07-02 02:00",
    )  # overlaps the 2nd cell only
    out = load_xarray(cat, sl, resampling="nearest")
    assert list(out["time"].values) == [np.datetime64("2020-07-02T12:00")]
    xs, ys = out["x"].values, out["y"].values
    assert xs[0] == 1_002_750.0 and ys[0] == -504_250.0
    expected = raw["tmax"].isel(time=[1]).sel(x=xs / 1000, y=ys / 1000, method="nearest").values
    np.testing.assert_array_equal(out["tmax"].values, expected)

    # a UTM slice: nearest cell of each pixel centre projected by pyproj (away from cell edges)
    utm = GeoSlice((396_000, 4_088_000, 412_000, 4_104_000), "EPSG:32616", 800.0, start="2020-07-01", end="2020-07-01")
    u = load_xarray(cat, utm, resampling="nearest")
    xx, yy = np.meshgrid(u["x"].values, u["y"].values)
    lx, ly = pyproj.Transformer.from_crs(32616, LCC, always_xy=True).transform(xx, yy)
    inside = (lx > 1_000_000) & (lx < 1_030_000) & (ly > -520_000) & (ly < -500_000)
    clear = inside & (np.abs(lx / 1000 % 1 - 0.5) < 0.3) & (np.abs(ly / 1000 % 1 - 0.5) < 0.3)
    assert clear.sum() > 50
    sel = (
        raw["tmax"]
        .isel(time=0)
        .sel(x=xr.DataArray(lx[clear] / 1000), y=xr.DataArray(ly[clear] / 1000), method="nearest")
        .values
    )
    np.testing.assert_array_equal(u["tmax"].values[0][clear], sel)
    raw.close()


def test_length_units_table():
    assert length_unit_metres("km") == 1000.0 and length_unit_metres("Kilometres") == 1000.0
    assert length_unit_metres("m") == 1.0 and length_unit_metres("meters") == 1.0
    assert length_unit_metres("1000 m") == 1000.0 and length_unit_metres("1e3 m") == 1000.0
    assert length_unit_metres("US survey foot") == US_FOOT == length_unit_metres("US_survey_foot")
    assert length_unit_metres("ft") == 0.3048 and length_unit_metres("feet") == 0.3048
    assert length_unit_metres("cm") == 0.01 and length_unit_metres("mm") == 0.001
    for bad in ("furlong", "degrees_east", "ms", "km2", ""):
        assert length_unit_metres(bad) is None
    assert all(v > 0 for v in LENGTH_UNITS.values())


def _projected(x: np.ndarray, y: np.ndarray, units: str | None) -> xr.Dataset:
    attrs = {} if units is None else {"units": units}
    xx, yy = np.meshgrid(x, y)
    return xr.Dataset(
        {"v": (("y", "x"), xx + yy)},
        coords={"x": ("x", x, {**attrs, "axis": "X"}), "y": ("y", y, {**attrs, "axis": "Y"})},
    )


@pytest.mark.parametrize(
    ("crs", "units", "factor"),
    [
        ("EPSG:32631", "km", 1000.0),  # metre CRS, km coordinates
        ("EPSG:32631", "m", 1.0),
        ("EPSG:32631", None, 1.0),  # no units: taken in the CRS's unit (as before)
        ("EPSG:2227", "US_survey_foot", 1.0),  # a US-feet CRS and coordinates in the same unit
        ("EPSG:2227", "m", 1 / US_FOOT),  # a US-feet CRS, metre coordinates
        ("EPSG:2227", "km", 1000 / US_FOOT),
    ],
)
def test_units_are_converted_to_the_crs_unit(tmp_path, crs, units, factor):
    x, y = 500.5 + np.arange(4.0), 4600.5 - np.arange(3.0)
    _projected(x, y, units).to_netcdf(tmp_path / "p.nc")
    (row,) = rows_of(build_xarray_catalog(tmp_path / "p.nc", tmp_path / "cat", crs=crs, progress=False))
    assert row["native_bounds"] == pytest.approx(
        {"xmin": 500 * factor, "ymin": 4598 * factor, "xmax": 504 * factor, "ymax": 4601 * factor}, rel=1e-12
    )


def test_unknown_units_are_an_error_naming_the_file(tmp_path):
    _projected(500.5 + np.arange(4.0), 4600.5 - np.arange(3.0), "furlong").to_netcdf(tmp_path / "odd.nc")
    with pytest.raises(BuildError, match=r"odd\.nc.*'furlong'.*length unit"):
        build_xarray_catalog(tmp_path / "odd.nc", tmp_path / "cat", crs="EPSG:32631", progress=False)


# -- bounds -------------------------------------------------------------------------------------


def _lonlat_attrs(kind: str, bounds: str | None = None) -> dict:
    a = {
        "units": f"degrees_{'east' if kind == 'lon' else 'north'}",
        "standard_name": "longitude" if kind == "lon" else "latitude",
    }
    return a if bounds is None else {**a, "bounds": bounds}


def test_cell_bounds_give_the_footprint(tmp_path):
    # irregular cells whose edges are not centre ± half a cell
    lon_b = np.array([[10.0, 10.3], [10.3, 11.1], [11.1, 11.5]])
    lat_b = np.array([[40.0, 40.7], [40.7, 41.2], [41.2, 42.0], [42.0, 42.9]])
    lon, lat = lon_b.mean(axis=1), lat_b.mean(axis=1)
    ds = xr.Dataset(
        {
            "v": (("lat", "lon"), np.ones((4, 3))),
            "lon_bnds": (("lon", "nv"), lon_b),
            "lat_bnds": (("lat", "nv"), lat_b),
        },
        coords={
            "lon": ("lon", lon, _lonlat_attrs("lon", "lon_bnds")),
            "lat": ("lat", lat, _lonlat_attrs("lat", "lat_bnds")),
        },
    )
    ds.to_netcdf(tmp_path / "b.nc")
    cat = build_xarray_catalog(tmp_path / "b.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)  # the bounds variables are not indexed as data
    expected = {"xmin": lon_b.min(), "ymin": lat_b.min(), "xmax": lon_b.max(), "ymax": lat_b.max()}
    assert row["native_bounds"] == expected and row["bbox"] == pytest.approx(expected)
    assert row["geometry"].area == pytest.approx((lon_b.max() - lon_b.min()) * (lat_b.max() - lat_b.min()))


def test_time_bounds_give_the_interval_and_select_steps(tmp_path):
    lons, lats = 10.25 + 0.5 * np.arange(8), 45.75 - 0.5 * np.arange(6)
    labels = pd.date_range("2021-03-01 12:00", periods=3, freq="D")  # daily means labelled at noon
    bnds = np.stack([labels.floor("D"), labels.floor("D") + pd.Timedelta("1D")], axis=1)
    data = np.stack([(k + 1) * 1e5 + lons[None, :] * 1000 + lats[:, None] for k in range(3)])
    ds = xr.Dataset(
        {
            "v": (("time", "lat", "lon"), data),
            "time_bnds": (("time", "nv"), bnds),
            "lon_bnds": (("lon", "nv"), np.column_stack([lons - 0.25, lons + 0.25])),
            "lat_bnds": (("lat", "nv"), np.column_stack([lats + 0.25, lats - 0.25])),
        },
        coords={
            "lon": ("lon", lons, _lonlat_attrs("lon", "lon_bnds")),
            "lat": ("lat", lats, _lonlat_attrs("lat", "lat_bnds")),
            "time": ("time", labels, {"bounds": "time_bnds"}),
        },
    )
    ds.to_netcdf(tmp_path / "daily.nc", encoding={"time": {"units": "hours since 2021-01-01"}})
    cat = build_xarray_catalog(tmp_path / "daily.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)
    assert [r["variable"] for r in cat] == ["v"]
    assert (row["start_datetime"], row["end_datetime"]) == (
        pd.Timestamp(bnds[:, 0].min()).to_pydatetime().replace(tzinfo=UTC),
        (pd.Timestamp(bnds[:, 1].max()) - pd.Timedelta(1, "us")).to_pydatetime().replace(tzinfo=UTC),
    )
    assert row["native_bounds"] == {"xmin": 10.0, "ymin": 43.0, "xmax": 14.0, "ymax": 46.0}
    # the last cell runs to midnight: a query in its evening finds the row (its label is at noon)
    assert len(cat.query(start="2021-03-03 18:00", end="2021-03-03 20:00")) == 1
    assert len(cat.query(start="2021-03-04", end="2021-03-05")) == 0

    sl = GeoSlice((10.1, 43.1, 13.4, 45.8), "EPSG:4326", 0.3, start="2021-03-02 01:00", end="2021-03-02 05:00")
    out = load_xarray(cat, sl, resampling="nearest")
    assert list(out["time"].values) == [np.datetime64("2021-03-02T12:00")]
    with xr.open_dataset(tmp_path / "daily.nc") as raw:
        expected = raw["v"].isel(time=[1]).sel(lon=out["x"].values, lat=out["y"].values, method="nearest")
        np.testing.assert_array_equal(out["v"].values, expected.values)
    with pytest.raises(NoDataError):
        load_xarray(cat, GeoSlice(sl.bounds, "EPSG:4326", 0.3, start="2021-03-04 00:00", end="2021-03-04 01:00"))


def test_climatology_bounds_give_the_interval(tmp_path):
    lons, lats = 10.25 + 0.5 * np.arange(4), 45.75 - 0.5 * np.arange(4)
    # 1991–2020 monthly climatology: time at mid-month 2006 (days since 1991-01-01), bounds without units
    ref = pd.Timestamp("1991-01-01")
    mid = pd.DatetimeIndex([pd.Timestamp(2006, m, 16) for m in range(1, 13)])
    lo = pd.DatetimeIndex([pd.Timestamp(1991, m, 1) for m in range(1, 13)])
    hi = pd.DatetimeIndex([pd.Timestamp(2020 + m // 12, m % 12 + 1, 1) for m in range(1, 13)])
    days = lambda t: ((t - ref) / pd.Timedelta("1D")).to_numpy()  # noqa: E731
    ds = xr.Dataset(
        {
            "clim": (("time", "lat", "lon"), np.ones((12, 4, 4))),
            "climatology_bounds": (("time", "nv"), np.column_stack([days(lo), days(hi)])),
        },
        coords={
            "lon": ("lon", lons, _lonlat_attrs("lon")),
            "lat": ("lat", lats, _lonlat_attrs("lat")),
            "time": (
                "time",
                days(mid),
                {"units": "days since 1991-01-01", "calendar": "standard", "climatology": "climatology_bounds"},
            ),
        },
    )
    ds.to_netcdf(tmp_path / "clim.nc")
    cat = build_xarray_catalog(tmp_path / "clim.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)
    assert (row["variable"], row["n_timesteps"]) == ("clim", 12)
    assert (row["start_datetime"], row["end_datetime"]) == (
        lo.min().to_pydatetime().replace(tzinfo=UTC),
        (hi.max() - pd.Timedelta(1, "us")).to_pydatetime().replace(tzinfo=UTC),
    )
    assert row["end_datetime"] == ts("2020-12-31 23:59:59.999999")
    assert len(cat.query(start="1995-06-01", end="1995-06-30")) == 1  # its labels are all in 2006
    assert len(cat.query(start="2021-01-01", end="2021-12-31")) == 0


# -- longitudes that wrap inside the file ----------------------------------------------------------


@pytest.mark.parametrize("with_bounds", [False, True])
def test_longitudes_wrapping_inside_the_file(tmp_path, with_bounds):
    lons = (350.55 + np.arange(20.0)) % 360.0  # 350.55 … 359.55, 0.55 … 9.55
    lats = 49.5 - np.arange(8.0)
    data = lons[None, :] * 1000 + lats[:, None]
    ds = xr.Dataset(
        {"v": (("lat", "lon"), data)},
        coords={
            "lon": ("lon", lons, _lonlat_attrs("lon", "lon_bnds" if with_bounds else None)),
            "lat": ("lat", lats, _lonlat_attrs("lat")),
        },
    )
    if with_bounds:  # the wrapping cell's bounds are [359.05, 0.05]
        ds["lon_bnds"] = (("lon", "nv"), np.column_stack([(lons - 0.5) % 360, (lons + 0.5) % 360]))
    ds.to_netcdf(tmp_path / "wrap.nc")
    cat = build_xarray_catalog(tmp_path / "wrap.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)
    assert row["native_bounds"] == pytest.approx({"xmin": 350.05, "ymin": 42.0, "xmax": 370.05, "ymax": 50.0})
    assert row["bbox"] == pytest.approx({"xmin": -9.95, "ymin": 42.0, "xmax": 10.05, "ymax": 50.0})
    assert row["geometry"].area == pytest.approx(20.0 * 8.0)
    assert len(cat.query(bbox=(-3, 44, -2, 45))) == 1 and len(cat.query(bbox=(2, 44, 3, 45))) == 1
    assert len(cat.query(bbox=(11, 44, 12, 45))) == 0

    sl = GeoSlice((-6.25, 42.25, 6.25, 49.45), "EPSG:4326", 0.5)  # no pixel centre on a cell edge
    out = load_xarray(cat, sl, resampling="nearest")
    x, y = out["x"].values, out["y"].values
    with xr.open_dataset(tmp_path / "wrap.nc") as raw:  # xarray's selection in the 350..370 frame
        frame = raw.assign_coords(lon=np.where(raw["lon"] < 180, raw["lon"] + 360, raw["lon"]))
        expected = frame["v"].sel(lon=x + 360.0, lat=y, method="nearest").values
    np.testing.assert_array_equal(out["v"].values, expected)
    assert (out["v"].values[:, x < 0] > 350_000).all() and (out["v"].values[:, x > 0] < 10_000).all()


# -- curvilinear grids ----------------------------------------------------------------------------


def _curvilinear(crs: pyproj.CRS, x: np.ndarray, y: np.ndarray, *, bounds: bool) -> xr.Dataset:
    """A field on the 2-D lon/lat of a regular grid in ``crs`` (centres ``x``, ``y``; dims nj, ni)."""
    to_ll = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    lon, lat = to_ll.transform(*np.meshgrid(x, y))
    col, row = np.meshgrid(np.arange(x.size), np.arange(y.size))
    ds = xr.Dataset(
        {"sic": (("nj", "ni"), col * 1000.0 + row, {"coordinates": "lat lon"})},
        coords={
            "lon": (("nj", "ni"), lon, _lonlat_attrs("lon", "lon_v" if bounds else None)),
            "lat": (("nj", "ni"), lat, _lonlat_attrs("lat", "lat_v" if bounds else None)),
        },
    )
    if bounds:  # CF vertices, counterclockwise from (j - ½, i - ½)
        dx, dy = x[1] - x[0], y[1] - y[0]
        X, Y = np.meshgrid(x, y)
        off = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
        vx = np.stack([X + a * dx for a, _ in off], axis=-1)
        vy = np.stack([Y + b * dy for _, b in off], axis=-1)
        vlon, vlat = to_ll.transform(vx, vy)
        ds["lon_v"] = (("nj", "ni", "nv"), vlon)
        ds["lat_v"] = (("nj", "ni", "nv"), vlat)
    return ds


def test_curvilinear_grid_with_vertex_bounds(tmp_path):
    x, y = 1_000_500.0 + 1000 * np.arange(30), -500_500.0 - 1000 * np.arange(20)
    ds = _curvilinear(LCC, x, y, bounds=True)
    ds.to_netcdf(tmp_path / "curvi.nc")
    cat = build_xarray_catalog(tmp_path / "curvi.nc", tmp_path / "cat", progress=False)
    (row,) = rows_of(cat)  # lon/lat and their vertices are not indexed as data
    assert (row["variable"], row["crs"]) == ("sic", "EPSG:4326")
    vlon, vlat = ds["lon_v"].values, ds["lat_v"].values
    assert row["bbox"] == pytest.approx(
        {"xmin": vlon.min(), "ymin": vlat.min(), "xmax": vlon.max(), "ymax": vlat.max()}, abs=1e-9
    )
    # the outline is the projected grid's edge ring (pyproj), up to straight-in-lon/lat segments
    to_ll = pyproj.Transformer.from_crs(LCC, 4326, always_xy=True)
    t = np.linspace(0, 1, 200)
    ex = np.concatenate([1e6 + 3e4 * t, np.full(200, 1.03e6), 1.03e6 - 3e4 * t, np.full(200, 1e6)])
    ey = np.concatenate([np.full(200, -5.2e5), -5.2e5 + 2e4 * t, np.full(200, -5e5), -5e5 - 2e4 * t])
    truth = shapely.Polygon(np.column_stack(to_ll.transform(ex, ey)))
    assert row["geometry"].symmetric_difference(truth).area < 1e-5 * truth.area


def _cells_under(
    out: xr.Dataset, crs: object, grid_crs: pyproj.CRS, x0: float, y0: float, step: float, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, col) of the regular ``grid_crs`` cell under each pixel centre of ``out`` (pyproj), and
    masks of the pixels clearly inside a cell (0.15 cell from its edges) and clearly outside the grid."""
    xx, yy = np.meshgrid(out["x"].values, out["y"].values)
    gx, gy = pyproj.Transformer.from_crs(crs, grid_crs, always_xy=True).transform(xx, yy)
    fc, fr = (gx - x0) / step, (y0 - gy) / step
    col, row = np.floor(fc).astype(int), np.floor(fr).astype(int)
    inside = (fc > 0) & (fr > 0) & (fc < shape[1]) & (fr < shape[0])
    clear = inside & (np.abs(fc % 1 - 0.5) < 0.35) & (np.abs(fr % 1 - 0.5) < 0.35)
    outside = (fc < -1) | (fr < -1) | (fc > shape[1] + 1) | (fr > shape[0] + 1)
    return np.clip(row, 0, shape[0] - 1), np.clip(col, 0, shape[1] - 1), clear, outside


@pytest.mark.parametrize("bounds", [True, False])
@pytest.mark.parametrize(
    ("crs", "bbox", "res"),
    [
        (LCC.to_wkt(), (995_300, -523_700, 1_024_100, -505_100), 700.0),  # the grid's own projection, metres
        ("EPSG:32616", (396_000, 4_088_000, 412_000, 4_104_000), 450.0),  # UTM
        ("EPSG:4326", (-88.3, 36.85, -87.9, 37.1), 0.004),  # lon/lat
    ],
)
def test_curvilinear_grid_loads_onto_any_grid(tmp_path, bounds, crs, bbox, res):
    x, y = 1_000_500.0 + 1000 * np.arange(30), -500_500.0 - 1000 * np.arange(20)
    ds = _curvilinear(LCC, x, y, bounds=bounds)
    ds.to_netcdf(tmp_path / "curvi.nc")
    cat = build_xarray_catalog(tmp_path / "curvi.nc", tmp_path / "cat", progress=False)
    out = load_xarray(cat, GeoSlice(bbox, crs, res), resampling="nearest")
    row, col, clear, outside = _cells_under(out, crs, LCC, 1_000_000.0, -500_000.0, 1000.0, (20, 30))
    assert clear.sum() > 100
    expected = ds["sic"].isel(nj=xr.DataArray(row[clear]), ni=xr.DataArray(col[clear])).values
    np.testing.assert_array_equal(out["sic"].values[clear], expected)
    assert np.isnan(out["sic"].values[outside]).all()


def test_curvilinear_polar_grid_loads_across_the_antimeridian(tmp_path):
    polar = pyproj.CRS.from_epsg(3413)
    x = -487_500.0 + 25_000 * np.arange(40)
    y = 487_500.0 - 25_000 * np.arange(40)
    _curvilinear(polar, x, y, bounds=False).to_netcdf(tmp_path / "polar.nc")
    cat = build_xarray_catalog(tmp_path / "polar.nc", tmp_path / "cat", progress=False)
    ds = xr.open_dataset(tmp_path / "polar.nc")
    # a polar stereographic slice around the pole, and a lon/lat one across ±180°
    for crs, bbox, res in (
        ("EPSG:3413", (-555_000, -555_000, 555_000, 555_000), 15_000.0),
        ("EPSG:4326", (170.0, 84.0, 190.0, 86.0), 0.1),
    ):
        out = load_xarray(cat, GeoSlice(bbox, crs, res), resampling="nearest")
        row, col, clear, outside = _cells_under(out, crs, polar, -500_000.0, 500_000.0, 25_000.0, (40, 40))
        assert clear.sum() > 100
        expected = ds["sic"].isel(nj=xr.DataArray(row[clear]), ni=xr.DataArray(col[clear])).values
        np.testing.assert_array_equal(out["sic"].values[clear], expected)
        assert np.isnan(out["sic"].values[outside]).all()
    ds.close()


def test_curvilinear_polar_grid_without_bounds(tmp_path):
    # a polar stereographic grid around the North Pole (crosses ±180°, encloses the pole)
    polar = pyproj.CRS.from_epsg(3413)
    x = -487_500.0 + 25_000 * np.arange(40)
    y = 487_500.0 - 25_000 * np.arange(40)
    ds = _curvilinear(polar, x, y, bounds=False)
    ds.to_netcdf(tmp_path / "polar.nc")
    (row,) = rows_of(build_xarray_catalog(tmp_path / "polar.nc", tmp_path / "cat", progress=False))
    geom = row["geometry"]
    assert row["bbox"]["xmin"] == pytest.approx(-180) and row["bbox"]["xmax"] == pytest.approx(180)
    assert row["bbox"]["ymax"] == pytest.approx(90)
    to_ll = pyproj.Transformer.from_crs(polar, 4326, always_xy=True)
    # every cell centre is inside; points a quarter cell inside the outer edges too, and points
    # a quarter cell outside them are outside (the edges are estimated from the centres)
    lon, lat = ds["lon"].values.ravel(), ds["lat"].values.ravel()
    near = geom.buffer(1e-7)  # a point at lon -180.00000000000003 lies on the ±180° edge
    assert shapely.intersects_xy(near, lon, lat).all()
    edge = 500_000.0
    s = np.linspace(-edge, edge, 81)[1:-1]
    for offset, inside in ((-6_250.0, True), (6_250.0, False)):
        r = edge + offset
        px = np.concatenate([s, s, np.full_like(s, r), np.full_like(s, -r)])
        py = np.concatenate([np.full_like(s, r), np.full_like(s, -r), s, s])
        plon, plat = to_ll.transform(px, py)
        assert (shapely.intersects_xy(near if inside else geom, plon, plat) == inside).all(), offset


# -- cubes dated by their file name -----------------------------------------------------------------


def test_filename_dates_cubes_without_time_dimension(tmp_path):
    lons, lats = 10.25 + 0.5 * np.arange(6), 45.75 - 0.5 * np.arange(4)
    d = tmp_path / "in"
    d.mkdir()
    for k, name in enumerate(["sst_15-06-2023.nc", "sst_16-06-2023.nc"]):
        xr.Dataset(
            {"sst": (("lat", "lon"), (k + 1) * 1e5 + lons[None, :] * 1000 + lats[:, None])},
            coords={"lon": ("lon", lons, _lonlat_attrs("lon")), "lat": ("lat", lats, _lonlat_attrs("lat"))},
        ).to_netcdf(d / name)
    timed = xr.Dataset(
        {"sst": (("time", "lat", "lon"), np.zeros((1, 4, 6)))},
        coords={
            "lon": ("lon", lons, _lonlat_attrs("lon")),
            "lat": ("lat", lats, _lonlat_attrs("lat")),
            "time": [pd.Timestamp("2023-06-20 06:00")],
        },
    )
    timed.to_netcdf(d / "sst_17-06-2023.nc")  # its time dimension wins over its name
    cat = build_xarray_catalog(
        d,
        tmp_path / "cat",
        filename_regex=r"(?P<product>[a-z]+)_(?P<date>[\d-]+)\.nc$",
        date_format="%d-%m-%Y",
        progress=False,
    )
    rows = rows_of(cat)
    assert [(r["product"], r["start_datetime"], r["end_datetime"], r["time_var"]) for r in rows] == [
        ("sst", ts("2023-06-15"), ts("2023-06-15 23:59:59.999999"), None),
        ("sst", ts("2023-06-16"), ts("2023-06-16 23:59:59.999999"), None),
        ("sst", ts("2023-06-20 06:00"), ts("2023-06-20 06:00"), "time"),
    ]
    assert [Path(r["filepath"]).name for r in cat.query(start="2023-06-16 10:00", end="2023-06-16 11:00")] == [
        "sst_16-06-2023.nc"
    ]

    sl = GeoSlice((10.0, 44.0, 13.0, 46.0), "EPSG:4326", 0.5, start="2023-06-15", end="2023-06-16")
    out = load_xarray(cat, sl, resampling="nearest")
    assert out["sst"].dims == ("time", "y", "x")
    assert list(out["time"].values) == [np.datetime64("2023-06-15"), np.datetime64("2023-06-16")]
    for k, name in enumerate(["sst_15-06-2023.nc", "sst_16-06-2023.nc"]):
        with xr.open_dataset(d / name) as raw:
            expected = raw["sst"].sel(lon=out["x"].values, lat=out["y"].values, method="nearest").values
        np.testing.assert_array_equal(out["sst"].values[k], expected)

    # without a regex they stay static, as before
    static = rows_of(build_xarray_catalog(d / "sst_15-06-2023.nc", tmp_path / "cat2", progress=False))
    assert static[0]["start_datetime"] is None and static[0]["end_datetime"] is None


def test_cli_build_xarray_with_regex(tmp_path):
    from click.testing import CliRunner

    from geoduck import open_catalog
    from geoduck.cli import main

    lons, lats = 10.25 + 0.5 * np.arange(4), 45.75 - 0.5 * np.arange(4)
    xr.Dataset(
        {"sst": (("lat", "lon"), np.ones((4, 4)))},
        coords={"lon": ("lon", lons, _lonlat_attrs("lon")), "lat": ("lat", lats, _lonlat_attrs("lat"))},
    ).to_netcdf(tmp_path / "sst_202306.nc")
    result = CliRunner().invoke(
        main,
        [
            "build",
            "xarray",
            str(tmp_path / "sst_202306.nc"),
            "-o",
            str(tmp_path / "cat"),
            "--regex",
            r"_(?P<date>\d{6})\.nc$",
            "--date-format",
            "%Y%m",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = open_catalog(tmp_path / "cat")
    assert (row["start_datetime"], row["end_datetime"]) == (ts("2023-06-01"), ts("2023-06-30 23:59:59.999999"))
