"""Signing in with an API key, and out. The key is exchanged for a session at once: the browser
keeps only the session's id, in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS)."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.gateway import Refused
from services.console.sessions import COOKIE, Person
from services.console.web import (
    CheckedSession,
    Console,
    render,
    see_other,
    sessions_of,
)

router = APIRouter()

SIGN_IN_CSRF = "omniroute_console_sign_in"
"""Before there is a session, the sign-in form's CSRF token is checked against this cookie."""


def home_of(person: Person) -> str:
    return "/operations" if person.is_admin else "/store"


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    session = sessions_of(request).find(request.cookies.get(COOKIE))
    return see_other(home_of(session.person) if session else "/sign-in")


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, ended: bool = False) -> Response:
    """The sign-in form."""
    return _sign_in_form(request, "Your session has ended; sign in again." if ended else None)


def _sign_in_form(request: Request, error: str | None, status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    page = render(request, "sign_in.html", csrf_token=token, error=error, status_code=status_code)
    page.set_cookie(
        SIGN_IN_CSRF,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=3600,
    )
    return page


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    gateway: Console,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Check the key with the gateway and start a session for it."""
    expected = request.cookies.get(SIGN_IN_CSRF, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return _sign_in_form(request, "The form was out of date; please try again.", 403)
    api_key = api_key.strip()
    if not api_key:
        return _sign_in_form(request, "Enter your API key.", 422)
    try:
        me = await gateway.get(api_key, "/me")
    except Refused as refused:
        if refused.status == 401:
            return _sign_in_form(request, "That key is not valid (unknown or revoked).", 401)
        return _sign_in_form(request, f"{refused.title}: {refused.detail}", 503)
    if me["role"] not in ("store", "admin"):
        return _sign_in_form(
            request,
            f"A {me['role']} key cannot sign in here: the console is for store staff (a store "
            "key) and operations (an admin key).",
            403,
        )
    person = Person(
        key_id=me["key_id"], name=me["name"], role=me["role"], store_id=me.get("store_id")
    )
    sessions = sessions_of(request)
    session = sessions.start(api_key, person)
    response = RedirectResponse(home_of(person), status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=sessions.seconds,
    )
    response.delete_cookie(SIGN_IN_CSRF)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: CheckedSession) -> Response:
    """End the session; the key is forgotten."""
    sessions_of(request).end(session.id)
    response = see_other("/sign-in")
    response.delete_cookie(COOKIE)
    return response
