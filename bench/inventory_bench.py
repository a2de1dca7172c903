"""Inventory benchmark, run by `make bench`: every figure is a ratio to a ceiling measured in the
same run on the same machine, so the numbers mean something on any hardware.

1. Reservations through Kafka: ReserveStock commands published as fast as a client can, each
   answered by StockReserved from the inventory process (consumer, database, outbox, relay).
   Ceiling: the same statements one reservation makes, sent by raw asyncpg on one connection.
2. Outbox relay drain: a backlog of events published and marked.
   Ceiling: the same messages sent by a bare aiokafka producer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import insert

from bench.common import Stack, percentile, say
from services.contracts import topics
from services.contracts.inventory import ReserveStock, StockLine
from services.infrastructure.broker import create_broker
from services.infrastructure.database import create_engine
from services.infrastructure.outbox import OutboxRelay
from services.infrastructure.settings import ServiceSettings
from services.infrastructure.tables import OutboxMessage
from services.launcher.embedded import free_port
from tests.support.kafka import envelope_bytes
from tests.support.processes import ServiceProcess


async def database_ceiling(dsn: str, count: int) -> float:
    """Transactions per second doing exactly the writes of one reservation, on one connection
    (the consumer applies messages one after another)."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "INSERT INTO locations (location_id, name, type, lat, lon, capabilities, priority,"
        " ship_capacity) VALUES ('ceiling', 'c', 'warehouse', 0, 0, '{}', 1, 1)"
    )
    await conn.execute(
        "INSERT INTO stock_levels (location_id, sku, on_hand, reserved, safety_stock, version)"
        " VALUES ('ceiling', 'S', $1, 0, 0, 1)",
        count * 2,
    )
    payload = json.dumps({"data": {"x": "y" * 300}})
    started = time.perf_counter()
    for n in range(count):
        rid = f"c-{n}"
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, event_type) VALUES ('c', $1, 't')"
                " ON CONFLICT DO NOTHING",
                rid,
            )
            await conn.execute(
                "INSERT INTO reservations (reservation_id, order_id, status) VALUES ($1, $1, 'held')",
                rid,
            )
            await conn.execute(
                "UPDATE stock_levels SET reserved = reserved + 1, version = version + 1"
                " WHERE location_id = 'ceiling' AND sku = 'S' AND on_hand - reserved >= 1"
            )
            await conn.execute(
                "INSERT INTO reservation_lines (reservation_id, sku, quantity) VALUES ($1, 'S', 1)",
                rid,
            )
            await conn.execute(
                "INSERT INTO movements (location_id, sku, kind, on_hand_delta, reserved_delta,"
                " reference) VALUES ('ceiling', 'S', 'reservation', 0, 1, $1)",
                rid,
            )
            await conn.executemany(
                "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, headers)"
                " VALUES ($1, 't', 'k', 't', $2::jsonb, '{}'::jsonb)",
                [(f"{rid}-a", payload), (f"{rid}-b", payload)],
            )
    elapsed = time.perf_counter() - started
    await conn.close()
    return count / elapsed


async def reservations_through_kafka(
    bootstrap: str, service_url: str, count: int
) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=service_url) as client:
        await client.post(
            "/locations",
            json={"location_id": "wh", "name": "W", "type": "warehouse", "lat": 51.5, "lon": 5.0},
        )
        await client.post(
            "/stock-levels", json={"location_id": "wh", "sku": "S", "on_hand": count * 2}
        )

    answered: dict[str, float] = {}
    done = asyncio.Event()
    consumer = AIOKafkaConsumer(
        topics.INVENTORY_EVENTS.name,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()

    async def watch() -> None:
        async for record in consumer:
            body = json.loads(record.value)
            if body["type"].endswith("stock_reserved.v1"):
                answered.setdefault(body["data"]["order_id"], time.perf_counter())
                if len(answered) >= count:
                    done.set()

    watcher = asyncio.create_task(watch())
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=5
    )
    await producer.start()
    run = uuid.uuid4().hex[:6]
    sent: dict[str, float] = {}
    started = time.perf_counter()
    pending = []
    for n in range(count):
        command = ReserveStock(
            order_id=f"{run}-{n}",
            fulfillment_id="f",
            reservation_id=f"{run}-{n}-r",
            location_id="wh",
            lines=(StockLine(sku="S", quantity=1),),
        )
        sent[command.order_id] = time.perf_counter()
        pending.append(
            await producer.send(
                command.TOPIC, envelope_bytes(command), key=command.order_id.encode()
            )
        )
    await asyncio.gather(*pending)
    published = time.perf_counter()
    await asyncio.wait_for(done.wait(), timeout=600)
    finished = time.perf_counter()
    watcher.cancel()
    await producer.stop()
    await consumer.stop()
    latencies = [(answered[o] - sent[o]) * 1000 for o in sent]
    return {
        "throughput": count / (finished - started),
        "publish_seconds": published - started,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
    }


async def relay_drain(url: str, bootstrap: str, count: int) -> tuple[float, float]:
    engine = create_engine(url)
    payload = {"specversion": "1.0", "data": {"x": "y" * 300}}
    rows = [
        {
            "event_id": str(uuid.uuid4()),
            "topic": topics.ORDERS_EVENTS.name,
            "message_key": f"k{n % 500}",
            "event_type": "bench",
            "payload": payload,
            "headers": {},
        }
        for n in range(count)
    ]
    async with engine.begin() as conn:
        for start in range(0, count, 1000):
            await conn.execute(insert(OutboxMessage), rows[start : start + 1000])
    broker = create_broker(ServiceSettings(kafka_bootstrap_servers=bootstrap, service_name="bench"))
    await broker.connect()
    relay = OutboxRelay(engine, broker, service="bench", batch_size=500)
    started = time.perf_counter()
    while await relay.publish_batch():
        pass
    relay_rate = count / (time.perf_counter() - started)
    await broker.stop()
    await engine.dispose()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    body = json.dumps(payload).encode()
    started = time.perf_counter()
    for start in range(0, count, 500):
        batch = [
            await producer.send(topics.ORDERS_EVENTS.name, body, key=f"k{n}".encode())
            for n in range(start, min(start + 500, count))
        ]
        await asyncio.gather(*batch)
    producer_rate = count / (time.perf_counter() - started)
    await producer.stop()
    return relay_rate, producer_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=10000)
    args = parser.parse_args()
    stack = Stack()
    say(f"Omniroute inventory benchmark on {os.cpu_count()} cores (work dir {stack.work})")
    service: ServiceProcess | None = None
    try:
        stack.start()
        urls = {
            name: stack.database(f"bench_{name}", "inventory")
            for name in ("ceiling", "inventory", "relay")
        }

        say(f"… database ceiling: {args.commands} reservation transactions, raw asyncpg")
        dsn = urls["ceiling"]
        ceiling = asyncio.run(database_ceiling(dsn, args.commands))

        say(f"… {args.commands} ReserveStock commands through Kafka to the inventory process")
        service = ServiceProcess(
            "services.inventory.app:app",
            free_port(),
            {
                "OMNIROUTE_DATABASE_URL": urls["inventory"],
                "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
                "OMNIROUTE_LOG_LEVEL": "WARNING",
            },
            stack.work / "inventory.log",
        )
        service.start()
        kafka_result = asyncio.run(
            reservations_through_kafka(stack.kafka.bootstrap_servers, service.url, args.commands)
        )

        say(f"… outbox relay draining a backlog of {args.backlog} events")
        relay_rate, producer_rate = asyncio.run(
            relay_drain(urls["relay"], stack.kafka.bootstrap_servers, args.backlog)
        )
    finally:
        if service is not None:
            service.stop()
        stack.stop()

    say("")
    say(f"database ceiling            {ceiling:8.0f} reservations/s")
    say(
        f"reservations through Kafka  {kafka_result['throughput']:8.0f} /s   "
        f"= {kafka_result['throughput'] / ceiling:.2f} x ceiling   "
        f"(command -> answer p50 {kafka_result['p50_ms']:.0f} ms, p99 {kafka_result['p99_ms']:.0f} ms "
        f"with all {args.commands} published at once in {kafka_result['publish_seconds']:.1f} s)"
    )
    say(f"bare producer ceiling       {producer_rate:8.0f} messages/s")
    say(
        f"outbox relay drain          {relay_rate:8.0f} events/s   = {relay_rate / producer_rate:.2f} x ceiling"
    )


if __name__ == "__main__":
    main()
