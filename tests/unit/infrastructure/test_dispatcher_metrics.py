"""The dispatcher times every message by consumer, event type and outcome."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from services.contracts.inventory import CommitStock, ReleaseStock
from services.infrastructure.inbox import Delivery, Dispatcher
from tests.support.fakes import FakeUnitOfWork
from tests.support.kafka import cloud_event, envelope_bytes

CONSUMER = "unit.metrics"
RELEASE = ReleaseStock(order_id="o1", reservation_id="r1")


def processed(event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "omniroute_consumer_processing_seconds_count",
        {"service": "unit", "consumer": CONSUMER, "event_type": event_type, "outcome": outcome},
    )
    return value or 0.0


def delivery(value: bytes, offset: int = 0) -> Delivery:
    return Delivery(topic="t", partition=0, offset=offset, key=b"k", value=value, headers={})


async def test_every_outcome_is_counted_under_its_event_type() -> None:
    store: dict[str, Any] = {"claimed": set(), "dead": [], "emitted": []}
    failures = iter([OperationalError("SELECT 1", {}, Exception("database away"))])

    async def handler(event: ReleaseStock, uow: FakeUnitOfWork) -> None:
        if (failure := next(failures, None)) is not None:
            raise failure

    dispatcher = Dispatcher(
        CONSUMER,
        {ReleaseStock: handler},
        lambda: FakeUnitOfWork(store),
        ignored=[CommitStock],
        retry_delay=0,
    )
    release = ReleaseStock.TYPE
    before = {
        key: processed(*key)
        for key in [
            (release, "retried"),
            (release, "applied"),
            (release, "duplicate"),
            (CommitStock.TYPE, "ignored"),
            ("unknown", "dead_lettered"),
        ]
    }
    message = envelope_bytes(RELEASE, event_id="m1")

    with pytest.raises(OperationalError):
        await dispatcher.dispatch(delivery(message, 0))  # transient: delivered again
    await dispatcher.dispatch(delivery(message, 0))
    await dispatcher.dispatch(delivery(message, 1))  # the same id again
    await dispatcher.dispatch(
        delivery(envelope_bytes(CommitStock(order_id="o1", reservation_id="r1")))
    )
    await dispatcher.dispatch(delivery(cloud_event("omniroute.stranger.v1", {})))

    after = {key: processed(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == dict.fromkeys(before, 1.0)
    assert len(store["dead"]) == 1
