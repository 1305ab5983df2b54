"""Every error code each action documents (spec §2), provoked through the whole application:
the real ASGI app on a real SQLite database, called with signed requests."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.signed_requests import Signer
from vulfix.app import Application, build
from vulfix.fixing.agent_port import HostIdentity, JobResult
from vulfix.inventory.validation import load_inventory
from vulfix.settings import load_settings
from vulfix.store.api_keys import ApiKeyStore
from vulfix.store.change_freeze import ChangeFreezes
from vulfix.store.inventory_repository import InventoryStore
from vulfix.store.migrate import upgrade
from vulfix.store.secret_cipher import SecretCipher, load_master_key
from vulfix.store.tables import to_stored

HOSTS = ["q-ok", "q-two", "q-manual"]
DOCUMENT = {
    "hosts": [
        {"Quuid": q, "HostName": q, "HostIp": "10.1.1.1", "OsFamily": "debian"} for q in HOSTS
    ],
    "vulnerabilities": [
        {"VulId": 1, "VulName": "libfoo", "Packages": [{"Name": "libfoo", "FixedVersion": "2"}]},
        {"VulId": 2, "VulName": "libbar", "Packages": [{"Name": "libbar", "FixedVersion": "2"}]},
    ],
    "findings": [
        {"Quuid": "q-ok", "VulId": 1},
        {"Quuid": "q-two", "VulId": 1},
        {"Quuid": "q-two", "VulId": 2},
        {"Quuid": "q-manual", "VulId": 1, "IsSupportAutoFix": 3},
    ],
}


@dataclass
class World:
    app: Application
    keys: dict[str, tuple[str, str]]
    path: Path

    async def code(self, action: str, params: dict[str, Any] | bytes, key: str = "full") -> str:
        secret_id, secret_key = self.keys[key]
        body = params if isinstance(params, bytes) else json.dumps(params).encode()
        raw = Signer(secret_id, secret_key, host="cwp.local.test", action=action).tc3_post(body)
        transport = httpx.ASGITransport(app=self.app.asgi)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://cwp.local.test"
        ) as client:
            response = await client.post("/", headers=raw.headers, content=raw.body)
        assert (
            response.status_code == 200 and response.headers["content-type"] == "application/json"
        )
        answer = response.json()["Response"]
        return str(answer["Error"]["Code"]) if "Error" in answer else "Success"

    async def run_job(self, quuid: str, outcome: str) -> None:
        host = await self.host(quuid)
        now = self.app.engine_loop.clock.now()
        job = await self.app.fixing.next_job(host, now)
        assert job is not None
        await self.app.fixing.report(host, job.job_id, JobResult(outcome, "boom"), now)  # type: ignore[arg-type]

    async def host(self, quuid: str) -> HostIdentity:
        with sqlite3.connect(self.path) as db:
            host_id, account_id = db.execute(
                "SELECT id, account_id FROM hosts WHERE quuid = ?", (quuid,)
            ).fetchone()
            db.execute(
                "UPDATE hosts SET last_seen_at = ? WHERE id = ?",
                (str(to_stored(self.app.engine_loop.clock.now())), host_id),
            )
        return HostIdentity(host_id, account_id, quuid)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    path = tmp_path / "vulfix.db"
    settings = load_settings(db=f"sqlite:///{path}", rate_limit=0, snapshot_quota=1)
    upgrade(settings.db)
    app = build(settings)
    cipher = SecretCipher(load_master_key(settings))
    store = ApiKeyStore(app.engine, cipher)
    keys = {}
    for name, kwargs in {
        "full": {},
        "read_only": {"read_only": True},
        "create_only": {"read_only": False, "allowed_actions": ["CreateVulFix"]},
    }.items():
        new = await store.create_key("acme", **({"read_only": False} | kwargs))  # type: ignore[arg-type]
        keys[name] = (new.secret_id, new.secret_key)
    frozen = await store.create_key("frozen", read_only=False)
    keys["frozen"] = (frozen.secret_id, frozen.secret_key)
    inventory = InventoryStore(app.engine)
    now = app.engine_loop.clock.now()
    await inventory.import_document("acme", load_inventory(json.dumps(DOCUMENT).encode()), now)
    await inventory.import_document("frozen", load_inventory(json.dumps(DOCUMENT).encode()), now)
    await ChangeFreezes(app.engine).set_frozen("frozen", True, now)
    world = World(app, keys, path)
    for quuid in HOSTS:
        await world.host(quuid)
    yield world
    await app.engine.dispose()


def create(quuids: list[str], **extra: Any) -> dict[str, Any]:
    return {"CreateVulFixTaskQuuids": [{"Quuids": quuids, "VulId": 1}], "SaveDays": 1, **extra}


async def test_create_vul_fix_codes(world: World) -> None:
    code = world.code
    assert await code("CreateVulFix", b"{not json") == "InvalidParameter.ParsingError"
    assert (
        await code("CreateVulFix", create(["q-ok"], MaxErrors="many"))
        == "InvalidParameter.ParsingError"
    )
    assert (
        await code("CreateVulFix", {"CreateVulFixTaskQuuids": "q-ok", "SaveDays": 1})
        == "InvalidParameter"
    )
    assert await code("CreateVulFix", create(["bad quuid!"])) == "InvalidParameter.InvalidFormat"
    assert await code("CreateVulFix", create([""])) == "InvalidParameter.MissingParameter"
    no_item = {"CreateVulFixTaskQuuids": [{"Quuids": ["q-ok"]}], "SaveDays": 1}
    assert await code("CreateVulFix", no_item) == "InvalidParameter.MissingParameter"
    assert await code("CreateVulFix", create(["q-ok"], SaveDays=400)) == "InvalidParameterValue"
    assert await code("CreateVulFix", create(["nobody"])) == "InvalidParameterValue"
    assert await code("CreateVulFix", {"SaveDays": 1}) == "MissingParameter"
    assert await code("CreateVulFix", create(["q-ok"]), key="read_only") == "UnauthorizedOperation"
    assert await code("CreateVulFix", create(["q-manual"])) == "UnsupportedOperation"
    assert await code("CreateVulFix", create(["q-ok"]), key="frozen") == "UnsupportedOperation"
    assert await code("CreateVulFix", create(["q-ok"])) == "Success"


async def test_describe_vul_fix_status_codes(world: World) -> None:
    code = world.code
    assert await code("DescribeVulFixStatus", b"[1,") == "InvalidParameter.ParsingError"
    assert await code("DescribeVulFixStatus", {"FixId": "one"}) == "InvalidParameter"
    assert (
        await code("DescribeVulFixStatus", {"VulId": 1, "Quuid": "bad quuid!"})
        == "InvalidParameter.InvalidFormat"
    )
    assert (
        await code("DescribeVulFixStatus", {"Quuid": "q-ok"}) == "InvalidParameter.MissingParameter"
    )
    assert await code("DescribeVulFixStatus", {"FixId": 12345}) == "InvalidParameterValue"
    assert await code("DescribeVulFixStatus", {}) == "MissingParameter"
    assert (
        await code("DescribeVulFixStatus", {"FixId": 1}, key="create_only")
        == "UnauthorizedOperation"
    )


async def test_retry_create_snapshot_codes(world: World) -> None:
    code = world.code
    assert await code("CreateVulFix", create(["q-ok", "q-two"])) == "Success"
    retry = {"FixId": 1, "Quuid": "q-ok", "Id": 1}
    assert await code("RetryCreateSnapshot", b"{") == "InvalidParameter.ParsingError"
    assert await code("RetryCreateSnapshot", {**retry, "Id": "first"}) == "InvalidParameter"
    assert (
        await code("RetryCreateSnapshot", {**retry, "Quuid": "bad quuid!"})
        == "InvalidParameter.InvalidFormat"
    )
    assert (
        await code("RetryCreateSnapshot", {**retry, "Quuid": ""})
        == "InvalidParameter.MissingParameter"
    )
    assert await code("RetryCreateSnapshot", {"FixId": 1, "Quuid": "q-ok"}) == "MissingParameter"
    assert await code("RetryCreateSnapshot", retry) == "ResourceInUse"  # still being taken
    assert await code("RetryCreateSnapshot", {**retry, "Id": 999}) == "ResourceNotFound"
    await world.run_job("q-ok", "success")
    assert await code("RetryCreateSnapshot", retry) == "InvalidParameterValue"  # it succeeded
    await world.run_job("q-two", "failure")
    # q-two keeps no snapshot yet; give it one from an earlier task to reach the quota of 1.
    with sqlite3.connect(world.path) as db:
        db.execute(
            "INSERT INTO machine_snapshots (account_id, host_id, snapshot_id, snapshot_name,"
            " disk_id, provider_ref, created_at)"
            " SELECT account_id, id, 'snap-quota001', 'old', disk_id, '', ?"
            " FROM hosts WHERE quuid = 'q-two' AND account_id = 1",
            (str(to_stored(world.app.engine_loop.clock.now())),),
        )
    assert (
        await code("RetryCreateSnapshot", {"FixId": 1, "Quuid": "q-two", "Id": 2})
        == "ResourceInsufficient"
    )


async def test_retry_vul_fix_codes(world: World) -> None:
    code = world.code
    assert await code("CreateVulFix", create(["q-ok", "q-two"])) == "Success"
    await world.run_job("q-two", "failure")  # snapshot fails: its fixes are blocked (4)
    await world.run_job("q-ok", "success")
    retry = {"FixId": 1, "Quuid": "q-ok", "VulId": 1}
    assert await code("RetryVulFix", b"{") == "InvalidParameter.ParsingError"
    assert await code("RetryVulFix", {**retry, "VulId": "one"}) == "InvalidParameter"
    assert await code("RetryVulFix", {"FixId": 1}) == "MissingParameter"
    assert await code("RetryVulFix", {**retry, "FixId": 77}) == "ResourceNotFound"
    assert await code("RetryVulFix", {**retry, "Quuid": "q-two"}) == "ResourceUnavailable"
    assert await code("RetryVulFix", retry) == "InvalidParameterValue"  # waiting, not failed
    assert await code("RetryVulFix", retry, key="read_only") == "UnauthorizedOperation"


async def test_describe_can_fix_vul_machine_codes(world: World) -> None:
    code = world.code
    assert await code("DescribeCanFixVulMachine", b"{{") == "InvalidParameter.ParsingError"
    assert await code("DescribeCanFixVulMachine", {"VulIds": "1"}) == "InvalidParameter"
    assert (
        await code("DescribeCanFixVulMachine", {"VulIds": [1], "Quuids": [""]})
        == "InvalidParameter.MissingParameter"
    )
    assert await code("DescribeCanFixVulMachine", {"VulIds": [-1]}) == "InvalidParameterValue"
    assert await code("DescribeCanFixVulMachine", {}) == "MissingParameter"
    assert (
        await code("DescribeCanFixVulMachine", {"VulIds": [1]}, key="frozen") == "OperationDenied"
    )
    assert (
        await code("DescribeCanFixVulMachine", {"VulIds": [1]}, key="create_only")
        == "UnauthorizedOperation"
    )
    assert await code("DescribeCanFixVulMachine", {"VulIds": [1]}) == "Success"


async def test_describe_machine_snapshot_codes(world: World) -> None:
    code = world.code
    ask = {"Quuids": ["q-ok"], "Type": 0, "Limit": 10, "Offset": 0}
    assert await code("DescribeMachineSnapshot", {**ask, "Limit": "ten"}) == "InvalidParameter"
    assert (
        await code("DescribeMachineSnapshot", {**ask, "Quuids": ["bad quuid!"]})
        == "InvalidParameter.InvalidFormat"
    )
    assert (
        await code("DescribeMachineSnapshot", {**ask, "Quuids": [""]})
        == "InvalidParameter.MissingParameter"
    )
    assert await code("DescribeMachineSnapshot", {**ask, "Limit": 0}) == "InvalidParameterValue"
    assert await code("DescribeMachineSnapshot", {"Quuids": ["q-ok"]}) == "MissingParameter"
    assert await code("DescribeMachineSnapshot", ask, key="create_only") == "UnauthorizedOperation"
    assert await code("DescribeMachineSnapshot", ask) == "Success"


CALLS: dict[str, dict[str, Any]] = {
    "CreateVulFix": create(["q-ok"]),
    "DescribeVulFixStatus": {"FixId": 1},
    "RetryCreateSnapshot": {"FixId": 1, "Quuid": "q-ok", "Id": 1},
    "RetryVulFix": {"FixId": 1, "Quuid": "q-ok", "VulId": 1},
    "DescribeCanFixVulMachine": {"VulIds": [1]},
    "DescribeMachineSnapshot": {"Quuids": ["q-ok"], "Type": 0, "Limit": 10, "Offset": 0},
}


@pytest.mark.parametrize("action", sorted(CALLS))
async def test_a_broken_database_is_main_db_fail(
    world: World, action: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert (
        await world.code("DescribeVulFixStatus", {"FixId": 5}) == "InvalidParameterValue"
    )  # keys cached
    await world.app.engine.dispose()
    world.path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="vulfix.api"):
        assert await world.code(action, CALLS[action]) == "InternalError.MainDBFail"
    # The caller sees the code alone; the operator's log names the database's own error.
    (logged,) = [r for r in caplog.records if "InternalError.MainDBFail" in r.getMessage()]
    assert f"action={action}" in logged.getMessage()
    assert "DatabaseError: file is not a database" in logged.getMessage()
    # One line per failure: an outage answers thousands.
    assert logged.exc_info is None and "\n" not in logged.getMessage()


@pytest.mark.parametrize("action", sorted(CALLS))
async def test_an_unexpected_failure_is_internal_error(
    world: World, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("an unexpected bug")

    for name in ("read_transaction", "write_transaction", "read_row"):
        for module in (
            "vulfix.store.fixing_store",
            "vulfix.store.fix_task_reader",
            "vulfix.store.inventory_queries",
            "vulfix.store.change_freeze",
        ):
            monkeypatch.setattr(f"{module}.{name}", explode, raising=False)
    assert await world.code(action, CALLS[action]) == "InternalError"
