"""Shared fixtures. Tests never touch the network: INSTALL of DuckDB extensions is disabled."""

from __future__ import annotations

import os

os.environ.setdefault("GEODUCK_OFFLINE", "1")

import pytest  # noqa: E402

from geoduck.testing import ARCHIVE_REGEX, synthetic_archive  # noqa: E402


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> list:
    """The default synthetic archive: 48 uint16 GeoTIFFs, 6 tiles in UTM 29/30/31, 2022–2023."""
    return synthetic_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="session")
def archive_catalog(archive, tmp_path_factory: pytest.TempPathFactory):
    """A catalog built from :func:`archive` with the tile/date regex (session-wide, read-only)."""
    import geoduck

    out = tmp_path_factory.mktemp("archive_catalog") / "cat"
    return geoduck.build_raster_catalog(archive, out, filename_regex=ARCHIVE_REGEX, progress=False)


@pytest.fixture(scope="session")
def corpus_dir():
    """The folder of real files made by ``make corpus`` (``$GEODUCK_CORPUS``, default
    ``.cache/corpus``); tests using it are skipped when it is missing (never downloaded here)."""
    from corpus import corpus_root

    root = corpus_root()
    if root is None:
        if os.environ.get("CI"):  # CI runs `make test`, which fetches it: missing there is a failure
            pytest.fail("real-file corpus missing although `make test` fetches it (tools/fetch_corpus.py)")
        pytest.skip("real-file corpus missing: run `make corpus` (tools/fetch_corpus.py)")
    return root
