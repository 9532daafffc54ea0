"""cancel_and_wait: a task that loses a cancellation still ends; errors are logged, not raised."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from app.tasks import cancel_and_wait


async def _loses_its_first_cancellation(started: asyncio.Event) -> None:
    """What a library's `asyncio.wait_for` does on Python 3.11 when the cancel meets the awaited result."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):  # lost: the task carries on, as redis-py's send did
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


async def test_a_task_that_lost_a_cancellation_is_cancelled_again_until_it_ends() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_loses_its_first_cancellation(started))
    await started.wait()
    async with asyncio.timeout(10):
        await cancel_and_wait(task, resend_every=0.05)
    assert task.cancelled()


async def test_done_and_missing_tasks_are_fine_and_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails(), name="the-failing-one")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="app.tasks"):
        await cancel_and_wait(failed, None)
    assert "the-failing-one ended with an error while it was stopped: RuntimeError('boom')" in caplog.text


async def test_the_callers_own_cancellation_propagates() -> None:
    started = asyncio.Event()
    stubborn = asyncio.create_task(_loses_its_first_cancellation(started))
    await started.wait()
    stopper = asyncio.create_task(cancel_and_wait(stubborn, resend_every=30))
    await asyncio.sleep(0.05)  # the first cancellation is lost; the stopper waits to send the next
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    stubborn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stubborn
