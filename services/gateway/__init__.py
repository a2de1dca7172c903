"""The gateway: the `/v1` REST contract for shop frontends, store staff and partners, in front of
inventory, pricing and orders (authentication, authorisation, rate limits, idempotency)."""
