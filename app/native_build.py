"""Build the native modules of `app/native.py`: `python -m app.native_build` (what `./dev` runs).

mypyc type-checks the project with its mypy configuration (pyproject.toml), writes C, and the C compiler builds one
extension per module plus the group's shared library. Everything goes to `build/native/<key>/` (C and objects to a
temporary folder); `COMPLETE` is written last, so an interrupted build is never used. A current build is kept.
Exits 1 with the compiler's message when it cannot build (no C compiler, a module mypyc refuses); the app then runs
as Python.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from app.native import (
    COMPLETE,
    GROUP,
    MODULES,
    ROOT,
    build_key,
    builds_of,
    current_build,
    extension_files,
    source_of,
)

log = logging.getLogger("tradewind.native_build")


def build(root: Path = ROOT) -> Path:
    """The current build's folder, built first if there is none."""
    existing = current_build(root)
    if existing is not None:
        return existing
    from mypyc.build import mypycify  # only here: the app itself never needs mypy
    from setuptools import Distribution

    folder = builds_of(root) / build_key(root)
    shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="tw-native-") as scratch:
        previous = Path.cwd()
        os.chdir(root)  # mypyc reads the mypy configuration of the folder it runs in
        try:
            extensions = mypycify(
                [str(source_of(module, root).relative_to(root)) for module in MODULES],
                opt_level="3",
                group_name=GROUP,
                multi_file=True,  # the group's C in several files: compiled in parallel below
                target_dir=str(Path(scratch) / "c"),
            )
            distribution = Distribution({"name": GROUP, "ext_modules": extensions})
            command = distribution.get_command_obj("build_ext")
            command.build_lib = str(folder)
            command.build_temp = str(Path(scratch) / "objects")
            command.parallel = os.cpu_count() or 1
            distribution.run_command("build_ext")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # nothing half-built left behind
            raise
        finally:
            os.chdir(previous)
    if not extension_files(folder):
        raise RuntimeError(f"the native build in {folder} is missing a module")
    (folder / COMPLETE).write_text("\n".join(MODULES) + "\n")
    _remove_other_builds(folder)
    return folder


def _remove_other_builds(keep: Path) -> None:
    for other in keep.parent.iterdir():  # older builds of this checkout
        if other != keep:
            shutil.rmtree(other, ignore_errors=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # setuptools' compiler lines stay quiet
    log.setLevel(logging.INFO)  # this command's own lines are its output, for ./dev
    started = time.monotonic()
    existing = current_build()
    if existing is not None:
        log.info("native build current: %s", existing.relative_to(ROOT))
        return
    log.info("building the native modules (%d, about a minute) …", len(MODULES))
    try:
        folder = build()
    except BaseException as error:  # SystemExit from a failed compile, CompileError, …
        if isinstance(error, KeyboardInterrupt):
            raise
        log.error("tradewind: the native build failed (%s); the app runs as Python", error)
        raise SystemExit(1) from None
    log.info("native build ready in %.0f s: %s", time.monotonic() - started, folder.relative_to(ROOT))


if __name__ == "__main__":
    main()
