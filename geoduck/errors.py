"""The geoduck exception hierarchy.

Every error geoduck raises for a user mistake or bad input is a :class:`GeoduckError`; subclasses
also subclass the matching builtin so ``except ValueError`` keeps working. Messages name the
offending file or argument and say what to do.
"""

from __future__ import annotations


class GeoduckError(Exception):
    """Base class of all geoduck errors."""


class CRSError(GeoduckError, ValueError):
    """A CRS is missing, invalid, or does not fit the coordinates given."""


class ArgumentError(GeoduckError, ValueError):
    """An argument has an invalid value (bbox, interval, regex, resolution …)."""


class TimeParseError(ArgumentError):
    """A date/time string could not be parsed."""


class CatalogNotFoundError(GeoduckError, FileNotFoundError):
    """The catalog directory does not exist or holds no parts."""


class SourceError(GeoduckError, OSError):
    """A data file could not be opened or read (GDAL/OGR's reason wrapped, the path named)."""


class SchemaError(GeoduckError, ValueError):
    """A catalog part does not follow the geoduck schema (or has a newer schema version)."""


class SQLError(GeoduckError, ValueError):
    """User SQL was refused (not read-only) or failed to run."""


class QueryError(GeoduckError, RuntimeError):
    """DuckDB failed while running a catalog query (a broken part file, a bad value at runtime …)."""


class UnboundError(GeoduckError, TypeError):
    """A relation was compiled before its scans were bound to their live parts (a programming error
    inside geoduck: compile ``geoduck.storage.bind(node)``)."""


class ExtensionError(GeoduckError, RuntimeError):
    """The DuckDB spatial extension could not be loaded."""


class BuildError(GeoduckError, RuntimeError):
    """A catalog build could not proceed (nothing to index, unusable output directory …)."""


class FootprintError(GeoduckError, ValueError):
    """A file's georeferencing gives no true footprint (impossible lon/lat, zero-resolution grid,
    coordinates that are NaN, not monotonic, or too few to tell the cell size)."""


class VariableError(GeoduckError, ValueError):
    """A NetCDF/Zarr data variable cannot be indexed or loaded as asked (missing, no or several x/y
    dimensions, a time dimension other than ``time_var``, different shapes across files)."""


class EmptyLayerError(GeoduckError, ValueError):
    """A vector layer has no features (or no extent): there is nothing to index."""


class LabelFieldError(GeoduckError, ValueError):
    """``label_field`` is missing from a layer or does not hold integer class ids."""


class StorageError(GeoduckError, OSError):
    """A catalog folder could not be written (disk full, read-only file system, no permission)."""


class NoDataError(GeoduckError, LookupError):
    """A query or load found no matching item."""


class ChipIndexError(GeoduckError, IndexError):
    """A sampler's chip index is out of range."""


class InstallError(GeoduckError, FileNotFoundError):
    """A file that ships with geoduck (the SQL macros) is missing: a broken install."""


class UnsupportedError(GeoduckError, NotImplementedError):
    """The input is valid but uses a feature geoduck does not support (the message says which)."""


class JoinError(GeoduckError, ValueError):
    """A user table cannot be joined to a catalog (:meth:`~geoduck.catalog.Catalog.join`): a key
    column missing, null or repeated, a column name clashing with the catalog's, or key types
    that do not compare."""
