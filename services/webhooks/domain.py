"""Webhooks' rules, without I/O: which events a subscriber hears of, how a delivery is signed,
when a failed one is tried again, and which addresses a webhook may never reach."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from standardwebhooks.webhooks import Webhook as StandardWebhook

from services.contracts import orders
from services.contracts.base import Message
from services.contracts.webhooks import Subscriber, WebhookEventType

E = WebhookEventType

WEBHOOK_EVENTS: Mapping[type[Message], WebhookEventType] = {
    orders.OrderConfirmed: E.ORDER_CONFIRMED,
    orders.OrderBackordered: E.ORDER_BACKORDERED,
    orders.OrderRejected: E.ORDER_REJECTED,
    orders.OrderCancelled: E.ORDER_CANCELLED,
    orders.OrderCompleted: E.ORDER_COMPLETED,
    orders.OrderExpired: E.ORDER_EXPIRED,
    orders.FulfillmentAssigned: E.FULFILLMENT_ASSIGNED,
    orders.FulfillmentAccepted: E.FULFILLMENT_ACCEPTED,
    orders.FulfillmentReady: E.FULFILLMENT_READY_FOR_PICKUP,
    orders.FulfillmentShipped: E.FULFILLMENT_SHIPPED,
    orders.FulfillmentPickedUp: E.FULFILLMENT_PICKED_UP,
    orders.FulfillmentRejected: E.FULFILLMENT_REJECTED,
    orders.FulfillmentCancelled: E.FULFILLMENT_CANCELLED,
    orders.RefundIssued: E.REFUND_ISSUED,
}
"""The order events a subscriber can hear of, by the webhook event type they are sent as."""

SILENT_EVENTS: tuple[type[Message], ...] = (
    orders.PickupStoreChanged,
    orders.OrderLinesCancelled,
    orders.ReturnAccepted,
)
"""Order events no webhook carries (yet): the order's own events cover what they change."""


# Who hears of what


@dataclass(frozen=True)
class Scope:
    """What an event is about, for deciding who may hear of it."""

    channel: str | None
    partner_id: str | None
    about_fulfillment: bool


def may_hear_of(subscriber: Subscriber, scope: Scope) -> bool:
    """A subscriber hears only of what its key may read: an admin everything, a shop its
    channel's orders, a partner the fulfillments routed to it (not the orders around them)."""
    if subscriber.role == "admin":
        return True
    if subscriber.role == "shop":
        return scope.channel is not None and subscriber.channel == scope.channel
    if subscriber.role == "partner":
        return scope.about_fulfillment and scope.partner_id == subscriber.partner_id
    return False


# Signing (the Standard Webhooks scheme)


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, the format Standard Webhooks libraries read."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def delivery_id(webhook_id: str, event_id: str) -> str:
    """The `webhook-id` of an event's delivery to one webhook: the same on every attempt, and
    the same if the event is turned into deliveries twice (which the inbox prevents anyway)."""
    digest = hashlib.sha256(f"{webhook_id}\n{event_id}".encode()).digest()
    return "msg_" + base64.b32encode(digest).decode()[:26].lower()


def signed_headers(secret: str, message_id: str, sent_at: datetime, body: str) -> dict[str, str]:
    """The three headers that let the receiver check who sent `body`, and when."""
    signature = StandardWebhook(secret).sign(msg_id=message_id, timestamp=sent_at, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


# Retries


def retry_delay(failed_attempts: int, schedule: Sequence[float], rng: random.Random) -> float:
    """Seconds before the next attempt after `failed_attempts` (>= 1) failures: the schedule's
    pause for that retry (its last one repeats), +-20% so that deliveries failed together by an
    endpoint's outage do not all come back in the same second."""
    pause = schedule[min(failed_attempts, len(schedule)) - 1]
    return pause * rng.uniform(0.8, 1.2)


def next_attempt_after_failure(
    failed_attempts: int,
    first_sent_at: datetime,
    now: datetime,
    *,
    schedule: Sequence[float],
    retry_for: timedelta,
    rng: random.Random,
) -> datetime | None:
    """When to try a failed delivery again, or None once it has been retried for `retry_for`
    (the next attempt would start after that)."""
    if now >= first_sent_at + retry_for:
        return None
    return now + timedelta(seconds=retry_delay(failed_attempts, schedule, rng))


def should_disable(failing_since: datetime | None, now: datetime, after: timedelta) -> bool:
    """Every delivery to the webhook has failed for `after`: stop sending until someone acts."""
    return failing_since is not None and now - failing_since >= after


# Addresses a webhook may reach

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "fd00:ec2::254",  # AWS's IPv6 instance metadata
        "100.100.100.200",  # Alibaba Cloud's metadata
    )
)


def address_denial(address: str, *, allow_private: bool) -> str | None:
    """Why a webhook may not be sent to this IP address, or None. Link-local (169.254.0.0/16,
    where clouds serve instance metadata and credentials) and metadata addresses are always
    refused; private and loopback ones unless the operator allows them."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if ip.is_link_local:
        return f"{ip} is a link-local address (where clouds serve instance metadata)"
    # `::1` counts as reserved too (it lies in ::/8): loopback is judged below.
    if ip.is_unspecified or ip.is_multicast or (ip.is_reserved and not ip.is_loopback):
        return f"{ip} is not an address a webhook can be sent to"
    if ip.is_loopback or ip.is_private or not ip.is_global:
        if allow_private:
            return None
        kind = "loopback" if ip.is_loopback else "private"
        return (
            f"{ip} is a {kind} address; webhooks go to public addresses only "
            "(OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES allows private ones, for development)"
        )
    return None


def describe_failure(status: int | None, error: str | None) -> str:
    if error is not None:
        return error
    if status is not None:
        return f"the endpoint answered HTTP {status}"
    return "no answer"
