"""Rendering pages and the fragments live updates fetch, with the signed-in key's session."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from vulfix.console import views
from vulfix.console.context import ConsoleContext
from vulfix.console.sessions import CSRF_FIELD, ConsoleSession, fresh_session
from vulfix.tcapi import Credential

FRAGMENT_PARAM = "fragment"
# No inline script or style, no framing, nothing cached: pages show one account's fleet.
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in visitor: their session and the key it names."""

    session: ConsoleSession
    credential: Credential


class SignInRequired(Exception):
    """Raised by `visitor_of` when there is no valid session; answered by `sign_in_redirect`."""


async def visitor_of(ctx: ConsoleContext, request: Request) -> Visitor:
    session = ctx.sessions.read(request)
    if session is None or not session.secret_id:
        raise SignInRequired()
    credential = await ctx.credentials.lookup(session.secret_id)
    if credential is None:  # the key was disabled or deleted since
        raise SignInRequired()
    return Visitor(session, credential)


def sign_in_redirect(request: Request) -> Response:
    if request.query_params.get(FRAGMENT_PARAM) or request.method != "GET":
        # A live update or a form of a session that ended: the page reloads into the sign-in.
        return Response("Sign in again.", status_code=401, media_type="text/plain")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/sign-in?next={quote(target)}", status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only ever a console page (no open redirect)."""
    if value and value.startswith("/console/") and not value.startswith("/console//"):
        return value
    return "/console/tasks"


def render(
    ctx: ConsoleContext,
    request: Request,
    template: str,
    *,
    visitor: Visitor | None = None,
    session: ConsoleSession | None = None,
    status_code: int = 200,
    **data: Any,
) -> Response:
    """The page, or with `?fragment=1` only its live part (the template's `live.html` twin),
    tagged so that an unchanged fragment costs the browser a 304 and no DOM work."""
    session = session or (visitor.session if visitor else None)
    new_session = session is None
    if session is None:  # first visit: the sign-in form needs a CSRF token
        session = fresh_session()
    context = {
        "request": request,
        "visitor": visitor,
        "read_only": visitor is None or visitor.credential.read_only,
        "csrf_field": CSRF_FIELD,
        "csrf_token": session.csrf_token,
        "zone": ctx.display.zone,
        "views": views,
        **data,
    }
    fragment = bool(request.query_params.get(FRAGMENT_PARAM)) and status_code == 200
    name = template.replace(".html", ".live.html") if fragment else template
    body = ctx.templates.get_template(name).render(context).encode()
    headers = dict(SECURITY_HEADERS)
    if fragment:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag, **headers})
        headers["etag"] = etag
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    if new_session:
        ctx.sessions.write(response, request, session)
    return response
