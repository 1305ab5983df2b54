"""The console's session cookie and CSRF token, below the HTTP tests in tests/e2e."""

from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet
from starlette.requests import Request
from starlette.responses import Response

from vulfix.console.sessions import (
    COOKIE,
    ConsoleSession,
    SessionCodec,
    check_key,
    csrf_valid,
    fresh_session,
)
from vulfix.tcapi import Credential

KEY = Credential("AKIDconsole", "s3cret-key", 1, "acme", 1250000000, False)


class Keys:
    async def lookup(self, secret_id: str) -> Credential | None:
        return KEY if secret_id == KEY.secret_id else None


def request_with(cookie: str | None, scheme: str = "http") -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/console/tasks", "headers": headers,
                    "scheme": scheme, "server": ("vulfix", 443), "query_string": b""})  # fmt: skip


def issued(codec: SessionCodec, session: ConsoleSession, scheme: str = "http") -> tuple[str, str]:
    response = Response()
    codec.write(response, request_with(None, scheme), session)
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1], header


def test_a_session_round_trips_and_the_cookie_is_locked_down() -> None:
    codec = SessionCodec(Fernet.generate_key())
    session = fresh_session("AKIDconsole")
    value, header = issued(codec, session)
    assert codec.read(request_with(value)) == session
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/console" in header
    assert "Secure" not in header, "plain HTTP would never send a Secure cookie back"
    assert "Secure" in issued(codec, session, "https")[1]
    assert "s3cret" not in value


def test_tampered_foreign_and_expired_cookies_are_no_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = SessionCodec(Fernet.generate_key())
    value, _ = issued(codec, fresh_session("AKIDconsole"))
    assert codec.read(request_with(value[:-2] + "xx")) is None
    assert SessionCodec(Fernet.generate_key()).read(request_with(value)) is None
    assert codec.read(request_with("garbage")) is None
    later = time.time() + 13 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert codec.read(request_with(value)) is None, "sessions last 12 hours"


def test_csrf_tokens_must_match_the_session() -> None:
    session = fresh_session("AKIDconsole")
    assert csrf_valid(session, session.csrf_token)
    assert not csrf_valid(session, fresh_session("AKIDconsole").csrf_token)
    assert not csrf_valid(session, None) and not csrf_valid(None, session.csrf_token)
    assert fresh_session().csrf_token != fresh_session().csrf_token


async def test_only_the_matching_secret_key_signs_in() -> None:
    assert await check_key(Keys(), "AKIDconsole", "s3cret-key") == KEY
    assert await check_key(Keys(), "AKIDconsole", "s3cret-kex") is None
    assert await check_key(Keys(), "AKIDunknown", "s3cret-key") is None
    assert await check_key(Keys(), "", "") is None
