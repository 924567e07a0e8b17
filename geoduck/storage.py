"""Binding: every catalog scan of a relation resolved once into its live parts (and their extents)
through one storage interface, so that :mod:`geoduck.compiler` renders SQL without any I/O.

A :class:`Storage` lists a catalog's live parts (the manifest read before the listing, judged by
:func:`geoduck.store.live_names`: the new parts of an unfinished compaction are hidden the same way
everywhere) and reads part extents. :class:`LocalStorage` serves directories, and
:class:`geoduck.remote.RemoteStorage` ``s3://``, ``gs://``, ``https://`` … URIs. :func:`bind` returns
the relation tree with each :class:`~geoduck.expr.Scan` carrying its :class:`~geoduck.expr.Parts`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from . import remote, store
from .expr import Node, Parts, Scan, SpatialFilter, TimeFilter, Where


@dataclass(frozen=True)
class Listing:
    """A catalog's live parts at one moment."""

    root: str
    paths: tuple[str, ...]
    """Live part files (paths or URIs), oldest first; empty for a remote catalog read through
    ``glob`` (its parts are not listed, see :class:`geoduck.remote.RemoteStorage`)."""
    pending: bool
    """Whether a replacement (compaction, migration) is pending in the manifest."""
    glob: str | None
    """A glob that reads exactly the live parts (``paths``, where listed); None when only naming
    the parts does (a replacement is pending, or the location cannot be globbed)."""


class Storage(Protocol):
    """Where catalog parts live: lists them and reads their footers."""

    def listing(self, root: str) -> Listing:
        """The live parts of the catalog at ``root`` (manifest read before listing)."""
        ...

    def extents(self, paths: Sequence[str]) -> tuple[store.PartExtent, ...] | None:
        """Footer extents of ``paths``, or None when unknown (then no part is skipped)."""
        ...


class LocalStorage:
    """Catalog directories on a local (or mounted) file system."""

    def __init__(self) -> None:
        self._extents: dict[str, tuple[tuple[str, ...], object, tuple[store.PartExtent, ...]]] = {}

    def listing(self, root: str) -> Listing:
        paths, pending = store.live_listing(root)  # recorded for read_consistently
        glob = None if pending or "\\" in root else store.part_glob(root)  # (no glob spells a backslash)
        return Listing(root, tuple(paths), pending, glob)

    def extents(self, paths: Sequence[str]) -> tuple[store.PartExtent, ...] | None:
        """From the catalog's part index (:data:`geoduck.store.INDEX`): no part file is opened,
        not even stat'ed, unless the index lacks it (then its footer is read)."""
        try:
            folder = os.path.dirname(paths[0]) if paths else ""
            cached = self._extents.get(folder)
            if cached is not None and cached[0] == paths and cached[1] is store.read_index(folder):
                return cached[2]  # the same parts as last time, the index unchanged
            folders = {os.path.dirname(p) for p in paths}
            if len(folders) != 1:
                return tuple(store.part_extent(p) for p in paths)
            extents = store.indexed_extents(folder, [os.path.basename(p) for p in paths])
            index = store.read_index(folder)
            if index is not None:
                if len(self._extents) > 64:
                    self._extents.clear()
                self._extents[folder] = (tuple(paths), index, extents)
            return extents
        except (OSError, ValueError, pa.ArrowException):
            return None  # unreadable footers: let DuckDB read (and report) them


LOCAL = LocalStorage()


def storage_for(root: str | os.PathLike[str]) -> Storage:
    """The storage of a catalog root: remote for URIs (see :func:`geoduck.remote.is_uri`), else local."""
    return remote.RemoteStorage() if remote.is_uri(root) else LOCAL


Listings = dict[str, Listing]
"""``root → Listing`` made by one binding (each catalog listed once)."""


def bind(node: Node, listings: Listings | None = None) -> Node:
    """``node`` with every unbound :class:`Scan` resolved into its :class:`Parts`: each catalog
    root listed once (``listings`` may be shared by several relations bound together), footer
    extents read only for scans a spatial or time filter sits directly over (where the compiler may
    skip whole parts). A bound tree binds to itself, without I/O."""
    return _bind(node, False, {} if listings is None else listings)


def is_bound(node: Node) -> bool:
    """Whether every scan of ``node`` carries its parts."""
    if isinstance(node, Scan):
        return node.parts is not None
    return all(is_bound(sub) for sub in _children(node).values())


def _children(node: Node) -> dict[str, Node]:
    return {f.name: value for f in dataclasses.fields(node) if isinstance(value := getattr(node, f.name), Node)}


def _bind(node: Node, prunable: bool, listings: Listings) -> Node:
    if isinstance(node, Scan):
        if node.parts is not None:
            return node
        storage = storage_for(node.root)
        if node.files is not None:
            paths, glob = node.files, None
        else:
            listing = listings.get(node.root)
            if listing is None:
                listing = listings[node.root] = storage.listing(node.root)
            paths, glob = listing.paths, listing.glob
        extents = storage.extents(paths) if prunable and len(paths) > 1 else None
        return dataclasses.replace(node, parts=Parts(paths, glob, extents))
    bound: dict[str, Node] = {}
    for name, sub in _children(node).items():
        # a filter is merged into the scan below it (through Where), so it may skip whole parts
        keeps = isinstance(node, SpatialFilter | TimeFilter) or (isinstance(node, Where) and prunable)
        if (new := _bind(sub, keeps, listings)) is not sub:
            bound[name] = new
    return dataclasses.replace(node, **bound) if bound else node
