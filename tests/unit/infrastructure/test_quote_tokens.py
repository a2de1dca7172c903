"""Quote tokens: what pricing signed is what any service reads back, and nothing else."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.pricing import QuoteTokenClaims, TokenLine, run_length
from services.infrastructure.quote_tokens import (
    ExpiredQuoteToken,
    InvalidQuoteToken,
    SigningKeys,
    sign_quote_token,
    verify_quote_token,
)

KEYS = SigningKeys.parse(
    "k2:second-secret-0123456789abcdefghijklmn,k1:first-secret-0123456789abcdefghijklmno"
)


def claims(**overrides: object) -> QuoteTokenClaims:
    now = int(time.time())
    values: dict[str, object] = {
        "quote_id": "q-1",
        "channel": "web",
        "currency": "EUR",
        "lines": [
            {"sku": "TEE-WHT-M", "quantity": 3, "unit_price": 2000, "net": [[1334, 1], [1333, 2]]}
        ],
        "subtotal": 6000,
        "discount_total": 2000,
        "total": 4000,
        "price_version": 7,
        "iat": now,
        "exp": now + 900,
    }
    values.update(overrides)
    return QuoteTokenClaims.model_validate(values)


def test_a_signed_quote_reads_back_exactly() -> None:
    token = sign_quote_token(claims(), KEYS)
    read = verify_quote_token(token, KEYS)
    assert read == claims(iat=read.iat, exp=read.exp)
    assert read.lines[0].unit_net_prices == (1334, 1333, 1333)


def _tamper(token: str, change: dict[str, object]) -> str:
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(change)
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("change", [{"total": 1}, {"channel": "app"}, {"exp": 4102444800}])
def test_any_change_to_a_token_is_detected(change: dict[str, object]) -> None:
    forged = _tamper(sign_quote_token(claims(), KEYS), change)
    with pytest.raises(InvalidQuoteToken, match="altered"):
        verify_quote_token(forged, KEYS)


def test_an_expired_quote_is_refused_as_expired() -> None:
    token = sign_quote_token(claims(iat=1, exp=int(time.time()) - 5), KEYS)
    with pytest.raises(ExpiredQuoteToken, match="expired"):
        verify_quote_token(token, KEYS)


def test_keys_rotate_new_signs_old_still_verifies() -> None:
    before_rotation = SigningKeys.parse("k1:first-secret-0123456789abcdefghijklmno")
    old_token = sign_quote_token(claims(), before_rotation)
    assert verify_quote_token(old_token, KEYS).quote_id == "q-1"
    new_token = sign_quote_token(claims(), KEYS)
    with pytest.raises(InvalidQuoteToken, match="known pricing key"):
        verify_quote_token(new_token, before_rotation)


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c", "e30.e30.e30"])
def test_garbage_is_refused_clearly(token: str) -> None:
    with pytest.raises(InvalidQuoteToken):
        verify_quote_token(token, KEYS)


@pytest.mark.parametrize("setting", ["", "nokey", "k:short", ",,"])
def test_bad_key_settings_are_refused(setting: str) -> None:
    with pytest.raises(ValueError, match="key"):
        SigningKeys.parse(setting)


@given(st.lists(st.integers(0, 5000), max_size=50).map(lambda xs: tuple(sorted(xs, reverse=True))))
def test_run_length_round_trips(nets: tuple[int, ...]) -> None:
    line = TokenLine(sku="S", quantity=len(nets), unit_price=5000, net=run_length(nets))
    assert line.unit_net_prices == nets
