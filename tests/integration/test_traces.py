"""One order, one trace: from the client's request to the gateway, through orders, the outbox
relay, Kafka, inventory, and back to orders' confirmation, every hop joins the trace the client
started.

The services run in this process (the gateway reaching orders over real HTTP), so their spans are
collected straight from the SDK tracer provider they configure
(`services.infrastructure.telemetry`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.contracts import topics
from tests.support.kafka import eventually
from tests.support.network import Network

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spans(
    orders: httpx.AsyncClient, inventory: httpx.AsyncClient
) -> Iterator[InMemorySpanExporter]:
    """Every span the in-process services end while this module runs."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "the services install the SDK's provider"
    exporter = InMemorySpanExporter(max_spans=50_000)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    # A provider cannot let go of a processor; a stopped exporter drops, silently, what follows.
    exporter.shutdown()


class Trace:
    """The finished spans of one trace, navigable by parentage."""

    def __init__(self, spans: Sequence[ReadableSpan], trace_id: int) -> None:
        self.spans = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]

    def children(self, parent: ReadableSpan, kind: SpanKind, name: str) -> list[ReadableSpan]:
        assert parent.context is not None
        return [
            s
            for s in self.spans
            if s.parent is not None
            and s.parent.span_id == parent.context.span_id
            and s.kind is kind
            and s.name == name
        ]

    def outline(self) -> str:
        return "\n".join(
            f"{s.kind.name} {s.name} {s.context.span_id:x} <- {s.parent.span_id if s.parent else 0:x}"
            for s in self.spans
            if s.context is not None and s.kind is not SpanKind.CLIENT
        )

    def one(self, parent: ReadableSpan, kind: SpanKind, name: str) -> ReadableSpan | None:
        found = self.children(parent, kind, name)
        assert len(found) <= 1, f"more than one {kind.name} span {name!r}: {found}"
        return found[0] if found else None

    def below(self, ancestor: ReadableSpan, kind: SpanKind, name: str) -> ReadableSpan | None:
        """The one span of `kind` and `name` somewhere under `ancestor`."""
        found = [s for s in self.spans if s.kind is kind and s.name == name]
        found = [s for s in found if self.descends(s, ancestor)]
        assert len(found) <= 1, f"more than one {kind.name} span {name!r}: {found}"
        return found[0] if found else None

    def descends(self, span: ReadableSpan, ancestor: ReadableSpan) -> bool:
        assert ancestor.context is not None
        by_id = {s.context.span_id: s for s in self.spans if s.context is not None}
        parent = span.parent
        while parent is not None:
            if parent.span_id == ancestor.context.span_id:
                return True
            above = by_id.get(parent.span_id)
            parent = above.parent if above is not None else None
        return False


def key_of(span: ReadableSpan) -> str | None:
    key = (span.attributes or {}).get("messaging.kafka.message.key")
    if isinstance(key, bytes):
        return key.decode()
    return None if key is None else str(key)


def sent(tr: Trace, cause: ReadableSpan, topic: str, key: str) -> list[ReadableSpan]:
    """The messages `cause` (a server or consumer span) had published to `topic` under `key`,
    through the outbox relay: each one a `create` span (the context its headers carry) with
    its `publish` span as child."""
    return [
        span
        for span in tr.children(cause, SpanKind.PRODUCER, f"{topic} create")
        if key_of(span) == key and tr.one(span, SpanKind.PRODUCER, f"{topic} publish")
    ]


def received(tr: Trace, message: ReadableSpan | None, topic: str) -> ReadableSpan | None:
    """The consumer's processing of a message, under the context the message carried."""
    return None if message is None else tr.one(message, SpanKind.CONSUMER, f"{topic} process")


def only(spans: list[ReadableSpan]) -> ReadableSpan | None:
    return spans[0] if len(spans) == 1 else None


# The HTTP hops of the request, outermost first, each a server span under the one before.
ENTRY = ["POST /v1/orders", "POST /orders"]


def entry(tr: Trace, client: ReadableSpan) -> ReadableSpan | None:
    """The request as orders serves it."""
    span: ReadableSpan | None = client
    for name in ENTRY:
        span = None if span is None else tr.below(span, SpanKind.SERVER, name)
    return span


def saga(tr: Trace, client: ReadableSpan, order_id: str) -> dict[str, Any] | None:
    """Each hop of the order's way, found under the one before; None until all have ended."""
    hops: dict[str, Any] = {"request": entry(tr, client)}
    if hops["request"] is None:
        return None
    # The request emits OrderPlaced and FulfillmentAssigned, and ReserveStock to inventory.
    hops["placed"] = sent(tr, hops["request"], topics.ORDERS_EVENTS.name, order_id)
    hops["reserve"] = only(sent(tr, hops["request"], topics.INVENTORY_COMMANDS.name, order_id))
    hops["reserving"] = received(tr, hops["reserve"], topics.INVENTORY_COMMANDS.name)
    if hops["reserving"] is None or len(hops["placed"]) != 2:
        return None
    hops["reserved"] = only(sent(tr, hops["reserving"], topics.INVENTORY_EVENTS.name, order_id))
    hops["confirming"] = received(tr, hops["reserved"], topics.INVENTORY_EVENTS.name)
    if hops["confirming"] is None:
        return None
    hops["confirmed"] = only(sent(tr, hops["confirming"], topics.ORDERS_EVENTS.name, order_id))
    return hops if hops["confirmed"] is not None else None


async def test_one_trace_from_the_request_to_the_confirmation(
    network: Network, spans: InMemorySpanExporter, gateway: httpx.AsyncClient
) -> None:
    created = await gateway.post(
        "/v1/admin/api-keys", json={"role": "shop", "name": "traced shop", "channel": "web"}
    )
    assert created.status_code == 201, created.text
    sku = network.id("TRACE")
    await network.price(sku, 1000)
    await network.stock(network.warehouse, sku, 5)
    await network.sees(sku, network.warehouse, 5)
    body = network.order_body(await network.quote({sku: 1}), network.deliver())

    # The client's span is not made current: the app runs in this very task, and the server
    # must find its parent in the `traceparent` header alone, as across a network.
    client = trace.get_tracer(__name__).start_span("shop places an order", kind=SpanKind.CLIENT)
    headers = {"Authorization": f"Bearer {created.json()['api_key']}"}
    propagate.inject(headers, context=trace.set_span_in_context(client))
    response = await gateway.post("/v1/orders", json=body, headers=headers)
    client.end()
    assert response.status_code == 202, response.text
    order_id = response.json()["order_id"]
    await network.until(order_id, "confirmed")

    # Only spans of the client's trace are searched, and each hop only under the one before.
    whole = Trace(spans.get_finished_spans(), client.get_span_context().trace_id)

    async def whole_way() -> dict[str, Any] | None:
        nonlocal whole
        whole = Trace(spans.get_finished_spans(), client.get_span_context().trace_id)
        return saga(whole, client, order_id)

    try:
        hops = await eventually(whole_way, timeout=15)
    except AssertionError:
        raise AssertionError(f"the trace is incomplete; it has:\n{whole.outline()}") from None

    request = hops["request"].attributes
    assert (request["http.route"], request["http.status_code"]) == ("/orders", 202)
    front = whole.below(client, SpanKind.SERVER, "POST /v1/orders")
    assert front is not None
    assert front.parent is not None
    assert front.parent.span_id == client.get_span_context().span_id
    # Each process boundary was crossed by a header: HTTP twice, then Kafka twice.
    assert front.parent.is_remote
    for hop in ("request", "reserving", "confirming"):
        assert hops[hop].parent.is_remote, hop
    assert key_of(hops["reserving"]) == order_id
