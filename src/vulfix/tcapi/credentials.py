"""Who is calling: the credential behind a SecretId, and the caller handed to actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Credential:
    """An enabled API key and the account it belongs to."""

    secret_id: str
    secret_key: str
    account_id: int
    account_name: str
    app_id: int
    read_only: bool
    # Actions this key may call (a CAM-like policy); None allows every action.
    allowed_actions: frozenset[str] | None = None


class CredentialSource(Protocol):
    """Resolves a SecretId; unknown, disabled and deleted keys are all ``None``."""

    async def lookup(self, secret_id: str) -> Credential | None: ...


@dataclass(slots=True)
class Caller:
    """The authenticated caller of one request, passed to every action handler.
    (Not frozen: a frozen dataclass costs five times as much to build, once per request.)"""

    account_id: int
    account_name: str
    app_id: int
    secret_id: str
    read_only: bool
    request_id: str
    language: str
    region: str
