from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.cli.conftest import VULFIX, RunVulfix


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _list(vulfix: RunVulfix, db_url: str, *extra: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        _ok(vulfix("keys", "list", "--db", db_url, "--json", *extra))
    )
    return rows


def test_create_json_prints_one_object_with_the_new_pair(vulfix: RunVulfix, db_url: str) -> None:
    out = _ok(vulfix("keys", "create", "--db", db_url, "--account", "alice", "--json"))
    created = json.loads(out)
    assert set(created) == {"Account", "AppId", "SecretId", "SecretKey"}
    assert created["Account"] == "alice"
    assert isinstance(created["AppId"], int) and created["AppId"] > 1_250_000_000
    assert re.fullmatch(r"AKID[A-Za-z0-9]{32}", created["SecretId"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", created["SecretKey"])


def test_list_json_shows_keys_without_secrets(vulfix: RunVulfix, db_url: str) -> None:
    alice = json.loads(
        _ok(vulfix("keys", "create", "--db", db_url, "--account", "alice", "--json"))
    )
    bob = json.loads(
        _ok(vulfix("keys", "create", "--db", db_url, "--account", "bob", "--read-only", "--json"))
    )

    rows = _list(vulfix, db_url)

    assert [(r["Account"], r["SecretId"], r["ReadOnly"], r["Status"]) for r in rows] == [
        ("alice", alice["SecretId"], False, "enabled"),
        ("bob", bob["SecretId"], True, "enabled"),
    ]
    assert rows[1]["AppId"] == bob["AppId"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0]["CreatedAt"])
    assert all("SecretKey" not in row for row in rows)
    assert alice["SecretKey"] not in json.dumps(rows)
    assert [r["SecretId"] for r in _list(vulfix, db_url, "--account", "bob")] == [bob["SecretId"]]


def test_disable_enable_delete(vulfix: RunVulfix, db_url: str) -> None:
    key = json.loads(_ok(vulfix("keys", "create", "--db", db_url, "--account", "a", "--json")))
    secret_id = key["SecretId"]

    assert secret_id in _ok(vulfix("keys", "disable", secret_id, "--db", db_url))
    assert [r["Status"] for r in _list(vulfix, db_url)] == ["disabled"]

    _ok(vulfix("keys", "enable", secret_id, "--db", db_url))
    assert [r["Status"] for r in _list(vulfix, db_url)] == ["enabled"]

    _ok(vulfix("keys", "delete", secret_id, "--db", db_url))
    assert _list(vulfix, db_url) == []


def test_unknown_secret_id_is_a_clean_error(vulfix: RunVulfix, db_url: str) -> None:
    for command in ("disable", "enable", "delete"):
        result = vulfix("keys", command, "AKIDnosuchkey", "--db", db_url)
        assert result.returncode == 1
        assert "AKIDnosuchkey" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_bad_input_is_a_clean_error(vulfix: RunVulfix, db_url: str, tmp_path: Path) -> None:
    (tmp_path / "garbage.key").write_text("not a key")
    (tmp_path / "typo.toml").write_text("databse = 'sqlite:///x.db'\n")
    for args in (
        ("keys", "list", "--config", str(tmp_path / "typo.toml")),
        ("keys", "create", "--db", "mysql://x/y", "--account", "a"),
        ("keys", "create", "--db", db_url, "--account", " spaced "),
        ("keys", "list", "--db", db_url, "--master-key-file", str(tmp_path / "garbage.key")),
    ):
        result = vulfix(*args)
        assert result.returncode == 1, args
        assert result.stderr.startswith("Error: "), args
        assert "Traceback" not in result.stderr + result.stdout


def test_plain_output_is_readable(vulfix: RunVulfix, db_url: str) -> None:
    out = _ok(vulfix("keys", "create", "--db", db_url, "--account", "alice", "--read-only"))
    secret_id = re.search(r"SecretId:\s+(AKID\w+)", out)
    assert secret_id is not None and "read-only" in out
    table = _ok(vulfix("keys", "list", "--db", db_url))
    assert secret_id.group(1) in table  # never truncated, even without a terminal


def test_database_comes_from_the_environment_or_a_config_file(
    vulfix: RunVulfix, tmp_path: Path
) -> None:
    from_env = f"sqlite:///{tmp_path / 'env.db'}"
    _ok(vulfix("keys", "create", "--account", "e", env={"VULFIX_DB": from_env}))
    assert (tmp_path / "env.db").exists() and (tmp_path / "master.key").exists()

    config = tmp_path / "vulfix.toml"
    config.write_text(
        f'db = "sqlite:///{tmp_path / "conf.db"}"\n'
        f'master_key_file = "{tmp_path / "keys" / "conf.key"}"\n'
    )
    _ok(vulfix("keys", "create", "--account", "c", "--config", str(config)))
    assert (tmp_path / "conf.db").exists() and (tmp_path / "keys" / "conf.key").exists()
    rows = json.loads(_ok(vulfix("keys", "list", "--json", "--config", str(config))))
    assert [r["Account"] for r in rows] == ["c"]


def test_default_database_is_in_the_user_data_dir(vulfix: RunVulfix, tmp_path: Path) -> None:
    _ok(vulfix("keys", "create", "--account", "d"))
    created = list((tmp_path / "xdg").rglob("vulfix.db"))
    assert len(created) == 1
    assert (created[0].parent / "master.key").exists()


def test_concurrent_creates_on_a_fresh_database_all_succeed(
    db_url: str, cli_env: dict[str, str]
) -> None:
    processes = [
        subprocess.Popen(
            [str(VULFIX), "keys", "create", "--db", db_url, "--account", f"a{n % 3}", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env,
        )
        for n in range(6)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 6, outputs
    created = [json.loads(out) for out, _ in outputs]
    assert len({key["SecretId"] for key in created}) == 6
    assert len({(key["Account"], key["AppId"]) for key in created}) == 3
