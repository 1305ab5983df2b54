"""Hot statements: on SQLite they run on the driver directly, and must read and write exactly
what SQLAlchemy would; on PostgreSQL they go through SQLAlchemy. Both engines in turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.fixing.errors import StorageUnavailable
from vulfix.store import hot_statements as hot
from vulfix.store.bounded_in import any_of
from vulfix.store.database import create_engine, read_transaction, write_transaction
from vulfix.store.inventory_tables import hosts, vulnerabilities
from vulfix.store.migrate import upgrade
from vulfix.store.tables import accounts, to_stored

SEEN = datetime(2026, 12, 5, 8, 30, 15, 250_000)

_ADD_ACCOUNT = insert(accounts).values(
    name=bindparam("name"), app_id=bindparam("app_id"), created_at=bindparam("created")
)
_ADD_VULNERABILITY = insert(vulnerabilities).values(
    account_id=bindparam("account"),
    vul_id=bindparam("vul"),
    vul_name="CVE-2026-0001 in libexample",
    vul_category=4,
    level="high",
    cve_ids=bindparam("cves"),
    fix_methods=[0],
    fix_tag=[],
    packages=bindparam("packages"),
    service="exampled",
    updated_at=bindparam("created"),
)
_VULNERABILITY = select(
    vulnerabilities.c.vul_id,
    vulnerabilities.c.packages,
    vulnerabilities.c.cve_ids,
    vulnerabilities.c.updated_at,
).where(vulnerabilities.c.account_id == bindparam("account"))
_RENAME = (
    update(vulnerabilities)
    .where(vulnerabilities.c.vul_id == bindparam("vul"), vulnerabilities.c.level == "high")
    .values(vul_name=bindparam("name"))
)
_LEVELS = select(vulnerabilities.c.vul_id).where(any_of(vulnerabilities.c.level, ["high", "low"]))
_EXPANDING = select(vulnerabilities.c.vul_id).where(vulnerabilities.c.vul_id.in_([1, 2]))
_SNAPSHOT_CAPABLE = select(hosts.c.id).where(hosts.c.snapshot_supported.is_(True))


async def _account(engine: AsyncEngine) -> int:
    async with write_transaction(engine) as conn:
        await hot.run(conn, _ADD_ACCOUNT, {"name": "a", "app_id": 7, "created": SEEN})
        account = await hot.run(conn, select(accounts.c.id), {})
        return int(account.scalar_one())


async def test_rows_read_and_written_are_what_sqlalchemy_reads_and_writes(
    engine: AsyncEngine,
) -> None:
    account = await _account(engine)
    packages = [{"Name": "libexample", "FixedVersion": "1.2.3"}]
    async with write_transaction(engine) as conn:
        for vul in (1, 2):
            parameters = {"account": account, "vul": vul, "created": SEEN, "packages": packages}
            await hot.run(conn, _ADD_VULNERABILITY, parameters | {"cves": [f"CVE-{vul}"]})
    async with read_transaction(engine) as conn:
        fast = (await hot.run(conn, _VULNERABILITY, {"account": account})).all()
        plain = (await conn.execute(_VULNERABILITY, {"account": account})).all()
    assert [tuple(row) for row in fast] == [tuple(row) for row in plain]
    first = fast[0]
    assert (first.vul_id, first.packages, first.cve_ids) == (1, packages, ["CVE-1"])
    assert first.updated_at == SEEN and isinstance(first.updated_at, datetime)


@pytest.mark.parametrize(
    "stored",
    [
        '[{"Name": "libexample", "FixedVersion": "1.2.3"}]',
        '["x\\u00e9", 123456789012345678901234567890, 1.5, null, {"a": 1, "a": 2}]',
        "[NaN, 1e400]",  # json.loads reads these; msgspec refuses them
        '["\\ud800"]',  # a lone surrogate, likewise
    ],
)
async def test_json_is_read_as_sqlalchemy_reads_it(sqlite_engine: AsyncEngine, stored: str) -> None:
    account = await _account(sqlite_engine)
    parameters = {"account": account, "vul": 1, "created": SEEN, "packages": [], "cves": []}
    async with write_transaction(sqlite_engine) as conn:
        await hot.run(conn, _ADD_VULNERABILITY, parameters)
        await conn.exec_driver_sql("UPDATE vulnerabilities SET packages = ?", (stored,))
    async with read_transaction(sqlite_engine) as conn:
        fast = (await hot.run(conn, _VULNERABILITY, {"account": account})).one()
        plain = (await conn.execute(_VULNERABILITY, {"account": account})).one()
    assert repr(fast.packages) == repr(plain.packages)  # repr: nan is not equal to itself


async def test_a_guarded_update_counts_the_rows_it_changed(engine: AsyncEngine) -> None:
    account = await _account(engine)
    parameters = {"account": account, "vul": 1, "created": SEEN, "packages": [], "cves": []}
    async with write_transaction(engine) as conn:
        await hot.run(conn, _ADD_VULNERABILITY, parameters)
        renamed = await hot.run(conn, _RENAME, {"vul": 1, "name": "renamed"})
        missing = await hot.run(conn, _RENAME, {"vul": 9, "name": "renamed"})
    assert (renamed.rowcount, missing.rowcount) == (1, 0)
    async with read_transaction(engine) as conn:
        name = select(vulnerabilities.c.vul_name)
        assert (await conn.execute(name)).scalar_one() == "renamed"


_RENAME_OR_DEFAULT = (
    update(vulnerabilities)
    .where(vulnerabilities.c.vul_id == bindparam("vul"), vulnerabilities.c.level == "high")
    .values(vul_name=bindparam("name", value="unnamed"), updated_at=bindparam("stamp"))
)


async def test_a_parameter_with_a_value_of_its_own_takes_it_unless_given(
    engine: AsyncEngine,
) -> None:
    account = await _account(engine)
    parameters = {"account": account, "vul": 1, "created": SEEN, "packages": [], "cves": []}
    later = SEEN + timedelta(minutes=1)
    names = select(vulnerabilities.c.vul_name, vulnerabilities.c.updated_at)
    async with write_transaction(engine) as conn:
        await hot.run(conn, _ADD_VULNERABILITY, parameters)
        await hot.run(conn, _RENAME_OR_DEFAULT, {"vul": 1, "stamp": later})
        assert tuple((await conn.execute(names)).one()) == ("unnamed", later)
        await hot.run(conn, _RENAME_OR_DEFAULT, {"vul": 1, "stamp": SEEN, "name": "given"})
        assert tuple((await conn.execute(names)).one()) == ("given", SEEN)
        with pytest.raises(StatementError, match="stamp"):
            await hot.run(conn, _RENAME_OR_DEFAULT, {"vul": 1})


async def test_fixed_lists_and_expanding_lists_select_alike(engine: AsyncEngine) -> None:
    account = await _account(engine)
    async with write_transaction(engine) as conn:
        for vul in (1, 2, 3):
            parameters = {"account": account, "vul": vul, "created": SEEN}
            await hot.run(conn, _ADD_VULNERABILITY, parameters | {"packages": [], "cves": []})
    async with read_transaction(engine) as conn:
        assert sorted((await hot.run(conn, _LEVELS, {})).scalars()) == [1, 2, 3]
        # Expanded on every execution: SQLAlchemy runs it, with the same result shape.
        assert sorted((await hot.run(conn, _EXPANDING, {})).scalars()) == [1, 2]


async def test_the_result_methods_hold_sqlalchemys_promises(engine: AsyncEngine) -> None:
    account = await _account(engine)
    async with write_transaction(engine) as conn:
        for vul in (1, 2):
            parameters = {"account": account, "vul": vul, "created": SEEN}
            await hot.run(conn, _ADD_VULNERABILITY, parameters | {"packages": [], "cves": []})
        none = await hot.run(conn, _VULNERABILITY, {"account": account + 1})
        assert none.first() is None and none.scalar() is None and none.all() == []
        with pytest.raises(NoResultFound):
            none.one()
        with pytest.raises(MultipleResultsFound):
            (await hot.run(conn, _VULNERABILITY, {"account": account})).one()
        assert (await hot.run(conn, _SNAPSHOT_CAPABLE, {})).all() == []


async def test_a_missing_parameter_is_an_error_before_anything_runs(engine: AsyncEngine) -> None:
    async with read_transaction(engine) as conn:
        with pytest.raises(StatementError, match="required for bind parameter 'account'"):
            await hot.run(conn, _VULNERABILITY, {})


async def test_a_driver_error_is_a_storage_failure_like_any_other(
    sqlite_engine: AsyncEngine,
) -> None:
    await _account(sqlite_engine)
    with pytest.raises(StorageUnavailable) as failure:
        async with write_transaction(sqlite_engine) as conn:
            # The same account name again: UNIQUE fails in the driver itself.
            await hot.run(conn, _ADD_ACCOUNT, {"name": "a", "app_id": 8, "created": SEEN})
    assert isinstance(failure.value.__cause__, DBAPIError)
    assert "UNIQUE" in str(failure.value.__cause__)


async def test_times_are_stored_in_sqlalchemys_format_to_the_microsecond(
    sqlite_engine: AsyncEngine,
) -> None:
    # sqlite3's own adapter would write a whole second without ".000000", and stored times
    # are compared as text: every time must be written the one way.
    whole_second = datetime(2026, 12, 5, 9, 0, 0)
    async with write_transaction(sqlite_engine) as conn:
        await hot.run(conn, _ADD_ACCOUNT, {"name": "hot", "app_id": 1, "created": whole_second})
        await conn.execute(_ADD_ACCOUNT, {"name": "plain", "app_id": 2, "created": whole_second})
        stored = await conn.exec_driver_sql("SELECT name, created_at FROM accounts ORDER BY name")
        assert dict(stored.all()) == {
            "hot": "2026-12-05 09:00:00.000000",
            "plain": "2026-12-05 09:00:00.000000",
        }


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 5, 9, 0, 0, 1),
        datetime(2026, 12, 5, 23, 59, 59, 999999),
        datetime(1, 1, 1),  # a four-digit year however small
        datetime(999, 3, 4, 5, 6, 7, 80),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(2026, 12, 5, 9, 0, 0, 120000, tzinfo=timezone(timedelta(hours=8))),
    ],
)
async def test_every_time_is_written_as_sqlalchemy_writes_it(
    sqlite_engine: AsyncEngine, moment: datetime
) -> None:
    async with write_transaction(sqlite_engine) as conn:
        await hot.run(conn, _ADD_ACCOUNT, {"name": "hot", "app_id": 1, "created": moment})
        await conn.execute(_ADD_ACCOUNT, {"name": "plain", "app_id": 2, "created": moment})
        stored = await conn.exec_driver_sql("SELECT name, created_at FROM accounts ORDER BY name")
        written = dict(stored.all())
    assert written["hot"] == written["plain"]
    assert written["hot"].startswith(f"{moment.year:04d}-")


async def test_a_time_written_again_and_again_is_written_right_each_time(
    sqlite_engine: AsyncEngine,
) -> None:
    now = datetime(2026, 12, 5, 9, 0, 0, 1, tzinfo=UTC)
    later = now + timedelta(seconds=1)
    same_value = datetime(2026, 12, 5, 9, 0, 0, 1, tzinfo=UTC)  # another object, equal
    written = [now, now, later, same_value, now, later]
    assert [to_stored(moment) for moment in written] == [
        moment.replace(tzinfo=None) for moment in written
    ]
    async with write_transaction(sqlite_engine) as conn:
        for n, moment in enumerate(written):
            created = to_stored(moment)
            await hot.run(conn, _ADD_ACCOUNT, {"name": f"a{n}", "app_id": n, "created": created})
        stored = await conn.exec_driver_sql("SELECT created_at FROM accounts ORDER BY name")
        texts = [row[0] for row in stored.all()]
    first, second = "2026-12-05 09:00:00.000001", "2026-12-05 09:00:01.000001"
    assert texts == [first, first, second, first, first, second]


async def test_transactions_on_two_databases_at_once_each_write_their_own(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other_url)
    other = create_engine(other_url)
    try:
        async with write_transaction(sqlite_engine) as first, write_transaction(other) as second:
            for n, conn in enumerate([first, second, second, first, second]):
                await hot.run(conn, _ADD_ACCOUNT, {"name": f"a{n}", "app_id": n, "created": SEEN})
        async with read_transaction(sqlite_engine) as conn:
            assert (await hot.run(conn, select(accounts.c.name), {})).scalars() == ["a0", "a3"]
        async with read_transaction(other) as conn:
            names = (await hot.run(conn, select(accounts.c.name), {})).scalars()
            assert names == ["a1", "a2", "a4"]
    finally:
        await other.dispose()


async def test_a_lone_read_sees_committed_rows_only(engine: AsyncEngine) -> None:
    account = await _account(engine)
    parameters = {"account": account, "vul": 1, "created": SEEN, "packages": [], "cves": []}
    assert await hot.read_first(engine, _VULNERABILITY, {"account": account}) is None
    async with write_transaction(engine) as conn:
        await hot.run(conn, _ADD_VULNERABILITY, parameters)
    row = await hot.read_first(engine, _VULNERABILITY, {"account": account})
    assert row is not None and (row.vul_id, row.updated_at) == (1, SEEN)


async def test_a_statement_built_per_call_is_never_mistaken_for_another(
    sqlite_engine: AsyncEngine,
) -> None:
    # Plans are kept by the statement's identity: a statement built anew (which may reuse a
    # dead one's id) must get its own.
    account = await _account(sqlite_engine)
    async with read_transaction(sqlite_engine) as conn:
        for _ in range(50):
            by_id = select(accounts.c.name).where(accounts.c.id == bindparam("id"))
            assert (await hot.run(conn, by_id, {"id": account})).scalar_one() == "a"
            by_name = select(accounts.c.id).where(accounts.c.name == bindparam("id"))
            assert (await hot.run(conn, by_name, {"id": "a"})).scalar_one() == account
