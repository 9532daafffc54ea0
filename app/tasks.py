"""Stopping background tasks so that they really stop.

On Python 3.11 a cancellation can be lost: `asyncio.wait_for` returns the result of an awaitable that finished in
the same loop turn as the cancel (gh-86296), and libraries still call it on hot paths (redis-py wraps every socket
send in it). The task then carries on, and a `task.cancel(); await task` waits for it for ever: seen as tests
timing out at a replica's stop. `cancel_and_wait` sends the cancellation again until every task has ended."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

RESEND_SECONDS = 0.5  # a lost cancellation is rare: resending it now and then is enough


async def cancel_and_wait(*tasks: asyncio.Task[object] | None, resend_every: float = RESEND_SECONDS) -> None:
    """Cancel `tasks` (None entries are skipped) and return once all have ended. A task that ended with an error
    other than its cancellation is logged, not raised: the caller is shutting it down. A cancellation of the caller
    itself propagates (the tasks then go on being cancelled, once)."""
    pending = {task for task in tasks if task is not None and not task.done()}
    ended = {task for task in tasks if task is not None} - pending
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=resend_every)
        ended |= done
    for task in ended:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("task %s ended with an error while it was stopped: %r", task.get_name(), error)
