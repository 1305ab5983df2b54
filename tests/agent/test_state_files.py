from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vulfix.agent.state_files import (
    REMEMBERED_JOBS,
    Identity,
    IdentityStore,
    Journal,
    StateFileError,
    prepare_state_dir,
)
from vulfix.agent_protocol import JobReport

OK = JobReport(outcome="success", exit_code=0)


def test_files_are_private_even_over_a_readable_leftover(tmp_path: Path) -> None:
    leftover = tmp_path / ".state.json.tmp"
    leftover.write_text("{}")
    leftover.chmod(0o644)
    IdentityStore(tmp_path).save(Identity(server="https://s", quuid="q", host_token="vfh_x"))
    Journal(tmp_path).started(4)
    for name in ("state.json", "journal.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert not leftover.exists(), "the temporary file was renamed into place"


def test_the_journal_survives_a_reload_in_every_state(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.started(1)
    journal.started(2)
    journal.finished(2, OK)
    journal.started(3)
    journal.finished(3, OK)
    journal.acknowledged(3)
    again = Journal(tmp_path)
    assert again.interrupted() == [1]
    assert again.unacknowledged() == [(2, OK)]
    entry = again.entry(3)
    assert entry is not None and entry.acknowledged and entry.report == OK


def test_the_journal_forgets_only_the_oldest_acknowledged_jobs(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.finished(1, OK)  # never acknowledged: kept however old
    for job_id in range(2, REMEMBERED_JOBS + 12):
        journal.finished(job_id, OK)
        journal.acknowledged(job_id)
    again = Journal(tmp_path)
    assert again.entry(1) is not None
    assert again.entry(2) is None and again.entry(11) is None
    assert again.entry(12) is not None and again.entry(REMEMBERED_JOBS + 11) is not None


def test_a_damaged_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "journal.json").write_text('{"entries": [')
    with pytest.raises(StateFileError, match=r"damaged.*move it away"):
        Journal(tmp_path)


def test_a_state_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StateFileError, match="writable by other users"):
        prepare_state_dir(shared)
    fresh = tmp_path / "new" / "state"
    prepare_state_dir(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
