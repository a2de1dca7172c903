"""The system benchmark, run by `make bench`: what a user meets (DESIGN.md §7). The whole stack as
`make run` starts it (`omniroute run`, in a scratch directory on free ports), measured through
the gateway only, every figure beside a ceiling measured in the same run:

- the gateway's own `/healthz` (what one gateway process answers at all): the reads' ceiling;
- one order intake's writes, committed by raw asyncpg on the stack's PostgreSQL: the orders'.

Reads come from `wrk` (Debian's package, installed when missing; a Python client on the same two
cores would measure itself): availability of a spread of skus as product pages ask for it, and
quotes of a spread of carts. Orders, watched on `orders.events.v1` until each is confirmed: first
`--in-flight` shoppers placing quote+order pairs one after the other for `--order-seconds` (the
most the system takes; the latency then is mostly waiting in line), then a steady phase at half
that rate, a new shopper at fixed intervals whatever the answers (the latency at a load the
system keeps up with).

`--replicas 2` runs a second process of every Kafka-consuming service against Apache Kafka
(started here, jars from Maven Central), and checks that the replicas shared the partitions and
that no order was confirmed twice; `--apache-kafka` runs one replica against it, to compare.

`--profile DIR` samples every service with py-spy while the orders run at the most the system
takes, and writes a flame graph per service (`DIR/orders.svg`, ...) and the hottest functions
(`DIR/orders.txt`, by own time): where the CPU per order goes (`make profile`).

    python -m bench.system_bench [--order-seconds 60] [--steady-seconds 30] [--read-seconds 20]
        [--replicas 2 | --apache-kafka] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer

from bench.common import percentile, say
from bench.orders_bench import ceiling as intake_ceiling
from services.contracts import topics
from services.infrastructure.migrations import create_database_if_missing, upgrade_to_head
from services.launcher.cli import SERVICES
from services.launcher.embedded import free_port
from services.launcher.reaper import REAPER
from tests.support import apache_kafka, tools

SKUS = [f"BENCH-{n:02d}" for n in range(40)]
WAREHOUSES = [(f"bench-wh-{n}", 52.0 + n / 5, 4.6 + n / 5) for n in range(4)]
# Where the shoppers are: availability asks nearest first, within 150 km.
PLACES = [(52.37, 4.90), (52.09, 5.12), (51.92, 4.48), (52.52, 13.40)]
START_TIMEOUT_SECONDS = 300.0

WRK_SCRIPT = """
local paths = {%(paths)s}
local bodies = {%(bodies)s}
local n = 0
request = function()
  n = n + 1
  if #bodies > 0 then
    wrk.headers["Content-Type"] = "application/json"  -- beside -H Authorization
    return wrk.format("POST", paths[1], nil, bodies[(n %% #bodies) + 1])
  end
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "seconds": %%f, "p50": %%d, "p99": %%d, "errors": %%d, "non2xx": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Running:
    """`omniroute run` in a scratch directory."""

    process: subprocess.Popen[str]
    gateway: str
    admin_key: str
    postgres_url: str
    output: list[str]
    postgres_dir: Path = Path()
    replicas: dict[str, str] = field(default_factory=dict)
    """Every consuming service's processes: name (`orders`, `orders-2`) -> URL."""


def launch(work: Path, replicas: int, kafka: str | None) -> Running:
    ports = {spec.name: free_port() for spec in SERVICES}
    admin_key = "omr_bench_" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if "KAFKA_BOOTSTRAP_SERVERS" not in k}
    env.update(
        OMNIROUTE_DATA_DIR=str(work / "data"),
        OMNIROUTE_BOOTSTRAP_ADMIN_KEY=admin_key,
        OMNIROUTE_KAFKA_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    env.update({spec.port_env: str(ports[spec.name]) for spec in SERVICES})
    if kafka is not None:
        env["OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS"] = kafka
        env["OMNIROUTE_KAFKA_ENABLE_IDEMPOTENCE"] = "true"  # Apache Kafka has it
    command = [sys.executable, "-m", "services.launcher.cli", "run", "--replicas", str(replicas)]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    REAPER.watch(process.pid, grace=60.0)
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
            if line.startswith("Press Ctrl-C"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not ready.wait(1.0):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("omniroute run did not start:\n" + "\n".join(output[-40:]))
    postgres = next(line.split()[1] for line in output if line.strip().startswith("postgres "))
    server, query = postgres.split("?", 1)
    running = Running(
        process,
        f"http://127.0.0.1:{ports['gateway']}",
        admin_key,
        server.rsplit("/", 1)[0] + "/{database}?" + query,
        output,
        postgres_dir=work / "data" / "postgres",
    )
    for name in ("inventory", "orders", "webhooks"):
        running.replicas[name] = f"http://127.0.0.1:{ports[name]}"
    for line in output:
        found = re.match(r"\s+replica (\S+)\s+(http://\S+)", line)
        if found:
            running.replicas[found[1]] = found[2]
    return running


def stop(running: Running) -> None:
    os.killpg(running.process.pid, signal.SIGINT)
    try:
        running.process.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(running.process.pid, signal.SIGKILL)


async def seed(gateway: str, admin_key: str) -> str:
    """Warehouses with deep stock of every bench sku, prices (one sku on a 3-for-2), and a shop
    key whose rate limit the load cannot reach; the key."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=gateway, headers=admin, timeout=30) as client:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await client.post(
                path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            if response.status_code >= 300:
                raise RuntimeError(f"{path}: {response.status_code} {response.text}")
            return response.json()

        for location_id, lat, lon in WAREHOUSES:
            await post(
                "/v1/admin/locations",
                {
                    "location_id": location_id,
                    "name": location_id,
                    "type": "warehouse",
                    "lat": lat,
                    "lon": lon,
                    "capabilities": ["ship"],
                    "ship_capacity": 1_000_000,
                },
            )
            for sku in SKUS:
                await post(
                    "/v1/admin/stock",
                    {"location_id": location_id, "sku": sku, "on_hand": 1_000_000},
                )
        for n, sku in enumerate(SKUS):
            await post("/v1/admin/prices", {"sku": sku, "currency": "EUR", "amount": 999 + n})
        await post(
            "/v1/admin/promotions",
            {
                "promotion_id": "bench-3-for-2",
                "name": "3 for 2",
                "kind": "buy_n_pay_m",
                "skus": SKUS[:4],
                "params": {"buy": 3, "pay": 2},
                "priority": 10,
            },
        )
        key = await post(
            "/v1/admin/api-keys",
            {
                "role": "shop",
                "channel": "web",
                "name": "bench",
                "rate_limit": {"requests_per_second": 100_000, "burst": 100_000},
            },
        )
        return str(key["api_key"])


def wrk(
    wrk_path: Path,
    url: str,
    seconds: int,
    connections: int,
    key: str | None,
    paths: list[str],
    bodies: Sequence[str] = (),
) -> dict[str, float]:
    """Requests/s, p50 and p99 in ms, and failures, from one wrk run."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    with script:
        script.write(
            WRK_SCRIPT
            % {
                "paths": ", ".join(json.dumps(p) for p in paths),
                "bodies": ", ".join(json.dumps(b) for b in bodies),
            }
        )
    command = [str(wrk_path), "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name]
    if key is not None:
        command += ["-H", f"Authorization: Bearer {key}"]
    run = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    os.unlink(script.name)
    found = re.search(r"^RESULT (.*)$", run.stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no result: {run.stdout} {run.stderr}")
    result = json.loads(found[1])
    return {
        "rps": result["requests"] / result["seconds"],
        "p50": result["p50"] / 1000,
        "p99": result["p99"] / 1000,
        "failed": result["errors"] + result["non2xx"],
        "requests": result["requests"],
    }


def read_paths() -> tuple[list[str], list[str]]:
    """Availability as product pages ask for it (one sku, near a shopper), and carts to quote."""
    pages = [
        f"/v1/availability?sku={sku}&near={lat},{lon}&radius_km=150"
        for sku in SKUS
        for lat, lon in PLACES
    ]
    carts = []
    for n in range(len(SKUS)):
        lines = [{"sku": SKUS[n], "quantity": 1 + n % 3}]
        if n % 4 == 0:
            lines.append({"sku": SKUS[(n + 1) % len(SKUS)], "quantity": 3})  # a 3 for 2
        carts.append(json.dumps({"currency": "EUR", "lines": lines}))
    return pages, carts


@dataclass
class OrderRun:
    accepted: dict[str, float] = field(default_factory=dict)
    accept_ms: list[float] = field(default_factory=list)
    confirmed: dict[str, float] = field(default_factory=dict)
    confirmations: Counter[str] = field(default_factory=Counter)
    rejected: set[str] = field(default_factory=set)
    refused: Counter[int] = field(default_factory=Counter)


@dataclass
class Phase:
    """One order phase, measured."""

    run: OrderRun
    started: float
    stopped: float
    last: float
    """When the last order was confirmed."""

    @property
    def confirmed(self) -> list[str]:
        return [o for o in self.run.accepted if o in self.run.confirmed]

    @property
    def accepted_rate(self) -> float:
        return len(self.run.accepted) / (self.stopped - self.started)

    @property
    def confirmed_rate(self) -> float:
        return len(self.confirmed) / (self.last - self.started)

    @property
    def unsettled(self) -> bool:
        return len(self.confirmed) + len(self.run.rejected) < len(self.run.accepted)

    def accept_ms(self, p: float) -> float:
        return percentile(self.run.accept_ms, p)

    def confirm_ms(self, p: float) -> float:
        run = self.run
        return percentile([(run.confirmed[o] - run.accepted[o]) * 1000 for o in self.confirmed], p)


ADDRESS = {
    "line1": "Damrak 1",
    "city": "Amsterdam",
    "postal_code": "1012 LG",
    "country": "NL",
    "lat": 52.37,
    "lon": 4.90,
}


async def place_orders(
    gateway: str,
    key: str,
    bootstrap: str,
    seconds: float,
    *,
    in_flight: int = 32,
    rate: float | None = None,
    phase: str = "max",
) -> tuple[OrderRun, float, float, float]:
    """Quote+order pairs for `seconds`, then wait for every confirmation: `in_flight` shoppers
    each placing one after the other (as many as the system takes), or, with `rate`, a new
    shopper every 1/rate s whatever the answers (latency at a load the system sustains). The
    run, when the load started and stopped, and when the last order was confirmed."""
    run = OrderRun()
    consumer = AIOKafkaConsumer(
        topics.ORDERS_EVENTS.name,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    await consumer.seek_to_end()

    async def watch() -> None:
        async for record in consumer:
            body = json.loads(record.value)
            order_id = body["data"].get("order_id")
            if body["type"].endswith("order_confirmed.v1"):
                run.confirmations[order_id] += 1
                run.confirmed.setdefault(order_id, time.perf_counter())
            elif body["type"].endswith("order_rejected.v1"):
                run.rejected.add(order_id)

    watcher = asyncio.create_task(watch())
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=0)
    started = time.perf_counter()
    until = started + seconds
    async with aiohttp.ClientSession(gateway, headers=headers, connector=connector) as client:

        async def shop(n: int) -> None:
            """One shopper's quote, then the order."""
            lines = [{"sku": SKUS[n % len(SKUS)], "quantity": 1}]
            quote = {"currency": "EUR", "lines": lines}
            async with client.post("/v1/quotes", json=quote) as response:
                if response.status != 201:
                    run.refused[response.status] += 1
                    return
                token = (await response.json())["quote_token"]
            body = {
                "quote_token": token,
                "customer": {"id": f"bench-{phase}-{n}", "email": "bench@example.com"},
                "fulfillment": {"method": "delivery", "address": ADDRESS},
                "lines": lines,
            }
            sent = time.perf_counter()
            idempotency = {"Idempotency-Key": str(uuid.uuid4())}
            async with client.post("/v1/orders", json=body, headers=idempotency) as response:
                done = time.perf_counter()
                if response.status != 202:
                    run.refused[response.status] += 1
                    return
                run.accepted[(await response.json())["order_id"]] = done
                run.accept_ms.append((done - sent) * 1000)

        if rate is None:
            counter = iter(range(10**9))

            async def shopper() -> None:
                while time.perf_counter() < until:
                    await shop(next(counter))

            await asyncio.gather(*(shopper() for _ in range(in_flight)))
        else:
            shoppers = []
            for n in range(int(seconds * rate)):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                shoppers.append(asyncio.create_task(shop(n)))
            await asyncio.gather(*shoppers)
    stopped = time.perf_counter()
    deadline = stopped + 180
    while time.perf_counter() < deadline:
        if run.accepted.keys() <= run.confirmed.keys() | run.rejected:
            break
        await asyncio.sleep(0.1)
    watcher.cancel()
    await consumer.stop()
    last = max((run.confirmed[o] for o in run.accepted if o in run.confirmed), default=stopped)
    return run, started, stopped, last


async def consumed_per_process(urls: dict[str, str]) -> dict[str, dict[str, int]]:
    """Events each process applied and ignored as duplicates, from its /metrics."""
    counts: dict[str, dict[str, int]] = {}
    pattern = re.compile(
        r'^omniroute_consumer_processing_seconds_count\{[^}]*outcome="(\w+)"[^}]*\} (\S+)$',
        re.MULTILINE,
    )
    async with httpx.AsyncClient(timeout=10) as client:
        for name, url in urls.items():
            text = (await client.get(f"{url}/metrics")).text
            seen: Counter[str] = Counter()
            for outcome, value in pattern.findall(text):
                seen[outcome] += int(float(value))
            counts[name] = dict(seen)
    return counts


async def cache_hits(gateway: str) -> tuple[int, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{gateway}/metrics")).text
    found = dict(
        re.findall(r'omniroute_gateway_cache_reads_total\{[^}]*outcome="(\w+)"\} (\S+)', text)
    )
    return int(float(found.get("hit", 0))), int(float(found.get("miss", 0)))


def intake_ceiling_on(postgres_url: str, count: int, connections: int) -> float:
    """The raw-asyncpg intake ceiling, on a scratch database of the stack's PostgreSQL."""
    asyncio.run(
        create_database_if_missing(postgres_url.format(database="postgres"), "bench_ceiling")
    )
    url = postgres_url.format(database="bench_ceiling")
    upgrade_to_head("orders", url)
    return asyncio.run(intake_ceiling(url, count, connections))


TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """A process's parent and CPU seconds so far (user + system), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def cpu_by_process(running: Running) -> dict[str, float]:
    """CPU seconds used so far by each part of the stack: every service (its uvicorn workers
    and replicas included), the broker, PostgreSQL (the postmaster and its backends; a backend
    that exited between two readings took its CPU with it, so this is a lower bound)."""
    stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)

    def tree(pid: int) -> float:
        stat = stats.get(pid)
        own = stat[1] if stat is not None else 0.0
        return own + sum(tree(child) for child in children.get(pid, ()))

    used: dict[str, float] = {}
    for pid in children.get(running.process.pid, ()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile
            continue
        found = re.search(r"services\.(\w+)\.app|tansu|reaper", command)
        if found and found[0] != "reaper":
            name = found[1] or "broker"
            used[name] = used.get(name, 0.0) + tree(pid)
    postmaster = running.postgres_dir / "postmaster.pid"
    if postmaster.exists():
        used["postgres"] = tree(int(postmaster.read_text().split()[0]))
    return used


def service_pids(running: Running) -> dict[str, int]:
    """Each service's process (the first of its replicas): name -> pid."""
    pids: dict[str, int] = {}
    for entry in sorted(
        Path("/proc").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0
    ):
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is None or stat[0] != running.process.pid:
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found = re.search(r"services\.(\w+)\.app", command)
        if found:
            pids.setdefault(found[1], int(entry.name))
    return pids


def start_profiles(running: Running, seconds: int, into: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each service for `seconds`, as a flame graph and as raw stacks."""
    into.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "97",
                "--nonblocking",
                "--subprocesses",
                "--format",
                fmt,
                "--output",
                str(into / f"{name}.{ext}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name, pid in service_pids(running).items()
        for fmt, ext in (("flamegraph", "svg"), ("raw", "stacks"))
    ]


def finish_profiles(spies: Sequence[subprocess.Popen[bytes]]) -> None:
    """Wait for the samplers; fail saying why if one could not sample (py-spy attaches to a
    process it did not start, which Linux allows only to root or with ptrace permitted)."""
    for spy in spies:
        _, error = spy.communicate(timeout=60)
        if spy.returncode != 0:
            raise SystemExit(
                f"py-spy could not sample ({spy.args!r}): "
                f"{error.decode(errors='replace').strip()[-500:]}\n"
                "It needs to attach to the services: run `make profile` as root (sudo), or allow "
                "it with `sudo sysctl kernel.yama.ptrace_scope=0`."
            )


def hottest(stacks: Path, top: int = 30) -> str:
    """Where a service's samples went, from py-spy's raw (collapsed) stacks: the functions by
    own time (what runs), and Omniroute's own functions by total time (what asked for it)."""
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    samples = 0
    for line in stacks.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        names = []
        for frame in frames.split(";"):
            function, _, where = frame.partition(" (")
            names.append((function, where.rstrip(")")))
        function, where = names[-1]
        if function.startswith("process "):  # py-spy's root: no Python frame was running
            own["(native code, no Python frame)"] += n
        else:
            own[f"{function} ({where.rpartition('/')[2]})"] += n
        for function, where in {(f, w.rpartition(":")[0]) for f, w in names}:
            if where.startswith("services/"):
                ours[f"{function} ({where})"] += n
    if not samples:
        return "no samples\n"
    lines = [f"{samples} samples (while busy)", "", "  own %  function"]
    lines += [f"{100 * n / samples:7.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "total %  Omniroute's functions"]
    lines += [f"{100 * n / samples:7.1f}  {name}" for name, n in ours.most_common(top)]
    return "\n".join(lines) + "\n"


def cpu_per(before: dict[str, float], after: dict[str, float], count: int, unit: float) -> str:
    """CPU per request or order by part of the stack, biggest first, in `unit` seconds."""
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    parts = sorted(spent.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {seconds / count / unit:.2f}" for name, seconds in parts if seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order-seconds", type=int, default=60)
    parser.add_argument("--steady-seconds", type=int, default=30)
    parser.add_argument("--read-seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--in-flight", type=int, default=32, help="orders placed at once")
    parser.add_argument("--replicas", type=int, default=1, choices=(1, 2, 3, 4))
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each service with py-spy during the orders at most; flame graphs into DIR",
    )
    parser.add_argument(
        "--apache-kafka",
        action="store_true",
        help="run against Apache Kafka (always so with --replicas 2 or more)",
    )
    args = parser.parse_args()

    wrk_path = tools.wrk(log=say)
    work = Path(tempfile.mkdtemp(prefix="omniroute-bench-"))
    kafka = None
    if args.replicas > 1 or args.apache_kafka:
        say("… Apache Kafka (jars from Maven Central on first use)")
        kafka = apache_kafka.ApacheKafka(apache_kafka.ensure_jars(log=say), work / "kafka")
        kafka.start()
    say(
        f"Omniroute system benchmark: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, replicas {args.replicas}, broker "
        f"{'Apache Kafka' if kafka else 'the embedded one (make run)'}; work dir {work}"
    )
    say("… omniroute run (as make run starts it)")
    running = launch(work, args.replicas, kafka.bootstrap_servers if kafka else None)
    try:
        bootstrap = (
            kafka.bootstrap_servers
            if kafka
            else next(
                line.split()[1] for line in running.output if line.strip().startswith("kafka ")
            )
        )
        say("… seeding warehouses, stock, prices and a bench key through the gateway")
        key = asyncio.run(seed(running.gateway, running.admin_key))
        time.sleep(3)  # let orders' projection see the new stock (it asks inventory otherwise)
        pages, carts = read_paths()
        r = args.read_seconds
        say(f"… ceiling: the gateway's /healthz, wrk {args.connections} connections, {r} s")
        healthz = wrk(wrk_path, running.gateway, r, args.connections, None, ["/healthz"])
        say(f"… availability through the gateway ({len(pages)} product pages), {r} s")
        cpu = [cpu_by_process(running)]
        availability = wrk(wrk_path, running.gateway, r, args.connections, key, pages)
        cpu.append(cpu_by_process(running))
        hits, misses = asyncio.run(cache_hits(running.gateway))
        say(f"… quotes through the gateway ({len(carts)} carts), {r} s")
        cpu.append(cpu_by_process(running))
        quotes = wrk(wrk_path, running.gateway, r, args.connections, key, ["/v1/quotes"], carts)
        cpu.append(cpu_by_process(running))
        say(
            f"… orders at the most the system takes: {args.in_flight} shoppers placing quote+order "
            f"pairs through the gateway for {args.order_seconds} s, then every confirmation"
        )
        cpu.append(cpu_by_process(running))
        spies = start_profiles(running, args.order_seconds, args.profile) if args.profile else []
        most = Phase(
            *asyncio.run(
                place_orders(
                    running.gateway, key, bootstrap, args.order_seconds, in_flight=args.in_flight
                )
            )
        )
        cpu.append(cpu_by_process(running))
        finish_profiles(spies)
        rate = max(5.0, round(most.confirmed_rate / 2))
        say(
            f"… orders at a steady {rate:.0f}/s (half that), a new shopper every {1000 / rate:.0f} "
            f"ms whatever the answers, for {args.steady_seconds} s: the latency at a load it keeps"
        )
        steady = Phase(
            *asyncio.run(
                place_orders(
                    running.gateway, key, bootstrap, args.steady_seconds, rate=rate, phase="steady"
                )
            )
        )
        per_process = asyncio.run(consumed_per_process(running.replicas))
        say("… ceiling: one order intake's writes by raw asyncpg, 2,000 transactions")
        db_ceiling = intake_ceiling_on(running.postgres_url, 2000, args.in_flight)
    finally:
        say("… stopping")
        stop(running)
        if kafka is not None:
            kafka.stop()

    say("")
    say(f"{'figure':<34} {'measured':>16} {'ratio':>22}   goal (DESIGN.md §7)")
    say(
        f"{'gateway /healthz (ceiling)':<34} {healthz['rps']:>10,.0f} req/s {'':>22}   "
        f"p99 {healthz['p99']:.0f} ms"
    )
    say(f"{'raw asyncpg intake (ceiling)':<34} {db_ceiling:>10,.0f} /s")
    for name, read in (("availability", availability), ("quotes", quotes)):
        say(
            f"{name + ' through the gateway':<34} {read['rps']:>10,.0f} req/s "
            f"{read['rps'] / healthz['rps']:>10.2f}x /healthz   >= 3,000 req/s, >= 0.5x; "
            f"p50 {read['p50']:.1f} ms, p99 {read['p99']:.1f} ms (<= 25); failed {read['failed']}"
        )
    for name, phase in (("at most", most), ("steady", steady)):
        say(
            f"{'orders accepted, ' + name:<34} {phase.accepted_rate:>10,.0f} /s    "
            f"{phase.accepted_rate / db_ceiling:>10.2f}x intake   accept p50 "
            f"{phase.accept_ms(50):.0f} ms, p99 {phase.accept_ms(99):.0f} ms (<= 50)"
        )
        say(
            f"{'orders confirmed, ' + name:<34} {phase.confirmed_rate:>10,.0f} /s    "
            f"{phase.confirmed_rate / db_ceiling:>10.2f}x intake   >= 250/s, >= 0.25x; "
            f"accepted->confirmed p50 {phase.confirm_ms(50):.0f} ms, "
            f"p99 {phase.confirm_ms(99):.0f} ms (<= 500)"
        )
    for name, phase in (("at most", most), ("steady", steady)):
        run = phase.run
        say(
            f"  {name}: {len(run.accepted)} orders accepted in {phase.stopped - phase.started:.0f} "
            f"s, {len(phase.confirmed)} confirmed, {len(run.rejected)} rejected, refused "
            f"{dict(run.refused) or 'none'}; the last confirmation "
            f"{phase.last - phase.stopped:.1f} s after the load stopped"
        )
    if hits + misses:
        say(f"  availability answered from the gateway's 1 s cache: {hits / (hits + misses):.1%}")
    say("  CPU by part of the stack (from /proc, while each load ran):")
    for name, (before, after), count, unit, label in (
        ("availability", cpu[0:2], availability["requests"], 1e-6, "us a read"),
        ("quotes", cpu[2:4], quotes["requests"], 1e-6, "us a quote"),
        ("orders", cpu[4:6], len(most.run.accepted), 1e-3, "ms an order (quote included)"),
    ):
        say(f"    {name:<12} {label}: {cpu_per(before, after, int(count), unit)}")
    if args.profile:
        for stacks in sorted(args.profile.glob("*.stacks")):
            stacks.with_suffix(".txt").write_text(hottest(stacks))
            stacks.unlink()
        say(f"  profiles of the orders at most (py-spy): {args.profile}/<service>.svg and .txt")
    twice = {o: n for phase in (most, steady) for o, n in phase.run.confirmations.items() if n > 1}
    say(f"  orders confirmed more than once: {len(twice)}")
    for name, counts in sorted(per_process.items()):
        say(
            f"  {name:<12} applied {counts.get('applied', 0):>7,} events, "
            f"duplicates ignored {counts.get('duplicate', 0):,}"
        )
    if args.replicas > 1:
        shared = all(
            per_process.get(f"{service}-{k}", {}).get("applied", 0) > 0
            and per_process.get(service, {}).get("applied", 0) > 0
            for service in ("inventory", "orders")
            for k in range(2, args.replicas + 1)
        )
        say(f"  replicas shared the partitions: {'yes' if shared else 'NO'}")
        if not shared or twice:
            raise SystemExit(1)
    if twice or any(phase.unsettled for phase in (most, steady)):
        raise SystemExit("some orders were never confirmed, or confirmed twice")


if __name__ == "__main__":
    main()
