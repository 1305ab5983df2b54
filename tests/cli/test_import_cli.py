from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from vulfix.cli.import_command import import_command

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "fleet.json"


def run(*args: str, stdin: bytes | None = None) -> Result:
    # No VULFIX_* settings from the caller's environment.
    runner = CliRunner(env={"VULFIX_CONFIG": None, "VULFIX_DB": None})
    return runner.invoke(import_command, list(args), input=stdin)


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def table_counts(db_url: str) -> dict[str, int]:
    path = db_url.removeprefix("sqlite:///")
    if not Path(path).exists():
        return {}
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("accounts", "hosts", "vulnerabilities", "findings")
        }


def test_the_documented_example_imports(db_url: str) -> None:
    result = run("--db", db_url, "--account", "acme", str(EXAMPLE), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "Account": "acme",
        "Hosts": {"Inserted": 12, "Updated": 0},
        "Vulnerabilities": {"Inserted": 6, "Updated": 0},
        "KbPatches": 2,
        "Findings": {"Inserted": 16, "Updated": 0, "Kept": 0},
    }
    assert table_counts(db_url) == {
        "accounts": 1,
        "hosts": 12,
        "vulnerabilities": 6,
        "findings": 16,
    }


def test_a_second_import_reports_updates_in_words(db_url: str) -> None:
    run("--db", db_url, "--account", "acme", str(EXAMPLE))
    result = run("--db", db_url, "--account", "acme", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert f"Imported {EXAMPLE} into account acme:" in result.stdout
    assert "hosts:           0 new, 12 updated" in result.stdout
    assert "vulnerabilities: 0 new, 6 updated (2 KB patches)" in result.stdout
    assert "findings:        0 new, 16 updated, 0 kept" in result.stdout


def test_standard_input_is_read_for_a_dash(db_url: str) -> None:
    document = {"hosts": [{"Quuid": "h-1", "OsFamily": "alpine"}]}
    result = run("--db", db_url, "--account", "acme", "-", stdin=json.dumps(document).encode())
    assert result.exit_code == 0, result.output
    assert table_counts(db_url)["hosts"] == 1


def test_a_bad_document_names_entry_and_field_and_writes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    hosts = [{"Quuid": f"h-{i}", "OsFamily": "debian"} for i in range(3)]
    hosts.append({"Quuid": "h-3"})
    path = write(tmp_path, {"hosts": hosts})
    result = run("--db", db_url, "--account", "acme", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{path} was not imported:" in result.stderr
    assert "  hosts[3].OsFamily: required" in result.stderr
    assert table_counts(db_url) == {}


def test_an_unknown_reference_is_refused_after_reading_the_database(
    db_url: str, tmp_path: Path
) -> None:
    run("--db", db_url, "--account", "acme", str(EXAMPLE))
    before = table_counts(db_url)
    document = {
        "hosts": [{"Quuid": "new-host", "OsFamily": "debian"}],
        "findings": [{"Quuid": "new-host", "VulId": 12001}, {"Quuid": "new-host", "VulId": 99}],
    }
    result = run("--db", db_url, "--account", "acme", write(tmp_path, document))
    assert result.exit_code == 1
    assert "findings[1]: unknown VulId 99" in result.stderr
    assert table_counts(db_url) == before


def test_an_invalid_account_name_is_an_error(db_url: str) -> None:
    result = run("--db", db_url, "--account", " acme", str(EXAMPLE))
    assert result.exit_code == 1
    assert "account name must be" in result.stderr
