"""Webhooks' pure rules: signing (against the Standard Webhooks test vectors), the addresses a
webhook may never reach, retries, and who hears of what."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from services.contracts.webhooks import Subscriber
from services.infrastructure.errors import InvalidRequest
from services.webhooks import domain
from services.webhooks.sender import AddressGuard, ForbiddenAddress

# The test vector of the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_deliveries_are_signed_as_the_standard_webhooks_test_vector_says() -> None:
    headers = domain.signed_headers(
        VECTOR_SECRET, VECTOR_ID, datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC), VECTOR_BODY
    )
    assert headers["webhook-id"] == VECTOR_ID
    assert headers["webhook-timestamp"] == str(VECTOR_TIMESTAMP)
    assert headers["webhook-signature"] == VECTOR_SIGNATURE


def test_a_new_secret_is_32_random_bytes_a_receiver_can_verify_with() -> None:
    secret = domain.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != domain.new_secret()
    body = '{"id":"e1","type":"order.confirmed"}'
    headers = domain.signed_headers(secret, "msg_1", datetime.now(UTC), body)
    assert Verifier(secret).verify(body, headers) == {"id": "e1", "type": "order.confirmed"}
    with pytest.raises(Exception, match="signature"):
        Verifier(domain.new_secret()).verify(body, headers)


def test_a_delivery_keeps_one_id_per_webhook_and_event() -> None:
    first = domain.delivery_id("wh_1", "event-1")
    assert first == domain.delivery_id("wh_1", "event-1")
    assert first.startswith("msg_")
    assert first != domain.delivery_id("wh_2", "event-1")
    assert first != domain.delivery_id("wh_1", "event-2")


ALWAYS_REFUSED = [
    "169.254.169.254",  # the cloud metadata endpoint
    "169.254.0.1",
    "fd00:ec2::254",
    "100.100.100.200",
    "fe80::1",
    "::ffff:169.254.169.254",  # the same, written as IPv6
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "240.0.0.1",
]
PRIVATE = ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.10", "fc00::1", "100.64.0.1"]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_link_local_metadata_and_special_addresses_are_always_refused(
    address: str, allow_private: bool
) -> None:
    assert domain.address_denial(address, allow_private=allow_private) is not None


@pytest.mark.parametrize("address", PRIVATE)
def test_private_and_loopback_addresses_only_when_allowed(address: str) -> None:
    refused = domain.address_denial(address, allow_private=False)
    assert refused is not None
    assert "OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES" in refused
    assert domain.address_denial(address, allow_private=True) is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_fine(address: str) -> None:
    assert domain.address_denial(address, allow_private=False) is None


async def test_the_guard_checks_every_address_a_name_resolves_to() -> None:
    guard = AddressGuard(allow_private=False)
    try:
        with pytest.raises(InvalidRequest, match=r"localhost resolves to .* loopback"):
            await guard.check_url("http://localhost:8080/hooks")
        with pytest.raises(InvalidRequest, match="link-local"):
            await guard.check_url("http://169.254.169.254/latest/meta-data/")
        with pytest.raises(ForbiddenAddress):
            await guard.resolve("[::1]", 443)
        # Allowed for local development, but never link-local.
        allowing = AddressGuard(allow_private=True)
        await allowing.check_url("http://localhost:8080/hooks")
        with pytest.raises(InvalidRequest, match="link-local"):
            await allowing.check_url("http://[::ffff:a9fe:a9fe]/")
        await allowing.close()
    finally:
        await guard.close()


SCHEDULE = (5.0, 60.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)


class Jitter(random.Random):
    """The same end of the jitter every time."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def uniform(self, a: float, b: float) -> float:
        return a if self.factor < 1 else b


def test_retries_start_within_30_seconds_and_pause_longer_each_time() -> None:
    rng = random.Random(7)
    pauses = [domain.retry_delay(n, SCHEDULE, rng) for n in range(1, 10)]
    assert pauses[0] <= 30
    for n, pause in enumerate(pauses, start=1):
        planned = SCHEDULE[min(n, len(SCHEDULE)) - 1]
        assert 0.8 * planned <= pause <= 1.2 * planned
    assert pauses[:7] == sorted(pauses[:7])
    # With jitter, deliveries failed together do not all come back together.
    assert len({round(domain.retry_delay(2, SCHEDULE, rng), 3) for _ in range(20)}) > 1


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_a_failing_delivery_is_retried_for_at_least_a_day_then_given_up(factor: float) -> None:
    first = datetime(2026, 11, 28, 12, tzinfo=UTC)
    now, attempts = first, 1
    while (
        following := domain.next_attempt_after_failure(
            attempts,
            first,
            now,
            schedule=SCHEDULE,
            retry_for=timedelta(hours=24),
            rng=Jitter(factor),
        )
    ) is not None:
        now, attempts = following, attempts + 1
    assert now - first >= timedelta(hours=24)  # the last attempt came a day or more later
    assert now - first < timedelta(hours=24) + timedelta(seconds=SCHEDULE[-1] * 1.2)
    assert attempts >= 8


def test_a_webhook_is_disabled_after_failing_for_the_whole_period() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    day = timedelta(hours=24)
    assert not domain.should_disable(None, now, day)
    assert not domain.should_disable(now - timedelta(hours=23), now, day)
    assert domain.should_disable(now - day, now, day)


def hears(subscriber: Subscriber, **scope: object) -> bool:
    defaults: dict[str, object] = {"channel": "web", "partner_id": None, "about_fulfillment": False}
    return domain.may_hear_of(subscriber, domain.Scope(**{**defaults, **scope}))  # type: ignore[arg-type]


def test_a_subscriber_hears_only_what_its_key_may_read() -> None:
    admin = Subscriber(role="admin")
    web = Subscriber(role="shop", channel="web")
    acme = Subscriber(role="partner", partner_id="acme")
    assert hears(admin)
    assert hears(admin, channel=None)
    assert hears(web)
    assert not hears(web, channel="app")
    assert not hears(web, channel=None)
    assert hears(acme, partner_id="acme", about_fulfillment=True)
    assert not hears(acme, partner_id="other", about_fulfillment=True)
    # A partner hears of its fulfillments, not of the orders around them.
    assert not hears(acme, partner_id="acme", about_fulfillment=False)
    assert not hears(Subscriber(role="partner", partner_id="acme"), partner_id=None)


def test_every_order_event_is_either_sent_or_knowingly_silent() -> None:
    from services.contracts import orders
    from services.contracts.base import Event

    published = {
        cls
        for cls in vars(orders).values()
        if isinstance(cls, type) and issubclass(cls, Event) and hasattr(cls, "TYPE")
    }
    handled = set(domain.WEBHOOK_EVENTS) | set(domain.SILENT_EVENTS) | {orders.OrderPlaced}
    assert published == handled
