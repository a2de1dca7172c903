"""Examples for the OpenAPI document, from the demo data of `make run`. A unit test validates
each one against the model it illustrates, so they cannot drift from the contract."""

from __future__ import annotations

from typing import Any

Example = dict[str, Any]

_AT = "2026-11-21T10:15:00Z"
_EUR = "EUR"


def _money(amount: int) -> Example:
    return {"amount": amount, "currency": _EUR}


def response(example: Any) -> dict[str, Any]:
    """A route's `responses` entry showing one example answer."""
    return {"content": {"application/json": {"example": example}}}


def request(*examples: Example) -> dict[str, Example]:
    """`openapi_examples` for a request body: each example has a `summary` and a `value`."""
    return {
        example["summary"].lower().replace(" ", "-").replace("&", "and"): example
        for example in examples
    }


# Requests

QUOTE_IN: Example = {
    "summary": "Three tees and a cap",
    "value": {
        "currency": _EUR,
        "lines": [{"sku": "TEE-WHT-M", "quantity": 3}, {"sku": "CAP-NAVY", "quantity": 1}],
    },
}
_CUSTOMER: Example = {"id": "cust-1842", "email": "anna@example.com"}
_TOKEN = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldiJ9.eyJxdW90ZV9pZCI6InF0XzEifQ.c2lnbmF0dXJl"  # noqa: S105 (an example, not a secret)
_TEES = [{"sku": "TEE-WHT-M", "quantity": 3}]
ORDERS_IN: tuple[Example, ...] = (
    {
        "summary": "Click & collect",
        "value": {
            "quote_token": _TOKEN,
            "customer": _CUSTOMER,
            "fulfillment": {"method": "pickup", "store_id": "store-ams-centraal"},
            "lines": _TEES,
        },
    },
    {
        "summary": "Click & reserve",
        "value": {
            "quote_token": _TOKEN,
            "customer": _CUSTOMER,
            "fulfillment": {
                "method": "reserve",
                "store_id": "store-ams-centraal",
                "hold_until": "2026-11-23T18:00:00Z",
            },
            "lines": _TEES,
        },
    },
    {
        "summary": "Delivery",
        "value": {
            "quote_token": _TOKEN,
            "customer": _CUSTOMER,
            "fulfillment": {
                "method": "delivery",
                "address": {
                    "line1": "Prinsengracht 263",
                    "postal_code": "1016 GV",
                    "city": "Amsterdam",
                    "country": "NL",
                    "lat": 52.3752,
                    "lon": 4.8840,
                },
            },
            "lines": _TEES,
        },
    },
)
CANCEL_IN: tuple[Example, ...] = (
    {"summary": "Customer changed their mind", "value": {"reason": "customer request"}},
    {
        "summary": "Cancel one of three tees (a partial cancel, refunded at what it was paid)",
        "value": {"reason": "ordered one too many", "lines": [{"sku": "TEE-WHT-M", "quantity": 1}]},
    },
)
PICKUP_STORE_IN: Example = {
    "summary": "Collect at Utrecht instead",
    "value": {"store_id": "store-utr-hoog-catharijne"},
}
SHIP_IN: Example = {
    "summary": "Handed to a carrier",
    "value": {"carrier": "PostNL", "tracking_number": "3SABCD1234567"},
}
REJECT_IN: tuple[Example, ...] = (
    {"summary": "Short pick", "value": {"reason": "short pick: 1 unit damaged", "code": "damaged"}},
    {
        "summary": "Not on the shelf: inventory corrects the store's stock",
        "value": {"reason": "shelf is empty", "code": "not_in_stock"},
    },
)
ADJUSTMENTS_IN: tuple[Example, ...] = (
    {
        "summary": "A delivery arrives",
        "value": {"sku": "TEE-WHT-M", "delta": 5, "reason": "receipt"},
    },
    {"summary": "A till sale", "value": {"sku": "TEE-WHT-M", "delta": -1, "reason": "pos_sale"}},
)
RETURN_IN: Example = {
    "summary": "One tee of a 3 for 2 back in store",
    "value": {
        "order_id": "ord_5f0c2a9e41d84b7aa1c3",
        "store_id": "store-ams-centraal",
        "lines": [{"sku": "TEE-WHT-M", "quantity": 1, "condition": "resellable"}],
        "reason": "too small",
    },
}
STOCK_FEED_IN: Example = {
    "summary": "Tonight's stock",
    "value": {"items": [{"sku": "TENT-2P", "on_hand": 14}], "sequence": 1042},
}
LOCATIONS_IN: tuple[Example, ...] = (
    {
        "summary": "A store",
        "value": {
            "location_id": "store-ams-centraal",
            "name": "Store Amsterdam Centraal (Damrak)",
            "type": "store",
            "lat": 52.3738,
            "lon": 4.8910,
            "capabilities": ["ship", "pickup", "returns"],
            "priority": 50,
            "ship_capacity": 40,
        },
    },
    {
        "summary": "A dropship partner",
        "value": {
            "location_id": "partner-northwind-nl",
            "name": "Northwind Outdoor (dropship)",
            "type": "dropship",
            "lat": 52.0907,
            "lon": 5.1214,
            "capabilities": ["ship"],
            "priority": 80,
            "ship_capacity": 500,
            "partner_id": "partner-northwind",
        },
    },
)
STOCK_IN: Example = {
    "summary": "Counted stock",
    "value": {"location_id": "store-ams-centraal", "sku": "TEE-WHT-M", "on_hand": 12},
}
PRICES_IN: tuple[Example, ...] = (
    {"summary": "Base price", "value": {"sku": "TEE-WHT-M", "currency": _EUR, "amount": 1999}},
    {
        "summary": "App only price",
        "value": {"sku": "CAP-NAVY", "currency": _EUR, "amount": 1499, "channel": "app"},
    },
)
PROMOTIONS_IN: tuple[Example, ...] = (
    {
        "summary": "3 for 2",
        "value": {
            "promotion_id": "tees-3-for-2",
            "name": "Tees: 3 for 2",
            "kind": "buy_n_pay_m",
            "skus": ["TEE-WHT-M", "TEE-WHT-L"],
            "params": {"buy": 3, "pay": 2},
        },
    },
    {
        "summary": "Tiered",
        "value": {
            "promotion_id": "socks-volume",
            "name": "Socks: 10% off from 3, 20% off from 6",
            "kind": "tiered",
            "skus": ["SOCKS-3PK"],
            "params": {
                "tiers": [{"min_quantity": 3, "percent": 10}, {"min_quantity": 6, "percent": 20}]
            },
        },
    },
)
API_KEYS_IN: tuple[Example, ...] = (
    {"summary": "Web shop", "value": {"role": "shop", "name": "web shop", "channel": "web"}},
    {
        "summary": "Store staff",
        "value": {"role": "store", "name": "Amsterdam tills", "store_id": "store-ams-centraal"},
    },
    {
        "summary": "Partner",
        "value": {"role": "partner", "name": "Northwind", "partner_id": "partner-northwind"},
    },
)

SUPPLY_IN: Example = {
    "summary": "A purchase order on its way",
    "value": {
        "supply_id": "po-2026-0412",
        "location_id": "wh-tilburg",
        "sku": "TENT-2P",
        "quantity": 24,
        "expected_at": "2026-11-28T08:00:00Z",
    },
}
RECEIVE_IN: tuple[Example, ...] = (
    {"summary": "Part of it arrived", "value": {"quantity": 10}},
    {"summary": "All of it arrived", "value": {}},
)

# Responses

AVAILABILITY: Example = {
    "items": [
        {
            "sku": "TEE-WHT-M",
            "name": "Organic cotton tee, white, M",
            "total_available": 19,
            "locations": [
                {
                    "location_id": "store-ams-centraal",
                    "name": "Store Amsterdam Centraal (Damrak)",
                    "type": "store",
                    "available": 7,
                    "on_hand": 8,
                    "reserved": 0,
                    "distance_km": 0.6,
                },
                {
                    "location_id": "wh-tilburg",
                    "name": "Warehouse Tilburg (web)",
                    "type": "warehouse",
                    "available": 12,
                    "on_hand": 15,
                    "reserved": 1,
                    "distance_km": 96.4,
                },
            ],
            "incoming": [
                {
                    "location_id": "wh-tilburg",
                    "quantity": 20,
                    "expected_at": "2026-11-28T08:00:00Z",
                }
            ],
            "next_available_at": "2026-11-28T08:00:00Z",
        }
    ]
}
QUOTE: Example = {
    "quote_id": "qt_1b9e0d6c2f7a4c1e8d3b",
    "channel": "web",
    "currency": _EUR,
    "lines": [
        {
            "sku": "TEE-WHT-M",
            "quantity": 3,
            "unit_price": _money(1999),
            "discount": _money(1999),
            "total": _money(3998),
            "unit_net_prices": [1333, 1333, 1332],
            "promotions": ["tees-3-for-2"],
        },
        {
            "sku": "CAP-NAVY",
            "quantity": 1,
            "unit_price": _money(1999),
            "discount": _money(0),
            "total": _money(1999),
            "unit_net_prices": [1999],
            "promotions": [],
        },
    ],
    "subtotal": _money(7996),
    "discount_total": _money(1999),
    "total": _money(5997),
    "promotions": [
        {
            "promotion_id": "tees-3-for-2",
            "name": "Tees: 3 for 2",
            "kind": "buy_n_pay_m",
            "discount": _money(1999),
            "skus": ["TEE-WHT-M"],
        }
    ],
    "channel_rules": [],
    "price_version": 42,
    "created_at": _AT,
    "expires_at": "2026-11-21T10:45:00Z",
    "quote_token": _TOKEN,
}
ORDER_ACCEPTED: Example = {"order_id": "ord_5f0c2a9e41d84b7aa1c3", "status": "pending"}
FULFILLMENT: Example = {
    "fulfillment_id": "ful_8c1d2e3f4a5b6c7d8e9f",
    "order_id": "ord_5f0c2a9e41d84b7aa1c3",
    "location_id": "store-ams-centraal",
    "location_type": "store",
    "method": "pickup",
    "status": "ready_for_pickup",
    "lines": [{"sku": "TEE-WHT-M", "quantity": 3}],
    "pickup_store_id": "store-ams-centraal",
    "partner_id": None,
    "transfer": False,
    "hold_until": None,
    "carrier": None,
    "tracking_number": None,
    "status_reason": None,
    "created_at": _AT,
    "updated_at": "2026-11-21T10:40:00Z",
}
FULFILLMENT_PICKED_UP: Example = {**FULFILLMENT, "status": "picked_up"}
FULFILLMENT_SHIPPED: Example = {
    **FULFILLMENT,
    "method": "delivery",
    "status": "shipped",
    "pickup_store_id": None,
    "carrier": "PostNL",
    "tracking_number": "3SABCD1234567",
}
FULFILLMENT_REJECTED: Example = {**FULFILLMENT, "status": "rejected", "status_reason": "short pick"}
FULFILLMENT_ACCEPTED: Example = {
    **FULFILLMENT,
    "location_id": "partner-northwind-nl",
    "location_type": "dropship",
    "method": "delivery",
    "status": "accepted",
    "pickup_store_id": None,
    "partner_id": "partner-northwind",
}
FULFILLMENT_PAGE: Example = {"items": [FULFILLMENT], "next_cursor": None}
ORDER: Example = {
    "order_id": "ord_5f0c2a9e41d84b7aa1c3",
    "status": "confirmed",
    "status_reason": None,
    "channel": "web",
    "customer": _CUSTOMER,
    "quote_id": "qt_1b9e0d6c2f7a4c1e8d3b",
    "method": "pickup",
    "lines": [
        {
            "sku": "TEE-WHT-M",
            "quantity": 3,
            "unit_price": _money(1999),
            "unit_net_prices": [1333, 1333, 1332],
            "total": _money(3998),
            "returned_quantity": 0,
        }
    ],
    "fulfillments": [{**FULFILLMENT, "status": "reserved"}],
    "totals": {
        "subtotal": _money(5997),
        "discount_total": _money(1999),
        "total": _money(3998),
        "refunded": _money(0),
    },
    "created_at": _AT,
    "updated_at": _AT,
}
ORDER_CANCELLED: Example = {
    **ORDER,
    "status": "cancelled",
    "status_reason": "customer request",
    "fulfillments": [{**FULFILLMENT, "status": "cancelled"}],
}
ROUTING: Example = {
    "order_id": "ord_5f0c2a9e41d84b7aa1c3",
    "attempts": [
        {
            "attempt": 1,
            "at": _AT,
            "trigger": "order placed",
            "lines": {"TEE-WHT-M": 3},
            "excluded": [],
            "candidates": [
                {
                    "location_id": "wh-tilburg",
                    "type": "warehouse",
                    "distance_km": 96.4,
                    "score": None,
                    "eligible": False,
                    "covers": {"TEE-WHT-M": 0},
                    "reasons": ["has none of TEE-WHT-M"],
                },
                {
                    "location_id": "store-utrecht",
                    "type": "store",
                    "distance_km": 35.2,
                    "score": 47.3,
                    "eligible": True,
                    "covers": {"TEE-WHT-M": 3},
                    "reasons": ["covers every line", "store handling cost"],
                },
            ],
            "rules_applied": ["single location preferred", "nearest first"],
            "chosen": [
                {
                    "location_id": "store-utrecht",
                    "location_type": "store",
                    "method": "delivery",
                    "lines": {"TEE-WHT-M": 3},
                    "pickup_store_id": None,
                    "transfer": False,
                }
            ],
            "explanation": "ship-from-store: store-utrecht covers every line",
            "rejected_reason": None,
            "alternatives": [],
        }
    ],
}
STOCK_LEVEL: Example = {
    "location_id": "store-ams-centraal",
    "sku": "TEE-WHT-M",
    "on_hand": 13,
    "reserved": 1,
    "safety_stock": 0,
    "available": 12,
    "version": 7,
    "updated_at": _AT,
}
RETURN: Example = {
    "return_id": "ret_0a1b2c3d4e5f60718293",
    "order_id": "ord_5f0c2a9e41d84b7aa1c3",
    "store_id": "store-ams-centraal",
    "refund": _money(1333),
    "lines": [
        {"sku": "TEE-WHT-M", "quantity": 1, "condition": "resellable", "refund": _money(1333)}
    ],
    "reason": "too small",
    "created_at": _AT,
}
STOCK_FEED_RESULT: Example = {
    "applied": True,
    "sequence": 1042,
    "last_sequence": 1041,
    "levels": [
        {
            "location_id": "partner-northwind-nl",
            "sku": "TENT-2P",
            "on_hand": 14,
            "reserved": 2,
            "safety_stock": 0,
            "available": 12,
            "version": 31,
            "updated_at": _AT,
        }
    ],
    "shortfalls": [],
}
LOCATION: Example = {
    **LOCATIONS_IN[0]["value"],
    "partner_id": None,
    "created_at": _AT,
    "updated_at": _AT,
}
PRICE: Example = {
    **PRICES_IN[0]["value"],
    "channel": None,
    "valid_from": None,
    "valid_to": None,
    "priority": 0,
    "price_version": 43,
    "updated_at": _AT,
}
PROMOTION: Example = {
    **PROMOTIONS_IN[0]["value"],
    "channels": [],
    "priority": 10,
    "exclusive": False,
    "currency": None,
    "active": True,
    "valid_from": None,
    "valid_to": None,
    "price_version": 44,
    "updated_at": _AT,
}
API_KEY_CREATED: Example = {
    "key_id": "key_4f2a9c0d1e8b7a63",
    "name": "web shop",
    "role": "shop",
    "channel": "web",
    "store_id": None,
    "partner_id": None,
    "rate_limit": None,
    "created_at": _AT,
    "revoked_at": None,
    "api_key": "omr_Zx8vQ2kV3nL5pR7tY9wB1cD4fG6hJ8kM0nP2qS4uW6y",
}
ROUTING_SITES: list[Example] = [
    {
        "location_id": "store-ams-centraal",
        "type": "store",
        "capabilities": ["ship", "pickup", "returns"],
        "available": {"TEE-WHT-M": 7},
        "ship_capacity_left": 38,
    }
]
API_KEY: Example = {k: v for k, v in API_KEY_CREATED.items() if k != "api_key"}
API_KEY_PAGE: Example = {"items": [API_KEY], "next_cursor": None}
API_KEY_REVOKED: Example = {**API_KEY, "revoked_at": "2026-11-21T11:00:00Z"}
SUPPLY: Example = {
    **SUPPLY_IN["value"],
    "received": 0,
    "promised": 4,
    "promisable": 20,
    "status": "incoming",
    "created_at": _AT,
    "updated_at": _AT,
}
SUPPLY_RECEIVED: Example = {
    **SUPPLY,
    "received": 10,
    "promised": 0,
    "promisable": 14,
    "updated_at": "2026-11-28T08:40:00Z",
}

WEBHOOKS_IN: tuple[Example, ...] = (
    {
        "summary": "A partner's fulfillments",
        "value": {
            "url": "https://northwind.example.com/omniroute/webhooks",
            "event_types": ["fulfillment.assigned", "fulfillment.cancelled"],
            "description": "Northwind warehouse system",
        },
    },
    {
        "summary": "A shop's orders",
        "value": {
            "url": "https://shop.example.com/hooks/omniroute",
            "event_types": ["order.confirmed", "order.rejected", "fulfillment.shipped"],
        },
    },
)
WEBHOOK: Example = {
    "webhook_id": "wh_3f9a1c7e5b2d4a6c8e0f",
    "url": "https://northwind.example.com/omniroute/webhooks",
    "event_types": ["fulfillment.assigned", "fulfillment.cancelled"],
    "description": "Northwind warehouse system",
    "owner": "partner:partner-northwind",
    "status": "active",
    "status_reason": None,
    "created_at": _AT,
}
WEBHOOK_CREATED: Example = {**WEBHOOK, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
WEBHOOK_LIST: Example = {"items": [WEBHOOK]}
_DELIVERY: Example = {
    "delivery_id": "msg_p5jxn8aqm9lwm0d4lokwxjek2a",
    "webhook_id": WEBHOOK["webhook_id"],
    "event_id": "0b6f1c2e-8d3a-4f5b-9c7e-1a2b3c4d5e6f",
    "event_type": "fulfillment.assigned",
    "status": "pending",
    "attempts": 2,
    "last_status_code": 503,
    "last_error": "the endpoint answered HTTP 503",
    "next_attempt_at": "2026-11-21T10:16:05Z",
    "created_at": _AT,
    "delivered_at": None,
    "payload": {
        "id": "0b6f1c2e-8d3a-4f5b-9c7e-1a2b3c4d5e6f",
        "type": "fulfillment.assigned",
        "created_at": _AT,
        "data": {
            "order_id": "ord_7d1e9a2b4c6f8e0a",
            "fulfillment_id": "ful_8c1d2e3f4a5b6c7d8e9f",
            "location_id": "partner-northwind-nl",
            "location_type": "dropship",
            "method": "delivery",
            "lines": [{"sku": "TENT-2P", "quantity": 1}],
            "attempt": 1,
            "backorder": False,
            "partner_id": "partner-northwind",
        },
    },
}
DELIVERY_PAGE: Example = {"items": [_DELIVERY], "next_cursor": None}
DELIVERY_RETRIED: Example = {
    **_DELIVERY,
    "status": "pending",
    "attempts": 9,
    "last_error": "no answer within 5 s",
    "last_status_code": None,
    "next_attempt_at": "2026-11-22T10:40:00Z",
}

PRODUCT_IN: Example = {
    "summary": "A tee",
    "value": {"sku": "TEE-WHT-M", "name": "Organic cotton tee, white, M"},
}
PRODUCT: Example = {**PRODUCT_IN["value"], "updated_at": _AT}
PRODUCT_PAGE: Example = {
    "items": [
        PRODUCT,
        {"sku": "TEE-WHT-S", "name": "Organic cotton tee, white, S", "updated_at": _AT},
    ]
}
RETURN_PREVIEW: Example = {
    "order_id": RETURN["order_id"],
    "store_id": RETURN["store_id"],
    "refund": RETURN["refund"],
    "lines": RETURN["lines"],
}
OWN_API_KEY: Example = {
    **API_KEY,
    "key_id": "key_7c3e1b9a0d2f4e68",
    "name": "Amsterdam tills",
    "role": "store",
    "channel": None,
    "store_id": "store-ams-centraal",
}


# The command center

OPERATIONS_SUMMARY: Example = {
    "generated_at": _AT,
    "window_minutes": 60,
    "orders_per_minute": [
        {"minute": "2026-11-21T10:13:00Z", "channel": "web", "status": "confirmed", "orders": 12},
        {"minute": "2026-11-21T10:14:00Z", "channel": "app", "status": "completed", "orders": 3},
        {"minute": "2026-11-21T10:14:00Z", "channel": "web", "status": "pending", "orders": 2},
    ],
    "orders_by_channel": [
        {"channel": "web", "orders": 14},
        {"channel": "app", "orders": 3},
        {"channel": "store", "orders": 0},
        {"channel": "marketplace", "orders": 0},
        {"channel": "partner", "orders": 0},
    ],
    "conversion": [
        {"channel": "web", "quotes": 40, "orders": 14, "rate": 0.35},
        {"channel": "app", "quotes": 10, "orders": 3, "rate": 0.3},
        {"channel": "store", "quotes": 0, "orders": 0, "rate": None},
        {"channel": "marketplace", "quotes": 0, "orders": 0, "rate": None},
        {"channel": "partner", "quotes": 0, "orders": 0, "rate": None},
    ],
    "unavailable": [],
}
OPERATIONS_EXCEPTIONS: Example = {
    "generated_at": _AT,
    "items": [
        {
            "kind": "dead_letters",
            "subject": None,
            "service": "inventory",
            "detail": "2 message(s) inventory could not apply are parked in its dead_letters "
            "table, each with the reason",
            "since": "2026-11-21T09:02:41Z",
            "count": 2,
        },
        {
            "kind": "pending_too_long",
            "subject": "ord_7d1e9a2b4c6f8e0a",
            "service": "orders",
            "detail": "pickup order on web pending for 95 s: routing or its reservation has not "
            "finished",
            "since": "2026-11-21T10:13:25Z",
            "count": None,
        },
        {
            "kind": "partner_not_accepted",
            "subject": "ord_3b9f0c1d2e4a6b8c.1.1",
            "service": "orders",
            "detail": "not accepted by partner-northwind-nl in 34 min: at risk, withdrawn and "
            "routed elsewhere in 26 min (order ord_3b9f0c1d2e4a6b8c)",
            "since": "2026-11-21T09:41:00Z",
            "count": None,
        },
    ],
}
STORES_OPERATIONS: Example = {
    "generated_at": _AT,
    "window_minutes": 60,
    "items": [
        {
            "store_id": "store-ams-centraal",
            "name": "Store Amsterdam Centraal (Damrak)",
            "fulfillments": 9,
            "by_status": {"reserved": 2, "ready_for_pickup": 3, "picked_up": 3, "rejected": 1},
            "rejects": 1,
            "median_minutes_to_ready": 11.5,
        },
        {
            "store_id": "store-utr-hoog-catharijne",
            "name": "Store Utrecht Hoog Catharijne",
            "fulfillments": 0,
            "by_status": {},
            "rejects": 0,
            "median_minutes_to_ready": None,
        },
    ],
}
