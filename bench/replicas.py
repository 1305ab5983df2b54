"""DescribeVulFixStatus throughput with 1, 2 and 3 replicas on PostgreSQL, as a ratio to one
replica on SQLite, all measured in one run.

Each configuration runs real `vulfix serve` processes (rate limiting off, request log off)
and one `wrk` per replica, started together, each with its own pre-signed TC3 request (the
signature covers the replica's host:port). The figure is the sum of the replicas' rates.
Nothing is pinned: on a small machine the replicas, PostgreSQL and wrk share the cores, and
that contention is part of what the figures show.

Usage: python bench/replicas.py [--seconds 5] [--connections 48]
Needs `wrk` (Debian package `wrk`) and PostgreSQL at $VULFIX_TEST_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wire import wait_ready, wrk_script  # noqa: E402
from tests.services import fresh_postgres_database  # noqa: E402
from tests.signed_requests import Signer  # noqa: E402

VULFIX = str(Path(sys.executable).parent / "vulfix")
FIRST_PORT = 18500


def prepare(db: str, master_key: str) -> tuple[str, str, int]:
    """Migrates `db`, creates a key and a task; returns (SecretId, SecretKey, FixId)."""
    from sqlalchemy import select

    from vulfix.settings import load_settings
    from vulfix.store.api_keys import ApiKeyStore
    from vulfix.store.database import create_engine
    from vulfix.store.migrate import upgrade
    from vulfix.store.secret_cipher import SecretCipher, load_master_key
    from vulfix.store.tables import accounts, fix_tasks

    upgrade(db)
    settings = load_settings(db=db, master_key=master_key)

    async def setup() -> tuple[str, str, int]:
        engine = create_engine(db)
        key = await ApiKeyStore(engine, SecretCipher(load_master_key(settings))).create_key(
            "bench", read_only=False
        )
        async with engine.begin() as conn:
            account = await conn.execute(select(accounts.c.id).where(accounts.c.name == "bench"))
            created_at = datetime.now(UTC).replace(tzinfo=None)
            result = await conn.execute(
                fix_tasks.insert().values(account_id=account.scalar_one(), created_at=created_at)
            )
            fix_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await engine.dispose()
        return key.secret_id, key.secret_key, fix_id

    return asyncio.run(setup())


def run_wrk(scripts: list[tuple[int, Path]], seconds: int, connections: int) -> float:
    """One wrk per replica, all at once; the summed requests per second."""
    each = max(1, connections // len(scripts))
    processes = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{each}",
                f"-d{seconds}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for port, script in scripts
    ]
    total = 0.0
    for process in processes:
        out, _ = process.communicate()
        if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
            raise RuntimeError(out)
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if match is None:
            raise RuntimeError(out)
        total += float(match.group(1))
    return total


def measure(db: str, replicas: int, args: argparse.Namespace, directory: Path) -> float:
    master_key = Fernet.generate_key().decode()
    secret_id, secret_key, fix_id = prepare(db, master_key)
    env = {**os.environ, "VULFIX_MASTER_KEY": master_key, "VULFIX_LOG_LEVEL": "WARNING"}
    ports = [FIRST_PORT + n for n in range(replicas)]
    servers = [
        subprocess.Popen(
            [VULFIX, "serve", "--port", str(port), "--db", db, "--rate-limit", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for port in ports
    ]
    try:
        scripts = []
        for port in ports:
            wait_ready(port)
            call = Signer(secret_id, secret_key, host=f"127.0.0.1:{port}").tc3_post(
                f'{{"FixId": {fix_id}}}'.encode()
            )
            answer = httpx.post(
                f"http://127.0.0.1:{port}/", headers=call.headers, content=call.body
            )
            assert "Error" not in answer.json()["Response"], answer.text
            folder = directory / f"{db.rsplit('/', 1)[-1]}-{replicas}-{port}"
            folder.mkdir()
            scripts.append((port, wrk_script(call.headers, call.body, folder)))
        run_wrk(scripts, 1, args.connections)  # warm-up: pools, caches, JIT of nothing
        return run_wrk(scripts, args.seconds, args.connections)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=48)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/replicas.py needs `wrk` (Debian: apt-get install wrk)")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        results["1 x SQLite"] = measure(f"sqlite:///{directory / 'one.db'}", 1, args, directory)
        for replicas in (1, 2, 3):
            with fresh_postgres_database() as db:
                results[f"{replicas} x PostgreSQL"] = measure(db, replicas, args, directory)
    baseline = results["1 x SQLite"]
    print(f"{'configuration':<18} {'req/s':>9}   ratio to 1 x SQLite")
    for label, rate in results.items():
        print(f"{label:<18} {rate:>9.0f}   {rate / baseline:.2f}")
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
