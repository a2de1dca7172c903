"""Orders benchmark, run by `make bench`: orders accepted by the orders API and confirmed after a
round trip through Kafka and inventory, against a database ceiling measured in the same run
(DESIGN.md §7: report ratios, not absolute numbers, because machines differ).

Ceiling: the writes one order's intake makes (order, line, fulfillment, routing decision, three
outbox rows), committed by raw asyncpg on as many connections as the client uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from bench.common import Stack, percentile, say
from services.contracts import topics
from services.launcher.embedded import free_port
from tests.support.processes import ServiceProcess

SKUS = [f"BENCH-{n:02d}" for n in range(20)]
KEYS = "bench:benchmark-signing-key-0123456789-abcdefghij"


async def ceiling(dsn: str, count: int, concurrency: int) -> float:
    pool = await asyncpg.create_pool(
        dsn.replace("postgresql+asyncpg://", "postgresql://"),
        min_size=concurrency,
        max_size=concurrency,
    )
    payload = json.dumps({"data": {"x": "y" * 400}})

    async def one(n: int) -> None:
        order_id = f"c-{n}"
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO orders (order_id, status, channel, customer_id, customer_email, quote_id,"
                " method, currency, subtotal, discount_total, total) VALUES ($1, 'pending', 'web',"
                " 'c', 'c@x.io', $1, 'delivery', 'EUR', 1, 0, 1)",
                order_id,
            )
            await conn.execute(
                "INSERT INTO order_lines (order_id, sku, quantity, unit_price, unit_net_prices, total)"
                " VALUES ($1, 'S', 1, 1, '{1}', 1)",
                order_id,
            )
            await conn.execute(
                "INSERT INTO fulfillments (fulfillment_id, order_id, location_id, location_type,"
                " method, status, attempt) VALUES ($1, $1, 'wh', 'warehouse', 'delivery', 'pending', 1)",
                order_id,
            )
            await conn.execute(
                "INSERT INTO fulfillment_lines (fulfillment_id, sku, quantity) VALUES ($1, 'S', 1)",
                order_id,
            )
            await conn.execute(
                "INSERT INTO routing_attempts (order_id, attempt, decision) VALUES ($1, 1, $2::jsonb)",
                order_id,
                payload,
            )
            await conn.executemany(
                "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, headers)"
                " VALUES ($1, 't', 'k', 't', $2::jsonb, '{}'::jsonb)",
                [(f"{order_id}-{k}", payload) for k in range(3)],
            )

    semaphore = asyncio.Semaphore(concurrency)

    async def bounded(n: int) -> None:
        async with semaphore:
            await one(n)

    started = time.perf_counter()
    await asyncio.gather(*(bounded(n) for n in range(count)))
    rate = count / (time.perf_counter() - started)
    await pool.close()
    return rate


async def seed(inventory: str, pricing: str, orders: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        await client.post(
            f"{inventory}/locations",
            json={
                "location_id": "wh",
                "name": "Bench warehouse",
                "type": "warehouse",
                "lat": 51.56,
                "lon": 5.09,
                "capabilities": ["ship"],
                "priority": 10,
                "ship_capacity": 10**6,
            },
        )
        # A store to collect at that has none of the skus: every such order is routed as a
        # transfer from the warehouse, which makes routing ask inventory whether the store has
        # the stock after all (the stale-view check), so that phase pays it on every order.
        await client.post(
            f"{inventory}/locations",
            json={
                "location_id": "st",
                "name": "Bench store",
                "type": "store",
                "lat": 51.58,
                "lon": 5.07,
                "capabilities": ["pickup"],
                "priority": 50,
                "ship_capacity": 0,
            },
        )
        for sku in SKUS:
            await client.post(
                f"{inventory}/stock-levels",
                json={"location_id": "wh", "sku": sku, "on_hand": 10**6},
            )
            await client.post(
                f"{pricing}/prices", json={"sku": sku, "currency": "EUR", "amount": 1999}
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # orders learns locations and stock from Kafka
            sites = (await client.get(f"{orders}/routing/sites", params={"sku": SKUS})).json()
            stocked = any(
                s["location_id"] == "wh" and min(s["available"].values()) > 0 for s in sites
            )
            if stocked and any(s["location_id"] == "st" for s in sites):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("orders never saw the benchmark stock")


DELIVERY = {
    "method": "delivery",
    "address": {
        "line1": "Bench 1",
        "postal_code": "5000",
        "city": "Tilburg",
        "country": "NL",
        "lat": 51.56,
        "lon": 5.08,
    },
}
COLLECT_WITH_TRANSFER = {"method": "pickup", "store_id": "st"}


async def run(
    pricing: str,
    orders: str,
    bootstrap: str,
    count: int,
    concurrency: int,
    fulfillment: dict[str, Any],
) -> dict[str, float]:
    confirmed: dict[str, float] = {}
    accepted_at: dict[str, float] = {}
    all_accepted = False
    everything_confirmed = asyncio.Event()

    def check_done() -> None:
        # Only this phase's orders count: an earlier phase's are on the topic too.
        if all_accepted and accepted_at.keys() <= confirmed.keys():
            everything_confirmed.set()

    consumer = AIOKafkaConsumer(
        topics.ORDERS_EVENTS.name,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()

    async def watch() -> None:
        async for record in consumer:
            body = json.loads(record.value)
            if body["type"].endswith("order_confirmed.v1"):
                confirmed.setdefault(body["data"]["order_id"], time.perf_counter())
                check_done()

    watcher = asyncio.create_task(watch())
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        semaphore = asyncio.Semaphore(concurrency)
        quote_latency: list[float] = []

        async def quote(n: int) -> str:
            async with semaphore:
                started = time.perf_counter()
                response = await client.post(
                    f"{pricing}/quotes",
                    json={
                        "currency": "EUR",
                        "lines": [{"sku": SKUS[n % len(SKUS)], "quantity": 1}],
                    },
                )
                quote_latency.append((time.perf_counter() - started) * 1000)
                return str(response.json()["quote_token"])

        started = time.perf_counter()
        tokens = await asyncio.gather(*(quote(n) for n in range(count)))
        quotes_per_second = count / (time.perf_counter() - started)

        accept_latency: list[float] = []

        async def order(n: int, token: str) -> None:
            async with semaphore:
                started = time.perf_counter()
                response = await client.post(
                    f"{orders}/orders",
                    json={
                        "quote_token": token,
                        "customer": {"id": f"c{n}", "email": "b@example.com"},
                        "fulfillment": fulfillment,
                        "lines": [{"sku": SKUS[n % len(SKUS)], "quantity": 1}],
                    },
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                done = time.perf_counter()
                if response.status_code != 202:
                    raise RuntimeError(f"order refused: {response.status_code} {response.text}")
                accept_latency.append((done - started) * 1000)
                accepted_at[response.json()["order_id"]] = done

        started = time.perf_counter()
        await asyncio.gather(*(order(n, token) for n, token in enumerate(tokens)))
        accepted_per_second = count / (time.perf_counter() - started)
        all_accepted = True
        check_done()
        with contextlib.suppress(TimeoutError):  # what is missing is reported below
            await asyncio.wait_for(everything_confirmed.wait(), timeout=300)
    watcher.cancel()
    await consumer.stop()
    missing = set(accepted_at) - set(confirmed)
    if missing:
        raise RuntimeError(f"{len(missing)} orders never confirmed")
    to_confirm = [(confirmed[o] - accepted_at[o]) * 1000 for o in accepted_at]
    return {
        "quotes_per_second": quotes_per_second,
        "quote_p99_ms": percentile(quote_latency, 99),
        "accepted_per_second": accepted_per_second,
        "confirmed_per_second": count / (max(confirmed[o] for o in accepted_at) - started),
        "accept_p99_ms": percentile(accept_latency, 99),
        "confirm_p50_ms": percentile(to_confirm, 50),
        "confirm_p99_ms": percentile(to_confirm, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    stack = Stack()
    say(f"Omniroute orders benchmark on {os.cpu_count()} cores (work dir {stack.work})")
    processes: list[ServiceProcess] = []
    try:
        stack.start()
        env: dict[str, Any] = {
            "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "OMNIROUTE_QUOTE_SIGNING_KEYS": KEYS,
            "OMNIROUTE_LOG_LEVEL": "WARNING",
        }
        urls: dict[str, str] = {}
        for service in ("inventory", "pricing", "orders"):
            process = ServiceProcess(
                f"services.{service}.app:app",
                free_port(),
                {
                    **env,
                    "OMNIROUTE_DATABASE_URL": stack.database(f"bench_{service}", service),
                    # Orders asks inventory when its projection cannot place an order.
                    "OMNIROUTE_INVENTORY_URL": urls.get("inventory", ""),
                },
                stack.work / f"{service}.log",
            )
            process.start()
            processes.append(process)
            if os.environ.get("BENCH_SHOW_PIDS"):
                say(f"  {service} pid {process.pid}")
            urls[service] = process.url
        ceiling_url = stack.database("bench_ceiling", "orders")

        say(
            f"… database ceiling: {args.orders} order-intake transactions, raw asyncpg, {args.concurrency} connections"
        )
        db_ceiling = asyncio.run(ceiling(ceiling_url, args.orders, args.concurrency))
        say("… seeding a warehouse and prices; waiting for orders to see the stock")
        asyncio.run(seed(urls["inventory"], urls["pricing"], urls["orders"]))
        say(
            f"… {args.orders} quotes, then {args.orders} delivery orders, {args.concurrency} at a "
            "time (each phase quotes its orders first)"
        )
        result = asyncio.run(
            run(
                urls["pricing"],
                urls["orders"],
                stack.kafka.bootstrap_servers,
                args.orders,
                args.concurrency,
                DELIVERY,
            )
        )
        # The cost of the stale-view check, A-B-A so that warm-up and drift do not pass for it:
        # delivery orders (never asking inventory), then as many that each ask, then delivery
        # orders again.
        say(
            f"… {args.orders} click & collect orders at a store without the stock: each one asks "
            "inventory before it is routed as a transfer"
        )
        checked = asyncio.run(
            run(
                urls["pricing"],
                urls["orders"],
                stack.kafka.bootstrap_servers,
                args.orders,
                args.concurrency,
                COLLECT_WITH_TRANSFER,
            )
        )
        say(f"… {args.orders} delivery orders again")
        again = asyncio.run(
            run(
                urls["pricing"],
                urls["orders"],
                stack.kafka.bootstrap_servers,
                args.orders,
                args.concurrency,
                DELIVERY,
            )
        )
    finally:
        for process in processes:
            process.stop()
        stack.stop()

    say("")
    say(f"database ceiling        {db_ceiling:8.0f} order intakes/s")
    say(
        f"orders accepted         {result['accepted_per_second']:8.0f} /s   = {result['accepted_per_second'] / db_ceiling:.2f} x ceiling   (p99 accept {result['accept_p99_ms']:.0f} ms)"
    )
    say(
        f"orders confirmed        {result['confirmed_per_second']:8.0f} /s   = {result['confirmed_per_second'] / db_ceiling:.2f} x ceiling   (accepted -> confirmed p50 {result['confirm_p50_ms']:.0f} ms, p99 {result['confirm_p99_ms']:.0f} ms)"
    )
    say(
        f"quotes                  {result['quotes_per_second']:8.0f} /s   (p99 {result['quote_p99_ms']:.0f} ms, straight to pricing)"
    )
    unchecked = (result["accepted_per_second"] + again["accepted_per_second"]) / 2
    say(
        f"orders asking inventory {checked['accepted_per_second']:8.0f} /s   = {checked['accepted_per_second'] / unchecked:.2f} x orders that do not ({unchecked:.0f} /s, the mean of the runs before and after)   (p99 accept {checked['accept_p99_ms']:.0f} ms, {result['accept_p99_ms']:.0f} and {again['accept_p99_ms']:.0f} ms without)"
    )


if __name__ == "__main__":
    main()
