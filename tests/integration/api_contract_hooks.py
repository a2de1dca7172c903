"""Schemathesis hooks for tests/integration/test_api_contract.py (loaded by the `st` process
through SCHEMATHESIS_HOOKS): what a real client knows and a JSON Schema cannot say.

The OpenAPI documents say every rule a schema can state. What is left are rules about other
requests, other values or the clock: a new Idempotency-Key per request, one line per sku, `pay`
below `buy`, a window that ends after it starts, a hold within the next 7 days, a quote token
that pricing signed for these very lines, skus that have a price, a webhook URL whose host
resolves to an address webhooks may reach. A schema-valid request that
breaks one of them is rightly a 422, so the generated requests keep them, as a client does. A
request generated to be invalid (in the part it breaks) is left alone: it is a 422 either way.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.utils import parameter_types, sent_text_is_valid

from services.contracts.pricing import Channel, QuoteTokenClaims, TokenLine
from services.infrastructure.quote_tokens import SigningKeys, sign_quote_token

PRICED_SKUS = tuple(f"CONTRACT-SKU-{n}" for n in range(20))
"""Skus the test module gives a price in EUR, so a generated cart can be priced."""
PRICE = 1999

SIGNING_KEYS_VARIABLE = "API_CONTRACT_QUOTE_SIGNING_KEYS"
"""Where the test module hands over the keys the services under test sign quotes with."""
UNREACHABLE = "127.0.0.1:9"
"""Where generated webhooks point: an address that resolves, where nothing listens (discard)."""
OWN_KEY_VARIABLE = "API_CONTRACT_OWN_KEY_ID"
"""Where it names the id of the API key the run authenticates with."""


def _meant_valid(case: Any, location: ParameterLocation) -> bool:
    """Whether the generated value at `location` is meant to be valid."""
    return case.meta is None or not case.meta.is_negative_at(location)


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    # Every other key may be revoked, but not the one the rest of the run needs: it would
    # answer 401 from then on (the key ids it lists are what the run draws ids from).
    own = os.environ.get(OWN_KEY_VARIABLE)
    return not (
        own is not None
        and case.method.upper() == "DELETE"
        and (case.path_parameters or {}).get("key_id") == own
    )


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    headers = case.headers or {}
    if "Idempotency-Key" in headers and _meant_valid(case, ParameterLocation.HEADER):
        # A new key for each new request, as the header's description asks: a generator draws
        # the same few short strings again and again, and a key used again with another body
        # is rightly a 422.
        case.headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    if isinstance(case.body, dict) and _meant_valid(case, ParameterLocation.BODY):
        case.body = _as_a_client_sends_it(case.method.upper(), case.operation.path, case.body)
    return case


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    # The documented examples register endpoints on the internet (example.com), which this
    # machine cannot resolve: register them here instead, as a client on it would.
    for case in examples:
        if (
            case.method.upper() == "POST"
            and case.operation.path in {"/webhooks", "/v1/webhooks"}
            and isinstance(case.body, dict)
            and "url" in case.body
        ):
            case.body = {**case.body, "url": _reachable(case.body["url"])}


def _as_a_client_sends_it(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    if isinstance(body.get("lines"), list):
        # One line per sku (returns: per sku and condition); add quantities up instead.
        by = ("sku", "condition") if path.endswith("/returns") else ("sku",)
        body["lines"] = _distinct(body["lines"], by)
    if isinstance(body.get("items"), list):
        body["items"] = _distinct(body["items"], ("sku",))
    _window_in_order(body)
    if isinstance(params := body.get("params"), dict):
        body["params"] = _promotion_params(params)
    if isinstance(fulfillment := body.get("fulfillment"), dict) and fulfillment.get("hold_until"):
        hold = datetime.now(UTC) + timedelta(days=1)
        body["fulfillment"] = {**fulfillment, "hold_until": hold.isoformat()}
    if (method, path) == ("POST", "/quotes"):
        body = _priced_cart(body)
    if method == "POST" and path in {"/webhooks", "/v1/webhooks"} and "url" in body:
        body["url"] = _reachable(body["url"])
    if "quote_token" in body and (method, path) in {
        ("POST", "/orders"),
        ("POST", "/quote-tokens/verify"),
    }:
        body["quote_token"] = _quote_token(body.get("lines"))
    return body


def _reachable(url: Any) -> Any:
    """The URL on a host that resolves, and to an address webhooks may reach (here, where
    private ones are allowed: this machine), without a user or password."""
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    return parts._replace(netloc=UNREACHABLE).geturl()


def _distinct(items: list[Any], by: tuple[str, ...]) -> list[Any]:
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for item in items:
        key = tuple(item.get(name) for name in by) if isinstance(item, dict) else (id(item),)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _window_in_order(body: dict[str, Any]) -> None:
    """`valid_to` after `valid_from`."""
    start, end = body.get("valid_from"), body.get("valid_to")
    if isinstance(start, str) and isinstance(end, str):
        try:
            starts, ends = datetime.fromisoformat(start), datetime.fromisoformat(end)
        except ValueError:
            return
        if ends < starts:
            body["valid_from"], body["valid_to"] = end, start
        elif ends == starts:
            body["valid_to"] = None


def _promotion_params(params: dict[str, Any]) -> dict[str, Any]:
    params = dict(params)
    buy, pay = params.get("buy"), params.get("pay")
    if isinstance(buy, int | float) and isinstance(pay, int | float) and pay >= buy:
        params["pay"] = buy - 1  # "buy 3 pay 2": paying for fewer than you take
    if isinstance(params.get("tiers"), list):
        params["tiers"] = _distinct(params["tiers"], ("min_quantity",))
    return params


def _priced_cart(body: dict[str, Any]) -> dict[str, Any]:
    """The cart in EUR, of skus that have a price there."""
    lines = [
        {**line, "sku": PRICED_SKUS[n % len(PRICED_SKUS)]}
        for n, line in enumerate(body.get("lines") or [])
        if isinstance(line, dict)
    ]
    return {**body, "currency": "EUR", "lines": _distinct(lines, ("sku",))}


def _quote_token(lines: Any) -> str:
    """A token pricing could have signed for exactly these lines."""
    quoted = [
        TokenLine(
            sku=line["sku"],
            quantity=line["quantity"],
            unit_price=PRICE,
            net=((PRICE, int(line["quantity"])),),
        )
        for line in lines or [{"sku": PRICED_SKUS[0], "quantity": 1}]
        if isinstance(line, dict)
    ]
    total = sum(line.unit_price * line.quantity for line in quoted)
    now = int(time.time())
    claims = QuoteTokenClaims(
        quote_id=f"qt_contract_{uuid.uuid4().hex[:12]}",
        channel=Channel.WEB,
        currency="EUR",
        lines=tuple(quoted),
        subtotal=total,
        discount_total=0,
        total=total,
        price_version=1,
        iat=now,
        exp=now + 900,
    )
    return sign_quote_token(claims, SigningKeys.parse(os.environ[SIGNING_KEYS_VARIABLE]))


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but the one Schemathesis 4.32 reports by mistake: a query generated
    invalid whose text on the wire is valid. It knows that `?limit=5` is the integer 5, but not
    that `?sku=true` (from a boolean for the array of skus) is the array ["true"], a valid one."""
    return not (isinstance(failure, AcceptedNegativeData) and _query_valid_as_sent(case, response))


def _query_valid_as_sent(case: Any, response: Any) -> bool:
    meta = case.meta
    negative = {
        location for location in ParameterLocation if meta and meta.is_negative_at(location)
    }
    if negative != {ParameterLocation.QUERY}:
        return False
    sent = parse_qs(urlsplit(response.request.url).query, keep_blank_values=True)
    declared = {parameter.name: parameter for parameter in case.operation.query}
    if not set(sent) <= set(declared):
        return False  # an undeclared name (or an exploded object's): judge no further
    for name, parameter in declared.items():
        texts = sent.get(name)
        if texts is None:
            if parameter.is_required:
                return False
            continue
        is_valid = parameter.get_validator().is_valid
        types = parameter_types(parameter.validation_schema)
        if "array" in types:
            if not is_valid(texts):
                return False
        elif len(texts) != 1 or not sent_text_is_valid(texts[0], is_valid, types):
            return False
    return True
