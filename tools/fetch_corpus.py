#!/usr/bin/env python3
"""Fetch geoduck's corpus of real geospatial files into a cache folder (default ``.cache/corpus``).

The files come from pinned Debian packages of R spatial libraries (stars, terra, rgdal, sf), which
ship them as examples: a Landsat 7 crop, DEMs, a rotated GeoTIFF, an RRASTER pair, an ENVI pair,
NetCDF cubes (Lambert conformal in km, BCSD, OISST) and vector files in several CRSs. Each ``.deb``
is fetched with ``apt-get download NAME=VERSION``, checked against its sha256 and unpacked with
``dpkg-deb -x``; only the files listed in :data:`FILES` are kept.

A few cases no package ships are **derived** from those real files with GDAL (rasterio) or netCDF4,
each documented in :data:`DERIVED`: the same pixels with the nodata only in a ``.aux.xml``
sidecar, georeferenced only by a world file, with a ``+towgs84`` CRS, and a NetCDF with
``lat_bnds``/``lon_bnds``/``time_bnds``.

Run by ``make corpus`` (and so by ``make test``); does nothing when the folder is complete for this
manifest. Tests never download: they find the folder through one fixture (``tests/conftest.py``).
Usage: ``python tools/fetch_corpus.py [DEST]``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DEST = Path(__file__).resolve().parent.parent / ".cache" / "corpus"


@dataclass(frozen=True)
class Package:
    """A pinned Debian package: ``apt-get download name=version``, checked by sha256."""

    name: str
    version: str
    arch: str
    sha256: str
    root: str
    """Folder inside the package holding its example files."""


PACKAGES = {
    "stars": Package(
        "r-cran-stars",
        "0.6-0-4",
        "all",
        "a273913b84ce428c8a6f5eb3538776c8bcefb5756d473f0c4c2fd2a914e98a53",
        "usr/lib/R/site-library/stars",
    ),
    "terra": Package(
        "r-cran-terra",
        "1.7-3-1",
        "amd64",
        "63dc65e665e51c0760e0b2996b429ebd2380e69a8b326bc65294f62237955f68",
        "usr/lib/R/site-library/terra",
    ),
    "rgdal": Package(
        "r-cran-rgdal",
        "1.6-4+dfsg-1",
        "amd64",
        "6cd60072a9842b5c56d27164ab72b779c8fe7e9a705e9da13177c312b3b72664",
        "usr/lib/R/site-library/rgdal",
    ),
    "sf": Package(
        "r-cran-sf",
        "1.0-9+dfsg-1+b1",
        "amd64",
        "c76f3fa97f09f3d171487ed69ae5ee462cebcb0961f3326c7f78dcfc25b4a43d",
        "usr/lib/R/site-library/sf",
    ),
}


@dataclass(frozen=True)
class CorpusFile:
    """One corpus item: ``path`` relative to the corpus folder (its sidecars lie beside it)."""

    path: str
    kind: str
    """``raster``, ``netcdf`` or ``vector``."""
    note: str
    package: str = ""
    """Key of :data:`PACKAGES` it comes from ("" for derived files)."""
    members: tuple[str, ...] = ()
    """Files copied from the package (relative to its root): the item and its sidecars, in order;
    the first is saved as ``path``, the others beside it with their own suffix."""
    tags: tuple[str, ...] = ()


def _pkg(
    path: str, kind: str, package: str, members: tuple[str, ...], note: str, tags: tuple[str, ...] = ()
) -> CorpusFile:
    return CorpusFile(path, kind, note, package, members, tags)


FILES: tuple[CorpusFile, ...] = (
    _pkg(
        "stars/L7_ETMs.tif",
        "raster",
        "stars",
        ("tif/L7_ETMs.tif",),
        "Landsat 7 ETM+ crop, 6 bands uint8, EPSG:31985 (SIRGAS 2000 / UTM 25S)",
    ),
    _pkg(
        "stars/geomatrix.tif",
        "raster",
        "stars",
        ("tif/geomatrix.tif",),
        "rotated/sheared geotransform, EPSG:32611",
        ("rotated",),
    ),
    _pkg(
        "stars/olinda_dem_utm25s.tif",
        "raster",
        "stars",
        ("tif/olinda_dem_utm25s.tif", "tif/olinda_dem_utm25s.tif.aux.xml"),
        "DEM float32 with a statistics .aux.xml sidecar, UTM 25S",
        ("sidecar",),
    ),
    _pkg(
        "stars/lc.tif",
        "raster",
        "stars",
        ("tif/lc.tif", "tif/lc.tif.aux.xml"),
        "land cover uint8, EPSG:5070 (Albers), .aux.xml with band description and RAT",
        ("sidecar",),
    ),
    _pkg(
        "terra/elev.tif",
        "raster",
        "terra",
        ("ex/elev.tif",),
        "DEM int16 with internal nodata -32768, EPSG:4326 (Luxembourg)",
    ),
    _pkg(
        "terra/test.grd",
        "raster",
        "terra",
        ("ex/test.grd", "ex/test.gri"),
        "RRASTER .grd/.gri pair, float32, oblique stereographic (Dutch RD)",
        ("two-file",),
    ),
    _pkg(
        "rgdal/SP27GTIF.TIF",
        "raster",
        "rgdal",
        ("pictures/SP27GTIF.TIF",),
        "GeoTIFF sample, EPSG:26771 (NAD27 / Illinois East)",
    ),
    _pkg(
        "rgdal/cea.tif",
        "raster",
        "rgdal",
        ("pictures/cea.tif",),
        "GeoTIFF sample, NAD27 cylindrical equal area (no EPSG code)",
    ),
    _pkg(
        "rgdal/erdas_spnad83.tif",
        "raster",
        "rgdal",
        ("pictures/erdas_spnad83.tif",),
        "GeoTIFF sample written by ERDAS, NAD83 / Georgia East",
    ),
    _pkg(
        "rgdal/test_envi_class.img",
        "raster",
        "rgdal",
        ("pictures/test_envi_class.envi", "pictures/test_envi_class.hdr"),
        "ENVI classification .img/.hdr pair (the package names it .envi), int16, lon/lat",
        ("two-file",),
    ),
    _pkg(
        "stars/lcc_km.nc",
        "netcdf",
        "stars",
        ("nc/lcc_km.nc",),
        "Daymet-style precipitation on a Lambert conformal conic grid, x/y in km",
        ("km",),
    ),
    _pkg(
        "stars/bcsd_obs_1999.nc",
        "netcdf",
        "stars",
        ("nc/bcsd_obs_1999.nc",),
        "BCSD monthly pr/tas 1999, 1/8 degree lon/lat",
    ),
    _pkg(
        "stars/reduced.nc",
        "netcdf",
        "stars",
        ("nc/reduced.nc",),
        "NOAA OISST v2 daily SST, reduced to 2 degrees, lon 0..360",
    ),
    _pkg(
        "sf/nc.shp",
        "vector",
        "sf",
        ("shape/nc.shp", "shape/nc.shx", "shape/nc.dbf", "shape/nc.prj"),
        "North Carolina counties, EPSG:4267 (NAD27)",
    ),
    _pkg("sf/nc.gpkg", "vector", "sf", ("gpkg/nc.gpkg",), "North Carolina counties as GeoPackage, EPSG:4267"),
    _pkg(
        "rgdal/scot_BNG.shp",
        "vector",
        "rgdal",
        ("vectors/scot_BNG.shp", "vectors/scot_BNG.shx", "vectors/scot_BNG.dbf", "vectors/scot_BNG.prj"),
        "Scottish districts, EPSG:27700 (British National Grid)",
    ),
    _pkg(
        "rgdal/kiritimati_primary_roads.shp",
        "vector",
        "rgdal",
        (
            "vectors/kiritimati_primary_roads.shp",
            "vectors/kiritimati_primary_roads.shx",
            "vectors/kiritimati_primary_roads.dbf",
            "vectors/kiritimati_primary_roads.prj",
        ),
        "roads of Kiritimati, EPSG:32604 (UTM 4N)",
    ),
    _pkg(
        "terra/lux.shp",
        "vector",
        "terra",
        ("ex/lux.shp", "ex/lux.shx", "ex/lux.dbf", "ex/lux.prj"),
        "Luxembourg cantons, EPSG:4326",
    ),
)

DERIVED: tuple[CorpusFile, ...] = (
    CorpusFile(
        "derived/elev_pam.tif",
        "raster",
        "terra/elev.tif's pixels with its nodata (-32768) only in elev_pam.tif.aux.xml",
        tags=("sidecar", "sidecar-nodata"),
    ),
    CorpusFile(
        "derived/L7_band1_world.tif",
        "raster",
        "band 1 of stars/L7_ETMs.tif as a baseline TIFF: transform only in the .tfw world file, "
        "CRS only in the .aux.xml",
        tags=("sidecar", "world-file"),
    ),
    CorpusFile(
        "derived/meuse_rd_towgs84.tif",
        "raster",
        "terra's meuse.tif (no CRS in the file) with its documented CRS, Dutch RD as PROJ string with +towgs84",
        tags=("towgs84",),
    ),
    CorpusFile(
        "derived/bcsd_obs_1999_bnds.nc",
        "netcdf",
        "stars/bcsd_obs_1999.nc with CF lat_bnds/lon_bnds (cell edges) and time_bnds (months)",
        tags=("bounds",),
    ),
)

CORPUS: tuple[CorpusFile, ...] = FILES + DERIVED
MARKER = ".complete.json"
RD_TOWGS84 = (
    "+proj=sterea +lat_0=52.15616055555555 +lon_0=5.38763888888889 +k=0.9999079 +x_0=155000 "
    "+y_0=463000 +ellps=bessel +towgs84=565.2369,50.0087,465.658,-0.406857,0.350733,-1.87035,"
    "4.0812 +units=m +no_defs"
)


def manifest_digest() -> str:
    """A digest of what the corpus holds (a changed list refetches)."""
    data = [(p.name, p.version, p.sha256) for p in PACKAGES.values()]
    data += [(f.path, f.members) for f in CORPUS]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def is_complete(dest: Path) -> bool:
    marker = dest / MARKER
    return marker.exists() and json.loads(marker.read_text()).get("digest") == manifest_digest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _apt_download(pkg: Package, into: Path) -> Path:
    spec = f"{pkg.name}={pkg.version}"
    for attempt in range(2):
        done = subprocess.run(["apt-get", "download", spec], cwd=into, capture_output=True, text=True)
        if done.returncode == 0:
            break
        if attempt == 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], check=False)
    else:
        sys.exit(f"fetch_corpus: `apt-get download {spec}` failed: {done.stderr.strip()}")
    debs = sorted(into.glob(f"{pkg.name}_*.deb"))
    if not debs:
        sys.exit(f"fetch_corpus: apt-get download {spec} produced no .deb in {into}")
    got = _sha256(debs[-1])
    if got != pkg.sha256:
        sys.exit(f"fetch_corpus: {debs[-1].name} has sha256 {got}, expected {pkg.sha256}")
    return debs[-1]


def _copy_members(item: CorpusFile, root: Path, dest: Path) -> None:
    target = dest / item.path
    target.parent.mkdir(parents=True, exist_ok=True)
    first = Path(item.members[0])
    for k, member in enumerate(item.members):
        src = root / member
        if k == 0:
            out = target
        else:  # a sidecar keeps its relation to the item's name: x.tif.aux.xml, x.hdr, x.gri …
            name = Path(member).name
            suffix = name[len(first.name) :] if name.startswith(first.name) else Path(member).suffix
            out = target.parent / (target.name + suffix if name.startswith(first.name) else target.stem + suffix)
        shutil.copyfile(src, out)


def _derive(dest: Path, meuse: Path) -> None:
    """Make :data:`DERIVED` from the packaged files (GDAL through rasterio, xarray/netCDF4);
    ``meuse`` is terra's ``ex/meuse.tif``."""
    import numpy as np
    import rasterio
    import xarray as xr

    d = dest / "derived"
    d.mkdir(exist_ok=True)
    with rasterio.open(dest / "terra/elev.tif") as src:
        profile, data, nodata = src.profile, src.read(), src.nodata
    profile.pop("nodata", None)
    with rasterio.open(d / "elev_pam.tif", "w", **profile) as dst:
        dst.write(data)
    (d / "elev_pam.tif.aux.xml").write_text(
        '<PAMDataset>\n  <PAMRasterBand band="1">\n'
        f"    <NoDataValue>{nodata:.0f}</NoDataValue>\n  </PAMRasterBand>\n</PAMDataset>\n"
    )

    with rasterio.open(dest / "stars/L7_ETMs.tif") as src:
        band, crs, transform = src.read(1), src.crs, src.transform
    with (
        rasterio.Env(GDAL_PAM_ENABLED="YES"),
        rasterio.open(
            d / "L7_band1_world.tif",
            "w",
            driver="GTiff",
            width=band.shape[1],
            height=band.shape[0],
            count=1,
            dtype=band.dtype,
            crs=crs,
            transform=transform,
            PROFILE="BASELINE",
            TFW="YES",
        ) as dst,
    ):
        dst.write(band, 1)

    with rasterio.open(meuse) as src:
        profile, data = src.profile, src.read()
    profile.update(crs=rasterio.crs.CRS.from_string(RD_TOWGS84))
    with rasterio.open(d / "meuse_rd_towgs84.tif", "w", **profile) as dst:
        dst.write(data)

    with xr.open_dataset(dest / "stars/bcsd_obs_1999.nc", decode_times=False) as ds:
        ds = ds.load()
    for name, dim in (("lat_bnds", "latitude"), ("lon_bnds", "longitude")):
        c = ds[dim].values
        half = np.diff(c).mean() / 2
        ds[name] = ((dim, "nv"), np.stack([c - half, c + half], axis=1))
        ds[dim].attrs["bounds"] = name
    months = np.array([f"1999-{m:02d}-01" for m in range(1, 13)] + ["2000-01-01"], dtype="datetime64[D]")
    days = (months - np.datetime64("1950-01-01")).astype(int).astype(float)
    ds["time_bnds"] = (("time", "nv"), np.stack([days[:-1], days[1:]], axis=1))
    ds["time"].attrs["bounds"] = "time_bnds"
    ds.to_netcdf(d / "bcsd_obs_1999_bnds.nc")


def fetch(dest: Path = DEFAULT_DEST) -> Path:
    """Fill ``dest`` with the corpus (skipped when already complete); returns ``dest``."""
    if is_complete(dest):
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        roots: dict[str, Path] = {}
        for key, pkg in PACKAGES.items():
            deb = _apt_download(pkg, work)
            out = work / key
            subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
            roots[key] = out / pkg.root
        for item in FILES:
            _copy_members(item, roots[item.package], dest)
        _derive(dest, roots["terra"] / "ex" / "meuse.tif")
    missing = [f.path for f in CORPUS if not (dest / f.path).exists()]
    if missing:
        sys.exit(f"fetch_corpus: not produced: {missing}")
    (dest / MARKER).write_text(json.dumps({"digest": manifest_digest(), "files": [f.path for f in CORPUS]}, indent=1))
    return dest


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST
    fetch(target.resolve())
    print(f"corpus: {len(CORPUS)} items in {target}")
