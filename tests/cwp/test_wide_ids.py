"""Ids past 32 bits, up to 2^63 - 1, answer exactly as ids that do not exist, on SQLite and
PostgreSQL alike (a 32-bit column there would refuse to compare them: a MainDBFail)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.signed_requests import Signer
from vulfix.app import Application, build
from vulfix.inventory.validation import load_inventory
from vulfix.settings import load_settings
from vulfix.store.api_keys import ApiKeyStore
from vulfix.store.inventory_repository import InventoryStore
from vulfix.store.secret_cipher import SecretCipher, load_master_key

WIDE = [2**31, 2**32 + 1, 2**53 + 1, 2**63 - 1]
UNKNOWN = 99_999
DOCUMENT = {
    "hosts": [{"Quuid": "q-ok", "HostName": "web", "HostIp": "10.1.1.1", "OsFamily": "debian"}],
    "vulnerabilities": [
        {"VulId": 1, "VulName": "libfoo", "Packages": [{"Name": "libfoo", "FixedVersion": "2"}]}
    ],
    "findings": [{"Quuid": "q-ok", "VulId": 1}],
}


class Api:
    def __init__(self, app: Application, secret_id: str, secret_key: str) -> None:
        self.app, self.secret_id, self.secret_key = app, secret_id, secret_key

    async def answer(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        raw = Signer(self.secret_id, self.secret_key, host="cwp.test", action=action).tc3_post(
            json.dumps(params).encode()
        )
        transport = httpx.ASGITransport(app=self.app.asgi)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://cwp.test") as client:
            response = await client.post("/", headers=raw.headers, content=raw.body)
        answer: dict[str, Any] = response.json()["Response"]
        answer.pop("RequestId")
        return answer


@pytest.fixture
async def api(migrated_db_url: str) -> AsyncIterator[Api]:
    settings = load_settings(db=migrated_db_url, rate_limit=0)
    app = build(settings)
    key = await ApiKeyStore(app.engine, SecretCipher(load_master_key(settings))).create_key(
        "acme", read_only=False
    )
    now = app.engine_loop.clock.now()
    await InventoryStore(app.engine).import_document(
        "acme", load_inventory(json.dumps(DOCUMENT).encode()), now
    )
    yield Api(app, key.secret_id, key.secret_key)
    await app.engine.dispose()


def calls(id_: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """One call per id parameter that the store looks up, naming `id_`."""
    task = {"FixId": UNKNOWN, "Quuid": "q-ok"}
    return {
        "status by FixId": ("DescribeVulFixStatus", {"FixId": id_}),
        "status by VulId": ("DescribeVulFixStatus", {"VulId": id_}),
        "status by KbId": ("DescribeVulFixStatus", {"VulId": 1, "KbId": id_}),
        "create with VulId": (
            "CreateVulFix",
            {"CreateVulFixTaskQuuids": [{"Quuids": ["q-ok"], "VulId": id_}], "SaveDays": 1},
        ),
        "retry snapshot Id": ("RetryCreateSnapshot", {**task, "FixId": id_, "Id": id_}),
        "retry fix": ("RetryVulFix", {**task, "FixId": id_, "VulId": id_}),
        "can fix": ("DescribeCanFixVulMachine", {"VulIds": [id_]}),
        "host log": ("DescribeVulFixHostLog", {"FixId": id_, "Quuid": "q-ok", "VulId": id_}),
        "cancel": ("CancelVulFix", {"FixId": id_}),
    }


@pytest.mark.parametrize("wide", WIDE)
async def test_a_wide_id_answers_as_an_unknown_one(api: Api, wide: int) -> None:
    for name, (action, params) in calls(wide).items():
        expected_action, expected_params = calls(UNKNOWN)[name]
        expected = await api.answer(expected_action, expected_params)
        assert "InternalError" not in json.dumps(expected), (name, expected)
        answer = json.dumps(await api.answer(action, params), ensure_ascii=False)
        assert answer.replace(str(wide), str(UNKNOWN)) == json.dumps(
            expected, ensure_ascii=False
        ), name
