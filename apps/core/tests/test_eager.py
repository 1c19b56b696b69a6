"""start_eagerly: a coroutine runs inside the call until it has to wait, and a task carries
it on from there exactly as if a task had run it from the start."""

import asyncio
import contextvars

import pytest

from apps.core.eager import start_eagerly


async def test_a_coroutine_that_does_not_wait_finishes_inside_the_call_without_a_task():
    steps = []

    async def quick():
        steps.append("ran")
        return "ignored"

    tasks_before = asyncio.all_tasks()
    assert start_eagerly(quick()) is None
    assert steps == ["ran"]
    assert asyncio.all_tasks() == tasks_before


async def test_a_coroutine_that_waits_on_a_future_is_carried_on_by_a_task_with_its_result():
    gate = asyncio.get_running_loop().create_future()
    steps = []

    async def slow():
        steps.append("before")
        value = await gate
        steps.append("after")
        return value * 2

    task = start_eagerly(slow())
    assert isinstance(task, asyncio.Task)
    assert steps == ["before"]  # ran up to the await, inside the call
    gate.set_result(21)
    assert await task == 42
    assert steps == ["before", "after"]


async def test_a_bare_sleep_zero_is_carried_on():
    steps = []

    async def yields():
        steps.append(1)
        await asyncio.sleep(0)  # a bare yield: the task reschedules itself
        steps.append(2)
        await asyncio.sleep(0)
        return "done"

    task = start_eagerly(yields())
    assert steps == [1]
    assert await task == "done" and steps == [1, 2]


async def test_many_suspensions_on_futures_and_sleeps_in_a_row():
    loop = asyncio.get_running_loop()
    gates = [loop.create_future() for _ in range(3)]

    async def chain():
        total = 0
        for gate in gates:
            total += await gate
            await asyncio.sleep(0)
        return total

    task = start_eagerly(chain())
    for i, gate in enumerate(gates):
        loop.call_soon(gate.set_result, i + 1)
    assert await task == 6


async def test_an_exception_before_the_first_wait_propagates_from_the_call():
    async def fails():
        raise KeyError("now")

    with pytest.raises(KeyError, match="now"):
        start_eagerly(fails())


async def test_an_exception_after_the_first_wait_is_the_tasks_exception():
    gate = asyncio.get_running_loop().create_future()

    async def fails_later():
        await gate
        raise KeyError("later")

    task = start_eagerly(fails_later())
    gate.set_result(None)
    with pytest.raises(KeyError, match="later"):
        await task


async def test_an_error_from_the_awaited_future_reaches_the_coroutine():
    gate = asyncio.get_running_loop().create_future()

    async def catches():
        try:
            await gate
        except KeyError:
            return "caught"

    task = start_eagerly(catches())
    gate.set_exception(KeyError("x"))
    assert await task == "caught"


async def test_eager_code_cannot_change_the_callers_context_variables():
    var = contextvars.ContextVar("var", default="caller")
    gate = asyncio.get_running_loop().create_future()

    async def sets():
        var.set("eager")
        await gate
        return var.get()  # the task runs in the same copied context

    task = start_eagerly(sets())
    assert var.get() == "caller"
    gate.set_result(None)
    assert await task == "eager"
    assert var.get() == "caller"


async def test_the_coroutine_sees_the_callers_context_variables():
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller's")
    gate = asyncio.get_running_loop().create_future()

    async def reads():
        first = var.get()
        await gate
        return first, var.get()

    task = start_eagerly(reads())
    var.set("changed after the call")
    gate.set_result(None)
    assert await task == ("caller's", "caller's")


def waiter(gate, seen):
    async def waits():
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    return waits()


async def test_cancelling_the_running_task_cancels_the_coroutine_and_its_future():
    gate = asyncio.get_running_loop().create_future()
    seen = []
    task = start_eagerly(waiter(gate, seen))
    await asyncio.sleep(0)  # the task has taken over
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled", "finally"] and gate.cancelled()


async def test_cancelling_the_task_before_its_first_step_still_cancels_the_coroutine():
    """The usual case for a socket: its send waits, and the socket is closed at once."""
    gate = asyncio.get_running_loop().create_future()
    seen = []
    task = start_eagerly(waiter(gate, seen))
    task.cancel()  # before the loop ever ran it
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert seen == ["cancelled", "finally"] and gate.cancelled()


async def test_a_coroutine_may_catch_the_cancellation_and_return():
    gate = asyncio.get_running_loop().create_future()

    async def survives():
        try:
            await gate
        except asyncio.CancelledError:
            return "cleaned up"

    task = start_eagerly(survives())
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "cleaned up"  # as with a plain task: the coroutine decides
