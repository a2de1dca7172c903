"""What every page of the console shares: the session behind a request, CSRF checks, rendering,
and turning the gateway's refusals into a message on the page."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.console.gateway import Gateway
from services.console.sessions import COOKIE, Session, Sessions


class SignInNeeded(Exception):
    """No session (or it ended): the person is sent to sign in."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "")
        self.reason = reason


class NotAllowed(Exception):
    """A signed-in person asked for a page their role has no business with, or a form came
    without the session's CSRF token."""


def sessions_of(request: Request) -> Sessions:
    found: Sessions = request.app.state.sessions
    return found


async def gateway_of(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


def templates_of(request: Request) -> Jinja2Templates:
    found: Jinja2Templates = request.app.state.templates
    return found


async def signed_in(request: Request) -> Session:
    session = sessions_of(request).find(request.cookies.get(COOKIE))
    if session is None:
        raise SignInNeeded()
    return session


CurrentSession = Annotated[Session, Depends(signed_in)]
Console = Annotated[Gateway, Depends(gateway_of)]


async def staff(session: CurrentSession) -> Session:
    """Store staff (or an admin looking at a store)."""
    if session.person.role not in ("store", "admin"):
        raise NotAllowed("the store console is for store keys")
    return session


async def admin(session: CurrentSession) -> Session:
    if not session.person.is_admin:
        raise NotAllowed("the command center is for admin keys")
    return session


StaffSession = Annotated[Session, Depends(staff)]
AdminSession = Annotated[Session, Depends(admin)]


def check_csrf(session: Session, token: str | None) -> None:
    if not token or not hmac.compare_digest(token, session.csrf_token):
        raise NotAllowed("this form is out of date; open the page again and resubmit")


async def csrf_checked(session: CurrentSession, csrf_token: Annotated[str, Form()] = "") -> Session:
    """For every form that changes something: the session's token must come with it."""
    check_csrf(session, csrf_token)
    return session


CheckedSession = Annotated[Session, Depends(csrf_checked)]


def render(
    request: Request,
    template: str,
    session: Session | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    flashes = session.flashes if session is not None else []
    page = templates_of(request).TemplateResponse(
        request,
        template,
        {
            "session": session,
            "person": session.person if session else None,
            "flashes": list(flashes),
            **context,
        },
        status_code=status_code,
    )
    if session is not None and not template.startswith("_"):
        flashes.clear()
    return page


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def flash(session: Session, message: str, kind: str = "info") -> None:
    session.flashes.append({"kind": kind, "message": message})


def form_list(form: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Fields named `prefix[key]`, by key."""
    found = {}
    for name, value in form.items():
        if name.startswith(prefix + "[") and name.endswith("]"):
            found[name[len(prefix) + 1 : -1]] = str(value)
    return found


def store_of(session: Session, store: str | None) -> str:
    """The store the page is about: a store key's own; an admin names one."""
    if session.person.role == "store":
        assert session.person.store_id is not None
        return session.person.store_id
    if not store:
        raise NotAllowed("choose a store from the command center first")
    return store
