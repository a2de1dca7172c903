"""The console's own rules, with a fake gateway: sign-in and its cookie, CSRF on every form, a
revoked key ending the session, and output that is always escaped."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from services.console.app import create_app
from services.console.gateway import Refused, SignedOut
from services.console.settings import ConsoleSettings

STORE_KEY = "omr_store_key_for_the_console_test_0123456789"
SHOP_KEY = "omr_shop_key_for_the_console_test_0123456789"
HOSTILE = '<script>alert("x")</script>'


class FakeGateway:
    """Answers the few calls the pages make, like the gateway would."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.posts: list[tuple[str, Any]] = []
        self.asked: list[Any] = []

    async def aclose(self) -> None:
        return None

    async def get(self, api_key: str, path: str, **params: Any) -> Any:
        if api_key in self.revoked or api_key not in (STORE_KEY, SHOP_KEY):
            raise SignedOut(401, "Authentication required", "unknown or revoked API key")
        if path == "/me":
            role = "store" if api_key == STORE_KEY else "shop"
            return {"key_id": "key_1", "name": "Tills", "role": role, "store_id": "store-1"}
        if path == "/stores/store-1/fulfillments":
            # It moves from pending to reserved between the two asks: seen in both answers.
            items = []
            if params.get("status") in ("pending", "reserved"):
                items = [
                    {
                        "fulfillment_id": "ful_1",
                        "order_id": "ord_1",
                        "method": "pickup",
                        "transfer": False,
                        "status": params["status"],
                        "lines": [{"sku": "TEE", "quantity": 1}],
                        "created_at": "2026-11-28T12:00:00Z",
                    }
                ]
            return {"items": items, "next_cursor": None}
        if path == "/products":
            return {"items": []}
        if path == "/locations/store-1":
            return {"location_id": "store-1", "lat": 52.37, "lon": 4.9}
        if path == "/availability":
            self.asked.append(params["sku"])
            return {"items": []}
        if path == "/orders/missing":
            raise Refused(404, "Not found", f"order 'missing' does not exist {HOSTILE}")
        raise AssertionError(f"unexpected GET {path}")

    async def post(self, api_key: str, path: str, body: Any = None) -> Any:
        self.posts.append((path, body))
        return {"sku": "TEE", "on_hand": 4, "available": 4}


@pytest.fixture
async def console() -> Any:
    app = create_app(ConsoleSettings(log_format="console"))
    fake = FakeGateway()
    app.state.gateway = fake
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        client.fake = fake  # type: ignore[attr-defined]
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/sign-in")
    return await client.post("/sign-in", data={"api_key": key, "csrf_token": csrf_of(form.text)})


async def test_signing_in_trades_the_key_for_a_strict_http_only_session_cookie(
    console: httpx.AsyncClient,
) -> None:
    response = await sign_in(console, STORE_KEY)
    assert response.status_code == 303
    assert response.headers["location"] == "/store"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("omniroute_console=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Max-Age=" in cookie
    assert STORE_KEY not in cookie
    queue = await console.get("/store")
    assert queue.status_code == 200
    assert queue.text.count('data-fulfillment="ful_1"') == 1  # once, as it is now
    assert '<span class="status reserved">' in queue.text
    assert STORE_KEY not in queue.text


async def test_sign_in_needs_the_forms_csrf_token(console: httpx.AsyncClient) -> None:
    await console.get("/sign-in")
    response = await console.post("/sign-in", data={"api_key": STORE_KEY, "csrf_token": "forged"})
    assert response.status_code == 403
    assert "omniroute_console=" not in response.headers.get("set-cookie", "")


async def test_a_shop_key_is_told_the_console_is_not_for_it(console: httpx.AsyncClient) -> None:
    response = await sign_in(console, SHOP_KEY)
    assert response.status_code == 403
    assert "store staff" in response.text


async def test_every_changing_form_needs_the_sessions_csrf_token(
    console: httpx.AsyncClient,
) -> None:
    await sign_in(console, STORE_KEY)
    fake: FakeGateway = console.fake  # type: ignore[attr-defined]
    refused = await console.post(
        "/adjust", data={"sku": "TEE", "delta": "1", "reason": "receipt", "csrf_token": "nope"}
    )
    assert refused.status_code == 403
    assert fake.posts == []
    page = await console.get("/adjust")
    done = await console.post(
        "/adjust",
        data={"sku": "TEE", "delta": "1", "reason": "receipt", "csrf_token": csrf_of(page.text)},
    )
    assert done.status_code == 303
    assert fake.posts == [
        ("/stores/store-1/stock-adjustments", {"sku": "TEE", "delta": 1, "reason": "receipt"})
    ]


async def test_a_revoked_key_ends_the_session(console: httpx.AsyncClient) -> None:
    await sign_in(console, STORE_KEY)
    console.fake.revoked.add(STORE_KEY)  # type: ignore[attr-defined]
    response = await console.get("/store")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?ended=true"
    console.fake.revoked.clear()  # type: ignore[attr-defined]
    # The session is gone, not just this page: signing in again is the only way back.
    assert (await console.get("/store")).headers["location"] == "/sign-in"


async def test_what_the_gateway_says_is_shown_escaped_never_as_a_stack_trace(
    console: httpx.AsyncClient,
) -> None:
    await sign_in(console, STORE_KEY)
    page = await console.get("/returns", params={"order_id": "missing"})
    assert page.status_code == 200
    assert "does not exist" in page.text
    assert HOSTILE not in page.text
    assert "&lt;script&gt;" in page.text
    assert "Traceback" not in page.text


async def test_pages_carry_a_content_security_policy(console: httpx.AsyncClient) -> None:
    page = await console.get("/sign-in")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_a_search_for_a_name_nothing_has_says_so_and_asks_no_stock(
    console: httpx.AsyncClient,
) -> None:
    await sign_in(console, STORE_KEY)
    fake: FakeGateway = console.fake  # type: ignore[attr-defined]
    page = await console.get("/stock/results", params={"q": "storm lantern"})
    assert page.status_code == 200
    assert "No sku or product matches" in page.text
    assert fake.asked == []  # not a sku either: availability is not asked
    await console.get("/stock/results", params={"q": "tee-1"})
    assert fake.asked == [["tee-1", "TEE-1"]]
