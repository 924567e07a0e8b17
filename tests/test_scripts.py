"""geoduck used as README snippets are: top-level code of a script, with no ``__main__`` guard.

A build of more than ``CHUNK_FILES`` files reads headers in a process pool; its workers must not
re-run the user's script (which would start the build again in every worker and break the pool).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import rasterio

import geoduck
from geoduck.builders import common
from geoduck.testing import coordinate_raster

ROOT = Path(__file__).resolve().parents[1]
N_FILES = 72

SCRIPT = textwrap.dedent("""\
    import os
    import sys

    import geoduck

    src, out, log = sys.argv[1:4]
    with open(log, "a") as f:  # one line each time this top-level code runs, in any process
        f.write(f"{os.getpid()}\\n")
    cat = geoduck.build_raster_catalog(src, out, filename_regex=r"S2_(?P<tile>\\w{5})_", workers=2,
                                       progress=False)
    print("rows", len(cat), "errors", len(cat.build_report.errors))
""")


@pytest.fixture(scope="module")
def rasters(tmp_path_factory) -> list[Path]:
    """72 tiny rasters (more than 2 × CHUNK_FILES) in UTM 30 and EPSG:4326."""
    root = tmp_path_factory.mktemp("script_rasters")
    files = []
    for i in range(N_FILES):
        lonlat = i % 2 == 1
        files.append(
            coordinate_raster(
                root / f"S2_{i:02d}XYZ_.tif",
                crs="EPSG:4326" if lonlat else "EPSG:32630",
                origin=(-3.0 + 0.05 * i, 41.0) if lonlat else (300_000.0 + 1_000 * i, 4_600_000.0),
                res=0.001 if lonlat else 100.0,
                shape=(4, 6),
            )
        )
    return files


def _run(args: list[str], script: Path, tmp_path: Path, *, stdin: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-"] if stdin else [sys.executable, str(script)]
    with open(script) as f:
        return subprocess.run(
            [*cmd, *args],
            stdin=f if stdin else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=300,
        )


@pytest.mark.parametrize("stdin", [False, True], ids=["python script.py", "python - < script.py"])
def test_top_level_build_script_without_main_guard(rasters, tmp_path, stdin):
    assert N_FILES > 2 * common.CHUNK_FILES  # the process pool is used, with several chunks per worker
    script = tmp_path / "build_catalog.py"
    script.write_text(SCRIPT)
    out, log = tmp_path / "cat", tmp_path / "runs.log"
    proc = _run([str(rasters[0].parent), str(out), str(log)], script, tmp_path, stdin=stdin)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BrokenProcessPool" not in proc.stderr
    assert proc.stdout.split() == ["rows", str(N_FILES), "errors", "0"]
    assert len(log.read_text().splitlines()) == 1  # the script's top-level code ran once, in the parent

    rows = {r["filepath"]: r for r in geoduck.open_catalog(out).to_arrow().to_pylist()}
    assert sorted(rows) == sorted(str(p.resolve()) for p in rasters)
    for path in rasters:
        row = rows[str(path.resolve())]
        with rasterio.open(path) as ds:
            assert row["crs"] == ds.crs.to_string()
            assert (row["width"], row["height"]) == (ds.width, ds.height)
            assert tuple(row["native_bounds"].values()) == pytest.approx(tuple(ds.bounds), abs=1e-9)
        assert row["tile"] == path.name[3:8]
