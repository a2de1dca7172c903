"""The FastStream Kafka broker with the client settings that work on both the local broker and
Apache Kafka (DESIGN.md §6), and explicit topic creation."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY

from services.contracts.topics import TopicSpec
from services.infrastructure.inbox import Delivery
from services.infrastructure.settings import ServiceSettings

log = logging.getLogger(__name__)


def create_broker(settings: ServiceSettings, **options: Any) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        # Topics are created explicitly with fixed partition counts; a typo must not create one.
        allow_auto_create_topics=False,
        middlewares=[
            KafkaTelemetryMiddleware(),
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=settings.service_name),
        ],
        logger=logging.getLogger(f"omniroute.{settings.service_name}.broker"),
        **options,
    )


def subscriber_options(settings: ServiceSettings, group_id: str) -> dict[str, Any]:
    """Consumer settings shared by every subscriber: a group, earliest offset for new groups, and
    a poll's messages at once (`Dispatcher.dispatch_batch` applies them in one transaction), the
    offsets committed only after that transaction (nack re-reads the whole batch).

    One consumer per subscriber: FastStream runs a batch subscriber on one consumer, and one
    transaction per poll outran four consumers committing per message (`bench.orders_bench`:
    66-75 orders confirmed/s against 28-49). More consumers would lock hot rows (a sku's stock
    level) across batches, in whatever order their messages came: deadlocks."""
    return {
        "batch": True,
        "max_records": settings.consumer_batch_max_records,
        "batch_timeout_ms": settings.consumer_batch_timeout_ms,
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "parser": parse_tolerating_headers,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
    }


async def parse_tolerating_headers(
    records: tuple[ConsumerRecord[Any, Any], ...],
    original: Callable[[tuple[ConsumerRecord[Any, Any], ...]], Awaitable[KafkaMessage]],
) -> KafkaMessage:
    """FastStream's batch parser, for a poll in which a header is not UTF-8 too. Its parser
    decodes every header strictly and fails the whole poll on one such header, which is then
    read again forever: one producer's stray header stopped the partition. Such a header is
    decoded as an undecodable byte is everywhere here, and its message goes on to be applied or
    parked like any other."""
    try:
        return await original(records)
    except UnicodeDecodeError:
        return await original(tuple(_decodable(record) for record in records))


def _decodable(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    headers = [
        (name, value.decode(errors="replace").encode() if isinstance(value, bytes) else value)
        for name, value in (record.headers or ())
    ]
    return dataclasses.replace(record, headers=headers)


def deliveries_of(message: KafkaMessage) -> list[Delivery]:
    """The records of a batch subscriber's message (a tuple of them; a list in FastStream's
    test broker), in the order they were polled."""
    records = message.raw_message
    if isinstance(records, ConsumerRecord):
        records = (records,)
    return [_delivery(record) for record in records]


def _delivery(record: ConsumerRecord[Any, Any]) -> Delivery:
    # Headers as text a message can be parked with: PostgreSQL's JSONB and text take no NUL,
    # so it is replaced as an undecodable byte is (a producer's stray header must not make
    # its message unparkable, and its partition stuck).
    headers = {
        _text(name): _text(value.decode(errors="replace") if isinstance(value, bytes) else value)
        for name, value in (record.headers or ())
    }
    return Delivery(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=headers,
    )


def _text(value: object) -> str:
    return str(value).replace("\x00", "\ufffd")


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], *, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="omniroute-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        try:
            response = await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=replication_factor,
                        topic_configs=spec.config,
                    )
                    for spec in missing
                ]
            )
        except TopicAlreadyExistsError:
            return []  # another process won the race
        created = []
        for topic, code, *rest in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                raise RuntimeError(f"could not create topic {topic}: error {code} {rest}")
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        await admin.close()
