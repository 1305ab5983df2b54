"""Console sessions: a signed cookie naming the signed-in key, and the CSRF token of its forms.

The cookie holds no secret: the SecretId and a random CSRF token, signed (itsdangerous, HMAC)
with a key derived from the master key, so every replica sharing the master key accepts it.
It is HttpOnly, SameSite=Strict, scoped to /console and Secure over HTTPS. Every request
looks the key up again, so disabling or deleting a key ends its sessions within a second
(the credential cache's lifetime). A visitor who has not signed in gets a session without a
SecretId: the sign-in form has its CSRF token too, and signing in issues a fresh one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from vulfix.tcapi import Credential, CredentialSource

COOKIE = "vulfix_console"
COOKIE_PATH = "/console"
MAX_AGE_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    secret_id: str  # "" before sign-in
    csrf_token: str


def fresh_session(secret_id: str = "") -> ConsoleSession:
    return ConsoleSession(secret_id, secrets.token_urlsafe(24))


class SessionCodec:
    def __init__(self, master_key: bytes) -> None:
        # Its own key: a leaked session key must not decrypt the stored API keys.
        key = hmac.new(master_key, b"vulfix console sessions", hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(key, salt="vulfix-console")

    def read(self, request: Request) -> ConsoleSession | None:
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=MAX_AGE_SECONDS)
        except BadSignature:  # tampered, foreign or expired (SignatureExpired is one)
            return None
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not all(isinstance(v, str) for v in data)
        ):
            return None
        return ConsoleSession(data[0], data[1])

    def write(self, response: Response, request: Request, session: ConsoleSession) -> None:
        response.set_cookie(
            COOKIE,
            self._serializer.dumps([session.secret_id, session.csrf_token]),
            max_age=MAX_AGE_SECONDS,
            path=COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    @staticmethod
    def clear(response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE,
            path=COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )


def csrf_valid(session: ConsoleSession | None, submitted: object) -> bool:
    return (
        session is not None
        and isinstance(submitted, str)
        and hmac.compare_digest(session.csrf_token.encode(), submitted.encode())
    )


async def check_key(
    credentials: CredentialSource, secret_id: str, secret_key: str
) -> Credential | None:
    """The enabled key with this SecretId and SecretKey, or None (compared in constant time)."""
    credential = await credentials.lookup(secret_id) if 0 < len(secret_id) <= 128 else None
    expected = credential.secret_key if credential else secrets.token_urlsafe(32)
    if hmac.compare_digest(expected.encode(), secret_key.encode()) and credential:
        return credential
    return None
