"""Guessing API keys stays slow: requests with a key that is not valid are limited per client
address, and a valid key is not held back by someone else's guessing."""

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
        assert "with a key that is not valid" in guesses[-1].json()["detail"]
        assert int(guesses[-1].headers["retry-after"]) >= 1

        # The admin's own key (the client's default header) still works from that address.
        listed = await gateway.get("/v1/admin/api-keys")
        assert listed.status_code == 200, listed.text
        assert isinstance(listed.json()["items"], list)


async def test_a_missing_key_is_a_plain_401_and_spends_no_guess(gateway_with: GatewayWith) -> None:
    one_try = {"requests_per_second": 1, "burst": 1}
    async with gateway_with(failed_authentication_limit=one_try) as gateway:
        without_key = {"Authorization": ""}  # instead of the admin key the client sends
        answers = [
            await gateway.get("/v1/availability", params={"sku": "X"}, headers=without_key)
            for _ in range(3)
        ]
        # Nothing was looked up, so nothing is slowed down; a guessed key still is.
        guess = {"Authorization": "Bearer guessed"}
        first = await gateway.get("/v1/availability", params={"sku": "X"}, headers=guess)
        again = await gateway.get("/v1/availability", params={"sku": "X"}, headers=guess)
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert answers[0].headers["www-authenticate"].startswith("Bearer")
    assert (first.status_code, again.status_code) == (401, 429)
