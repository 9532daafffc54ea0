"""The venue contract suite (STYLE.md habit 10): contract.py holds the tests, harness.py the per-venue harnesses."""

import pytest

pytest.register_assert_rewrite("tests.app.venues.contract.contract")
