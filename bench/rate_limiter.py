"""Per-request cost of the Redis rate limiter against the in-memory one, measured in one run.

Each limiter answers the same stream of checks (1 000 (account, action) keys in turn, a limit
high enough that every check is accepted: the costlier path, as it writes), on uvloop like
`vulfix serve`:

- sequential: one check at a time; for Redis this is the round-trip latency a request waits;
- concurrent: 32 checks in flight, as under load; wall time and this process's CPU time per
  check. The CPU figure is what a replica pays per request (Redis's own work runs elsewhere in
  production); it is compared with the ~27 us an API request costs in-process.

"unbatched" is the same script sent as one EVALSHA per check: what batching saves.

Then, when `wrk` and `taskset` are installed, the whole wire path of bench/wire.py (uvicorn
pinned to CPU 0, `wrk` to CPU 1, Redis wherever it runs) with rate limiting off, on the
memory limiter and on the Redis limiter, every request accepted: requests/s and the ratio.

Usage: python bench/rate_limiter.py [--redis redis://127.0.0.1:6379/0] [--checks 20000]
                                    [--seconds 5] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.wire import load, start, wait_ready, wrk_script
from tests.signed_requests import Signer

from vulfix.redis_connection import open_redis
from vulfix.tcapi.rate_limiting import MemoryRateLimiter
from vulfix.tcapi.redis_rate_limiter import SCRIPT, SCRIPT_SHA, RedisRateLimiter

Check = Callable[[str], Awaitable[bool]]
KEYS = [f"{account}:Action{action}" for account in range(100) for action in range(10)]
LIMIT = 1_000_000
CONCURRENCY = 32
REQUEST_US = 27.0


async def measure(check: Check, checks: int) -> dict[str, float]:
    for key in KEYS[:100]:  # connections open, script loaded
        await check(key)
    started = time.perf_counter()
    sequential = checks // 4
    for n in range(sequential):
        await check(KEYS[n % len(KEYS)])
    latency = (time.perf_counter() - started) / sequential

    async def worker(offset: int) -> None:
        for n in range(offset, checks, CONCURRENCY):
            await check(KEYS[n % len(KEYS)])

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(offset) for offset in range(CONCURRENCY)))
    return {
        "sequential": latency * 1e6,
        "wall": (time.perf_counter() - wall) / checks * 1e6,
        "cpu": (time.process_time() - cpu) / checks * 1e6,
    }


async def main(url: str, checks: int) -> None:
    prefix = f"bench-{secrets.token_hex(4)}:"
    client = open_redis(url)
    limiter = RedisRateLimiter(client, prefix=prefix)
    await client.script_load(SCRIPT)

    async def unbatched(key: str) -> bool:
        verdicts = await client.evalsha(SCRIPT_SHA, 1, prefix + "rate:" + key, LIMIT)
        return bool(verdicts[0] == 1)

    memory = MemoryRateLimiter()
    figures = {
        "memory": await measure(lambda key: memory.allow(key, LIMIT), checks * 10),
        "redis": await measure(lambda key: limiter.allow(key, LIMIT), checks),
        "redis unbatched": await measure(unbatched, checks),
    }
    await limiter.close()
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()

    print(f"{'limiter':<16} {'sequential':>12} {'32 in flight':>14} {'CPU/check':>11}")
    for name, figure in figures.items():
        print(
            f"{name:<16} {figure['sequential']:>9.1f} us {figure['wall']:>11.1f} us "
            f"{figure['cpu']:>8.1f} us"
        )
    base = figures["memory"]["cpu"]
    for name in ("redis", "redis unbatched"):
        cpu = figures[name]["cpu"]
        print(
            f"{name}: {cpu / base:.0f}x the memory limiter's CPU per check; "
            f"a {REQUEST_US:.0f} us request becomes ~{REQUEST_US - base + cpu:.0f} us "
            f"({(REQUEST_US - base + cpu) / REQUEST_US:.2f}x)"
        )


def serve(kind: str, port: int, url: str, prefix: str) -> None:
    """One wire server: limiting "off", or on with the "memory" or "redis" limiter."""
    import uvicorn
    from bench.wire import build_wire_app

    from vulfix.cli.serve_command import configure_logging

    configure_logging("INFO")  # the request log line is part of the measured path, as in wire.py
    limiter = RedisRateLimiter(open_redis(url), prefix=prefix) if kind == "redis" else None
    app = build_wire_app(limiter, 0 if kind == "off" else LIMIT)
    uvicorn.run(
        app, host="127.0.0.1", port=port, access_log=False, log_level="warning", lifespan="off"
    )


def measure_wire(url: str, seconds: int, connections: int, rounds: int) -> None:
    """Best of `rounds` for each kind, the kinds taking turns: noise from other work on the
    machine then lowers all of them alike instead of one."""
    from bench.wire import SECRET_ID, SECRET_KEY

    port = 18350
    prefix = f"bench-{secrets.token_hex(4)}:"
    call = Signer(SECRET_ID, SECRET_KEY, host=f"127.0.0.1:{port}").tc3_post(b'{"FixId": 1}')
    rates: dict[str, float] = {"off": 0.0, "memory": 0.0, "redis": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        script = wrk_script(call.headers, call.body, Path(tmp))
        for _ in range(rounds):
            for kind in rates:
                server = start(
                    [sys.executable, __file__, "--serve", kind, "--port", str(port),
                     "--redis", url, "--prefix", prefix]
                )  # fmt: skip
                try:
                    wait_ready(port)
                    rates[kind] = max(rates[kind], load(port, script, seconds, connections))
                finally:
                    server.terminate()
                    server.wait()
    print(f"\nwire path, {connections} connections, best of {rounds} x {seconds} s:")
    for kind, rate in rates.items():
        print(f"limiting {kind:<7} {rate:>9.0f} req/s  {1e6 / rate:>6.1f} us/request")
    print(
        f"redis / memory: {rates['redis'] / rates['memory']:.2f} of the throughput, "
        f"{1e6 / rates['redis'] - 1e6 / rates['memory']:+.1f} us per request"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", metavar="KIND", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=18350, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="bench:", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.redis, arguments.prefix)
    else:
        uvloop.run(main(arguments.redis, arguments.checks))
        if shutil.which("wrk") and shutil.which("taskset"):
            measure_wire(
                arguments.redis, arguments.seconds, arguments.connections, arguments.rounds
            )
        else:
            print("\nwire path skipped: needs `wrk` and `taskset`")
