"""Backends as values: what geoduck needs to know about one kind of file, and the registry of them.

A :class:`Backend` names the files it indexes (extensions, directory suffixes), the columns its rows
add to the core schema, the function that reads one file's header rows (run in worker processes),
the loader that reads pixels back, and the options of its ``geoduck build <name>`` command. The
build driver (:func:`geoduck.builders.common.run_build`), the CLI and the row-id function take
everything backend-specific from it.

The registry maps a name to the module defining that backend's value (``BACKEND``); modules are
imported on first use, so ``import geoduck`` does not pay for xarray/pyogrio. A new backend is one
module plus one :func:`register` line (see the README's *Layout*).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from . import schema
from .errors import ArgumentError

if TYPE_CHECKING:
    from .catalog import Catalog

ReadFn = Callable[[str, Any], list[dict[str, Any]]]
"""Reads one file's headers: ``read(path, options)`` → header rows (one per item), or raises with a
reason. Must be a module-level function (it is pickled to worker processes)."""

ReadEnv = Callable[[], AbstractContextManager[Any]]
"""Makes the context (e.g. GDAL options) entered once around each chunk of ``ReadFn`` calls."""


@dataclass(frozen=True)
class CliOption:
    """One option of a backend's ``geoduck build <name>`` command, passed to its build function
    as the keyword ``dest`` (a repeated option gives a list, or None when not given)."""

    flags: tuple[str, ...]
    """Option names, e.g. ``("--time-var",)``."""
    dest: str
    """Keyword of :attr:`Backend.build` receiving the value."""
    help: str
    default: Any = None
    is_flag: bool = False
    multiple: bool = False
    choices: tuple[str, ...] | None = None
    show_default: bool = False


@dataclass(frozen=True)
class Backend:
    """One kind of indexed file (raster, xarray, vector …): everything the build driver, the CLI
    and the loaders need to know about it. Picklable: it travels with every build task."""

    name: str
    """Value of the ``backend`` column, the ``geoduck build`` sub-command and the id's namespace."""
    extensions: tuple[str, ...]
    """File suffixes a directory or glob is searched for (lower case, with the dot)."""
    fields: tuple[pa.Field, ...]
    """Columns this backend's rows add between the core and the file-name columns."""
    read_header: ReadFn
    """Reads one file's header rows (without id/filepath/backend/time/file-name columns)."""
    build: Callable[..., Catalog]
    """The public builder (``build_<name>_catalog(paths, out_dir, **options)``)."""
    loader: str
    """``"module:function"`` of the loader reading rows of this backend (imported on use)."""
    directory_suffixes: tuple[str, ...] = ()
    """Directories named ``*<suffix>`` are items, not searched (e.g. ``.zarr`` stores)."""
    read_env: ReadEnv | None = None
    """Context entered once around each chunk of :attr:`read_header` calls (e.g. GDAL options)."""
    sub_key: str | None = None
    """Header column telling the items of one file apart (``variable``, ``layer``), part of the id."""
    cli_options: tuple[CliOption, ...] = ()
    """Options of ``geoduck build <name>`` besides PATHS, ``-o``, ``--workers`` and ``--progress``."""
    cli_help: str = ""
    """Help text of ``geoduck build <name>``."""

    @property
    def load(self) -> Callable[..., Any]:
        """The loader function (its module imported now)."""
        module, _, attr = self.loader.partition(":")
        return getattr(importlib.import_module(module), attr)

    def arrow_schema(self, extra_columns: tuple[str, ...] | list[str] = (), scenes: bool = False) -> pa.Schema:
        """The Arrow schema of this backend's parts: core, backend, file-name (string), ``scene_id``
        (with ``scenes``) then file columns."""
        return schema.part_schema(self.fields, extra_columns, scenes)


_REGISTRY: dict[str, str] = {}
"""Backend name → module holding its ``BACKEND`` value."""


def register(name: str, module: str) -> None:
    """Register the backend ``name`` defined as ``BACKEND`` in ``module`` (imported on first use)."""
    _REGISTRY[name] = module


_BUILTIN: dict[str, str] = {
    "raster": "geoduck.builders.raster",
    "xarray": "geoduck.builders.xarray",
    "vector": "geoduck.builders.vector",
}
"""The built-in backends (their columns are :data:`geoduck.schema.BACKEND_FIELDS`)."""

for _name, _module in _BUILTIN.items():
    register(_name, _module)


def names() -> tuple[str, ...]:
    """Registered backend names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Backend:
    """The registered backend ``name``; raises :class:`ArgumentError` for an unknown one."""
    module = _REGISTRY.get(name)
    if module is None:
        raise ArgumentError(f"unknown backend {name!r}; registered backends: {', '.join(_REGISTRY)}")
    value = getattr(importlib.import_module(module), "BACKEND", None)
    if not isinstance(value, Backend) or value.name != name:
        raise ArgumentError(f"module {module} registered for backend {name!r} defines no BACKEND named {name!r}")
    return value


def reserved_columns() -> frozenset[str]:
    """Column names a file-name regex group may not take: the core columns and those of every
    registered backend (catalogs of different backends are combined by the set algebra). Only
    non-built-in backends' modules are imported: the built-in columns are already in
    :data:`geoduck.schema.RESERVED_COLUMNS`."""
    names_ = set(schema.RESERVED_COLUMNS)
    for name, module in _REGISTRY.items():
        if _BUILTIN.get(name) != module:
            names_.update(f.name for f in get(name).fields)
    return frozenset(names_)
