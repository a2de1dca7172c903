"""A poll's messages in one unit of work, with a fake one: each message applied once, a bad
one parked or retried without costing the others their effects."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from services.contracts.inventory import ReleaseStock
from services.infrastructure.inbox import Delivery, Unprocessable
from tests.support.fakes import FakeUnitOfWork, make_dispatcher
from tests.support.kafka import envelope_bytes


def release(order_id: str) -> ReleaseStock:
    return ReleaseStock(order_id=order_id, reservation_id=f"{order_id}-r1")


def delivery(value: bytes, offset: int, partition: int = 0) -> Delivery:
    return Delivery(
        topic="t", partition=partition, offset=offset, key=b"k", value=value, headers={}
    )


def batch(*events: tuple[str, int], poison_at: int | None = None) -> list[Delivery]:
    """(order id, partition) per message, each under the event id of its order id; a poison
    message on partition 0 at `poison_at`. Offsets rise through the batch, as in a poll."""
    found = [
        (envelope_bytes(release(order_id), event_id=order_id), partition)
        for order_id, partition in events
    ]
    if poison_at is not None:
        found.insert(poison_at, (b"{not json", 0))
    return [delivery(value, offset, partition) for offset, (value, partition) in enumerate(found)]


def applier(applied: list[str]) -> Any:
    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        applied.append(event.order_id)
        uow.emit(event.order_id)

    return handler


async def test_a_batch_is_committed_once_with_one_inbox_row_per_event(
    store: dict[str, Any],
) -> None:
    applied: list[str] = []
    dispatcher = make_dispatcher(store, applier(applied))

    await dispatcher.dispatch_batch(batch(("a", 0), ("b", 1), ("c", 0)))

    assert applied == ["a", "b", "c"]
    assert store["emitted"] == ["a", "b", "c"]
    assert store["claimed"] == {("test-consumer", e) for e in "abc"}


async def test_a_duplicate_inside_the_batch_is_applied_once(store: dict[str, Any]) -> None:
    applied: list[str] = []
    dispatcher = make_dispatcher(store, applier(applied))

    await dispatcher.dispatch_batch(batch(("a", 0), ("b", 0), ("a", 0), ("a", 1)))

    assert applied == ["a", "b"]
    assert store["emitted"] == ["a", "b"]


async def test_a_poison_message_is_parked_and_the_others_applied(store: dict[str, Any]) -> None:
    applied: list[str] = []
    dispatcher = make_dispatcher(store, applier(applied))

    await dispatcher.dispatch_batch(batch(("a", 0), ("b", 0), poison_at=1))

    assert applied == ["a", "b"]
    (parked,) = store["dead"]
    assert "not a CloudEvent" in parked
    assert store["emitted"] == ["a", "b"]


async def test_a_failing_handler_keeps_the_others_and_holds_back_its_partition(
    store: dict[str, Any],
) -> None:
    calls: list[str] = []
    failures = {"b": 1}

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        calls.append(event.order_id)
        uow.emit(f"{event.order_id} half done")
        if failures.get(event.order_id, 0) > 0:
            failures[event.order_id] -= 1
            raise ValueError(f"{event.order_id} failed")
        uow.emit(event.order_id)

    dispatcher = make_dispatcher(store, handler)
    messages = batch(("a", 0), ("b", 0), ("c", 1), ("d", 0))

    with pytest.raises(ValueError, match="b failed"):
        await dispatcher.dispatch_batch(messages)
    # `b` undone alone; `d` waits behind it, on its partition; `c`, on another, went ahead.
    assert store["emitted"] == ["a half done", "a", "c half done", "c"]
    assert store["claimed"] == {("test-consumer", "a"), ("test-consumer", "c")}
    # Tried without savepoints until `b` failed, then again with them: `a` was done twice
    # (the first time rolled back), `b` tried once.
    assert calls == ["a", "b", "a", "c"]

    await dispatcher.dispatch_batch(messages)  # the consumer reads the batch again
    assert store["emitted"][4:] == ["b half done", "b", "d half done", "d"]
    assert store["claimed"] == {("test-consumer", e) for e in "abcd"}
    assert store["dead"] == []


async def test_a_transient_failure_redelivers_the_whole_batch(store: dict[str, Any]) -> None:
    applied: list[str] = []
    failures = iter([OperationalError("SELECT 1", {}, ConnectionRefusedError())])

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        if event.order_id == "b" and (failure := next(failures, None)) is not None:
            raise failure
        uow.emit(event.order_id)
        applied.append(event.order_id)

    dispatcher = make_dispatcher(store, handler)
    messages = batch(("a", 0), ("b", 1), ("c", 2), poison_at=0)

    with pytest.raises(OperationalError):
        await dispatcher.dispatch_batch(messages)
    # Nothing is kept, not even the parked message: the batch comes again as a whole.
    assert store == {"claimed": set(), "dead": [], "emitted": []}

    await dispatcher.dispatch_batch(messages)
    assert store["emitted"] == ["a", "b", "c"]
    assert len(store["dead"]) == 1
    assert applied == ["a", "a", "b", "c"]  # `a` again: its first effect was rolled back


async def test_a_handler_that_keeps_failing_is_parked_and_the_batch_goes_on(
    store: dict[str, Any],
) -> None:
    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        if event.order_id == "b":
            raise ValueError("b never works")
        uow.emit(event.order_id)

    dispatcher = make_dispatcher(store, handler)
    messages = batch(("a", 0), ("b", 0), ("c", 0))
    for _ in range(2):
        with pytest.raises(ValueError, match="never works"):
            await dispatcher.dispatch_batch(messages)
    await dispatcher.dispatch_batch(messages)  # the third attempt parks `b` and lets `c` go on

    assert store["emitted"] == ["a", "c"]
    (parked,) = store["dead"]
    assert "handler failed 3 times" in parked
    assert store["claimed"] == {("test-consumer", "a"), ("test-consumer", "c")}


async def test_an_unprocessable_message_is_parked_without_holding_the_batch(
    store: dict[str, Any],
) -> None:
    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        uow.emit(f"{event.order_id} half done")
        if event.order_id == "b":
            raise Unprocessable("no such location")

    await make_dispatcher(store, handler).dispatch_batch(batch(("a", 0), ("b", 0), ("c", 0)))

    assert store["emitted"] == ["a half done", "c half done"]
    (parked,) = store["dead"]
    assert "cannot be applied: no such location" in parked


async def test_each_handler_sees_its_own_message(store: dict[str, Any]) -> None:
    seen: list[str | None] = []

    async def handler(event: ReleaseStock, uow: Any) -> None:
        seen.append(uow.message.id)

    await make_dispatcher(store, handler).dispatch_batch(batch(("a", 0), ("b", 0)))

    assert seen == ["a", "b"]


async def test_a_batch_read_again_passes_over_what_it_committed(store: dict[str, Any]) -> None:
    failures = {"b": 2}

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        if failures.get(event.order_id, 0) > 0:
            failures[event.order_id] -= 1
            raise ValueError(f"{event.order_id} failed")
        uow.emit(event.order_id)

    dispatcher = make_dispatcher(store, handler)
    messages = batch(("a", 0), ("b", 1), ("c", 0), poison_at=1)

    for _ in range(2):
        with pytest.raises(ValueError, match="b failed"):
            await dispatcher.dispatch_batch(messages)
    await dispatcher.dispatch_batch(messages)

    assert store["emitted"] == ["a", "c", "b"]
    assert len(store["dead"]) == 1  # parked once, though its batch was read three times
