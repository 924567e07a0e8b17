"""A crafted ``_geoduck_manifest.json`` must never make maintenance delete anything (issue #12,
Security 1): every name it lists must be a plain part file name resolving inside the catalog,
else compaction, migration, recovery and readers refuse it with a SchemaError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import geoduck
from geoduck import maintenance as maint
from geoduck import store
from geoduck.cli import main
from geoduck.errors import SchemaError
from geoduck.testing import write_synthetic_catalog


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_catalog(tmp_path_factory.mktemp("tpl") / "cat", 4, 3, part_rows=4)  # 3 parts


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "cat"))


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    return victim


def _escapes(tmp_path: Path, root: Path) -> dict[str, str]:
    """Manifest names that reach outside the catalog, one per escape form."""
    victim = tmp_path / "victim.txt"
    outside = tmp_path / "outside.parquet"
    outside.write_text("precious too")
    (root / "part-link.parquet").symlink_to(outside)
    return {
        "dotdot": "../victim.txt",
        "dotdot_parquet": "../outside.parquet",
        "absolute": str(victim),
        "absolute_parquet": str(outside),
        "nested": "sub/../../victim.txt",
        "symlinked_part": "part-link.parquet",
        "nul": "part-x.parquet\x00../victim.txt",
        "very_long": "p" * 5000 + ".parquet",
        "hidden": ".geoduck-append.lock",
        "dot": ".",
        "backslash": "..\\victim.parquet",
        "not_a_string": 7,
    }


ESCAPE_FORMS = [
    "dotdot",
    "dotdot_parquet",
    "absolute",
    "absolute_parquet",
    "nested",
    "symlinked_part",
    "nul",
    "very_long",
    "hidden",
    "dot",
    "backslash",
    "not_a_string",
]


def _snapshot(tmp_path: Path) -> dict[str, bytes]:
    """Every file (not the maintenance lock, which a run may create) and its bytes."""
    return {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != maint.LOCK_NAME
    }


@pytest.mark.parametrize("field", ["replaces", "by"])
@pytest.mark.parametrize("form", ESCAPE_FORMS)
@pytest.mark.parametrize("operation", ["compact", "migrate", "recover", "read"])
def test_crafted_manifest_deletes_nothing(tmp_path, root, form, field, operation):
    _victim(tmp_path)
    parts = store.part_names(root)
    name = _escapes(tmp_path, root)[form]
    # "by" names that all exist mark a finished switch (delete "replaces"); one missing "by" name
    # means roll back (delete "by"): both paths must refuse before deleting anything.
    entry = {"replaces": [name], "by": [parts[0]]} if field == "replaces" else {"replaces": [], "by": [name]}
    (root / store.MANIFEST).write_text(json.dumps({"generation": 1, "replacements": [entry]}))
    before = _snapshot(tmp_path)
    run = {
        "compact": lambda: geoduck.compact(root),
        "migrate": lambda: maint.migrate(root),
        "recover": lambda: maint.recover(root),
        "read": lambda: len(geoduck.open_catalog(root)),
    }
    with pytest.raises(SchemaError, match=str(store.MANIFEST)) as info:
        run[operation]()
    assert "outside the catalog" in str(info.value) or "not a part file name" in str(info.value)
    assert _snapshot(tmp_path) == before  # nothing deleted, nothing rewritten
    assert (root / "part-link.parquet").is_symlink()


@pytest.mark.parametrize(
    "manifest",
    [
        [],
        "x",
        {"generation": "1", "replacements": []},
        {"replacements": {"replaces": []}},
        {"replacements": [{"replaces": "../victim.txt", "by": []}]},
        {"replacements": [{"replaces": [], "by": [], "also": ["../victim.txt"]}]},
    ],
)
def test_malformed_manifest_is_refused(tmp_path, root, manifest):
    (root / store.MANIFEST).write_text(json.dumps(manifest))
    before = _snapshot(tmp_path)
    with pytest.raises(SchemaError, match="malformed"):
        geoduck.compact(root)
    assert _snapshot(tmp_path) == before


def test_cli_compact_with_crafted_manifest_exits_1_and_deletes_nothing(tmp_path, root):
    victim = _victim(tmp_path)
    parts = store.part_names(root)
    entry = {"replaces": ["../victim.txt"], "by": [parts[0]]}  # the attack
    (root / store.MANIFEST).write_text(json.dumps({"generation": 1, "replacements": [entry]}))
    for command in ("compact", "migrate"):
        result = CliRunner().invoke(main, [command, str(root)])
        assert result.exit_code == 1
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: catalog manifest")
        assert "'../victim.txt'" in lines[0]
        assert victim.read_text() == "precious"
        assert store.part_names(root) == parts


def test_valid_manifest_still_recovers(root):
    """A genuine interrupted replacement (new part renamed in, old ones not yet deleted) with
    plain names is still finished by the next compaction: the check refuses only escapes."""
    old = store.part_names(root)
    ids = sorted(geoduck.open_catalog(root).to_arrow()["id"].to_pylist())
    new = maint.replace_parts  # write one new part holding all rows, then crash before recovery

    class Crash(BaseException):
        pass

    real_recover = maint.recover
    maint.recover = lambda r: (_ for _ in ()).throw(Crash())
    try:
        with pytest.raises(Crash):
            new(root, [root / n for n in old], maint._write_sorted([root / n for n in old], 100, 100))
    finally:
        maint.recover = real_recover
    assert store.read_manifest(root)["replacements"][0]["replaces"] == old
    assert sorted(geoduck.open_catalog(root).to_arrow()["id"].to_pylist()) == ids
    geoduck.compact(root)
    assert not set(old) & set(store.part_names(root))
    assert store.read_manifest(root)["replacements"] == []
    assert sorted(geoduck.open_catalog(root).to_arrow()["id"].to_pylist()) == ids
