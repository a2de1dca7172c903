"""What people's screens ask the gateway (DESIGN.md §8.3), in front of the real services: who a
key is, product names for every role, and a refund's preview for the store taking it back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.network import Network

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"


async def new_key(gateway: httpx.AsyncClient, role: str, **binding: str) -> dict[str, Any]:
    response = await gateway.post(
        "/v1/admin/api-keys", json={"role": role, "name": f"{role} screen", **binding}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['api_key']}"}


BINDINGS: list[tuple[str, dict[str, str]]] = [
    ("shop", {"channel": "app"}),
    ("store", {"store_id": "store-screens"}),
    ("partner", {"partner_id": "partner-screens"}),
    ("admin", {}),
]


@pytest.mark.parametrize(("role", "binding"), BINDINGS, ids=[role for role, _ in BINDINGS])
async def test_every_key_learns_what_it_is_and_never_its_secret(
    gateway: httpx.AsyncClient, role: str, binding: dict[str, str]
) -> None:
    created = await new_key(gateway, role, **binding)
    response = await gateway.get("/v1/me", headers=bearer(created))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me == {key: value for key, value in created.items() if key != "api_key"}
    assert (me["role"], me["revoked_at"]) == (role, None)
    for name in ("channel", "store_id", "partner_id"):
        assert me[name] == binding.get(name)


async def test_a_revoked_key_is_refused_at_once_though_it_was_just_trusted(
    gateway: httpx.AsyncClient,
) -> None:
    created = await new_key(gateway, "store", store_id="store-screens")
    assert (await gateway.get("/v1/me", headers=bearer(created))).status_code == 200
    revoked = await gateway.delete(f"/v1/admin/api-keys/{created['key_id']}")
    assert revoked.status_code == 200, revoked.text
    # Within the authenticator's cache time the key still passes it; /v1/me asks the database.
    response = await gateway.get("/v1/me", headers=bearer(created))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_without_a_key_nobody_is_anybody(gateway: httpx.AsyncClient) -> None:
    for path, params in (("/v1/me", {}), ("/v1/products", {"q": "tee"})):
        response = await gateway.get(path, params=params, headers={"Authorization": ""})
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == PROBLEM_JSON


async def test_every_role_finds_products_and_only_an_admin_names_them(
    gateway: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    sku = unique("SCREEN-TEE").upper()
    name = f"Organic cotton tee {unique('w')}"
    keys = {role: await new_key(gateway, role, **binding) for role, binding in BINDINGS}

    refused = await gateway.post(
        "/v1/admin/products", json={"sku": sku, "name": name}, headers=bearer(keys["store"])
    )
    assert refused.status_code == 403, refused.text
    named = await gateway.post(
        "/v1/admin/products", json={"sku": sku, "name": name}, headers={"Idempotency-Key": sku}
    )
    assert named.status_code == 200, named.text
    assert (named.json()["sku"], named.json()["name"]) == (sku, name)
    again = await gateway.post(
        "/v1/admin/products", json={"sku": sku, "name": name}, headers={"Idempotency-Key": sku}
    )
    assert (again.json(), again.headers["idempotent-replayed"]) == (named.json(), "true")

    for role, key in keys.items():
        found = await gateway.get(
            "/v1/products", params={"q": sku.lower(), "limit": 5}, headers=bearer(key)
        )
        assert found.status_code == 200, (role, found.text)
        assert found.json() == {"items": [named.json()]}, role
    by_word = await gateway.get("/v1/products", params={"q": name.split()[-1].upper()})
    assert by_word.json() == {"items": [named.json()]}

    out_of_bounds = await gateway.get("/v1/products", params={"q": "x", "limit": 51})
    assert out_of_bounds.status_code == 422
    assert out_of_bounds.headers["content-type"] == PROBLEM_JSON

    availability = await gateway.get("/v1/availability", params={"sku": sku})
    (item,) = availability.json()["items"]
    assert (item["sku"], item["name"], item["total_available"]) == (sku, name, 0)


async def test_the_store_taking_a_return_back_previews_its_refund(
    gateway: httpx.AsyncClient, network: Network
) -> None:
    tee = network.id("PREVIEW")
    await network.price(tee, 2500)
    await network.stock(network.store_ams, tee, 3)
    await network.sees(tee, network.store_ams, 3)
    order_id = await network.place({tee: 2}, network.collect())
    (fulfillment,) = (await network.until(order_id, "confirmed"))["fulfillments"]
    await network.act(fulfillment["fulfillment_id"], "ready")
    await network.act(fulfillment["fulfillment_id"], "handover")
    await network.until(order_id, "completed")
    body = {
        "order_id": order_id,
        "store_id": network.store_ams,
        "lines": [{"sku": tee, "quantity": 1, "condition": "resellable"}],
        "reason": "too big",
    }
    own = bearer(await new_key(gateway, "store", store_id=network.store_ams))
    other = bearer(await new_key(gateway, "store", store_id=network.store_utr))

    refused = await gateway.post("/v1/returns/preview", json=body, headers=other)
    assert refused.status_code == 403, refused.text
    previews = [
        await gateway.post(
            "/v1/returns/preview", json=body, headers={**own, "Idempotency-Key": "counter-1"}
        )
        for _ in range(2)
    ]
    for preview in previews:
        assert preview.status_code == 200, preview.text
        assert "idempotent-replayed" not in preview.headers  # answered afresh each time
    assert previews[0].json() == {
        "order_id": order_id,
        "store_id": network.store_ams,
        "refund": {"amount": 2500, "currency": "EUR"},
        "lines": [
            {
                "sku": tee,
                "quantity": 1,
                "condition": "resellable",
                "refund": {"amount": 2500, "currency": "EUR"},
            }
        ],
    }
    taken = await gateway.post("/v1/returns", json=body, headers=own)
    assert taken.status_code == 201, taken.text
    assert taken.json()["refund"] == previews[0].json()["refund"]

    too_many = {**body, "lines": [{**body["lines"][0], "quantity": 2}]}
    refusal = await gateway.post("/v1/returns/preview", json=too_many, headers=own)
    assert refusal.status_code == 422, refusal.text
    assert refusal.json()["instance"] == "/v1/returns/preview"
    assert "already returned" in refusal.json()["detail"]
