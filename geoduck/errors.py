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


class ExtensionError(GeoduckError, RuntimeError):
    """The DuckDB spatial extension could not be loaded."""


class BuildError(GeoduckError, RuntimeError):
    """A catalog build could not proceed (nothing to index, unusable output directory …)."""


class FootprintError(GeoduckError, ValueError):
    """A file's georeferencing gives no true footprint (impossible lon/lat, zero-resolution grid)."""


class StorageError(GeoduckError, OSError):
    """A catalog folder could not be written (disk full, read-only file system, no permission)."""


class NoDataError(GeoduckError, LookupError):
    """A query or load found no matching item."""


class UnsupportedError(GeoduckError, NotImplementedError):
    """The input is valid but uses a feature geoduck does not support (the message says which)."""
