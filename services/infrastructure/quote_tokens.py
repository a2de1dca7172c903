"""Signed quote tokens: pricing signs what it quoted; any service verifies it offline.

A token is a JWT (HS256) whose `kid` header names the signing key, so keys rotate: sign with the
newest, keep verifying with the older ones until their tokens have expired
(`OMNIROUTE_QUOTE_SIGNING_KEYS=new:secret2,old:secret1`, the first one signs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import jwt
from pydantic import ValidationError

from services.contracts.pricing import QuoteTokenClaims
from services.infrastructure.errors import InvalidRequest
from services.infrastructure.settings import DEVELOPMENT_QUOTE_KEYS

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
JWT_TYP = "omniroute-quote+jwt"


class InvalidQuoteToken(InvalidRequest):
    slug, title = "invalid-quote-token", "The quote token is not valid"


class ExpiredQuoteToken(InvalidQuoteToken):
    slug, title = "expired-quote", "The quote has expired"


@dataclass(frozen=True)
class SigningKeys:
    """Key id -> secret; the first key signs, all of them verify."""

    signing_key_id: str
    secrets: dict[str, str]

    @classmethod
    def parse(cls, setting: str) -> SigningKeys:
        pairs = [item.strip() for item in setting.split(",") if item.strip()]
        secrets: dict[str, str] = {}
        for pair in pairs:
            key_id, sep, secret = pair.partition(":")
            if not sep or not key_id or len(secret) < 32:
                raise ValueError(
                    "quote signing keys must be 'id:secret' pairs, comma-separated, with secrets "
                    "of at least 32 characters (RFC 7518 §3.2)"
                )
            secrets[key_id] = secret
        if not secrets:
            raise ValueError("at least one quote signing key is needed")
        if setting == DEVELOPMENT_QUOTE_KEYS:
            log.warning(
                "quote tokens are signed with the public development key; set "
                "OMNIROUTE_QUOTE_SIGNING_KEYS in production"
            )
        return cls(next(iter(secrets)), secrets)


def sign_quote_token(claims: QuoteTokenClaims, keys: SigningKeys) -> str:
    return jwt.encode(
        claims.model_dump(mode="json"),
        keys.secrets[keys.signing_key_id],
        algorithm=ALGORITHM,
        headers={"kid": keys.signing_key_id, "typ": JWT_TYP},
    )


def verify_quote_token(token: str, keys: SigningKeys) -> QuoteTokenClaims:
    """The claims of an authentic, unexpired token; otherwise a problem saying what is wrong."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidQuoteToken("quote_token is not a quote token (malformed)") from None
    secret = keys.secrets.get(str(header.get("kid")))
    if secret is None or header.get("typ") != JWT_TYP:
        raise InvalidQuoteToken("quote_token was not signed by a known pricing key")
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat"]}
        )
    except jwt.ExpiredSignatureError:
        raise ExpiredQuoteToken("the quote has expired; ask for a new quote") from None
    except jwt.InvalidTokenError:
        raise InvalidQuoteToken("quote_token signature does not match: it was altered") from None
    try:
        return QuoteTokenClaims.model_validate(payload)
    except ValidationError:
        raise InvalidQuoteToken("quote_token does not hold a quote") from None
