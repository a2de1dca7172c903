"""Signed-in people: a session id in an HttpOnly cookie, the API key only here, in memory.

The key never reaches the browser after sign-in, nor a URL or a log line. Sessions live in the
console process: a restart signs everyone out, and several replicas need sticky sessions.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

COOKIE = "omniroute_console"


@dataclass(frozen=True)
class Person:
    """Who signed in, as the gateway's `/v1/me` describes the key."""

    key_id: str
    name: str
    role: str
    store_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass
class Session:
    id: str
    api_key: str
    person: Person
    csrf_token: str
    expires_at: float
    seen: set[str] = field(default_factory=set)  # fulfillments already shown in the queue
    queue_shown: bool = False
    flashes: list[dict[str, str]] = field(default_factory=list)  # messages for the next page

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at


class Sessions:
    def __init__(self, minutes: float) -> None:
        self._ttl = minutes * 60
        self._sessions: dict[str, Session] = {}

    @property
    def seconds(self) -> int:
        return int(self._ttl)

    def start(self, api_key: str, person: Person) -> Session:
        self._forget_expired()
        session = Session(
            id=secrets.token_urlsafe(32),
            api_key=api_key,
            person=person,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=time.monotonic() + self._ttl,
        )
        self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None or session.expired:
            self._sessions.pop(session_id or "", None)
            return None
        return session

    def end(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def _forget_expired(self) -> None:
        for gone in [s.id for s in self._sessions.values() if s.expired]:
            del self._sessions[gone]
