"""The consuming pipeline with a fake unit of work: what is applied, dropped, retried, parked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from services.contracts.inventory import ReleaseStock
from services.infrastructure.errors import ServiceUnavailable
from services.infrastructure.inbox import Delivery, Dispatcher, Unprocessable
from tests.support.fakes import FakeUnitOfWork, make_dispatcher
from tests.support.kafka import cloud_event, envelope_bytes


def delivery(value: bytes, offset: int = 0) -> Delivery:
    return Delivery(topic="t", partition=0, offset=offset, key=b"k", value=value, headers={})


RELEASE = ReleaseStock(order_id="o1", reservation_id="r1")


async def test_a_message_is_applied_once_per_id(store: dict[str, Any]) -> None:
    applied: list[ReleaseStock] = []

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        applied.append(event)
        uow.emit("released")

    dispatcher = make_dispatcher(store, handler)
    message = envelope_bytes(RELEASE, event_id="e1")
    await dispatcher.dispatch(delivery(message, 0))
    await dispatcher.dispatch(delivery(message, 1))
    await dispatcher.dispatch(delivery(envelope_bytes(RELEASE, event_id="e2"), 2))

    assert applied == [RELEASE, RELEASE]
    assert store["emitted"] == ["released", "released"]
    assert store["claimed"] == {("test-consumer", "e1"), ("test-consumer", "e2")}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty message"),
        (b"[1, 2", "not a CloudEvent"),
        (json.dumps({"id": "x"}).encode(), "not a CloudEvent"),
        (cloud_event("omniroute.unknown.v1", {}), "unknown event type 'omniroute.unknown.v1'"),
        (
            cloud_event("omniroute.inventory.release_stock.v1", {"order_id": "o1"}),
            "invalid omniroute.inventory.release_stock.v1 data: reservation_id: Field required",
        ),
    ],
)
async def test_what_can_never_apply_is_parked_with_its_reason(
    store: dict[str, Any], value: bytes, reason: str
) -> None:
    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        raise AssertionError("must not be called")

    await make_dispatcher(store, handler).dispatch(delivery(value))
    (parked,) = store["dead"]
    assert reason in parked


async def test_a_transient_failure_is_redelivered_without_a_trace(store: dict[str, Any]) -> None:
    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

    dispatcher = make_dispatcher(store, handler)
    for _ in range(5):  # more than max_attempts: transient failures are never parked
        with pytest.raises(OperationalError):
            await dispatcher.dispatch(delivery(envelope_bytes(RELEASE, event_id="e1")))
    assert store == {"claimed": set(), "dead": [], "emitted": []}


async def test_a_handler_that_keeps_failing_is_parked_after_its_attempts(
    store: dict[str, Any],
) -> None:
    calls = 0

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("restock for unknown location 'x'")

    dispatcher = make_dispatcher(store, handler)
    message = delivery(envelope_bytes(RELEASE, event_id="e1"), offset=7)
    for _ in range(2):
        with pytest.raises(ValueError, match="unknown location"):
            await dispatcher.dispatch(message)
    await dispatcher.dispatch(message)  # the third attempt parks it and lets the partition go on

    assert calls == 3
    (parked,) = store["dead"]
    assert "handler failed 3 times" in parked
    assert "unknown location" in parked
    assert store["claimed"] == set()


async def test_a_message_its_handler_calls_unprocessable_is_parked_at_once(
    store: dict[str, Any],
) -> None:
    calls = 0

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        nonlocal calls
        calls += 1
        uow.emit("half an effect")
        raise Unprocessable("restock for unknown location 'x'")

    dispatcher = make_dispatcher(store, handler)
    message = delivery(envelope_bytes(RELEASE, event_id="e1"), offset=7)
    await dispatcher.dispatch(message)  # no retry: the partition goes on at once

    assert calls == 1
    (parked,) = store["dead"]
    assert "cannot be applied: restock for unknown location 'x'" in parked
    assert store["claimed"] == set()
    assert store["emitted"] == []  # the failed unit of work left nothing behind


async def test_a_service_that_does_not_answer_is_a_transient_failure(
    store: dict[str, Any],
) -> None:
    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        raise ServiceUnavailable("inventory could not be asked for current stock")

    dispatcher = make_dispatcher(store, handler)
    for _ in range(5):  # more than max_attempts: retried until the service answers
        with pytest.raises(ServiceUnavailable):
            await dispatcher.dispatch(delivery(envelope_bytes(RELEASE, event_id="e1")))
    assert store == {"claimed": set(), "dead": [], "emitted": []}


async def test_ignored_types_pass_and_projections_skip_the_inbox(store: dict[str, Any]) -> None:
    from services.contracts.inventory import CommitStock

    applied: list[Any] = []

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        applied.append(event)

    dispatcher = Dispatcher(
        "projection",
        {ReleaseStock: handler},
        lambda: FakeUnitOfWork(store),
        ignored=[CommitStock],
        deduplicate=False,
        retry_delay=0,
    )
    ignored = CommitStock(order_id="o1", reservation_id="r1")
    await dispatcher.dispatch(delivery(envelope_bytes(ignored)))
    await dispatcher.dispatch(delivery(envelope_bytes(RELEASE, event_id="e1")))
    await dispatcher.dispatch(delivery(envelope_bytes(RELEASE, event_id="e1")))

    assert applied == [RELEASE, RELEASE]  # idempotent handlers see repeats; no inbox rows
    assert store == {"claimed": set(), "dead": [], "emitted": []}
