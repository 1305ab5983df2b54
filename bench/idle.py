"""The server's cost of an idle fleet, as a ratio to a raw ASGI request measured in the same run.

A real `vulfix serve` on SQLite (CPU 0) and `vulfix simulate` (CPU 1) with no task: every
agent holds a long-poll of `--wait` seconds, polls again when it ends, and is heard from
through its polls. Once all have enrolled and settled, the server's CPU time over
`--seconds` is divided by the polls answered meanwhile (agents / wait each second): the CPU
one idle poll costs, reported against the CPU of one request to the raw ASGI app of
`bench/wire.py` (one core / its requests per second).

Usage: python bench/idle.py [--hosts 10000] [--wait 20] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agents import PORT, inventory, online_hosts, raw_ceiling  # noqa: E402
from bench.engine import create_key, wait_ready  # noqa: E402
from bench.fleet import make_fleet  # noqa: E402

from vulfix.store.migrate import upgrade  # noqa: E402

# Enrolment's first polls and jobs are over by then.
SETTLE_SECONDS = 25


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--wait", type=int, default=20, help="the server's long-poll wait")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ceiling = raw_ceiling(directory, 4)
        path = directory / "bench.db"
        db = f"sqlite:///{path}"
        upgrade(db)
        create_key(db)
        quuids = make_fleet(path, args.hosts, 1)
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
            env={"VULFIX_LOG_LEVEL": "WARNING", "VULFIX_POLL_WAIT": str(args.wait),
                 "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        agents = None
        try:
            wait_ready()
            agents = subprocess.Popen(
                ["taskset", "-c", "1", vulfix, "simulate", "--server", f"http://127.0.0.1:{PORT}",
                 "--enroll-token", token,
                 "--inventory", str(inventory(directory / "fleet.json", quuids)), "--seed", "1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            started = time.monotonic()
            while online_hosts(path) < args.hosts:
                if time.monotonic() - started > 600:
                    raise RuntimeError(f"only {online_hosts(path)} hosts enrolled")
                time.sleep(0.5)
            time.sleep(SETTLE_SECONDS)
            before, began = cpu_seconds(server.pid), time.monotonic()
            time.sleep(args.seconds)
            share = (cpu_seconds(server.pid) - before) / (time.monotonic() - began)
        finally:
            if agents is not None:
                agents.terminate()
                agents.wait()
            server.terminate()
            server.wait()
    polls = args.hosts / args.wait
    per_poll, per_raw = share / polls, 1 / ceiling
    print(f"raw ASGI ceiling: {ceiling:.0f} req/s ({per_raw * 1e6:.0f} us of CPU each)")
    print(
        f"{args.hosts} idle agents, {polls:.0f} polls/s: server at {share:.2f} of a core, "
        f"{per_poll * 1e6:.0f} us of CPU per poll = {per_poll / per_raw:.0f} raw requests"
    )


if __name__ == "__main__":
    main()
