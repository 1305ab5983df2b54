"""The agent's durable memory: its identity and its journal of jobs, in the state directory.

Both files are written whole to a temporary file (mode 0600 from its creation, so a host
token is never readable by others, not even for an instant), flushed to disk, then renamed
over the old one, so a crash at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TypeVar

import msgspec

from vulfix.agent_protocol import JobReport

STATE_FILE = "state.json"
JOURNAL_FILE = "journal.json"
# Acknowledged jobs remembered so that one handed out again is never run twice.
REMEMBERED_JOBS = 200

Document = TypeVar("Document")


class StateFileError(Exception):
    """A state file exists but cannot be read or trusted."""


class Identity(msgspec.Struct, kw_only=True):
    server: str
    quuid: str
    host_token: str
    # The server's pacing, as it gave it at enrolment.
    heartbeat_interval: float = 30.0
    poll_wait: float = 25.0


class JournalEntry(msgspec.Struct, kw_only=True):
    job_id: int
    # "running" from just before the job starts; "finished" once its report is decided.
    state: str
    report: JobReport | None = None
    acknowledged: bool = False


class JournalDocument(msgspec.Struct, kw_only=True):
    entries: list[JournalEntry] = msgspec.field(default_factory=list)


def prepare_state_dir(path: Path) -> None:
    """Create the directory (0700) if needed; refuse one that others can write to."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateFileError(f"{path} is writable by other users; chmod 700 it")


def write_private(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # an older temporary file may have had other bits
        os.write(descriptor, content)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_document(path: Path, kind: type[Document]) -> Document | None:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return msgspec.json.decode(content, type=kind)
    except msgspec.DecodeError as exc:
        raise StateFileError(f"{path} is damaged ({exc}); move it away to start afresh") from exc


class IdentityStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE

    def load(self) -> Identity | None:
        return read_document(self.path, Identity)

    def save(self, identity: Identity) -> None:
        write_private(self.path, msgspec.json.encode(identity))


class Journal:
    """Which jobs this host started, finished and had acknowledged, newest last.

    The rules it makes possible: a job is marked running before anything runs, so after a
    crash the agent knows it was interrupted and does not run it again blind; a report is
    recorded before it is sent, so it is resent until the server acknowledges it.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_FILE
        document = read_document(self.path, JournalDocument) or JournalDocument()
        self._entries = {entry.job_id: entry for entry in document.entries}

    def entry(self, job_id: int) -> JournalEntry | None:
        return self._entries.get(job_id)

    def interrupted(self) -> list[int]:
        return [e.job_id for e in self._entries.values() if e.state == "running"]

    def unacknowledged(self) -> list[tuple[int, JobReport]]:
        return [
            (e.job_id, e.report)
            for e in self._entries.values()
            if e.state == "finished" and e.report is not None and not e.acknowledged
        ]

    def started(self, job_id: int) -> None:
        self._entries[job_id] = JournalEntry(job_id=job_id, state="running")
        self._save()

    def finished(self, job_id: int, report: JobReport) -> None:
        self._entries[job_id] = JournalEntry(job_id=job_id, state="finished", report=report)
        self._save()

    def acknowledged(self, job_id: int) -> None:
        entry = self._entries.get(job_id)
        if entry is not None and not entry.acknowledged:
            entry.acknowledged = True
            self._forget_oldest()
            self._save()

    def _forget_oldest(self) -> None:
        done = [e.job_id for e in self._entries.values() if e.acknowledged]
        for job_id in done[: max(0, len(done) - REMEMBERED_JOBS)]:
            del self._entries[job_id]

    def _save(self) -> None:
        document = JournalDocument(entries=list(self._entries.values()))
        write_private(self.path, msgspec.json.encode(document))
