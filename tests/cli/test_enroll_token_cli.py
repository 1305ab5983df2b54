from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from vulfix.cli.enroll_token_commands import enroll_token_group
from vulfix.fixing.agent_port import EnrollmentRefused, HostFacts
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.database import create_engine

FACTS = HostFacts(None, "web-1", "10.0.0.5", "ubuntu", True)


@pytest.fixture(autouse=True)
def no_vulfix_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VULFIX_CONFIG", "VULFIX_DB"):
        monkeypatch.delenv(name, raising=False)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(enroll_token_group, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def enrol(db_url: str, token: str, now: datetime | None = None) -> str:
    async def run() -> str:
        engine = create_engine(db_url)
        try:
            enrolled = await SqlHostRegistry(engine).enroll(token, FACTS, now or datetime.now(UTC))
            return enrolled.quuid
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_create_json_prints_a_token_that_enrols_hosts(db_url: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = json.loads(invoke("create", "--db", db_url, "--account", "alice", "--json"))

    assert set(created) == {"Token", "Account", "ExpiresAt"} and created["Account"] == "alice"
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", created["Token"])
    expires = datetime.strptime(created["ExpiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + timedelta(hours=24) <= expires <= datetime.now(UTC) + timedelta(hours=24)
    assert enrol(db_url, created["Token"])


def test_ttl_hours_sets_the_expiry(db_url: str) -> None:
    created = json.loads(
        invoke("create", "--db", db_url, "--account", "a", "--ttl-hours", "0.5", "--json")
    )
    with pytest.raises(EnrollmentRefused, match="expired"):
        enrol(db_url, created["Token"], datetime.now(UTC) + timedelta(minutes=31))


def test_revoke_stops_the_token_enrolling(db_url: str) -> None:
    token = json.loads(invoke("create", "--db", db_url, "--account", "a", "--json"))["Token"]

    assert "revoked" in invoke("revoke", token, "--db", db_url)

    with pytest.raises(EnrollmentRefused, match="revoked"):
        enrol(db_url, token)


def test_human_output_and_errors(db_url: str) -> None:
    out = invoke("create", "--db", db_url, "--account", "alice")
    assert re.search(r"^Token:\s+\S{40,}$", out, re.MULTILINE)
    assert "will not be shown again" in out

    unknown = CliRunner().invoke(enroll_token_group, ["revoke", "vfe_nope", "--db", db_url])
    assert unknown.exit_code == 1 and "no such enrolment token" in unknown.output
    bad_ttl = CliRunner().invoke(
        enroll_token_group, ["create", "--db", db_url, "--account", "a", "--ttl-hours", "0"]
    )
    assert bad_ttl.exit_code == 2
    bad_account = CliRunner().invoke(
        enroll_token_group, ["create", "--db", db_url, "--account", " padded "]
    )
    assert bad_account.exit_code == 1 and "account name" in bad_account.output
