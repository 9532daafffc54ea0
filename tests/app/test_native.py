"""app/native.py: a build is used only while it matches the source; NATIVE_CORE chooses; the real build loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import native

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the compiled modules' source, as a project root."""
    for module in native.MODULES:
        target = native.source_of(module, tmp_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(native.source_of(module), target)
    return tmp_path


@pytest.fixture
def meta_path() -> Iterator[list[object]]:
    before = list(sys.meta_path)
    yield before
    sys.meta_path[:] = before


def fake_build(root: Path) -> Path:
    """A finished build's layout for `root` (empty extension files: found, never imported here)."""
    folder = native.builds_of(root) / native.build_key(root)
    suffix = native.importlib.machinery.EXTENSION_SUFFIXES[0]
    for name in (*native.MODULES, f"{native.GROUP}__mypyc"):
        path = folder.joinpath(*name.split(".")).with_name(name.rsplit(".", 1)[-1] + suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (folder / native.COMPLETE).write_text("")
    return folder


def test_the_key_follows_every_compiled_source_and_the_module_list(tree: Path) -> None:
    key = native.build_key(tree)
    assert native.build_key(tree) == key
    source = native.source_of("app.views", tree)
    source.write_text(source.read_text() + "\n# an edit\n")
    assert native.build_key(tree) != key
    assert native.build_key(tree, native.MODULES[:-1]) != native.build_key(tree)


def test_a_build_is_current_only_when_finished_and_made_from_this_source(tree: Path) -> None:
    assert native.current_build(tree) is None
    folder = fake_build(tree)
    assert native.current_build(tree) == folder
    assert set(native.extension_files(folder)) == {*native.MODULES, f"{native.GROUP}__mypyc"}
    (folder / native.COMPLETE).unlink()  # interrupted
    assert native.current_build(tree) is None
    (folder / native.COMPLETE).write_text("")
    source = native.source_of("app.venues.paper", tree)
    source.write_text(source.read_text() + "\n# an edit after the build\n")
    assert native.current_build(tree) is None  # stale: the edit runs as Python


def test_a_build_missing_a_module_is_not_used(tree: Path) -> None:
    folder = fake_build(tree)
    next(folder.glob("app/views.*")).unlink()
    assert native.extension_files(folder) == {}


def test_native_core_chooses(tree: Path, monkeypatch: pytest.MonkeyPatch, meta_path: list[object]) -> None:
    monkeypatch.setenv("NATIVE_CORE", "required")
    with pytest.raises(native.NativeCoreError, match=r"python -m app\.native_build"):
        native.enable(tree)
    monkeypatch.setenv("NATIVE_CORE", "auto")
    assert native.enable(tree) is None  # no build: Python
    fake_build(tree)
    monkeypatch.setenv("NATIVE_CORE", "off")
    assert native.enable(tree) is None
    assert sys.meta_path == meta_path
    monkeypatch.setenv("NATIVE_CORE", "auto")
    finder = native.enable(tree)
    assert finder is not None and sys.meta_path[0] is finder
    spec = finder.find_spec("app.orders", None)
    assert spec is not None and isinstance(spec.loader, native.importlib.machinery.ExtensionFileLoader)
    assert finder.find_spec("app.services", None) is None  # not compiled: imported as usual
    monkeypatch.setenv("NATIVE_CORE", "fast")
    with pytest.raises(native.NativeCoreError, match="auto, off, required"):
        native.enable(tree)


LOADED = "import importlib, sys; from app import native; " + (
    "print(' '.join(m for m in native.MODULES if native.is_native(importlib.import_module(m))))"
)


def loaded_natively(mode: str) -> list[str]:
    env = {**os.environ, "NATIVE_CORE": mode}
    result = subprocess.run([sys.executable, "-c", LOADED], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.skipif(native.current_build() is None, reason="no current build: .venv/bin/python -m app.native_build")
def test_the_real_build_loads_every_module_and_off_loads_none() -> None:
    assert sorted(loaded_natively("required")) == sorted(native.MODULES)
    assert sorted(loaded_natively("auto")) == sorted(native.MODULES)
    assert loaded_natively("off") == []
