"""The one place a raster file's header is read: builder and loader see the same facts.

:func:`open_dataset` opens a file with the GDAL options geoduck always uses and wraps GDAL's
errors; :class:`RasterHeader` is the header read from the open dataset (CRS, transform, size,
dtypes, nodata, band descriptions, mask flags). The catalog row (:mod:`geoduck.builders.raster`)
and the loader's open dataset (:mod:`geoduck.loaders.raster`) are both made from it, so what the
catalog records is what the loader reads.

Sidecar rule (GDAL's own lookup, as ``rasterio.open`` does it):

* **local files**: sidecars are visible. GDAL probes for them by name, one ``stat`` each, without
  listing the directory (``GDAL_DISABLE_READDIR_ON_OPEN=TRUE``, so a folder of 10^5 files costs no
  listing per file): ``<name>.aux.xml`` (nodata, CRS, band descriptions, statistics), world files
  (``.tfw``/``.tifw``/``.wld``), ``.ovr`` overviews, ``.msk`` masks, and the companion files of
  two-file formats (ENVI ``.hdr``, RRASTER ``.gri``, ESRI ``.prj`` …).
* **remote files** (URIs such as ``s3://…``/``https://…``, ``/vsicurl/``, ``/vsis3/`` …): nothing beside the
  file is looked up (``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``): every probe would be a request.
  Only what the file itself holds counts; two-file formats cannot be read remotely.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import rasterio
import rasterio.env
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import Affine

from .errors import CRSError, GeoduckError, SourceError
from .geo import norm_crs

LOCAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}
"""GDAL options of every local open: sidecars found by name, the directory never listed."""

REMOTE_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.jp2,.vrt,.img,.grd",
}
"""GDAL options of every remote open: no sidecar lookups (each would be a request)."""


_NETWORK_VSI = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "/vsiwebhdfs", "/vsihdfs")


def is_remote(path: str) -> bool:
    """True for URIs (``s3://``, ``https://`` …, not ``file://``) and GDAL network paths
    (``/vsicurl/``, ``/vsis3/`` … anywhere in a chain such as ``/vsizip//vsicurl/…``)."""
    return ("://" in path and not path.startswith("file://")) or any(v in path for v in _NETWORK_VSI)


def gdal_env(path: str | None = None) -> rasterio.Env:
    """The GDAL options for opening ``path`` (local ones when None), see the module docstring."""
    return rasterio.Env(**(REMOTE_ENV if path is not None and is_remote(path) else LOCAL_ENV))


def gdal_message(exc: BaseException, path: str | None = None) -> str:
    """The first line of a GDAL/rasterio error, without GDAL's repetition of ``path``."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if path:
        line = line.replace(f"'{path}' ", "").replace(f"{path}: ", "")
    return line


# rasterio.open sets up and tears down a nested GDAL Env on every call (~150 µs a file). Inside an
# Env already entered, a local file needs no session (credentials): the unwrapped function opens
# it the same way without that cost. URIs and /vsi paths keep rasterio.open.
_open_in_env = getattr(rasterio.open, "__wrapped__", rasterio.open)


def open_dataset(path: str) -> DatasetReader:
    """Open ``path`` read-only with geoduck's GDAL options (entered here unless the caller has
    entered :func:`gdal_env` already, as a build does once per chunk of files).

    Raises:
        SourceError: GDAL cannot open it (the message names the path and GDAL's reason).
    """
    remote = is_remote(path)
    try:
        if remote:
            with gdal_env(path):
                return rasterio.open(path)
        if rasterio.env.hasenv() and rasterio.env.getenv().get("GDAL_DISABLE_READDIR_ON_OPEN") == "TRUE":
            return _open_in_env(path)
        with gdal_env(path):
            return rasterio.open(path)
    except RasterioError as exc:
        raise SourceError(f"not a readable raster: {gdal_message(exc, path)} ({path})") from None


@lru_cache(maxsize=256)
def crs_problem(wkt: str) -> str | None:
    """Why a CRS (by WKT) cannot be placed on Earth, or None when it can."""
    crs = norm_crs(wkt)
    if crs.type_name.startswith("Engineering") or crs.geodetic_crs is None:
        name = crs.name or "unnamed"
        return (
            f"CRS {name!r} is a local/engineering CRS (no datum): its coordinates cannot be "
            f"placed on Earth; assign a geodetic CRS (e.g. `rio edit-info --crs EPSG:32630`)"
        )
    return None


@dataclass(frozen=True)
class RasterHeader:
    """What geoduck reads from a raster file's header (pixels untouched).

    ``transform`` maps pixel (col, row) to native CRS coordinates; ``corners`` are the four pixel
    grid corners in native CRS units (a rotated or sheared transform makes them a parallelogram);
    ``bounds`` is their envelope. ``nodata``/``dtypes``/``descriptions``/``mask_flags`` have one
    entry per band, with sidecars (``.aux.xml`` …) applied for local files.
    """

    path: str
    driver: str
    crs_wkt: str
    transform: Affine
    width: int
    height: int
    dtypes: tuple[str, ...]
    nodata: tuple[float | None, ...]
    descriptions: tuple[str | None, ...]
    mask_flags: tuple[tuple[str, ...], ...]
    """GDAL mask flag names per band (``all_valid``, ``per_dataset``, ``alpha``, ``nodata``); empty
    when read with ``masks=False``."""

    @property
    def count(self) -> int:
        return len(self.dtypes)

    @property
    def simple_masks(self) -> bool:
        """Every band's validity follows from its values (no mask band, no alpha)."""
        return all(f in (("all_valid",), ("nodata",)) for f in self.mask_flags)

    @property
    def rotated(self) -> bool:
        """The transform has rotation or shear terms (the grid is not north-up)."""
        return self.transform.b != 0.0 or self.transform.d != 0.0

    @property
    def corners(self) -> tuple[tuple[float, float], ...]:
        """Native coordinates of the pixel corners (0,0), (w,0), (w,h), (0,h), in that order."""
        t, w, h = self.transform, self.width, self.height
        return tuple((t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f) for c, r in ((0, 0), (w, 0), (w, h), (0, h)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Envelope (xmin, ymin, xmax, ymax) of :attr:`corners`, native CRS units."""
        xs, ys = zip(*self.corners, strict=True)
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) along the grid axes, native CRS units (positive)."""
        t = self.transform
        return math.hypot(t.a, t.d), math.hypot(t.b, t.e)

    @classmethod
    def of(cls, ds: DatasetReader, path: str | None = None, masks: bool = True) -> RasterHeader:
        """The header of an open dataset. Raises :class:`CRSError` when it has no CRS or one that
        cannot be placed on Earth, :class:`SourceError` without a geotransform or pixels.

        ``masks=False`` leaves :attr:`mask_flags` empty: reading them makes GDAL look for a ``.msk``
        sidecar of every file, which a caller not using them (the catalog builder) need not pay."""
        path = ds.name if path is None else path
        if ds.crs is None:
            raise CRSError(f"raster has no CRS ({path}); assign one (e.g. `rio edit-info --crs EPSG:32630`)")
        t = ds.transform
        if t.is_identity and not ds.gcps[0]:
            raise SourceError(
                f"raster has no geotransform ({path}): its pixel grid is not georeferenced; "
                "add one (a world file, or `rio edit-info --transform`)"
            )
        if ds.width <= 0 or ds.height <= 0:
            raise SourceError(f"raster has empty dimensions {ds.width}x{ds.height} ({path})")
        wkt = ds.crs.to_wkt()
        problem = crs_problem(wkt)
        if problem is not None:
            raise CRSError(f"{problem} ({path})")
        return cls(
            path=path,
            driver=ds.driver,
            crs_wkt=wkt,
            transform=t,
            width=ds.width,
            height=ds.height,
            dtypes=tuple(ds.dtypes),
            nodata=tuple(None if v is None else float(v) for v in ds.nodatavals),
            descriptions=tuple(ds.descriptions),
            mask_flags=tuple(tuple(f.name for f in flags) for flags in ds.mask_flag_enums) if masks else (),
        )


def read_header(path: str) -> RasterHeader:
    """Open ``path`` (sidecar rule above), read its :class:`RasterHeader` and close it."""
    with open_dataset(path) as ds:
        return RasterHeader.of(ds, path)


@contextmanager
def wrapped_gdal_errors(path: str, what: str = "reading") -> Iterator[None]:
    """Re-raise rasterio/GDAL errors inside the block as :class:`SourceError` naming ``path``."""
    try:
        yield
    except GeoduckError:
        raise
    except RasterioError as exc:
        raise SourceError(f"GDAL failed {what} {path}: {gdal_message(exc, path)}") from exc
