"""Fixtures of the venue contract suite: one harness per test class (its services live as long as the class, on a
database emptied after it), a fresh account per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.conftest import empty_all_tables

from .harness import VenueHarness


@pytest.fixture(scope="class")
def contract_database() -> Iterator[str]:
    """The session's migrated test database; emptied after the class."""
    url = os.environ["DATABASE_URL"]
    yield url
    empty_all_tables(url)


@pytest_asyncio.fixture(scope="class", loop_scope="class")
async def desk(request: pytest.FixtureRequest, contract_database: str) -> AsyncIterator[VenueHarness]:
    """The class's harness (`harness` attribute of the test class), running."""
    harness_type: type[VenueHarness] = request.cls.harness
    async with harness_type.running() as harness:
        yield harness


@pytest_asyncio.fixture(loop_scope="class")
async def venue(desk: VenueHarness) -> AsyncIterator[VenueHarness]:
    """The harness, with a fresh account for this test."""
    await desk.begin()
    yield desk
    await desk.end()
