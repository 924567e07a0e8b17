"""The sandbox's view of catalog folders (:mod:`geoduck.sandbox`): an fsspec file system that
reads their part files and refuses every write. Its own module so that fsspec is imported only
when user SQL runs (not by ``geoduck query``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fsspec import AbstractFileSystem

from . import store
from .sandbox import PROTOCOL


class CatalogFolders(AbstractFileSystem):
    """Catalog folders, read-only, under opaque names: ``geoduckro://<alias>/<part>.parquet``.

    Only part files directly inside a folder are visible (symlinks leading out of it are not);
    opening for anything but reading, and every other change, raises ``PermissionError``."""

    protocol = PROTOCOL
    cachable = False  # one instance per sandbox connection, each with its own folders

    def __init__(self, folders: Mapping[str, str]) -> None:
        super().__init__()
        self._folders = {alias: os.path.realpath(root) for alias, root in folders.items()}

    def _real(self, path: str) -> tuple[str, str]:
        """(alias, real path) of ``path``; raises for anything outside the folders."""
        alias, _, rest = self._strip_protocol(path).strip("/").partition("/")
        root = self._folders.get(alias)
        if root is None or "\x00" in rest:
            raise FileNotFoundError(path)
        if not rest:
            return alias, root
        real = os.path.realpath(os.path.join(root, rest))
        if os.path.dirname(real) != root or not store.is_part_name(os.path.basename(real)):
            raise PermissionError(f"{path}: only the catalog's part files can be read")
        return alias, real

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        alias, real = self._real(path)
        if real != self._folders[alias]:
            entries = [self.info(path)]
        else:
            entries = []
            for name in store.part_names(real):
                try:
                    entries.append(self.info(f"{alias}/{name}"))
                except OSError:  # vanished meanwhile, or a symlink leading out
                    continue
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict:
        alias, real = self._real(path)
        st = os.stat(real)
        name = alias if real == self._folders[alias] else f"{alias}/{os.path.basename(real)}"
        kind = "directory" if real == self._folders[alias] else "file"
        return {"name": name, "size": st.st_size, "type": kind, "mtime": st.st_mtime}

    def modified(self, path: str) -> Any:
        import datetime as dt

        return dt.datetime.fromtimestamp(self.info(path)["mtime"], tz=dt.UTC)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError(f"{path}: the catalog is read-only for SQL (mode {mode!r} refused)")
        _, real = self._real(path)
        return open(real, "rb")  # noqa: SIM115 (the caller closes it)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("the catalog is read-only for SQL")

    rm = rm_file = _rm = rmdir = mkdir = makedirs = mv = cp_file = copy = touch = _refuse
    put_file = pipe_file = put = pipe = _refuse
