"""The OpenAPI document describes the gateway as it is: every route of DESIGN.md §4, each with
examples that validate against its own models, its errors and the Idempotency-Key it takes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from services.gateway.api import ROUTERS
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

CONTRACT = {
    ("GET", "/v1/availability"),
    ("POST", "/v1/quotes"),
    ("POST", "/v1/orders"),
    ("GET", "/v1/orders/{order_id}"),
    ("GET", "/v1/orders/{order_id}/routing"),
    ("POST", "/v1/orders/{order_id}/cancel"),
    ("GET", "/v1/stores/{store_id}/fulfillments"),
    ("POST", "/v1/fulfillments/{fulfillment_id}/ready"),
    ("POST", "/v1/fulfillments/{fulfillment_id}/handover"),
    ("POST", "/v1/fulfillments/{fulfillment_id}/ship"),
    ("POST", "/v1/fulfillments/{fulfillment_id}/reject"),
    ("POST", "/v1/stores/{store_id}/stock-adjustments"),
    ("POST", "/v1/returns"),
    ("GET", "/v1/partner/fulfillments"),
    ("POST", "/v1/partner/fulfillments/{fulfillment_id}/accept"),
    ("POST", "/v1/partner/fulfillments/{fulfillment_id}/reject"),
    ("POST", "/v1/partner/fulfillments/{fulfillment_id}/ship"),
    ("PUT", "/v1/partner/stock"),
    ("POST", "/v1/admin/locations"),
    ("POST", "/v1/admin/stock"),
    ("POST", "/v1/admin/incoming-stock"),
    ("POST", "/v1/admin/incoming-stock/{supply_id}/receive"),
    ("GET", "/v1/admin/incoming-stock"),
    ("POST", "/v1/admin/prices"),
    ("POST", "/v1/admin/promotions"),
    ("POST", "/v1/admin/api-keys"),
    # For people's screens (DESIGN.md §8.3): product names, who a key is, a refund's preview.
    ("GET", "/v1/products"),
    ("POST", "/v1/admin/products"),
    ("GET", "/v1/me"),
    ("POST", "/v1/returns/preview"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(GatewaySettings(database_url="postgresql+asyncpg://nobody@localhost/none"))


@pytest.fixture(scope="module")
def schema(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def v1_routes() -> list[APIRoute]:
    return [r for part in ROUTERS for r in part.routes if isinstance(r, APIRoute)]


def test_every_route_of_the_contract_is_there(schema: dict[str, Any]) -> None:
    served = {(m.upper(), path) for path, item in schema["paths"].items() for m in item}
    assert served >= CONTRACT


def test_every_operation_documents_its_errors_and_an_example(schema: dict[str, Any]) -> None:
    for path, item in schema["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation.get("description"), where
            assert {"401", "403", "422", "429", "502", "503"} <= set(operation["responses"]), where
            assert operation.get("security") == [{"HTTPBearer": []}], where
            success = next(code for code in operation["responses"] if code.startswith("2"))
            content = operation["responses"][success]["content"]["application/json"]
            assert "example" in content, where
            if "requestBody" in operation:
                body = operation["requestBody"]["content"]["application/json"]
                assert body.get("examples"), where


def test_every_changing_post_takes_an_idempotency_key(schema: dict[str, Any]) -> None:
    for path, item in schema["paths"].items():
        if path.startswith("/v1") and "post" in item:
            headers = {
                p["name"]: p for p in item["post"].get("parameters", []) if p["in"] == "header"
            }
            assert "Idempotency-Key" in headers, path
            # An example would be copied into every request, each then a replay of the first.
            key = headers["Idempotency-Key"]
            assert "example" not in key, path
            assert "examples" not in key, path
            assert not key["schema"].get("examples"), path
            success = next(c for c in item["post"]["responses"] if c.startswith("2"))
            assert "Idempotent-Replayed" in item["post"]["responses"][success]["headers"], path


def test_a_return_preview_takes_a_return_and_the_key_every_post_takes_to_no_effect(
    schema: dict[str, Any],
) -> None:
    # A preview changes nothing, so a key has nothing to repeat; it is taken all the same, so
    # a client sending one with every POST is never refused here.
    preview = schema["paths"]["/v1/returns/preview"]["post"]
    (key,) = [p for p in preview["parameters"] if p["name"] == "Idempotency-Key"]
    assert "of no effect" in key["description"]
    assert "200" in preview["responses"]
    taken = schema["paths"]["/v1/returns"]["post"]
    assert body_schema(preview) == body_schema(taken)


def body_schema(operation: dict[str, Any]) -> Any:
    return operation["requestBody"]["content"]["application/json"]["schema"]


def test_answers_that_invite_a_retry_document_retry_after(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/v1/orders"]["post"]
    for code in ("409", "429", "503"):
        assert "Retry-After" in operation["responses"][code]["headers"], code
    assert "503" in schema["paths"]["/readyz"]["get"]["responses"]


def test_examples_validate_against_their_models() -> None:
    checked = 0
    for route in v1_routes():
        for status, response in route.responses.items():
            example = response.get("content", {}).get("application/json", {}).get("example")
            if example is not None and int(status) < 300:
                TypeAdapter(route.response_model).validate_python(example)
                checked += 1
        for param in route.dependant.body_params:
            for example in (param.field_info.openapi_examples or {}).values():
                TypeAdapter(param.field_info.annotation).validate_python(example["value"])
                checked += 1
    assert checked >= 40


def test_no_reference_dangles(schema: dict[str, Any]) -> None:
    defined = set(schema["components"]["schemas"])

    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
            return found.union(*(refs(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(value) for value in node))
        return set()

    assert refs(schema) <= defined


def test_promotion_params_are_a_union_tagged_by_kind(schema: dict[str, Any]) -> None:
    promotion = schema["components"]["schemas"]["PromotionIn"]
    params_of = {
        branch["properties"]["kind"]["const"]: branch["properties"]["params"]["$ref"]
        for branch in promotion["oneOf"]
    }
    assert params_of == {
        "percent_off": "#/components/schemas/PercentOffParams",
        "amount_off": "#/components/schemas/AmountOffParams",
        "buy_n_pay_m": "#/components/schemas/BuyNPayMParams",
        "tiered": "#/components/schemas/TieredParams",
        "bundle_price": "#/components/schemas/BundlePriceParams",
    }
    assert set(promotion["required"]) >= {"kind", "params"}


def test_availability_says_that_radius_km_needs_near(schema: dict[str, Any]) -> None:
    parameters = schema["paths"]["/v1/availability"]["get"]["parameters"]
    assert {p["name"] for p in parameters} == {"sku", "location_type", "nearby"}
    nearby = next(p for p in parameters if p["name"] == "nearby")
    # An exploded object in form style: on the wire still `near=LAT,LON&radius_km=R`.
    assert (nearby["in"], nearby["style"], nearby["explode"]) == ("query", "form", True)
    assert set(nearby["schema"]["properties"]) == {"near", "radius_km"}
    assert nearby["schema"]["dependentRequired"] == {"radius_km": ["near"]}
    sku = next(p for p in parameters if p["name"] == "sku")
    assert sku["schema"]["items"]["minLength"] == 1


async def test_a_method_a_path_does_not_take_is_a_405_naming_those_it_does(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.request("TRACE", "/v1/admin/api-keys")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    # Both routes of the path, not only the first that matched it.
    assert answer.headers["allow"] == "GET, POST"
    assert "use GET or POST" in answer.json()["detail"]
