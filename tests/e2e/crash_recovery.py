"""Helpers for crash tests: a relay that loses the server's answers, the job ledger read
straight from the database, and the summaries `vulfix simulate` prints when it stops."""

from __future__ import annotations

import contextlib
import re
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from tencentcloud.common.common_client import CommonClient

from tests.e2e.fleets import enroll_token, import_fleet, stop_agents
from tests.e2e.processes import ApiKey, ServerProcess, wait_for


class AnswerLosingRelay:
    """A TCP relay between agents and one server. From `hold()` on it drops every byte the
    server sends, as if the server died after committing its work but before its answers left
    the machine; a connection closes on both sides as soon as either side closes it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._holding = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self._holding.set()

    def release(self) -> None:
        self._holding.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                downstream.close()  # the server is down, and so is this connection
                continue
            upstream.settimeout(None)
            for source, target, answers in (
                (downstream, upstream, False),
                (upstream, downstream, True),
            ):
                threading.Thread(
                    target=self._pump, args=(source, target, answers), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (answers and self._holding.is_set()):
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            source.close()


@contextmanager
def reaped(*servers: ServerProcess) -> Iterator[None]:
    """Kills whichever of `servers` a failing test left running (a passing one stops them)."""
    try:
        yield
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def provision(server: ServerProcess, account: str, fleet: Path) -> tuple[ApiKey, str]:
    """An API key, the fleet imported and an enrolment token, by three CLI runs at once (each
    finds or creates the account in turn)."""
    with ThreadPoolExecutor(3) as pool:
        key = pool.submit(server.create_key, account)
        token = pool.submit(enroll_token, server, account)
        pool.submit(import_fleet, server, account, fleet).result()
        return key.result(), token.result()


def call(api: CommonClient, action: str, **params: Any) -> dict[str, Any]:
    answer: dict[str, Any] = api.call_json(action, params)["Response"]
    return answer


def query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` (`%s` placeholders) on the server's SQLite file or PostgreSQL database."""
    if db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
        with closing(sqlite3.connect(path, timeout=10)) as conn:
            return list(conn.execute(sql.replace("%s", "?"), params).fetchall())
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        return list(conn.execute(sql, params).fetchall())


def done_jobs(db_url: str, fix_id: int, quuids: set[str]) -> int:
    rows = query(
        db_url,
        "SELECT h.quuid FROM jobs j JOIN hosts h ON h.id = j.host_id "
        "WHERE j.fix_id = %s AND j.state = 'done'",
        fix_id,
    )
    return sum(row[0] in quuids for row in rows)


@dataclass
class Crash:
    # Jobs of the victim's hosts done when its answers stopped, and when it died.
    held: int
    killed: int
    restart_seconds: float

    @property
    def unanswered(self) -> int:
        """Reports the server applied whose acknowledgement no agent ever received."""
        return self.killed - self.held


def crash_mid_task(
    victim: ServerProcess, relay: AnswerLosingRelay, fix_id: int, quuids: set[str]
) -> Crash:
    """Once a quarter of the jobs of `quuids` are done, loses the victim's answers until at
    least three more reports are applied, SIGKILLs it and starts it again (same port, same
    database). Its hosts cannot finish meanwhile: the jobs that follow never reach them."""
    total = 2 * len(quuids)  # a snapshot and a fix per host
    wait_for(lambda: done_jobs(victim.db_url, fix_id, quuids) >= total // 4, "a quarter done")
    relay.hold()
    held = done_jobs(victim.db_url, fix_id, quuids)
    wait_for(
        lambda: done_jobs(victim.db_url, fix_id, quuids) >= held + 3,
        "reports applied whose answers are lost",
        timeout=20,
    )
    victim.kill()
    killed = done_jobs(victim.db_url, fix_id, quuids)
    assert killed < total, (held, killed)
    relay.release()
    started = time.monotonic()
    victim.restart()
    return Crash(held, killed, time.monotonic() - started)


@dataclass
class AgentSummary:
    applied: int
    already_applied: int
    refused: int
    not_delivered: int
    unavailable: int


_SUMMARY = re.compile(
    r"Jobs reported: (\d+)\n.*Reports already applied: (\d+), refused: (\d+), "
    r"not delivered: (\d+); server unavailable: (\d+) times",
    re.S,
)


def stop_and_summarise(agents: Any, log: Path) -> AgentSummary:
    """Stops a `vulfix simulate` (SIGINT) and reads the summary it printed to `log`."""
    stop_agents(agents)
    printed = log.read_text()
    assert "Stopping: reports on their way get up to 10 s to be acknowledged." in printed
    found = _SUMMARY.search(printed)
    assert found, printed[-2000:]
    return AgentSummary(*(int(n) for n in found.groups()))


def assert_applied_once(
    db_url: str, fix_id: int, hosts: int, summaries: list[AgentSummary]
) -> None:
    """Each record of the task had exactly one job, done with the agent's success; each host
    has exactly the one machine snapshot its snapshot report created; and the agents had
    exactly one acknowledgement per job, nothing refused."""
    jobs = query(
        db_url,
        "SELECT kind, state, outcome, COALESCE(snapshot_record_id, fix_record_id) "
        "FROM jobs WHERE fix_id = %s",
        fix_id,
    )
    per_record = Counter((kind, record) for kind, _, _, record in jobs)
    assert set(per_record.values()) == {1}, per_record.most_common(3)
    assert Counter((kind, state, outcome) for kind, state, outcome, _ in jobs) == {
        ("snapshot", "done", "success"): hosts,
        ("fix", "done", "success"): hosts,
    }
    snapshots = query(
        db_url,
        "SELECT r.status, r.snapshot_id, m.snapshot_id FROM snapshot_records r "
        "LEFT JOIN machine_snapshots m ON m.fix_id = r.fix_id AND m.host_id = r.host_id "
        "WHERE r.fix_id = %s",
        fix_id,
    )
    assert len(snapshots) == hosts, "a host has more than one snapshot from this task"
    assert all(status == 1 and ours == theirs for status, ours, theirs in snapshots), snapshots
    acknowledged = sum(s.applied + s.already_applied for s in summaries)
    assert acknowledged == 2 * hosts and sum(s.refused for s in summaries) == 0, summaries
