"""The report of a build: what was indexed, skipped, changed and why files failed.

A value of its own module so that :mod:`geoduck.catalog` (which keeps it on the catalog a build
returns) and :mod:`geoduck.builders` (which makes it) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildReport:
    """What a build did. ``errors`` and ``changed`` name files; nothing is silently dropped."""

    indexed: int = 0
    """Rows added to the catalog."""
    files_indexed: int = 0
    unchanged: int = 0
    """Files already in the catalog with the same size and mtime (skipped)."""
    changed: tuple[str, ...] = ()
    """Files already indexed whose size or mtime changed since (not re-indexed)."""
    errors: tuple[tuple[str, str], ...] = ()
    """(path, reason) of every file skipped because it could not be indexed."""
    parts: tuple[str, ...] = ()
    """Part files written by this build."""
    skipped: int = 0
    """Files found but not matched by ``filename_regex`` (not indexed, not errors)."""
    skipped_examples: tuple[str, ...] = ()
    """The first few of them (as the regex saw them, see :class:`~geoduck.builders.common.FilenameParser`)."""

    def summary(self) -> str:
        text = (
            f"{self.indexed} rows from {self.files_indexed} files indexed, {self.unchanged} unchanged, "
            f"{len(self.changed)} changed, {len(self.errors)} errors, {len(self.parts)} parts written"
        )
        if self.skipped:
            examples = ", ".join(self.skipped_examples)
            more = ", …" if self.skipped > len(self.skipped_examples) else ""
            text += f"; {self.skipped} files skipped: the regex does not match them (e.g. {examples}{more})"
        return text
