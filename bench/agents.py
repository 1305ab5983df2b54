"""Agent round trips of a simulated fleet through a zero-length task, as a ratio to the raw
ASGI ceiling measured in the same run.

A real `vulfix serve` on SQLite (CPU 0) and `vulfix simulate` with instant jobs (CPU 1):
every host enrols, then a CreateVulFix over all of them runs a snapshot and a fix job on
each. A round trip is one job: its delivery (in a poll's answer, or in the answer to the
host's previous report) and its report. Target >= 0.1.

`--tasks` such tasks run in turn, each on a vulnerability of its own and from a fleet at
rest, and the median task's rate is the figure: a shared machine sometimes slows down for
seconds at a time, and a lone task caught in such a spell measured a third less.

The ceiling is measured before the fleet enrols and again once it has stopped, and the mean
of the two taken: a shared machine's speed drifts over the minutes a big fleet's enrolment
takes, and a ceiling measured once, minutes before the task, moved single runs' ratios by a
fifth either way.

Usage: python bench/agents.py [--hosts 10000] [--tasks 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import Api, create_key, wait_ready  # noqa: E402
from bench.fleet import make_fleet  # noqa: E402
from bench.wire import wait_ready as wait_listening  # noqa: E402

from vulfix.store.migrate import upgrade  # noqa: E402

PORT = 18500
# A host's requests for its snapshot and fix jobs: the poll that brings the first, the report
# that brings the second, and the report that waits for a third.
REQUESTS_PER_JOB = 1.5
RAW_PORT = 18510
# Before each task, the first included: the hosts' polls and the server's caches at rest (an
# agent polls every 20 to 25 s; a token's host is remembered for 30 s), and nothing left of
# the enrolment's own work (the last hosts' first heartbeats and polls).
REST_BEFORE_TASK = 45.0
# With --trace, a line of progress and of each process's CPU share this often (seconds).
TRACE_EVERY = 0.5


def inventory(path: Path, quuids: list[str]) -> Path:
    hosts = [
        {"Quuid": q, "HostName": f"web-{n}", "HostIp": "10.0.0.1", "OsFamily": "debian"}
        for n, q in enumerate(quuids)
    ]
    path.write_text(json.dumps({"hosts": hosts}), encoding="utf-8")
    return path


@contextmanager
def raw_server(port: int, body: Path) -> Iterator[None]:
    """bench/wire.py's raw ASGI app on CPU 0, answering `body` to every request."""
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, str(ROOT / "bench" / "wire.py"),
         "--serve", "raw", str(port), str(body)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Until it answers, not a fixed pause: once a fleet has stopped, the machine can take
        # seconds to start it, and wrk fails outright on a refused connection.
        wait_listening(port)
        yield
    finally:
        server.terminate()
        server.wait()


def raw_ceiling(directory: Path, seconds: int) -> float:
    """Requests/s of the raw ASGI app answering a fixed body (bench/wire.py's ceiling)."""
    from bench.wire import load, wrk_script
    from tests.signed_requests import Signer

    body = directory / "raw.json"
    body.write_bytes(b'{"Response":{"RequestId":"00000000-0000-4000-8000-000000000000"}}')
    with raw_server(RAW_PORT, body):
        call = Signer("AKIDx", "k", host=f"127.0.0.1:{RAW_PORT}").tc3_post(b"{}")
        return load(RAW_PORT, wrk_script(call.headers, call.body, directory), seconds, 32)


def client_ceiling(directory: Path, seconds: float, agents: int = 256) -> tuple[float, float]:
    """(reports/s, CPU us per report) of the simulator's own client code alone: `agents`
    AgentClients sharing the simulator's pool (CPU 1) reporting to the raw ASGI app (CPU 0),
    which answers at once. No server can get a fleet through more round trips than this."""
    from vulfix import fast_loop

    body = directory / "ack.json"
    body.write_bytes(b'{"applied":true,"detail":""}')
    affinity = os.sched_getaffinity(0)
    with raw_server(RAW_PORT + 1, body):
        try:
            os.sched_setaffinity(0, {1})
            return fast_loop.run(report_loop(RAW_PORT + 1, agents, seconds))  # as `simulate`
        finally:
            os.sched_setaffinity(0, affinity)


async def report_loop(
    port: int, agents: int, seconds: float, *, take_next: bool = False
) -> tuple[float, float]:
    """(reports/s, CPU us per report) of `agents` AgentClients (tokens `h0`, `h1`, ...)
    sharing the simulator's transport, reporting to the server on `port` for `seconds`;
    with `take_next`, every answer must bring a job."""
    import asyncio

    from vulfix.agent.client import AgentClient
    from vulfix.agent.simulation import fleet_http_client
    from vulfix.agent_protocol import JobReport
    from vulfix.gc_tuning import tune_for_many_connections

    tune_for_many_connections()  # as `vulfix simulate` runs its fleet

    http = fleet_http_client(f"http://127.0.0.1:{port}", agents)
    report = JobReport(outcome="success")
    done = 0
    deadline = time.monotonic() + seconds

    async def agent(client: AgentClient) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            ack = await client.report(1, report, take_next=take_next)
            if take_next and ack.next_job is None:
                raise RuntimeError("a report brought no job")
            done += 1

    clients = [AgentClient(http, host_token=f"h{n}") for n in range(agents)]
    began, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(agent(client) for client in clients))
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
    await http.aclose()
    return done / elapsed, cpu / done * 1e6


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def online_hosts(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(
            db.execute("SELECT COUNT(*) FROM hosts WHERE enrolled_at IS NOT NULL").fetchone()[0]
        )


def last_finish(path: Path) -> datetime:
    """When the server applied the last job's report (stored as naive UTC)."""
    with sqlite3.connect(path) as db:
        return datetime.fromisoformat(db.execute("SELECT MAX(finished_at) FROM jobs").fetchone()[0])


def succeeded_jobs(path: Path) -> int:
    """Jobs done with success (every job of this bench succeeds), counted on the partial index
    of succeeded jobs. A count of finished jobs scans the whole table: 3.3 ms of CPU, which
    every 20 ms took a seventh of a core from the processes measured."""
    with sqlite3.connect(path) as db:
        query = "SELECT COUNT(*) FROM jobs WHERE outcome = 'success'"
        return int(db.execute(query).fetchone()[0])


@dataclass
class Fleet:
    path: Path  # the server's SQLite file
    quuids: list[str]
    secret_id: str
    secret_key: str
    server: subprocess.Popen[bytes]
    agents: subprocess.Popen[bytes]
    enrolment_seconds: float


@contextmanager
def enrolled_fleet(
    directory: Path, hosts: int, vulnerabilities: int, poll_wait: int, *simulate_options: str
) -> Iterator[Fleet]:
    """`vulfix serve` on SQLite (CPU 0) and `vulfix simulate` with one agent per host (CPU 1),
    once every agent has enrolled; both are stopped on leaving."""
    path = directory / "bench.db"
    db = f"sqlite:///{path}"
    upgrade(db)
    secret_id, secret_key = create_key(db)
    quuids = make_fleet(path, hosts, vulnerabilities)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE hosts SET last_seen_at = NULL")
    vulfix = str(Path(sys.executable).parent / "vulfix")
    token = json.loads(
        subprocess.run(
            [vulfix, "enroll-token", "create", "--db", db, "--account", "bench", "--json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )["Token"]  # fmt: skip
    server = subprocess.Popen(
        ["taskset", "-c", "0", vulfix, "serve", "--port", str(PORT), "--db", db,
         "--rate-limit", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={"VULFIX_LOG_LEVEL": "WARNING", "VULFIX_POLL_WAIT": str(poll_wait),
             "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    agents = None
    try:
        wait_ready()
        agents = subprocess.Popen(
            ["taskset", "-c", "1", vulfix, "simulate", "--server", f"http://127.0.0.1:{PORT}",
             "--enroll-token", token,
             "--inventory", str(inventory(directory / "fleet.json", quuids)),
             "--seed", "1", *simulate_options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started = time.monotonic()
        while online_hosts(path) < hosts:
            if time.monotonic() - started > 600:
                raise RuntimeError(f"only {online_hosts(path)} hosts enrolled")
            time.sleep(0.5)
        yield Fleet(path, quuids, secret_id, secret_key, server, agents, time.monotonic() - started)
    finally:
        if agents is not None:
            agents.terminate()
            agents.wait()
        server.terminate()
        server.wait()


@dataclass
class TaskRun:
    """One task through the fleet: its jobs, how long they took by the server's clock, and
    the CPU each process spent meanwhile (the server's by phase)."""

    jobs: int
    elapsed: float
    server_cpu: float
    agents_cpu: float
    created: float  # the server's CPU until CreateVulFix answered
    first_report: float  # ... until the first report was applied

    @property
    def rate(self) -> float:
        return self.jobs / self.elapsed


def run_task(fleet: Fleet, api: Api, vul_id: int, trace: bool) -> TaskRun:
    """A zero-length task over the whole fleet (`vul_id` on every host), until its last
    report is applied."""
    entry = {"Quuids": fleet.quuids, "VulId": vul_id}
    processes = (fleet.server.pid, fleet.agents.pid)
    done_before = succeeded_jobs(fleet.path)
    cpu_before = [cpu_seconds(pid) for pid in processes]
    began, began_at = time.monotonic(), datetime.now(UTC).replace(tzinfo=None)
    api.call("CreateVulFix", {"CreateVulFixTaskQuuids": [entry], "SaveDays": 1})
    # The server's CPU by phase: whole runs vary by a tenth, its phases less.
    created = cpu_seconds(fleet.server.pid) - cpu_before[0]
    while succeeded_jobs(fleet.path) == done_before and time.monotonic() - began < 900:
        time.sleep(0.02)
    first_report = cpu_seconds(fleet.server.pid) - cpu_before[0]
    expected = 2 * len(fleet.quuids)
    traced, traced_cpu = 0.0, cpu_before
    while (done := succeeded_jobs(fleet.path) - done_before) < expected:
        waited = time.monotonic() - began
        if waited > 900:
            raise RuntimeError(f"only {done} of {expected} jobs succeeded")
        if trace and waited >= traced + TRACE_EVERY:
            # Which side is busy: whole tasks' averages hide that it changes within a task.
            cpu = [cpu_seconds(pid) for pid in processes]
            spent = [now - then for now, then in zip(cpu, traced_cpu, strict=True)]
            server, agents = (seconds / (waited - traced) for seconds in spent)
            print(f"{waited:6.2f} s  {done:6d} jobs done  server {server:4.0%}  simulator "
                  f"{agents:4.0%}", flush=True)  # fmt: skip
            traced, traced_cpu = waited, cpu
        time.sleep(0.2)
    # Until the last report was applied, by the server's clock (the same machine's), not
    # until this loop noticed it: a poll's wait is not the fleet's time.
    elapsed = (last_finish(fleet.path) - began_at).total_seconds()
    server_cpu, agents_cpu = (
        cpu_seconds(pid) - before for pid, before in zip(processes, cpu_before, strict=True)
    )
    return TaskRun(expected, elapsed, server_cpu, agents_cpu, created, first_report)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=3, help="tasks in turn; median reported")
    parser.add_argument(
        "--trace", action="store_true", help="print progress and CPU shares every 0.5 s"
    )
    args = parser.parse_args()
    runs: list[TaskRun] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ceiling_before = raw_ceiling(directory, 4)
        client_rate, client_cpu = client_ceiling(directory, 4)
        with enrolled_fleet(directory, args.hosts, args.tasks, 20, "--speed", "1000000") as fleet:
            api = Api(fleet.secret_id, fleet.secret_key)
            for task in range(args.tasks):
                time.sleep(REST_BEFORE_TASK)
                runs.append(run_task(fleet, api, task + 1, args.trace))
        ceiling_after = raw_ceiling(directory, 4)
    ceiling = (ceiling_before + ceiling_after) / 2
    enrolled = fleet.enrolment_seconds
    print(f"enrolment of {args.hosts} agents: {enrolled:.1f} s ({args.hosts / enrolled:.0f}/s)")
    print(
        f"raw ASGI ceiling: {ceiling:.0f} req/s (before the fleet {ceiling_before:.0f}, "
        f"after it {ceiling_after:.0f})"
    )
    print(
        f"the agents' client alone (reports to the raw app): {client_rate:.0f} req/s, "
        f"{client_cpu:.0f} us CPU each; at {REQUESTS_PER_JOB} a job (a poll and two reports "
        f"per host), at most {client_rate / REQUESTS_PER_JOB:.0f} jobs/s, "
        f"ratio {client_rate / REQUESTS_PER_JOB / ceiling:.3f}"
    )
    for number, run in enumerate(runs, 1):
        print(
            f"task {number}: {run.jobs} jobs in {run.elapsed:.2f} s = {run.rate:.0f}/s, "
            f"ratio {run.rate / ceiling:.3f}; CPU a job: server "
            f"{run.server_cpu / run.jobs * 1e3:.2f} ms ({run.server_cpu / run.elapsed:.0%} of "
            f"its core), simulator {run.agents_cpu / run.jobs * 1e3:.2f} ms "
            f"({run.agents_cpu / run.elapsed:.0%}); server CPU by phase: CreateVulFix "
            f"{run.created:.2f} s, until the first report {run.first_report - run.created:.2f} "
            f"s, the reports {run.server_cpu - run.first_report:.2f} s"
        )
    median = statistics.median(run.rate for run in runs)
    print(
        f"agent round trips: median of {len(runs)} tasks {median:.0f} jobs/s; "
        f"ratio {median / ceiling:.3f} (target >= 0.1)"
    )


if __name__ == "__main__":
    main()
