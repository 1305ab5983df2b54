"""Accounts: names, AppIds, and finding or creating one inside a caller's transaction.

Shared by every repository that creates an account on first use (API keys, agent
enrolment, inventory import).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.fixing.errors import StorageUnavailable
from vulfix.store.row_locks import serialise_account_creation
from vulfix.store.tables import FIRST_APP_ID, accounts, utc_now

MAX_ACCOUNT_NAME = 64
# Concurrent writers on PostgreSQL may still collide on a unique key (two agents enrolling
# one new Quuid); SQLite writers are serialised by BEGIN IMMEDIATE and never collide.
CREATE_ATTEMPTS = 5
T = TypeVar("T")


class InvalidAccountNameError(ValueError):
    """The account name is empty, too long, or has surrounding or unprintable characters."""


class UnknownAccountError(LookupError):
    """No account has this id."""


@dataclass(frozen=True, slots=True)
class AccountRef:
    id: int
    app_id: int


def check_account_name(name: str) -> None:
    if not name or len(name) > MAX_ACCOUNT_NAME or name != name.strip() or not name.isprintable():
        raise InvalidAccountNameError(
            f"account name must be 1-{MAX_ACCOUNT_NAME} printable characters "
            f"without surrounding spaces, not {name!r}"
        )


async def _find_by_name(conn: AsyncConnection, name: str) -> AccountRef | None:
    row = (
        await conn.execute(select(accounts.c.id, accounts.c.app_id).where(accounts.c.name == name))
    ).first()
    return None if row is None else AccountRef(int(row.id), int(row.app_id))


async def account_named(conn: AsyncConnection, name: str) -> AccountRef:
    """The named account, created if missing (the caller has checked the name).

    On PostgreSQL creators take turns (`serialise_account_creation`), so two replicas
    creating accounts at once never both pick the next AppId nor both insert one name.
    """
    found = await _find_by_name(conn, name)
    if found is not None:
        return found
    await serialise_account_creation(conn)
    found = await _find_by_name(conn, name)  # created while this transaction waited
    if found is not None:
        return found
    # AppIds count up from FIRST_APP_ID in creation order.
    next_app_id = select(
        func.coalesce(func.max(accounts.c.app_id), FIRST_APP_ID - 1) + 1
    ).scalar_subquery()
    await conn.execute(insert(accounts).values(name=name, app_id=next_app_id, created_at=utc_now()))
    created = await _find_by_name(conn, name)
    assert created is not None
    return created


async def ensure_account(conn: AsyncConnection, name: str) -> tuple[int, int]:
    """(id, app_id) of the named account, created if missing."""
    account = await account_named(conn, name)
    return account.id, account.app_id


async def account_with_id(conn: AsyncConnection, account_id: int) -> AccountRef:
    row = (
        await conn.execute(
            select(accounts.c.id, accounts.c.app_id).where(accounts.c.id == account_id)
        )
    ).first()
    if row is None:
        raise UnknownAccountError(f"no account with id {account_id}")
    return AccountRef(int(row.id), int(row.app_id))


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]]) -> T:
    """Runs the transaction `attempt`, again when a concurrent writer took a unique key
    first: the next try sees that writer's row. Other failures pass through."""
    for _ in range(CREATE_ATTEMPTS - 1):
        try:
            return await attempt()
        except StorageUnavailable as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
    return await attempt()
