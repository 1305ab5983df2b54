"""The operator's change freeze on an account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.fixing.errors import ChangeFreeze
from vulfix.store.accounts import UnknownAccountError
from vulfix.store.database import read_transaction, write_transaction
from vulfix.store.tables import accounts, to_stored


async def frozen_since(conn: AsyncConnection, account_id: int) -> datetime | None:
    query = select(accounts.c.frozen_at).where(accounts.c.id == account_id)
    stamp: datetime | None = (await conn.execute(query)).scalar_one_or_none()
    return stamp


async def refuse_if_frozen(conn: AsyncConnection, account_id: int) -> None:
    if await frozen_since(conn, account_id) is not None:
        raise ChangeFreeze(
            "Changes are frozen for this account: no fix task may start until the freeze ends.",
            "该账号处于变更冻结期：冻结结束前不能发起修复任务。",
        )


class ChangeFreezes:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def is_frozen(self, account_id: int) -> bool:
        async with read_transaction(self.engine) as conn:
            return await frozen_since(conn, account_id) is not None

    async def set_frozen(self, account_name: str, frozen: bool, now: datetime) -> None:
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                update(accounts)
                .where(accounts.c.name == account_name)
                .values(frozen_at=to_stored(now) if frozen else None)
            )
            if result.rowcount != 1:
                raise UnknownAccountError(f"No account named {account_name!r}.")
