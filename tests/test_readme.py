"""Every README example runs: the ```python blocks of each ``##`` section, in order, in one fresh
namespace inside a temporary working directory that a per-section setup fills with the synthetic
files and catalogs the section names (``data/s2/``, ``catalog/`` …); the ``geoduck …`` lines of its
```bash blocks run through the CLI (click's runner) in the same directory, argv split by bash itself.
Checks after a block or a command assert what the README says it gives.

A block that cannot run carries ``<!-- not-run: reason -->`` on the line before it (at most
:data:`MAX_NOT_RUN`). A new section with code needs an entry in :data:`SETUPS`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from click.testing import CliRunner

import geoduck
from geoduck.cli import main
from geoduck.testing import (
    DEMO_TILES,
    LANDSAT_REGEX,
    SENTINEL2_REGEX,
    synthetic_archive,
    synthetic_cube,
    synthetic_labels,
    synthetic_landsat_archive,
    synthetic_sentinel2_archive,
)

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_NOT_RUN = 3
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.*?)\s*-->$")


# -- README parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    section: str
    """The ``## `` heading it is under."""
    lang: str
    line: int
    """1-based README line of its first code line."""
    code: str
    not_run: str | None
    """The reason of a ``<!-- not-run: … -->`` line right before it, else None."""


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` in order, each with its ``##`` section."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            start = i + 1
            end = start
            while not lines[end].startswith("```"):
                end += 1
            before = lines[i - 1].strip() if i else ""
            marker = NOT_RUN.match(before)
            blocks.append(
                Block(section, fence.group(1), start + 1, "\n".join(lines[start:end]), marker and marker["reason"])
            )
            i = end
        i += 1
    return blocks


def commands(block: Block) -> list[tuple[int, str]]:
    """The ``geoduck …`` command lines of a bash block (``\\`` continuations joined, comment-only
    lines skipped), with their README line numbers."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for k, raw in enumerate(block.code.splitlines()):
        line = raw.strip()
        if pending is None and (not line or line.startswith("#")):
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line)
        else:
            pending = (block.line + k, line)
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1].rstrip())
            continue
        if pending[1].startswith("geoduck "):
            out.append(pending)
        pending = None
    return out


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


def _argv(command: str, cwd: Path) -> list[str]:
    """``command`` split into words as bash does (quotes, ``$(…)``, comments), run in ``cwd``."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    operators = [tok for tok in lexer if tok and set(tok) <= set("|&;<>()")]
    assert not operators, f"not one plain command: {command!r} ({operators})"
    done = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {command}"], cwd=cwd, capture_output=True, check=True, timeout=30
    )
    return done.stdout.decode().split("\0")[:-1]


# -- sections: setups and checks --------------------------------------------------------------------

JUNE = (dt.date(2023, 5, 20), dt.date(2023, 6, 5), dt.date(2023, 6, 20), dt.date(2023, 7, 20))
"""Archive dates; tile k is acquired k days later (synthetic_archive)."""

Setup = Callable[[Path, ExitStack], dict[str, Any]]


def _band_catalogs(root: Path, *, qa: bool = False) -> None:
    """``data/l2a/`` (Sentinel-2 band files) and ``data/landsat/`` archives, catalogs ``s2/``, ``landsat/``."""
    s2 = synthetic_sentinel2_archive(root / "data/l2a", scl=qa)
    l8 = synthetic_landsat_archive(root / "data/landsat", qa_pixel=qa)
    geoduck.build_raster_catalog(s2, root / "s2", filename_regex=SENTINEL2_REGEX, progress=False, workers=1)
    geoduck.build_raster_catalog(l8, root / "landsat", filename_regex=LANDSAT_REGEX, progress=False, workers=1)


def setup_use(root: Path, stack: ExitStack) -> dict[str, Any]:
    synthetic_archive(root / "data/s2", tiles=DEMO_TILES[:3], dates=JUNE)
    synthetic_cube(root / "data/era5/t2m_2023.nc")
    synthetic_labels(root / "data/labels/fields_202306.geojson")
    _band_catalogs(root)
    return {}


def check_use(ns: dict[str, Any]) -> None:
    """The June query gives exactly the rows a brute-force filter gives; the loads are on ``sl``."""
    from shapely.geometry import box

    cat, june, sl = ns["cat"], ns["june"], ns["sl"]
    assert cat.build_report.indexed == 12 and not cat.build_report.errors
    rows = cat.to_geopandas()
    aoi = geoduck.geo.transformer("EPSG:32630", "EPSG:4326")
    lonlat = box(*aoi.transform_bounds(300_000, 4_380_000, 400_000, 4_480_000, densify_pts=21))
    expect = rows[
        rows.intersects(lonlat)
        & (rows["start_datetime"] <= "2023-06-30T23:59:59.999999Z")
        & (rows["end_datetime"] >= "2023-06-01T00:00:00Z")
    ]
    assert sorted(ns["gdf"]["id"]) == sorted(expect["id"]) and len(june) == len(expect) == 4
    assert set(ns["gdf"]["tile"]) == {"30TTK", "30TVK"}
    assert set(ns["gdf"]["start_datetime"].dt.month) == {6}
    assert len(ns["pairs"]) > 0 and {"left_id", "right_id"} <= set(ns["pairs"].to_arrow().column_names)
    assert set(ns["train"].to_arrow()["split"].to_pylist()) == {"train"}
    assert ns["mosaic"].values.shape == (3, *sl.shape) and ns["mosaic"].transform == sl.transform
    assert ns["mask"].values.shape[-2:] == sl.shape and int(np.asarray(ns["mask"].values).max()) > 0


SETUPS: dict[str, Setup] = {
    "Use": setup_use,
}

PY_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "mask = geoduck.load_vector(labels, sl": check_use,
}
"""A line of a python block → a check run on the namespace right after that block."""

CLI_CHECKS: dict[str, Callable[[str, Path], None]] = {}
"""The start of a command → a check of its output (and the working directory) after it ran."""


# -- tests ------------------------------------------------------------------------------------------


def _sections() -> list[str]:
    seen: list[str] = []
    for b in BLOCKS:
        if b.section in SETUPS and b.section not in seen:
            seen.append(b.section)
    return seen


def _runnable(b: Block) -> bool:
    return b.not_run is None and (b.lang == "python" or (b.lang == "bash" and bool(commands(b))))


def test_every_example_has_a_setup_and_few_are_not_run():
    python = [b for b in BLOCKS if b.lang == "python"]
    assert len(python) >= 15
    not_run = [b for b in BLOCKS if b.not_run is not None]
    assert len(not_run) <= MAX_NOT_RUN, [(b.line, b.not_run) for b in not_run]
    assert all(len(b.not_run or "") >= 10 for b in not_run), "each not-run marker needs a reason"
    missing = sorted({b.section for b in BLOCKS if _runnable(b) and b.section not in SETUPS})
    assert not missing, f"README sections with examples but no setup in tests/test_readme.py: {missing}"
    assert set(SETUPS) <= {b.section for b in BLOCKS if _runnable(b)}, "a setup for a section without examples"
    for key in PY_CHECKS:
        assert sum(key in b.code for b in BLOCKS if b.lang == "python") == 1, f"check key not in one block: {key!r}"
    cli = [c for b in BLOCKS if b.lang == "bash" for _, c in commands(b)]
    for key in CLI_CHECKS:
        assert sum(c.startswith(key) for c in cli) == 1, f"check key not one command: {key!r}"


def test_parser_finds_commands_and_markers():
    text = "## A\n<!-- not-run: needs a cluster -->\n```python\nx = 1\n```\n```bash\ngeoduck info c/ \\\n  --x 1  # y\n    # z\nmake demo\n```\n"
    blocks = parse_blocks(text)
    assert [(b.section, b.lang, b.line, b.not_run) for b in blocks] == [
        ("A", "python", 4, "needs a cluster"),
        ("A", "bash", 7, None),
    ]
    assert commands(blocks[1]) == [(7, "geoduck info c/ --x 1  # y")]
    assert _argv("geoduck info 'a b' \"$(echo c)\"  # comment", Path.cwd()) == ["geoduck", "info", "a b", "c"]
    with pytest.raises(AssertionError, match="not one plain command"):
        _argv("geoduck info c/ | head", Path.cwd())


@pytest.mark.parametrize("section", _sections())
def test_readme_section_runs(section: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    ran = 0
    with ExitStack() as stack:
        ns: dict[str, Any] = {"__name__": "readme_example"}
        ns.update(SETUPS[section](tmp_path, stack))
        for block in (b for b in BLOCKS if b.section == section and _runnable(b)):
            if block.lang == "python":
                exec(compile("\n" * (block.line - 1) + block.code, str(README), "exec"), ns)  # noqa: S102
                for key, check in PY_CHECKS.items():
                    if key in block.code:
                        check(ns)
            else:
                for line, command in commands(block):
                    argv = _argv(command, tmp_path)
                    result = CliRunner().invoke(main, argv[1:], catch_exceptions=False)
                    assert result.exit_code == 0, f"README.md:{line}: {command}\n{result.output}"
                    for key, cli_check in CLI_CHECKS.items():
                        if command.startswith(key):
                            cli_check(result.output, tmp_path)
            ran += 1
    assert ran > 0
