"""The real-file corpus for tests: which files it holds, of which kind (see tools/fetch_corpus.py).

``CORPUS`` lists :class:`CorpusFile` items (``path`` relative to the corpus folder, ``kind`` one of
``raster``/``netcdf``/``vector``, ``tags`` such as ``rotated``, ``sidecar-nodata``, ``world-file``,
``two-file``, ``towgs84``, ``km``, ``bounds``). Use the ``corpus_dir`` fixture for the folder.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("fetch_corpus", _REPO / "tools" / "fetch_corpus.py")
fetch_corpus = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fetch_corpus", fetch_corpus)
_spec.loader.exec_module(fetch_corpus)

CorpusFile = fetch_corpus.CorpusFile
CORPUS: tuple = fetch_corpus.CORPUS


def of_kind(kind: str) -> list:
    """The corpus items of one kind, in manifest order."""
    return [f for f in CORPUS if f.kind == kind]


def ids(items: list) -> list[str]:
    return [f.path for f in items]


def corpus_root() -> Path | None:
    """The corpus folder if complete for this manifest, else None."""
    root = Path(os.environ.get("GEODUCK_CORPUS", _REPO / ".cache" / "corpus"))
    return root if fetch_corpus.is_complete(root) else None
