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
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agents import cpu_seconds, enrolled_fleet, raw_ceiling  # noqa: E402

# Enrolment's first polls and jobs are over by then.
SETTLE_SECONDS = 25


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
        with enrolled_fleet(directory, args.hosts, 1, args.wait) as fleet:
            time.sleep(SETTLE_SECONDS)
            before, began = cpu_seconds(fleet.server.pid), time.monotonic()
            time.sleep(args.seconds)
            share = (cpu_seconds(fleet.server.pid) - before) / (time.monotonic() - began)
    polls = args.hosts / args.wait
    per_poll, per_raw = share / polls, 1 / ceiling
    print(f"raw ASGI ceiling: {ceiling:.0f} req/s ({per_raw * 1e6:.0f} us of CPU each)")
    print(
        f"{args.hosts} idle agents, {polls:.0f} polls/s: server at {share:.2f} of a core, "
        f"{per_poll * 1e6:.0f} us of CPU per poll = {per_poll / per_raw:.0f} raw requests"
    )


if __name__ == "__main__":
    main()
