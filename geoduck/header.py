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

Remote GDAL options (:func:`gdal_options`, the one home of them; builder and loader open through
:func:`open_dataset`): besides ``EMPTY_DIR``, the first 32 KiB are read in one request at open
(``GDAL_INGESTED_BYTES_AT_OPEN``: a COG's header and tile index), consecutive tile ranges are merged
into one request and independent ones sent in parallel (``GDAL_HTTP_MERGE_CONSECUTIVE_RANGES``,
``GDAL_HTTP_MULTIRANGE=PARALLEL``), downloaded ranges are kept in GDAL's process-wide region cache
(``CPL_VSIL_CURL_CACHE_SIZE``) and failed requests retried. ``VSI_CACHE`` is not set: the region cache
already holds the header, and a per-handle cache of open datasets (kept per loader thread) would
multiply memory. ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS`` is not set either: with ``EMPTY_DIR`` GDAL
probes no sibling file, and an extension filter would refuse extension-less URLs (signed or API
URLs). Every option but ``EMPTY_DIR`` is a default: a value the caller set (environment or an enclosing
``rasterio.Env``) wins. S3 credentials come from the standard ``AWS_*`` variables (GDAL and
rasterio's boto3 session read them); ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, which GDAL does
not read, are translated to ``AWS_S3_ENDPOINT`` (and ``AWS_HTTPS=NO`` for ``http://``, path-style
``AWS_VIRTUAL_HOSTING=FALSE``) by :func:`aws_options`. The options apply to the open; a dataset
kept open (the loader's) is read outside the ``Env``, where GDAL's defaults for the read-time
options (``GDAL_HTTP_MULTIRANGE=PARALLEL``, merged consecutive blocks) are the values above.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import rasterio
import rasterio.env
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import Affine

from .errors import CRSError, GeoduckError, SourceError
from .geo import norm_crs

LOCAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}
"""GDAL options of every local open: sidecars found by name, the directory never listed."""
_READDIR = "GDAL_DISABLE_READDIR_ON_OPEN"

REMOTE_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIRANGE": "PARALLEL",
    "CPL_VSIL_CURL_CACHE_SIZE": str(64 * 1024 * 1024),
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
}
"""GDAL options of every remote open (defaults under the caller's own, see the module docstring):
no sidecar lookups or listings (each would be a request), COG-friendly range requests."""


_NETWORK_VSI = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "/vsiwebhdfs", "/vsihdfs")


def is_remote(path: str) -> bool:
    """True for URIs (``s3://``, ``https://`` …, not ``file://``) and GDAL network paths
    (``/vsicurl/``, ``/vsis3/`` … anywhere in a chain such as ``/vsizip//vsicurl/…``)."""
    return ("://" in path and not path.startswith("file://")) or any(v in path for v in _NETWORK_VSI)


def aws_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """GDAL ``/vsis3/`` options from the standard AWS variables GDAL does not read itself.

    ``AWS_ENDPOINT_URL_S3`` (else ``AWS_ENDPOINT_URL``), e.g. ``http://127.0.0.1:9000`` for MinIO
    or moto, becomes ``AWS_S3_ENDPOINT=127.0.0.1:9000``, with ``AWS_HTTPS=NO`` for an ``http://``
    URL and path-style addressing (``AWS_VIRTUAL_HOSTING=FALSE``), unless those are set. Empty when
    ``AWS_S3_ENDPOINT`` is set or no endpoint URL is. Credentials (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``), ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION`` and ``AWS_NO_SIGN_REQUEST`` are read by GDAL (and rasterio) as they are.
    """
    env = os.environ if environ is None else environ
    url = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if env.get("AWS_S3_ENDPOINT") or not url:
        return {}
    parts = urlsplit(url if "://" in url else f"https://{url}")
    opts = {"AWS_S3_ENDPOINT": parts.netloc + parts.path.rstrip("/")}
    if parts.scheme.lower() == "http" and "AWS_HTTPS" not in env:
        opts["AWS_HTTPS"] = "NO"
    if "AWS_VIRTUAL_HOSTING" not in env:
        opts["AWS_VIRTUAL_HOSTING"] = "FALSE"
    return opts


def gdal_options(path: str | None = None) -> dict[str, str]:
    """The GDAL config options for opening ``path`` (local ones when None): see the module
    docstring. For a remote path, :data:`REMOTE_ENV` and :func:`aws_options`, each option left out
    when the process environment or an enclosing ``rasterio.Env`` sets it already."""
    if path is None or not is_remote(path):
        return dict(LOCAL_ENV)
    opts = {**REMOTE_ENV, **aws_options()}
    outer = rasterio.env.getenv() if rasterio.env.hasenv() else {}
    opts = {k: v for k, v in opts.items() if k not in os.environ and k not in outer}
    opts[_READDIR] = REMOTE_ENV[_READDIR]  # the sidecar rule is not a default: always
    return opts


def gdal_env(path: str | None = None) -> rasterio.Env:
    """A ``rasterio.Env`` with :func:`gdal_options` for ``path`` (local ones when None)."""
    return rasterio.Env(**gdal_options(path))


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
