"""Gateway benchmark, run by `make bench`: availability and quote reads through the gateway
(authentication, rate limit, a call to the service behind), against ceilings measured in the same
run (DESIGN.md §7: report ratios, not absolute numbers, because machines differ).

Ceilings: the same reads straight from inventory and pricing (what the gateway adds is the
difference), and the gateway's own `/healthz` (what one gateway process answers at all).

The load comes from `hey` (a Go program, built once into the tools cache; see
tests/support/tools.py): a Python client on the same two cores measured itself more than the
services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
from typing import Any

import httpx

from bench.common import Stack, say
from services.launcher.embedded import free_port
from tests.support import tools
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


def load(
    url: str, count: int, concurrency: int, headers: dict[str, str], body: Any = None
) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 in ms, for `count` requests `concurrency` at a time."""
    options = ["-c", str(concurrency)]
    for name, value in headers.items():
        options += ["-H", f"{name}: {value}"]
    if body is not None:
        options += ["-m", "POST", "-T", "application/json", "-d", json.dumps(body)]
    hey = str(tools.hey())
    subprocess.run([hey, "-n", "100", *options, url], check=True, capture_output=True)  # warm up
    output = subprocess.run(
        [hey, "-n", str(count), *options, url], check=True, capture_output=True, text=True
    ).stdout
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)
    if any(code != "200" and code != "201" for code, _ in codes):
        raise RuntimeError(f"{url} answered {codes}:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50, p99 = (
        float(re.search(rf"{p}%+ in ([\d.]+) secs", output).group(1)) * 1000  # type: ignore[union-attr]
        for p in (50, 99)
    )
    return rate, p50, p99


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

        count, concurrency = args.requests, args.concurrency
        gateway, inventory, pricing = urls["gateway"], urls["inventory"], urls["pricing"]
        where = "sku=BENCH-01&sku=BENCH-04&near=52.3,4.9"
        cart = {
            "currency": "EUR",
            "lines": [{"sku": "BENCH-02", "quantity": 3}, {"sku": "BENCH-03", "quantity": 1}],
        }
        say(f"… {count} requests of each kind, {concurrency} at a time (hey)")
        results = {
            "gateway /healthz": load(f"{gateway}/healthz", count, concurrency, {}),
            "availability, inventory directly": load(
                f"{inventory}/availability?{where}", count, concurrency, {}
            ),
            "availability through the gateway": load(
                f"{gateway}/v1/availability?{where}", count, concurrency, bearer
            ),
            "quotes, pricing directly": load(f"{pricing}/quotes", count, concurrency, {}, cart),
            "quotes through the gateway": load(
                f"{gateway}/v1/quotes", count, concurrency, bearer, cart
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
