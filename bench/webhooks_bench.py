"""Webhooks benchmark, run by `make bench`: signed deliveries per second from order events on
Kafka to a local HTTP receiver, and the time from an event's commit (its CloudEvent `time`) to
its arrival, against a ceiling measured in the same run (DESIGN.md §7: ratios, not absolutes).

Ceiling: the same receiver POSTed the same signed bodies directly by an aiohttp client, as many
at a time as the sender may have in flight for one webhook: what the receiver, the loopback and
one Python client can do without Kafka and PostgreSQL in between.

Two phases: a burst (events published as fast as the producer can, for throughput) and a
steady rate well below it (for the latency a partner meets on a normal day).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg
from aiokafka import AIOKafkaProducer

from bench.common import Stack, percentile, say
from services.contracts.inventory import LocationType, StockLine
from services.contracts.orders import FulfillmentAssigned, FulfillmentMethod, OrderPlaced
from services.contracts.pricing import Channel, Money
from services.launcher.embedded import free_port
from services.webhooks import domain
from tests.support.kafka import envelope_bytes
from tests.support.processes import ServiceProcess
from tests.support.webhook_receiver import Receiver, receiving

PER_ENDPOINT = 16


def events(n: int) -> list[tuple[str, bytes]]:
    """An order placed and its fulfillment assigned: the pair a partner's webhook hears of."""
    order_id = f"ord-bench-{n}-{uuid.uuid4().hex[:6]}"
    line = (StockLine(sku="BENCH-KAYAK", quantity=1),)
    placed = OrderPlaced(
        order_id=order_id,
        channel=Channel.WEB,
        customer_id="cust-bench",
        quote_id=f"q-{order_id}",
        method=FulfillmentMethod.DELIVERY,
        lines=line,
        total=Money(amount=42000, currency="EUR"),
    )
    assigned = FulfillmentAssigned(
        order_id=order_id,
        fulfillment_id=f"ful-{order_id}",
        location_id="dropship-bench",
        location_type=LocationType.DROPSHIP,
        method=FulfillmentMethod.DELIVERY,
        lines=line,
        attempt=1,
        partner_id="partner-bench",
    )
    return [(order_id, envelope_bytes(placed)), (order_id, envelope_bytes(assigned))]


async def ceiling(receiver: Receiver, count: int, concurrency: int) -> float:
    secret = domain.new_secret()
    body = '{"id":"x","type":"fulfillment.assigned","created_at":"2026-11-28T12:00:00Z","data":{}}'
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(n: int) -> None:
            headers = domain.signed_headers(secret, f"msg_{n}", datetime.now(UTC), body)
            async with semaphore, session.post(receiver.url, data=body, headers=headers) as r:
                await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
        return count / (time.perf_counter() - started)


async def phase(
    receiver: Receiver, bootstrap: str, orders: int, rate: float | None
) -> tuple[float, list[float]]:
    """Deliveries per second and each delivery's seconds from commit to arrival."""
    before = len(receiver.received)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started, started_at = time.perf_counter(), time.time()
        for n in range(orders):
            for key, value in events(n):
                await producer.send("orders.events.v1", value, key=key.encode())
            if rate is not None:
                await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.perf_counter()))
        await producer.flush()
    finally:
        await producer.stop()
    got = await receiver.wait_for(lambda got: len(got) - before >= orders, timeout=300)
    arrived = got[before:]
    span = max(r.at for r in arrived) - started_at
    latencies = [
        r.at - datetime.fromisoformat(r.payload["created_at"]).timestamp() for r in arrived
    ]
    return len(arrived) / span, latencies


async def stages(database_url: str) -> tuple[list[float], list[float]]:
    """Per delivered delivery: seconds from the event's commit to its delivery row (Kafka and
    the consumer), and from the row to the endpoint's 2xx (the sender)."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM created_at - event_at) AS consumed,"
            " extract(epoch FROM delivered_at - created_at) AS sent"
            " FROM deliveries WHERE status = 'delivered'"
        )
    finally:
        await conn.close()
    return [float(r["consumed"]) for r in rows], [float(r["sent"]) for r in rows]


async def run(url: str, database_url: str, bootstrap: str, orders: int, rate: float) -> None:
    async with receiving() as receiver, aiohttp.ClientSession() as client:
        say(f"… ceiling: {orders} signed POSTs straight to the receiver, {PER_ENDPOINT} at a time")
        top = await ceiling(receiver, orders, PER_ENDPOINT)
        receiver.received.clear()
        async with client.post(
            f"{url}/webhooks",
            json={
                "url": receiver.url,
                "event_types": ["fulfillment.assigned"],
                "subscriber": {"role": "partner", "partner_id": "partner-bench"},
            },
        ) as response:
            assert response.status == 201, await response.text()
        await asyncio.sleep(1)  # the webhook exists before the first event is published
        say(f"… burst: {orders} orders' events on orders.events.v1 as fast as they publish")
        burst, burst_latency = await phase(receiver, bootstrap, orders, None)
        consumed, sent = await stages(database_url)
        say(f"… steady: {orders // 2} orders at {rate:g}/s")
        _, steady_latency = await phase(receiver, bootstrap, orders // 2, rate)

    say("")
    say(f"| figure | value | ratio to the ceiling ({top:.0f} POSTs/s) |")
    say("|---|---|---|")
    say(f"| deliveries/s, burst | {burst:.0f} | {burst / top:.2f}x |")
    for name, values in (("burst", burst_latency), (f"steady {rate:g}/s", steady_latency)):
        say(
            f"| commit -> delivery, {name}: p50 / p99 | "
            f"{percentile(values, 50) * 1000:.0f} ms / {percentile(values, 99) * 1000:.0f} ms | |"
        )
    for name, values in (("event -> delivery row", consumed), ("row -> 2xx", sent)):
        say(
            f"| of which {name}, burst: p50 / p99 | "
            f"{percentile(values, 50) * 1000:.0f} ms / {percentile(values, 99) * 1000:.0f} ms | |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0, help="orders/s in the steady phase")
    args = parser.parse_args()
    stack = Stack()
    say(f"Omniroute webhooks benchmark on {os.cpu_count()} cores (work dir {stack.work})")
    process: ServiceProcess | None = None
    try:
        stack.start()
        database_url = stack.database("bench_webhooks", "webhooks")
        process = ServiceProcess(
            "services.webhooks.app:app",
            free_port(),
            {
                "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
                "OMNIROUTE_DATABASE_URL": database_url,
                "OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
                "OMNIROUTE_WEBHOOK_CONCURRENCY_PER_ENDPOINT": str(PER_ENDPOINT),
                "OMNIROUTE_LOG_LEVEL": "WARNING",
            },
            stack.work / "webhooks.log",
        )
        process.start()
        if os.environ.get("BENCH_SHOW_PIDS"):
            say(f"  webhooks pid {process.pid}")
        asyncio.run(
            run(process.url, database_url, stack.kafka.bootstrap_servers, args.orders, args.rate)
        )
    finally:
        if process is not None:
            process.stop()
        stack.stop()


if __name__ == "__main__":
    main()
