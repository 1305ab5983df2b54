from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.fixing.agent_port import EnrollmentRefused, HostFacts, HostIdentity
from vulfix.store.accounts import InvalidAccountNameError, account_named
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.database import write_transaction
from vulfix.store.fixing_tables import enrollment_tokens
from vulfix.store.inventory_tables import hosts
from vulfix.store.tables import accounts

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def facts(quuid: str | None = None, **changes: Any) -> HostFacts:
    values: dict[str, Any] = {
        "quuid": quuid,
        "host_name": "web-1",
        "host_ip": "10.0.0.5",
        "os_family": "ubuntu",
        "snapshot_supported": True,
    }
    return HostFacts(**(values | changes))


@pytest.fixture
def registry(engine: AsyncEngine) -> SqlHostRegistry:
    return SqlHostRegistry(engine, auth_cache_seconds=0, touch_interval=timedelta(0))


async def host_row(engine: AsyncEngine, host_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(hosts).where(hosts.c.id == host_id))).one()


async def insert_imported_host(engine: AsyncEngine, account: str, quuid: str) -> int:
    stored_now = NOW.replace(tzinfo=None)
    async with write_transaction(engine) as conn:
        owner = await account_named(conn, account)
        result = await conn.execute(
            insert(hosts)
            .values(
                account_id=owner.id,
                quuid=quuid,
                uuid="imported-uuid",
                host_name="old-name",
                host_ip="192.168.1.1",
                instance_id="ins-imported",
                machine_type="CVM",
                os_family="centos",
                tags=["prod"],
                region_id=4,
                disk_id="disk-imported",
                snapshot_supported=False,
                created_at=stored_now,
                updated_at=stored_now,
            )
            .returning(hosts.c.id)
        )
        return int(result.scalar_one())


async def test_tokens_are_random_and_only_their_hash_is_stored(
    registry: SqlHostRegistry, engine: AsyncEngine
) -> None:
    first = await registry.create_enrollment_token("alice", DAY, NOW)
    second = await registry.create_enrollment_token("alice", DAY, NOW)

    assert first != second
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", first)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(enrollment_tokens))).all()
    assert {row.token_hash for row in stored} == {
        hashlib.sha256(token.encode()).hexdigest() for token in (first, second)
    }
    assert stored[0].expires_at == (NOW + DAY).replace(tzinfo=None)


async def test_creating_a_token_creates_its_account_once(
    registry: SqlHostRegistry, engine: AsyncEngine
) -> None:
    await registry.create_enrollment_token("alice", DAY, NOW)
    await registry.create_enrollment_token("alice", DAY, NOW)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(accounts)) == 1
    with pytest.raises(InvalidAccountNameError):
        await registry.create_enrollment_token(" bad ", DAY, NOW)


async def test_enrol_refuses_unknown_expired_and_revoked_tokens(registry: SqlHostRegistry) -> None:
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    with pytest.raises(EnrollmentRefused, match="unknown"):
        await registry.enroll("vfe_nonsense", facts(), NOW)
    with pytest.raises(EnrollmentRefused, match="expired"):
        await registry.enroll(token, facts(), NOW + DAY)
    await registry.enroll(token, facts(), NOW + DAY - timedelta(seconds=1))

    assert await registry.revoke_enrollment_token(token, NOW)
    with pytest.raises(EnrollmentRefused, match="revoked"):
        await registry.enroll(token, facts(), NOW)
    assert await registry.revoke_enrollment_token(token, NOW), "revoking twice is fine"
    assert not await registry.revoke_enrollment_token("vfe_unknown", NOW)


async def test_enrol_without_quuid_creates_a_host_in_the_tokens_account(
    registry: SqlHostRegistry, engine: AsyncEngine
) -> None:
    token = await registry.create_enrollment_token("alice", DAY, NOW)

    enrolled = await registry.enroll(token, facts(), NOW)

    row = await host_row(engine, enrolled.host_id)
    assert re.fullmatch(r"[0-9a-f-]{36}", enrolled.quuid) and row.quuid == enrolled.quuid
    assert re.fullmatch(r"[0-9a-f-]{36}", row.uuid) and row.uuid != row.quuid
    assert re.fullmatch(r"ins-[a-z0-9]{8}", row.instance_id)
    assert re.fullmatch(r"disk-[a-z0-9]{8}", row.disk_id)
    assert (row.host_name, row.host_ip, row.os_family) == ("web-1", "10.0.0.5", "ubuntu")
    assert (row.machine_type, row.region_id, row.tags, row.snapshot_supported) == (
        "Other",
        1,
        [],
        True,
    )
    assert row.enrolled_at == row.last_seen_at == NOW.replace(tzinfo=None)
    assert row.host_token_hash == hashlib.sha256(enrolled.host_token.encode()).hexdigest()
    async with engine.connect() as conn:
        alice = await conn.scalar(select(accounts.c.id).where(accounts.c.name == "alice"))
    assert row.account_id == enrolled.account_id == alice


async def test_enrol_with_an_unknown_quuid_creates_the_host_under_that_quuid(
    registry: SqlHostRegistry, engine: AsyncEngine
) -> None:
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    enrolled = await registry.enroll(
        token, facts("q-new", machine_type="BM", instance_id="ins-given1"), NOW
    )
    row = await host_row(engine, enrolled.host_id)
    assert (enrolled.quuid, row.quuid, row.machine_type, row.instance_id) == (
        "q-new",
        "q-new",
        "BM",
        "ins-given1",
    )


async def test_enrol_claims_an_imported_host_of_the_same_account(
    registry: SqlHostRegistry, engine: AsyncEngine
) -> None:
    imported = await insert_imported_host(engine, "alice", "q-1")
    token = await registry.create_enrollment_token("alice", DAY, NOW)

    enrolled = await registry.enroll(token, facts("q-1", machine_type="BM"), NOW + DAY / 2)

    assert enrolled.host_id == imported
    row = await host_row(engine, imported)
    # What the agent knows wins; what the import said about the cloud stays.
    assert (row.host_name, row.host_ip, row.os_family, row.snapshot_supported) == (
        "web-1",
        "10.0.0.5",
        "ubuntu",
        True,
    )
    assert (row.uuid, row.instance_id, row.machine_type, row.tags, row.region_id) == (
        "imported-uuid",
        "ins-imported",
        "CVM",
        ["prod"],
        4,
    )
    assert row.enrolled_at == (NOW + DAY / 2).replace(tzinfo=None)


async def test_a_quuid_of_another_account_is_not_claimed(
    registry: SqlHostRegistry, engine: AsyncEngine
) -> None:
    bobs = await insert_imported_host(engine, "bob", "q-1")
    token = await registry.create_enrollment_token("alice", DAY, NOW)

    enrolled = await registry.enroll(token, facts("q-1"), NOW)

    assert enrolled.host_id != bobs
    assert (await host_row(engine, bobs)).host_token_hash is None
    assert (await host_row(engine, enrolled.host_id)).quuid == "q-1"


async def test_re_enrolment_rotates_the_host_token(registry: SqlHostRegistry) -> None:
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    first = await registry.enroll(token, facts("q-1"), NOW)
    second = await registry.enroll(token, facts("q-1", host_name="web-1b"), NOW)

    assert second.host_id == first.host_id
    assert second.host_token != first.host_token
    assert await registry.authenticate(first.host_token) is None
    assert await registry.authenticate(second.host_token) == HostIdentity(
        first.host_id, first.account_id, "q-1"
    )


async def test_re_enrolment_also_forgets_a_cached_old_token(engine: AsyncEngine) -> None:
    registry = SqlHostRegistry(engine)  # caches identities
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    first = await registry.enroll(token, facts("q-1"), NOW)
    assert await registry.authenticate(first.host_token) is not None

    await registry.enroll(token, facts("q-1"), NOW)

    assert await registry.authenticate(first.host_token) is None


async def forget_tokens(engine: AsyncEngine) -> None:
    """The store no longer knows any host token: whatever `authenticate` still answers, it
    answers from memory."""
    async with write_transaction(engine) as conn:
        await conn.execute(update(hosts).values(host_token_hash=None))


async def test_a_host_is_remembered_only_once_authenticated_and_not_after_re_enrolment(
    engine: AsyncEngine,
) -> None:
    registry = SqlHostRegistry(engine)  # caches identities
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    first = await registry.enroll(token, facts("q-1"), NOW)
    other = await registry.enroll(token, facts("q-2"), NOW)
    host = await registry.authenticate(first.host_token)
    assert host is not None

    second = await registry.enroll(token, facts("q-1"), NOW)
    assert await registry.authenticate(first.host_token) is None, "forgotten at re-enrolment"
    assert await registry.authenticate(second.host_token) == host

    await forget_tokens(engine)
    assert await registry.authenticate(second.host_token) == host, "answered from memory"
    assert await registry.authenticate(other.host_token) is None, "enrolled, never read"


async def test_tokens_asked_together_are_read_in_one_statement_and_remembered(
    engine: AsyncEngine,
) -> None:
    """A fleet woken at once: the tokens the registry does not remember are read together,
    each answered as alone (a replaced or unknown token is refused), and remembered after."""
    registry = SqlHostRegistry(engine)  # caches identities
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    enrolled = [await registry.enroll(token, facts(f"q-{n}"), NOW) for n in range(4)]
    replaced = enrolled[0]
    enrolled[0] = await registry.enroll(token, facts("q-0"), NOW)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        statements.append(sql)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        asked = [replaced.host_token, *(e.host_token for e in enrolled), "vfh_unknown"]
        found = await asyncio.gather(*(registry.authenticate(t) for t in asked))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)

    identities = [HostIdentity(e.host_id, e.account_id, f"q-{n}") for n, e in enumerate(enrolled)]
    assert found == [None, *identities, None]
    assert len([sql for sql in statements if "FROM hosts" in sql]) == 1
    await forget_tokens(engine)
    again = await asyncio.gather(*(registry.authenticate(t) for t in asked))
    assert again == [None, *identities, None], "the hosts found are remembered, no others"


async def test_nothing_is_remembered_without_a_cache(
    engine: AsyncEngine, registry: SqlHostRegistry
) -> None:
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    enrolled = await registry.enroll(token, facts("q-1"), NOW)
    assert await registry.authenticate(enrolled.host_token) is not None
    await forget_tokens(engine)
    assert await registry.authenticate(enrolled.host_token) is None


async def test_authenticate_refuses_unknown_and_absurd_tokens(registry: SqlHostRegistry) -> None:
    assert await registry.authenticate("") is None
    assert await registry.authenticate("vfh_unknown") is None
    assert await registry.authenticate("x" * 10_000) is None


async def test_over_long_or_empty_facts_are_refused(registry: SqlHostRegistry) -> None:
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    with pytest.raises(EnrollmentRefused, match="host_name"):
        await registry.enroll(token, facts(host_name="h" * 256), NOW)
    with pytest.raises(EnrollmentRefused, match="os_family"):
        await registry.enroll(token, facts(os_family=" "), NOW)
    with pytest.raises(EnrollmentRefused, match="quuid"):
        await registry.enroll(token, facts("q" * 129), NOW)


async def test_touch_records_when_the_agent_was_last_seen(
    registry: SqlHostRegistry, engine: AsyncEngine
) -> None:
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    enrolled = await registry.enroll(token, facts(), NOW)
    host = HostIdentity(enrolled.host_id, enrolled.account_id, enrolled.quuid)

    await registry.touch(host, NOW + timedelta(minutes=5))
    await registry.flush()
    assert (await host_row(engine, host.host_id)).last_seen_at == NOW.replace(
        tzinfo=None
    ) + timedelta(minutes=5)

    await registry.touch(host, NOW + timedelta(minutes=1))
    await registry.flush()
    assert (await host_row(engine, host.host_id)).last_seen_at == NOW.replace(
        tzinfo=None
    ) + timedelta(minutes=5), "last_seen_at never moves backwards"


async def test_touch_writes_at_most_once_per_interval(engine: AsyncEngine) -> None:
    registry = SqlHostRegistry(engine, touch_interval=timedelta(seconds=10))
    token = await registry.create_enrollment_token("alice", DAY, NOW)
    enrolled = await registry.enroll(token, facts(), NOW)
    host = HostIdentity(enrolled.host_id, enrolled.account_id, enrolled.quuid)

    await registry.touch(host, NOW + timedelta(seconds=20))
    await registry.touch(host, NOW + timedelta(seconds=25))
    await registry.flush()
    assert (await host_row(engine, host.host_id)).last_seen_at == (
        NOW + timedelta(seconds=20)
    ).replace(tzinfo=None)

    await registry.touch(host, NOW + timedelta(seconds=30))
    await registry.flush()
    assert (await host_row(engine, host.host_id)).last_seen_at == (
        NOW + timedelta(seconds=30)
    ).replace(tzinfo=None)
