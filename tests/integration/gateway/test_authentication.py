"""Guessing API keys stays slow: requests without a valid key are limited per client address,
and a valid key is not held back by someone else's guessing."""

from __future__ import annotations

import pytest

from tests.integration.gateway.conftest import GatewayWith

pytestmark = pytest.mark.integration


async def test_requests_without_a_valid_key_are_limited_per_client(
    gateway_with: GatewayWith,
) -> None:
    five_tries = {"requests_per_second": 1, "burst": 5}
    async with gateway_with(failed_authentication_limit=five_tries) as gateway:
        guesses = [
            await gateway.get(
                "/v1/availability", params={"sku": "X"}, headers={"Authorization": f"Bearer g{n}"}
            )
            for n in range(7)
        ]
        assert [g.status_code for g in guesses] == [401] * 5 + [429] * 2
        assert "without a valid API key" in guesses[-1].json()["detail"]
        assert int(guesses[-1].headers["retry-after"]) >= 1

        # The admin's own key (the client's default header) still works from that address.
        listed = await gateway.get("/v1/admin/api-keys")
        assert listed.status_code == 200, listed.text
        assert isinstance(listed.json()["items"], list)


async def test_a_missing_key_counts_as_a_failed_attempt(gateway_with: GatewayWith) -> None:
    one_try = {"requests_per_second": 1, "burst": 1}
    async with gateway_with(failed_authentication_limit=one_try) as gateway:
        without_key = {"Authorization": ""}  # instead of the admin key the client sends
        first = await gateway.get("/v1/availability", params={"sku": "X"}, headers=without_key)
        again = await gateway.get("/v1/availability", params={"sku": "X"}, headers=without_key)
    assert (first.status_code, again.status_code) == (401, 429)
