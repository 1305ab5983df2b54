"""Enrolment tokens and host identities: the store side of the `HostRegistry` port.

Neither kind of token is stored, only its SHA-256: a leaked database does not let anyone
enrol a host or speak as one. Tokens are long random strings, so an unsalted hash is enough.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.fixing.agent_port import Enrollment, EnrollmentRefused, HostFacts, HostIdentity
from vulfix.store import hot_statements as hot
from vulfix.store.accounts import account_named, check_account_name, retry_on_conflict
from vulfix.store.batched_lookup import BatchedLookup
from vulfix.store.database import read_rows, write_transaction
from vulfix.store.fixing_tables import enrollment_tokens
from vulfix.store.group_commit import GroupCommit
from vulfix.store.inventory_tables import hosts
from vulfix.store.tables import to_stored

ENROLL_TOKEN_PREFIX = "vfe_"  # noqa: S105 (a public prefix that makes leaked tokens greppable)
HOST_TOKEN_PREFIX = "vfh_"  # noqa: S105
# Longer presented tokens are refused before hashing: ours are 47 characters.
MAX_TOKEN_LENGTH = 256
DEFAULT_MACHINE_TYPE = "Other"
DEFAULT_REGION_ID = 1
LOWER_ALNUM = string.ascii_lowercase + string.digits
# Column widths of `hosts`, checked here so PostgreSQL never sees an over-long value.
FACT_LIMITS = {
    "quuid": 128,
    "host_name": 255,
    "host_ip": 64,
    "os_family": 32,
    "machine_type": 16,
    "instance_id": 128,
}
# Bounds on the in-process caches (entries); past them a cache starts afresh.
MAX_CACHED = 200_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _random_suffix(length: int = 8) -> str:
    return "".join(secrets.choice(LOWER_ALNUM) for _ in range(length))


def _check_facts(facts: HostFacts) -> None:
    for name, limit in FACT_LIMITS.items():
        value = getattr(facts, name)
        if value is not None and len(value) > limit:
            raise EnrollmentRefused(f"{name} is longer than {limit} characters")
    for name in ("host_name", "os_family"):
        if not getattr(facts, name).strip():
            raise EnrollmentRefused(f"{name} is empty")
    if facts.quuid is not None and not facts.quuid.strip():
        raise EnrollmentRefused("quuid is empty")


# The two statements behind every agent request, built once.
_IDENTITY = (hosts.c.host_token_hash, hosts.c.id, hosts.c.account_id, hosts.c.quuid)
_HOST_BY_TOKEN = select(*_IDENTITY).where(hosts.c.host_token_hash == bindparam("token_hash"))
_HOSTS_BY_TOKENS = select(*_IDENTITY).where(
    hosts.c.host_token_hash.in_(bindparam("token_hashes", expanding=True))
)
_TOUCH = (
    update(hosts)
    .where(
        hosts.c.id == bindparam("host"),
        # Never moves backwards when replicas' clocks disagree a little.
        or_(hosts.c.last_seen_at.is_(None), hosts.c.last_seen_at < bindparam("seen")),
    )
    .values(last_seen_at=bindparam("seen"))
)


class SqlHostRegistry:
    """Enrolment tokens, enrolment, and host-token authentication over SQLAlchemy Core.

    Two small in-process caches keep the database off the agents' hot path:
    `authenticate` remembers a token's host for `auth_cache_seconds` (a re-enrolment through
    this process forgets the old token at once; other replicas within that time), and
    `touch` writes at most once per `touch_interval` per host, far below the 90 s after
    which a silent agent counts as offline; on SQLite the write is queued for the next shared
    transaction (within `group_commit.SOON`), and the request does not wait for it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        auth_cache_seconds: float = 30.0,
        touch_interval: timedelta = timedelta(seconds=10),
        writes: GroupCommit | None = None,
    ) -> None:
        self._engine = engine
        # Last-seen times join the agents' shared transactions (the fixing store's) if given.
        self._writes = writes or GroupCommit(engine)
        self._auth_cache_seconds = auth_cache_seconds
        self._touch_interval = touch_interval
        self._identities: dict[str, tuple[HostIdentity, float]] = {}
        self._lookups = BatchedLookup(self._identities_of)
        self._last_touched: dict[int, datetime] = {}

    async def create_enrollment_token(
        self, account_name: str, ttl: timedelta, now: datetime
    ) -> str:
        """A new token that enrols hosts into the account (created if missing) until now + ttl."""
        check_account_name(account_name)
        if ttl <= timedelta(0):
            raise ValueError("an enrolment token needs a positive lifetime")
        token = ENROLL_TOKEN_PREFIX + secrets.token_urlsafe(32)
        await retry_on_conflict(
            lambda: self._insert_enrollment_token(account_name, token, ttl, now)
        )
        return token

    async def _insert_enrollment_token(
        self, account_name: str, token: str, ttl: timedelta, now: datetime
    ) -> None:
        async with write_transaction(self._engine) as conn:
            account = await account_named(conn, account_name)
            await conn.execute(
                insert(enrollment_tokens).values(
                    account_id=account.id,
                    token_hash=token_hash(token),
                    created_at=to_stored(now),
                    expires_at=to_stored(now + ttl),
                )
            )

    async def revoke_enrollment_token(self, token: str, now: datetime) -> bool:
        """Stops the token enrolling hosts (hosts it enrolled keep working); False if unknown."""
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                update(enrollment_tokens)
                .where(enrollment_tokens.c.token_hash == token_hash(token))
                # Revoking twice keeps the first time.
                .values(revoked_at=func.coalesce(enrollment_tokens.c.revoked_at, to_stored(now)))
            )
        return result.rowcount > 0

    async def enroll(self, token: str, facts: HostFacts, now: datetime) -> Enrollment:
        _check_facts(facts)
        if len(token) > MAX_TOKEN_LENGTH:
            raise EnrollmentRefused("unknown enrolment token")
        # Two agents creating one Quuid at once (PostgreSQL): the next try claims it.
        return await retry_on_conflict(lambda: self._enroll_once(token, facts, now))

    async def _enroll_once(self, token: str, facts: HostFacts, now: datetime) -> Enrollment:
        host_token = HOST_TOKEN_PREFIX + secrets.token_urlsafe(32)
        stored_now = to_stored(now)
        async with write_transaction(self._engine) as conn:
            account_id = await self._enrolling_account(conn, token, stored_now)
            claimed = None
            if facts.quuid is not None:
                claimed = (
                    await conn.execute(
                        select(hosts.c.id, hosts.c.host_token_hash).where(
                            hosts.c.account_id == account_id, hosts.c.quuid == facts.quuid
                        )
                    )
                ).first()
            refreshed = {
                "host_name": facts.host_name,
                "host_ip": facts.host_ip,
                "os_family": facts.os_family,
                "snapshot_supported": facts.snapshot_supported,
                "host_token_hash": token_hash(host_token),
                "enrolled_at": stored_now,
                "last_seen_at": stored_now,
                "updated_at": stored_now,
            }
            if claimed is not None:
                await conn.execute(update(hosts).where(hosts.c.id == claimed.id).values(refreshed))
                host_id, quuid = int(claimed.id), str(facts.quuid)
                replaced: str | None = claimed.host_token_hash
            else:
                quuid = facts.quuid or str(uuid.uuid4())
                created = await conn.execute(
                    insert(hosts)
                    .values(
                        account_id=account_id,
                        quuid=quuid,
                        uuid=str(uuid.uuid4()),
                        instance_id=facts.instance_id or f"ins-{_random_suffix()}",
                        machine_type=facts.machine_type or DEFAULT_MACHINE_TYPE,
                        tags=[],
                        region_id=DEFAULT_REGION_ID,
                        disk_id=f"disk-{_random_suffix()}",
                        created_at=stored_now,
                        **refreshed,
                    )
                    .returning(hosts.c.id)
                )
                host_id, replaced = int(created.scalar_one()), None
        if replaced is not None:
            # The old token stops working here at once, not when its cache entry runs out.
            self._identities.pop(replaced, None)
        return Enrollment(host_id, account_id, quuid, host_token)

    async def _enrolling_account(self, conn: AsyncConnection, token: str, now: datetime) -> int:
        row = (
            await conn.execute(
                select(
                    enrollment_tokens.c.account_id,
                    enrollment_tokens.c.expires_at,
                    enrollment_tokens.c.revoked_at,
                ).where(enrollment_tokens.c.token_hash == token_hash(token))
            )
        ).first()
        if row is None:
            raise EnrollmentRefused("unknown enrolment token")
        if row.revoked_at is not None:
            raise EnrollmentRefused("the enrolment token was revoked")
        if row.expires_at <= now:
            raise EnrollmentRefused("the enrolment token has expired")
        return int(row.account_id)

    async def authenticate(self, host_token: str) -> HostIdentity | None:
        if not host_token or len(host_token) > MAX_TOKEN_LENGTH:
            return None
        hashed = token_hash(host_token)
        cached = self._identities.get(hashed)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        identity = await self._lookups.find(hashed)
        if identity is None:
            self._identities.pop(hashed, None)
            return None
        if self._auth_cache_seconds > 0:
            if len(self._identities) >= MAX_CACHED:
                self._identities.clear()
            self._identities[hashed] = (identity, time.monotonic() + self._auth_cache_seconds)
        return identity

    async def _identities_of(self, hashes: list[str]) -> dict[str, HostIdentity]:
        """The hosts of the tokens hashed, read together (`BatchedLookup`); one alone
        takes the hot statement, which costs a fraction of a list's."""
        rows: Sequence[Any]
        if len(hashes) == 1:
            row = await hot.read_first(self._engine, _HOST_BY_TOKEN, {"token_hash": hashes[0]})
            rows = [] if row is None else [row]
        else:
            rows = await read_rows(self._engine, _HOSTS_BY_TOKENS, {"token_hashes": hashes})
        return {
            row.host_token_hash: HostIdentity(int(row.id), int(row.account_id), row.quuid)
            for row in rows
        }

    async def flush(self) -> None:
        """Returns once the last-seen times `touch` queued so far are written."""
        await self._writes.flush()

    async def touch(self, host: HostIdentity, now: datetime) -> None:
        last = self._last_touched.get(host.host_id)
        if last is not None and last <= now < last + self._touch_interval:
            return
        # Nobody waits for it: it joins the next shared transaction (`GroupCommit.write_soon`).
        await self._writes.write_soon(_TOUCH, {"host": host.host_id, "seen": to_stored(now)})
        if len(self._last_touched) >= MAX_CACHED:
            self._last_touched.clear()
        self._last_touched[host.host_id] = now
