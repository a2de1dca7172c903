"""Every Prometheus series the services export, defined in one place, on the default registry
that `/metrics` serves. Names start with `omniroute_`; every series carries the `service` label.

Hot paths only touch label children bound once (`.labels(...)` looks them up under a lock), and
nothing here does I/O except the consumer lag, which is read from the Kafka clients' own state
when `/metrics` is scraped.

Counters incremented by use cases (reservations, routing) count inside the transaction, so the
rare transaction that fails at commit and is retried counts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

HTTP_REQUEST_DURATION = Histogram(
    "omniroute_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)


# Consuming (the inbox dispatcher)


class ConsumerOutcome(StrEnum):
    """What became of one delivered message."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # its id was in the inbox already
    IGNORED = "ignored"  # a type this consumer knowingly does not act on
    DEAD_LETTERED = "dead_lettered"
    RETRIED = "retried"  # failed; the same offset is delivered again


CONSUMER_PROCESSING = Histogram(
    "omniroute_consumer_processing_seconds",
    "Time to process one consumed message, by consumer, CloudEvents type and outcome "
    "(the _count is the number of messages)",
    ["service", "consumer", "event_type", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "omniroute_consumer_lag_messages",
    "Messages in a partition not yet taken by this process's consumer: the highwater of the "
    "last fetch response minus the consumer's position, read at scrape time",
    ["service", "group", "topic", "partition"],
)


# Publishing (the outbox relay)

OUTBOX_PUBLISHED = Counter(
    "omniroute_outbox_published_total",
    "Outbox messages published to Kafka",
    ["service", "topic"],
)
OUTBOX_BACKLOG = Gauge(
    "omniroute_outbox_backlog",
    "Outbox messages waiting to be published at the start of the relay's last pass",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "omniroute_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest outbox message waiting at the start of the relay's last pass (0: none)",
    ["service"],
)


# Use cases

RESERVATIONS = Counter(
    "omniroute_reservations_total",
    "Reservation outcomes in inventory: reserved, promised (incoming stock, to a pre-order), "
    "rejected (with its reason), released, committed, expired",
    ["service", "outcome", "reason"],
)
CACHE_READS = Counter(
    "omniroute_gateway_cache_reads_total",
    "Reads the gateway answered from its short cache (hit) or by asking the service (miss)",
    ["cache", "outcome"],
)
ROUTING_DECISIONS = Counter(
    "omniroute_routing_decisions_total",
    "Routing decisions in orders, by what triggered them (placed, reroute, backorder) and their "
    "outcome (single location, split, none: no location can serve)",
    ["service", "trigger", "outcome"],
)
STOCK_CHECKS = Counter(
    "omniroute_routing_stock_checks_total",
    "Times routing asked inventory for current levels because its projection could not place an "
    "order, by outcome: behind (with inventory's levels the order could be placed as asked), "
    "short (inventory agreed: a real shortage), unavailable (inventory did not answer)",
    ["service", "outcome"],
)
ORDERS_UNROUTABLE = Counter(
    "omniroute_orders_unroutable_total",
    "Orders (or their re-routed parts) no location could serve: backordered or rejected",
    ["service", "resolution"],
)

WEBHOOK_DELIVERIES = Counter(
    "omniroute_webhook_attempts_total",
    "Attempts at webhook deliveries, by outcome: delivered (a 2xx) or failed (anything else; "
    "retried later unless its retries ran out)",
    ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "omniroute_webhook_delivery_latency_seconds",
    "From the commit of the change an event reports to its delivery's 2xx, first attempts only",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# Consumer lag, at scrape time

# The label sets each service reported at its last scrape, so partitions a rebalance moved to
# another process stop being reported here.
_lag_series: dict[str, set[tuple[str, str, str, str]]] = {}


async def observe_consumer_lag(broker: Any, service: str) -> None:
    """Set the lag of every partition the broker's consumers hold.

    The highwater comes from the consumer's last fetch response (`AIOKafkaConsumer.highwater`),
    not from `end_offsets()`, which the local broker answers wrongly (DESIGN.md §6); so a
    partition appears only once it has been fetched from, and while a handler is stuck (its
    prefetch buffer full, no new fetch for that partition) the highwater is stale and the lag
    under-reports: read it together with `omniroute_consumer_processing_seconds`.
    """
    seen: set[tuple[str, str, str, str]] = set()
    for subscriber in getattr(broker, "subscribers", ()):
        group = getattr(subscriber, "group_id", None) or ""
        # FastStream keeps one client per worker when a subscriber has `max_workers`.
        consumers = getattr(subscriber, "consumer_subgroup", None) or [
            getattr(subscriber, "consumer", None)
        ]
        for consumer in consumers:
            if consumer is None:
                continue
            for partition in list(consumer.assignment()):
                lag = await _partition_lag(consumer, partition)
                if lag is None:
                    continue
                labels = (service, group, partition.topic, str(partition.partition))
                CONSUMER_LAG.labels(*labels).set(lag)
                seen.add(labels)
    for gone in _lag_series.get(service, set()) - seen:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(*gone)
    _lag_series[service] = seen


async def _partition_lag(consumer: Any, partition: Any) -> int | None:
    try:
        highwater = consumer.highwater(partition)
        if highwater is None:
            return None  # not fetched from yet
        # The position is known once a fetch was answered; the timeout only guards a partition
        # being reassigned right now.
        position = await asyncio.wait_for(consumer.position(partition), timeout=0.1)
    except Exception:
        # Unassigned meanwhile (a rebalance): the next scrape sees the new owner. A scrape
        # never fails for a metric it cannot read.
        return None
    return max(int(highwater) - int(position), 0)
