"""A synthetic fleet written straight into a migrated SQLite database, for benchmarks."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from vulfix.store.migrate import upgrade


def make_fleet(path: Path, hosts: int, vulnerabilities: int, account_id: int = 1) -> list[str]:
    """`hosts` online Debian hosts, each affected by every one of `vulnerabilities` (VulId
    1..N, pending a fix); returns the Quuids. The account must already exist."""
    upgrade(f"sqlite:///{path}")
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    quuids = [f"q-{n:06d}" for n in range(hosts)]
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO hosts (account_id, quuid, uuid, host_name, host_ip, instance_id,"
            " machine_type, os_family, tags, region_id, disk_id, snapshot_supported,"
            " last_seen_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'CVM', 'debian', '[]', 1, ?, 1, ?, ?, ?)",
            [
                (account_id, q, f"u-{q}", f"web-{n:05d}",
                 f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
                 f"ins-{n:08d}", f"disk-{n:08d}", now, now, now)
                for n, q in enumerate(quuids)
            ],
        )  # fmt: skip
        db.executemany(
            "INSERT INTO vulnerabilities (account_id, vul_id, vul_name, vul_category, level,"
            " cve_ids, fix_methods, fix_tag, packages, service, updated_at)"
            " VALUES (?, ?, ?, 4, 'high', '[]', '[0]', '[]', ?, '', ?)",
            [
                (account_id, v, f"CVE-2026-{1000 + v} in libexample{v}",
                 f'[{{"Name": "libexample{v}", "FixedVersion": "1.0.{v}"}}]', now)
                for v in range(1, vulnerabilities + 1)
            ],
        )  # fmt: skip
        db.execute(
            "INSERT INTO findings (host_id, vul_id, account_id, state, updated_at)"
            " SELECT hosts.id, vulnerabilities.vul_id, ?, 1, ? FROM hosts, vulnerabilities",
            (account_id, now),
        )
    return quuids
