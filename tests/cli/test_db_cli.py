from __future__ import annotations

from tests.cli.conftest import RunVulfix
from vulfix.store.migrate import head_revision


def test_current_before_and_after_upgrade(vulfix: RunVulfix, db_url: str) -> None:
    before = vulfix("db", "current", "--db", db_url)
    assert (before.returncode, before.stdout.strip()) == (0, "none")

    upgraded = vulfix("db", "upgrade", "--db", db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert str(head_revision()) in upgraded.stdout

    again = vulfix("db", "upgrade", "--db", db_url)
    assert again.returncode == 0, again.stderr

    after = vulfix("db", "current", "--db", db_url)
    assert (after.returncode, after.stdout.strip()) == (0, head_revision())


def test_password_is_not_echoed(vulfix: RunVulfix) -> None:
    result = vulfix("db", "upgrade", "--db", "postgresql://u:hunter2@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
