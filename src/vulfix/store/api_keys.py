"""Accounts and their API keys: create, list, enable/disable, delete, and resolve a SecretId.

Secret keys are stored encrypted (`SecretCipher`) because request signatures are verified by
recomputing them, so the server must be able to recover each key; a hash would not do.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.store.accounts import InvalidAccountNameError as InvalidAccountNameError
from vulfix.store.accounts import account_named, check_account_name, retry_on_conflict
from vulfix.store.database import read_row, write_transaction
from vulfix.store.secret_cipher import SecretCipher
from vulfix.store.tables import KEY_DISABLED, KEY_ENABLED, accounts, api_keys, as_utc, utc_now

KeyStatus = Literal["enabled", "disabled"]

ALPHANUMERICS = string.ascii_letters + string.digits
SECRET_ID_PREFIX = "AKID"  # noqa: S105 (a public prefix, not a secret)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: the only time its secret is handed out."""

    account: str
    app_id: int
    secret_id: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    account: str
    app_id: int
    secret_id: str
    read_only: bool
    status: KeyStatus
    created_at: datetime
    allowed_actions: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """An enabled key with its decrypted secret and its account, for verifying signatures."""

    secret_id: str
    secret_key: str
    account_id: int
    account_name: str
    app_id: int
    read_only: bool
    allowed_actions: frozenset[str] | None = None


def _random_alphanumerics(length: int) -> str:
    return "".join(secrets.choice(ALPHANUMERICS) for _ in range(length))


# The read behind every signature check the credential cache misses, built once.
_ACTIVE_KEY = (
    select(
        api_keys.c.secret_key_encrypted,
        api_keys.c.read_only,
        api_keys.c.allowed_actions,
        accounts.c.id,
        accounts.c.name,
        accounts.c.app_id,
    )
    .join_from(api_keys, accounts, api_keys.c.account_id == accounts.c.id)
    .where(api_keys.c.secret_id == bindparam("secret_id"), api_keys.c.status == KEY_ENABLED)
)


class ApiKeyStore:
    """The repository of accounts and API keys."""

    def __init__(self, engine: AsyncEngine, cipher: SecretCipher) -> None:
        self._engine = engine
        self._cipher = cipher

    async def create_key(
        self, account_name: str, read_only: bool, allowed_actions: list[str] | None = None
    ) -> NewKey:
        """A new enabled key for the account, creating the account on first use.
        `allowed_actions` limits the actions the key may call (None: all of them)."""
        check_account_name(account_name)
        secret_key = _random_alphanumerics(32)
        sealed = self._cipher.encrypt(secret_key)
        return await retry_on_conflict(
            lambda: self._insert_key(account_name, read_only, secret_key, sealed, allowed_actions)
        )

    async def _insert_key(
        self,
        account_name: str,
        read_only: bool,
        secret_key: str,
        sealed: bytes,
        allowed_actions: list[str] | None,
    ) -> NewKey:
        secret_id = SECRET_ID_PREFIX + _random_alphanumerics(32)
        async with write_transaction(self._engine) as conn:
            account = await account_named(conn, account_name)
            await conn.execute(
                insert(api_keys).values(
                    secret_id=secret_id,
                    account_id=account.id,
                    secret_key_encrypted=sealed,
                    read_only=read_only,
                    allowed_actions=sorted(set(allowed_actions))
                    if allowed_actions is not None
                    else None,
                    status=KEY_ENABLED,
                    created_at=utc_now(),
                )
            )
        return NewKey(account_name, account.app_id, secret_id, secret_key)

    async def list_keys(self, account_name: str | None = None) -> list[KeyInfo]:
        query = (
            select(
                accounts.c.name,
                accounts.c.app_id,
                api_keys.c.secret_id,
                api_keys.c.read_only,
                api_keys.c.allowed_actions,
                api_keys.c.status,
                api_keys.c.created_at,
            )
            .join_from(api_keys, accounts, api_keys.c.account_id == accounts.c.id)
            .order_by(accounts.c.name, api_keys.c.created_at, api_keys.c.secret_id)
        )
        if account_name is not None:
            query = query.where(accounts.c.name == account_name)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            KeyInfo(
                account=row.name,
                app_id=int(row.app_id),
                secret_id=row.secret_id,
                read_only=bool(row.read_only),
                status=cast(KeyStatus, row.status),
                created_at=as_utc(row.created_at),
                allowed_actions=tuple(row.allowed_actions)
                if row.allowed_actions is not None
                else None,
            )
            for row in rows
        ]

    async def set_enabled(self, secret_id: str, enabled: bool) -> bool:
        """False when no such key exists."""
        status = KEY_ENABLED if enabled else KEY_DISABLED
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                api_keys.update().where(api_keys.c.secret_id == secret_id).values(status=status)
            )
        return result.rowcount > 0

    async def delete_key(self, secret_id: str) -> bool:
        """False when no such key exists."""
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(api_keys.delete().where(api_keys.c.secret_id == secret_id))
        return result.rowcount > 0

    async def find_active_key(self, secret_id: str) -> ActiveKey | None:
        """The enabled key with this SecretId; None for unknown, disabled and deleted keys."""
        # Signature checks read this: an outage answers InternalError.MainDBFail, not a crash.
        row = await read_row(self._engine, _ACTIVE_KEY, {"secret_id": secret_id})
        if row is None:
            return None
        return ActiveKey(
            secret_id=secret_id,
            secret_key=self._cipher.decrypt(row.secret_key_encrypted),
            account_id=int(row.id),
            account_name=row.name,
            app_id=int(row.app_id),
            read_only=bool(row.read_only),
            allowed_actions=frozenset(row.allowed_actions)
            if row.allowed_actions is not None
            else None,
        )
