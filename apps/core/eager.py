"""Run a coroutine now, and give it a task only if it has to wait (Python 3.12's eager tasks,
on 3.11, through public asyncio only).

Fanning one event out to 500 sockets then costs 500 calls, not 500 tasks: a websocket send
finishes without suspending unless the client's buffer is full, and one stalled reader never
holds up the others, because only it gets a task.
"""

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any


def start_eagerly(coro: Coroutine) -> asyncio.Task | None:
    """Run ``coro`` now, up to its first real suspension.

    Returns None when it finished without suspending, or a task that carries it on from where
    it stopped (the task's result is the coroutine's). An exception raised before the first
    suspension propagates from this call. Like a task, it runs in a copy of the caller's
    context (asgiref keeps per-call state in context variables), both here and in the task."""
    context = contextvars.copy_context()
    try:
        waiting_on = context.run(coro.send, None)
    except StopIteration:
        return None
    resumed = _Resumed(coro, waiting_on)
    task = asyncio.get_running_loop().create_task(_carry_on(resumed), context=context)
    # A task cancelled before its first step never runs _carry_on: ``resumed`` then cancels
    # the coroutine itself.
    task.add_done_callback(resumed.abandon, context=context)
    return task


async def _carry_on(resumed: "_Resumed") -> Any:
    return await resumed


class _Resumed:
    """An awaitable that carries on a coroutine already started elsewhere.

    Its ``__await__`` does what ``yield from coro`` does, from the value the coroutine yielded
    last: every value goes up to the driving task unchanged (so the task waits on the very
    future the coroutine awaits, with asyncio's own protocol), and what the task sends or
    throws back goes down into the coroutine."""

    __slots__ = ("coro", "waiting_on", "started")

    def __init__(self, coro: Coroutine, waiting_on: Any):
        self.coro = coro
        self.waiting_on = waiting_on  # what the coroutine yielded when it suspended
        self.started = False

    def __await__(self) -> Generator[Any, Any, Any]:
        self.started = True
        coro, value = self.coro, self.waiting_on
        self.waiting_on = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:  # the task's coroutine is being closed: close this one too
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the coroutine, as a Task does
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value

    def abandon(self, task: asyncio.Task) -> None:
        """The task is done. If it was cancelled before it ever awaited this, the coroutine is
        still suspended where it started: cancel what it waits on and throw CancelledError
        into it, as the task would have (its ``except``/``finally`` blocks run)."""
        if self.started:
            return
        self.started = True
        waiting_on, self.waiting_on = self.waiting_on, None
        if asyncio.isfuture(waiting_on):
            waiting_on.cancel()
        try:
            self.coro.throw(asyncio.CancelledError())
        except (asyncio.CancelledError, StopIteration):
            return
        # It awaited again while cancelled, and no task is left to carry that on.
        self.coro.close()
