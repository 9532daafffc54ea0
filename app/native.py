"""The order path's hottest modules, compiled to C extensions with mypyc when a current build exists.

Everything an order does in memory — validation, the paper venue's matching and ledger, the recorder, the event
payloads — is Python spread thin: no function above a few per cent of an order's CPU (docs/orders.md, "Speed").
mypyc (part of mypy, which already type-checks this code strictly) compiles these modules from their unchanged
source; the same orders then cost ~15 % less CPU in process (~12 % under HTTP load). The source stays the
reference and runs as it is wherever no build is current:

- a build lives outside the source tree, in `build/native/<key>/`, and `key` is a hash of the compiled modules'
  source, the module list and the interpreter's ABI tag: after any edit to one of them the old build is simply
  not used (an extension module beside its .py would shadow the edit);
- `./dev run` and `./dev test` build it (`python -m app.native_build`, about a minute, needs a C compiler);
  the Dockerfile builds it in a builder stage. Without a compiler the app runs as Python.

`NATIVE_CORE` chooses, read once when `app` is first imported: `auto` (the default: the build if it is current),
`off` (always Python: the test suite's SQLite pass, and tests that replace a method of these modules' classes),
`required` (stop at import without a current build: the test suite's PostgreSQL pass runs on the build, so both
forms pass the whole suite).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

MODULES = (
    "app.domain",
    "app.events",
    "app.execution.changes",
    "app.execution.paper_engine",
    "app.execution.recorder",
    "app.execution.records",
    "app.ids",
    "app.orders",
    "app.venues.paper",
    "app.venues.paper_book",
    "app.venues.paper_ledger",
    "app.venues.paper_matching",
    "app.views",
)
GROUP = "tradewind_native"  # mypyc's shared library of the group: <GROUP>__mypyc
ROOT = Path(__file__).resolve().parent.parent
COMPLETE = "COMPLETE"  # written last by the build: a directory without it is a build that did not finish
MODES = ("auto", "off", "required")


class NativeCoreError(RuntimeError):
    """NATIVE_CORE is not a known mode, or is `required` without a current build: the app does not start."""


def builds_of(root: Path) -> Path:
    """Where a checkout keeps its builds (outside the source tree; `build/` is git-ignored)."""
    return root / "build" / "native"


def source_of(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def build_key(root: Path = ROOT, modules: Sequence[str] = MODULES) -> str:
    """Changes with any compiled module's source, the list, or the interpreter's ABI (`cpython-311`)."""
    digest = hashlib.sha256(f"{sys.implementation.cache_tag}|{sys.platform}|{','.join(modules)}".encode())
    for module in modules:
        digest.update(source_of(module, root).read_bytes())
    return digest.hexdigest()[:20]


def current_build(root: Path = ROOT, modules: Sequence[str] = MODULES) -> Path | None:
    """The finished build of exactly these sources, if there is one."""
    folder = builds_of(root) / build_key(root, modules)
    return folder if (folder / COMPLETE).is_file() else None


def extension_files(folder: Path, modules: Sequence[str] = MODULES) -> dict[str, Path]:
    """Every module's extension file in a build, and the group's shared library; empty if one is missing."""
    files: dict[str, Path] = {}
    for name in (*modules, f"{GROUP}__mypyc"):
        parent = folder.joinpath(*name.split(".")[:-1])
        leaf = name.rsplit(".", 1)[-1]
        found = [parent / f"{leaf}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
        existing = [path for path in found if path.is_file()]
        if not existing:
            return {}
        files[name] = existing[0]
    return files


class NativeFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules in a build; every other import goes on as usual."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        file = self.files.get(fullname)
        return importlib.util.spec_from_file_location(fullname, file) if file is not None else None


def mode() -> str:
    value = os.environ.get("NATIVE_CORE", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise NativeCoreError(f"NATIVE_CORE must be one of {', '.join(MODES)}, not {value!r}")
    return value


def enable(root: Path = ROOT) -> NativeFinder | None:
    """Put the current build's modules first in line, as `NATIVE_CORE` says; the finder, or None for Python.
    Called by `app/__init__.py` before any compiled module can be imported (they are one group: all or none)."""
    chosen = mode()
    if chosen == "off":
        return None
    folder = current_build(root)
    files = extension_files(folder) if folder is not None else {}
    if not files:
        if chosen == "required":
            raise NativeCoreError(
                "NATIVE_CORE=required but there is no current native build; run: .venv/bin/python -m app.native_build"
            )
        return None
    finder = NativeFinder(files)
    sys.meta_path.insert(0, finder)
    return finder


def is_native(module: ModuleType) -> bool:
    """Whether `module` was loaded from a native build."""
    return isinstance(getattr(module.__spec__, "loader", None), importlib.machinery.ExtensionFileLoader)
