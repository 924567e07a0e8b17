"""``geoduck duckdb``: one DuckDB database file of live views over catalogs, for BI tools.

The file holds no rows: each catalog is a view reading its folder's parts when queried, through
the ``geoduck_catalog`` macro of ``sql/geoduck.sql`` (stored in the file with the other macros),
so parts appended later appear without regenerating the file, and a compaction in progress or
crashed half-way is never counted twice (the macro applies the manifest rule of
:func:`geoduck.store.live_names`). Per catalog ``NAME``:

- ``NAME``: its rows (all columns; ``geometry`` is WKB, ``bbox`` the covering struct);
- ``NAME_footprints``: the same rows with ``geometry`` as a spatial ``GEOMETRY`` (needs the
  spatial extension loaded by the client);
- ``NAME_monthly``: rows per UTC month of ``start_datetime`` (``month`` NULL: static rows);
- ``NAME_backends``: rows per ``backend`` (only when the catalog has that column).

Paths are stored absolute: move the catalogs and the file must be regenerated.
"""

from __future__ import annotations

import glob as globmod
import os
import re
from collections.abc import Sequence
from pathlib import Path

import duckdb

from . import compiler, engine, store
from .catalog import open_catalog
from .errors import ArgumentError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def view_name(path: str | os.PathLike[str]) -> str:
    """The default view name of a catalog folder: its name with other characters than letters,
    digits and ``_`` replaced by ``_`` (a leading digit gets a ``_`` before it)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", Path(path).name) or "catalog"
    return name if _NAME.fullmatch(name) else f"_{name}"


def catalog_view_sql(name: str, root: str | os.PathLike[str], columns: Sequence[str]) -> list[str]:
    """The ``CREATE VIEW`` statements of one catalog folder ``root`` (absolute) as ``name``."""
    root = os.fspath(root)
    if "\\" in root:
        raise ArgumentError(f"catalog folder {root!r} has a backslash in its path, which DuckDB globs cannot read")
    manifest = os.path.join(globmod.escape(root), store.MANIFEST[:-1] + "[" + store.MANIFEST[-1] + "]")
    return compiler.catalog_views(name, store.part_glob(root), manifest, columns)


def write_duckdb(
    catalogs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
) -> Path:
    """Write the DuckDB database file ``out`` with live views over the local ``catalogs`` (see the
    module docstring), replacing any file there atomically. ``names``: the view names (default:
    :func:`view_name` of each folder). Returns ``out``."""
    if not catalogs:
        raise ArgumentError("geoduck duckdb: give at least one catalog folder")
    roots = [store.require_catalog(store.local_path(c)) for c in catalogs]
    chosen = list(names) if names is not None else [view_name(r) for r in roots]
    if len(chosen) != len(roots):
        raise ArgumentError(f"{len(chosen)} names for {len(roots)} catalogs: give one name per catalog")
    bad = [n for n in chosen if not _NAME.fullmatch(n)]
    if bad:
        raise ArgumentError(f"view names {bad} are not SQL identifiers (letters, digits, _): pass names=")
    lowered = [n.lower() for n in chosen]
    dup = sorted({n for n in lowered if lowered.count(n) > 1})
    if dup:
        raise ArgumentError(f"two catalogs would get the view name(s) {dup}: pass distinct names= (CLI --name)")
    target = Path(out).expanduser().resolve()
    with store.replacing(target) as tmp:
        try:
            con = duckdb.connect(str(tmp), config={"autoinstall_known_extensions": False})
            try:
                engine.load_spatial(con)
                con.execute(engine.macros_path().read_text())
                for name, root in zip(chosen, roots, strict=True):
                    open_catalog(root)  # refuses unreadable parts before the views are written
                    for statement in catalog_view_sql(name, root, store.part_columns(root)):
                        con.execute(statement)
                con.execute("CHECKPOINT")
            finally:
                con.close()
        finally:
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    return target
