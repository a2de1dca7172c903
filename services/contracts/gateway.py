"""The gateway's own contract: API keys and the request bodies that differ from the services'
internal ones. Everything else the gateway accepts and answers is the services' contract."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from services.contracts.base import Contract, Identifier, Text
from services.contracts.pricing import Channel, Currency, QuoteLineIn


class Role(StrEnum):
    SHOP = "shop"
    STORE = "store"
    PARTNER = "partner"
    ADMIN = "admin"


class RateLimit(Contract):
    """A token bucket: `burst` requests at once, refilled at `requests_per_second`."""

    requests_per_second: float = Field(gt=0, le=100_000)
    burst: int = Field(ge=1, le=1_000_000)


_BINDING_OF_ROLE: dict[Role, str | None] = {
    Role.SHOP: "channel",
    Role.STORE: "store_id",
    Role.PARTNER: "partner_id",
    Role.ADMIN: None,
}
"""The one binding a key of each role has."""


def _binding_by_role(schema: dict[str, Any]) -> None:
    """The schema says what `ApiKeyIn._binding` enforces: per role, its binding and no other."""
    schema["oneOf"] = [
        {
            "properties": {
                "role": {"const": role.value},
                **{
                    name: {"not": {"type": "null"}} if name == binding else {"type": "null"}
                    for name in _BINDING_OF_ROLE.values()
                    if name is not None
                },
            },
            "required": [binding] if binding else [],
        }
        for role, binding in _BINDING_OF_ROLE.items()
    ]


class ApiKeyIn(Contract):
    """A new API key. Its binding follows the role: `shop` needs `channel`, `store` needs
    `store_id`, `partner` needs `partner_id`, `admin` takes none."""

    model_config = ConfigDict(json_schema_extra=_binding_by_role)

    role: Role
    name: Text = Field(min_length=1, max_length=200)
    channel: Channel | None = None
    store_id: Identifier | None = None
    partner_id: Identifier | None = None
    rate_limit: RateLimit | None = Field(
        default=None, description="Overrides the role's configured rate limit for this key."
    )

    @model_validator(mode="after")
    def _binding(self) -> ApiKeyIn:
        given = {
            name
            for name, value in (
                ("channel", self.channel),
                ("store_id", self.store_id),
                ("partner_id", self.partner_id),
            )
            if value is not None
        }
        binding = _BINDING_OF_ROLE[self.role]
        if given != ({binding} if binding else set()):
            wanted = binding or "no binding"
            raise ValueError(f"a {self.role.value} key takes {wanted}")
        return self


class ApiKey(Contract):
    """An API key as listed: never its secret."""

    key_id: Identifier
    name: str
    role: Role
    channel: Channel | None = None
    store_id: Identifier | None = None
    partner_id: Identifier | None = None
    rate_limit: RateLimit | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKey):
    api_key: str | None = Field(
        description="The secret, shown once: only its hash is stored. A replay of the creating "
        "request (same Idempotency-Key) cannot show it again and answers null.",
    )


class ApiKeyPage(Contract):
    items: tuple[ApiKey, ...]
    next_cursor: str | None


class QuoteIn(Contract):
    """A cart to price. The channel defaults to the one the API key is bound to (a shop key's
    channel; `store` for store keys, `partner` for partner keys) and may not differ from it."""

    channel: Channel | None = None
    currency: Currency
    lines: tuple[QuoteLineIn, ...] = Field(min_length=1, max_length=200)
