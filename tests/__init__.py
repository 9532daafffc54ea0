"""Imported before tests/conftest.py, so before `app`: a plain `pytest` runs the order path as Python, where tests
may replace methods; `./dev test` sets NATIVE_CORE for each pass (app/native.py)."""

import os

os.environ.setdefault("NATIVE_CORE", "off")
