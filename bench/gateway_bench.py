"""Gateway benchmark, run by `make bench`: availability and quote reads through the gateway
(authentication, rate limit, a call to the service behind), against ceilings measured in the same
run (DESIGN.md §7: report ratios, not absolute numbers, because machines differ).

Ceilings: the same reads straight from inventory and pricing (what the gateway adds is the
difference), and the gateway's own `/healthz` (what one gateway process answers at all).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.common import Stack, percentile, say
from services.launcher.embedded import free_port
from tests.support.processes import ServiceProcess

SKUS = [f"BENCH-{n:02d}" for n in range(10)]
ADMIN_KEY = "omr_bench_admin_key_0123456789abcdef"
KEYS = "bench:benchmark-signing-key-0123456789-abcdefghij"
STORES = [(f"store-{n}", 52.0 + n / 10, 4.5 + n / 10) for n in range(8)]


async def seed(inventory: str, pricing: str, gateway: str) -> str:
    """Stores and stock to look up, prices to quote; a shop key for the gateway."""
    async with httpx.AsyncClient(timeout=30) as client:
        for location_id, lat, lon in STORES:
            await client.post(
                f"{inventory}/locations",
                json={
                    "location_id": location_id,
                    "name": location_id,
                    "type": "store",
                    "lat": lat,
                    "lon": lon,
                    "capabilities": ["ship", "pickup"],
                },
            )
            for sku in SKUS:
                await client.post(
                    f"{inventory}/stock-levels",
                    json={"location_id": location_id, "sku": sku, "on_hand": 100},
                )
        for sku in SKUS:
            await client.post(
                f"{pricing}/prices", json={"sku": sku, "currency": "EUR", "amount": 1999}
            )
        created = await client.post(
            f"{gateway}/v1/admin/api-keys",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={
                "role": "shop",
                "name": "bench",
                "channel": "web",
                "rate_limit": {"requests_per_second": 100_000, "burst": 100_000},
            },
        )
        created.raise_for_status()
        return str(created.json()["api_key"])


async def load(
    send: Callable[[httpx.AsyncClient, int], Any], count: int, concurrency: int
) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 in ms, for `count` requests `concurrency` at a time."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for n in range(min(50, count)):  # warm up connections and caches
            (await send(client, n)).raise_for_status()
        queue = iter(range(count))

        async def worker() -> None:
            for n in queue:
                started = time.perf_counter()
                response = await send(client, n)
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return count / elapsed, percentile(latencies, 50), percentile(latencies, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    stack = Stack()
    say(f"Omniroute gateway benchmark on {os.cpu_count()} cores (work dir {stack.work})")
    processes: list[ServiceProcess] = []
    try:
        stack.start()
        env: dict[str, Any] = {
            "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "OMNIROUTE_QUOTE_SIGNING_KEYS": KEYS,
            "OMNIROUTE_LOG_LEVEL": "WARNING",
        }
        urls: dict[str, str] = {}
        for service in ("inventory", "pricing", "gateway"):
            extra = {f"OMNIROUTE_{name.upper()}_URL": url for name, url in urls.items()}
            if service == "gateway":
                extra["OMNIROUTE_BOOTSTRAP_ADMIN_KEY"] = ADMIN_KEY
            process = ServiceProcess(
                f"services.{service}.app:app",
                free_port(),
                {
                    **env,
                    **extra,
                    "OMNIROUTE_DATABASE_URL": stack.database(f"bench_{service}", service),
                },
                stack.work / f"{service}.log",
            )
            process.start()
            processes.append(process)
            urls[service] = process.url
        say("… seeding 8 stores with 10 skus, and prices")
        shop_key = asyncio.run(seed(urls["inventory"], urls["pricing"], urls["gateway"]))
        bearer = {"Authorization": f"Bearer {shop_key}"}

        def availability(base: str, headers: dict[str, str]) -> Callable[..., Any]:
            path = "/v1/availability" if base == urls["gateway"] else "/availability"

            def send(client: httpx.AsyncClient, n: int) -> Any:
                params = {"sku": [SKUS[n % 10], SKUS[(n + 3) % 10]], "near": "52.3,4.9"}
                return client.get(base + path, params=params, headers=headers)

            return send

        def quote(base: str, headers: dict[str, str]) -> Callable[..., Any]:
            path = "/v1/quotes" if base == urls["gateway"] else "/quotes"

            def send(client: httpx.AsyncClient, n: int) -> Any:
                lines = [{"sku": SKUS[n % 10], "quantity": 3}, {"sku": SKUS[(n + 1) % 10], "quantity": 1}]  # fmt: skip
                body = {"currency": "EUR", "lines": lines}
                return client.post(base + path, json=body, headers=headers)

            return send

        def healthz(client: httpx.AsyncClient, n: int) -> Any:
            return client.get(urls["gateway"] + "/healthz")

        count, concurrency = args.requests, args.concurrency
        say(f"… {count} requests of each kind, {concurrency} at a time")
        results = {
            "gateway /healthz": asyncio.run(load(healthz, count, concurrency)),
            "availability, inventory directly": asyncio.run(
                load(availability(urls["inventory"], {}), count, concurrency)
            ),
            "availability through the gateway": asyncio.run(
                load(availability(urls["gateway"], bearer), count, concurrency)
            ),
            "quotes, pricing directly": asyncio.run(
                load(quote(urls["pricing"], {}), count, concurrency)
            ),
            "quotes through the gateway": asyncio.run(
                load(quote(urls["gateway"], bearer), count, concurrency)
            ),
        }
    finally:
        for process in processes:
            process.stop()
        stack.stop()

    say("")
    for name, (rate, p50, p99) in results.items():
        say(f"{name:<36} {rate:7.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    ceiling = results["gateway /healthz"][0]
    for kind, direct in (("availability", "inventory"), ("quotes", "pricing")):
        through = results[f"{kind} through the gateway"][0]
        straight = results[f"{kind}, {direct} directly"][0]
        say(
            f"{kind} through the gateway = {through / straight:.2f} x {direct} directly, "
            f"{through / ceiling:.2f} x the gateway's /healthz ceiling"
        )


if __name__ == "__main__":
    main()
