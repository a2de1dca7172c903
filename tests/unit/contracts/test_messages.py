"""Commands and events are different words: commands go to one service on its commands topic,
events go to everyone; each message's Kafka key is declared, and is its aggregate id."""

from __future__ import annotations

from datetime import UTC, datetime

from services.contracts import topics
from services.contracts.base import Command, Event
from services.contracts.inventory import AvailabilityChanged, LocationType, ReleaseStock
from services.infrastructure.asyncapi import events_by_topic


def test_commands_travel_on_the_commands_topic_and_everything_else_is_an_event() -> None:
    for topic, messages in events_by_topic().items():
        for message in messages:
            if topic == topics.INVENTORY_COMMANDS.name:
                assert issubclass(message, Command), message
            else:
                assert issubclass(message, Event), message
                assert not issubclass(message, Command), message


def test_the_key_is_declared_and_names_the_aggregate() -> None:
    assert ReleaseStock(order_id="ord_1", reservation_id="r1").message_key == "ord_1"
    changed = AvailabilityChanged(
        sku="TEE",
        location_id="wh-1",
        location_type=LocationType.WAREHOUSE,
        on_hand=3,
        reserved=0,
        safety_stock=0,
        available=3,
        version=7,
        changed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert changed.message_key == "TEE@wh-1"
    for messages in events_by_topic().values():
        for message in messages:
            assert message.KEY.startswith("{") or message.KEY.startswith("@"), message
