"""Engine benchmarks, each a ratio to a baseline measured in the same run.

1. CreateVulFix over 10 000 hosts (HTTP, real server on SQLite) / a plain `sqlite3`
   executemany writing the same rows (task, item, 10 000 snapshot records, fix records and
   jobs, findings updated) in one transaction.               target <= 3
2. DescribeVulFixStatus of a 10 000-host x 5-vulnerability task (HTTP, median) / orjson
   serialising the same response document alone (median).   target <= 5

Usage: python bench/engine.py [--hosts 10000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import make_fleet  # noqa: E402
from tests.signed_requests import Signer  # noqa: E402

from vulfix.settings import load_settings  # noqa: E402
from vulfix.store.api_keys import ApiKeyStore  # noqa: E402
from vulfix.store.database import create_engine  # noqa: E402
from vulfix.store.migrate import upgrade  # noqa: E402
from vulfix.store.secret_cipher import SecretCipher, load_master_key  # noqa: E402

PORT = 18500


def create_key(db: str) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        engine = create_engine(db)
        key = await ApiKeyStore(
            engine, SecretCipher(load_master_key(load_settings(db=db)))
        ).create_key("bench", False)
        await engine.dispose()
        return key.secret_id, key.secret_key

    return asyncio.run(run())


class Api:
    def __init__(self, secret_id: str, secret_key: str) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=300)
        self.secret_id, self.secret_key = secret_id, secret_key

    def call(self, action: str, params: dict[str, object]) -> tuple[float, bytes]:
        signer = Signer(self.secret_id, self.secret_key, host=f"127.0.0.1:{PORT}", action=action)
        raw = signer.tc3_post(json.dumps(params).encode())
        started = time.perf_counter()
        response = self.client.post("/", headers=raw.headers, content=raw.body)
        elapsed = time.perf_counter() - started
        body = response.content
        if b'"Error"' in body[:200]:
            raise RuntimeError(body[:500].decode())
        return elapsed, body


def baseline_create(path: Path, hosts: int, vul_id: int) -> float:
    """The same rows CreateVulFix writes, with sqlite3 executemany in one transaction."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    db = sqlite3.connect(path, isolation_level=None)
    host_rows = db.execute(
        "SELECT id, quuid, host_name, host_ip FROM hosts ORDER BY id LIMIT ?", (hosts,)
    ).fetchall()
    # Hosts with a job already queued get none (one job per host), as CreateVulFix does.
    idle = (
        db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'leased')").fetchone()[0]
        == 0
    )
    started = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    fix_id = db.execute(
        "INSERT INTO fix_tasks (account_id, created_at, save_days, snapshot_name)"
        " VALUES (1, ?, 1, 'b')",
        (now,),
    ).lastrowid
    item = db.execute(
        "INSERT INTO fix_items (fix_id, vul_id, kb_id, fix_method, vul_name, kb_number, kb_name,"
        " pre_kb_list) VALUES (?, ?, 0, 0, 'v', '', '', '[]')",
        (fix_id, vul_id),
    ).lastrowid
    db.executemany(
        "INSERT INTO snapshot_records (fix_id, host_id, quuid, host_name, host_ip, machine_type,"
        " snapshot_name, snapshot_id, status, fail_reason, retried, admitted, modified_at)"
        " VALUES (?, ?, ?, ?, ?, 'CVM', 'b', '', 0, '', 0, 1, ?)",
        [(fix_id, h[0], h[1], h[2], h[3], now) for h in host_rows],
    )
    db.executemany(
        "INSERT INTO fix_records (fix_id, item_id, host_id, quuid, host_name, host_ip, status,"
        " fail_reason, modified_at, output_tail) VALUES (?, ?, ?, ?, ?, ?, 0, '', ?, '')",
        [(fix_id, item, h[0], h[1], h[2], h[3], now) for h in host_rows],
    )
    db.executemany(
        "UPDATE findings SET state = 5, updated_at = ? WHERE host_id = ? AND vul_id = ?",
        [(now, h[0], vul_id) for h in host_rows],
    )
    if idle:
        db.executemany(
            "INSERT INTO jobs (account_id, host_id, fix_id, kind, snapshot_record_id, state,"
            " created_at) SELECT 1, host_id, fix_id, 'snapshot', id, 'queued', ?"
            " FROM snapshot_records WHERE id = ?",
            [
                (now, r[0])
                for r in db.execute("SELECT id FROM snapshot_records WHERE fix_id = ?", (fix_id,))
            ],
        )
    db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        db = f"sqlite:///{path}"
        upgrade(db)
        secret_id, secret_key = create_key(db)
        quuids = make_fleet(path, args.hosts, 8)
        shutil.copy(path, Path(tmp) / "baseline.db")
        vulfix = str(Path(sys.executable).parent / "vulfix")
        server = subprocess.Popen(
            [vulfix, "serve", "--port", str(PORT), "--db", db, "--rate-limit", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready()
            api = Api(secret_id, secret_key)
            creates, baselines = [], []
            for vul_id in (1, 2, 3):
                entry = {"Quuids": quuids, "VulId": vul_id}
                elapsed, _ = api.call(
                    "CreateVulFix", {"CreateVulFixTaskQuuids": [entry], "SaveDays": 1}
                )
                creates.append(elapsed)
                baselines.append(baseline_create(Path(tmp) / "baseline.db", args.hosts, vul_id))
            items = [{"Quuids": quuids, "VulId": v} for v in (4, 5, 6, 7, 8)]
            _, body = api.call("CreateVulFix", {"CreateVulFixTaskQuuids": items, "SaveDays": 1})
            fix_id = json.loads(body)["Response"]["FixId"]
            timings = [
                api.call("DescribeVulFixStatus", {"FixId": fix_id}) for _ in range(args.repeat)
            ]
            document = json.loads(timings[-1][1])
            serialise = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                orjson.dumps(document)
                serialise.append(time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait()
    create, base = statistics.median(creates), statistics.median(baselines)
    status, dumps = statistics.median(t for t, _ in timings), statistics.median(serialise)
    size = len(timings[-1][1]) / 1e6
    print(
        f"CreateVulFix, {args.hosts} hosts: {create * 1000:.1f} ms; "
        f"sqlite3 executemany {base * 1000:.1f} ms; ratio {create / base:.2f} (target <= 3)"
    )
    print(
        f"DescribeVulFixStatus, {args.hosts} x 5 ({size:.1f} MB): {status * 1000:.1f} ms; "
        f"orjson alone {dumps * 1000:.1f} ms; ratio {status / dumps:.2f} (target <= 5)"
    )


def wait_ready() -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server not ready")


if __name__ == "__main__":
    main()
