"""The agent API's HTTP side alone: what agent round trips could reach with a free store.

A real uvicorn on CPU 0 serves the agent routes as `vulfix serve` does (`agent_routes` behind
`AgentDispatch`, the lane, authentication, last-seen, JSON both ways) over an in-memory store
in which every report brings the next job at once. The simulator's client code (`AgentClient`
over the fleet's shared transport) on CPU 1 reports as fast as it can. Each side's CPU per
request bounds what `bench/agents.py` can reach, whatever the store: reported as jobs/s at
one request per job (the best a fleet can do: a report that brings the next job), and as
ratios to the raw ASGI ceiling measured in the same run.

Usage: python bench/agent_http.py [--agents 256] [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agents import cpu_seconds, raw_ceiling, report_loop  # noqa: E402

from vulfix import fast_loop  # noqa: E402

PORT = 18520


def serve() -> None:
    """The agent routes over an in-memory store, on uvicorn as `vulfix serve` runs them."""
    import uvicorn
    from bench.free_store import free_store_app

    from vulfix.gc_tuning import tune_for_many_connections

    app = free_store_app()
    tune_for_many_connections()  # as `vulfix serve` does
    uvicorn.run(
        app, host="127.0.0.1", port=PORT, access_log=False, log_level="warning", lifespan="off"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ceiling = raw_ceiling(Path(tmp), 4)
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, __file__, "--serve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    affinity = os.sched_getaffinity(0)
    try:
        time.sleep(2)
        os.sched_setaffinity(0, {1})
        server_before = cpu_seconds(server.pid)
        report = report_loop(PORT, args.agents, args.seconds, take_next=True)
        rate, client_us = fast_loop.run(report)  # as `vulfix simulate` runs it
        # The loop reports for `seconds`; the server is idle while its clients start and stop.
        server_us = (cpu_seconds(server.pid) - server_before) / (rate * args.seconds) * 1e6
    finally:
        os.sched_setaffinity(0, affinity)
        server.terminate()
        server.wait()
    print(f"raw ASGI ceiling: {ceiling:.0f} req/s")
    print(
        f"reports with a free store: {rate:.0f}/s, ratio {rate / ceiling:.3f} (each brought a job)"
    )
    for side, us in (("server", server_us), ("client", client_us)):
        print(
            f"{side}: {us:.0f} us CPU per request; on a core of its own at most "
            f"{1e6 / us:.0f} jobs/s at one request per job, ratio {1e6 / us / ceiling:.3f}"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
