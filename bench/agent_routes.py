"""The agent API's own Python per report, in-process, as a ratio to a bare ASGI app's.

A report that brings the next job (`POST /agent/v1/jobs/{id}/result?next=1&wait=20`) goes
through the agent routes over a store that costs nothing (`bench/free_store.py`), called as
uvicorn calls an application, with no sockets and no server: what is left is dispatch, the
token, the body, the query, the lane, and the answer. The baseline, in the same run and
called the same way, is a bare ASGI app that reads the body and answers the same bytes.
Each figure is the best of `--rounds` rounds, the machine's quieter moments.

Usage: python bench/agent_routes.py [--reports 20000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.free_store import free_store_app  # noqa: E402

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
REPORT = b'{"outcome":"success","reason":"","exit_code":0,"output_tail":"","duration_seconds":0.01}'
PATH = "/agent/v1/jobs/123/result"


def report_scope() -> dict[str, Any]:
    """A fresh scope for each call, as uvicorn builds one per request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 18500),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"next=1&wait=20",
        "headers": [
            (b"host", b"127.0.0.1:18500"),
            (b"user-agent", b"vulfix-agent/0.1.0"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer h42"),
            (b"content-length", str(len(REPORT)).encode()),
        ],
        "state": {},
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": REPORT, "more_body": False}


def bare_app(answer: bytes) -> App:
    """Reads the body and answers `answer`, as the raw ASGI app of `bench/wire.py` does."""
    headers = [
        (b"content-length", str(len(answer)).encode()),
        (b"content-type", b"application/json"),
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


async def seconds_per_call(app: App, calls: int, sent: list[Any]) -> float:
    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    began = time.process_time()
    for _ in range(calls):
        await app(report_scope(), receive, send)
    return (time.process_time() - began) / calls


async def measure(reports: int, rounds: int) -> tuple[float, float]:
    routes = free_store_app()
    answers: list[Any] = []
    await seconds_per_call(routes, 1000, answers)  # warm: plans, caches, allocator
    body = answers[-1]["body"]  # a report's acknowledgement, bringing the next job
    assert answers[-2]["status"] == 200 and b'"next_job":{' in body, body
    bare = bare_app(body)
    best_routes, best_bare = float("inf"), float("inf")
    for _ in range(rounds):  # in turns: a drifting machine moves both alike
        best_routes = min(best_routes, await seconds_per_call(routes, reports, []))
        best_bare = min(best_bare, await seconds_per_call(bare, reports, []))
    return best_routes, best_bare


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    routes, bare = asyncio.run(measure(args.reports, args.rounds))
    print(
        f"a report through the agent routes: {routes * 1e6:.2f} us; a bare ASGI app: "
        f"{bare * 1e6:.2f} us; ratio {routes / bare:.2f}"
    )


if __name__ == "__main__":
    main()
