"""The inventory import: one write transaction of bulk statements, following the upsert rules.

Hosts are matched by (account, Quuid) and vulnerabilities by (account, VulId); their facts are
replaced, but a host's enrolment, token and last-seen columns belong to its agent and are
never written here. A vulnerability's KB patches are replaced as a set. A finding keeps a
state the fix engine owns (fixing, fixed, fix failed); otherwise the document's state wins.
Entries the document does not mention are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.inventory.records import (
    ENGINE_OWNED_STATES,
    Finding,
    Host,
    ImportSummary,
    Inventory,
    Vulnerability,
)
from vulfix.inventory.validation import check_references
from vulfix.store.accounts import (
    account_named,
    account_with_id,
    check_account_name,
    retry_on_conflict,
)
from vulfix.store.bounded_in import chunks
from vulfix.store.database import write_transaction
from vulfix.store.inventory_tables import findings, hosts, kb_patches, vulnerabilities
from vulfix.store.row_locks import lock_account
from vulfix.store.tables import to_stored

# Past this many keys, one account-wide read filtered here beats IN lists chunk by chunk:
# PostgreSQL tests a list of bound parameters against each row in turn (10 000 hosts: 2 s).
SMALL_LOOKUP = 200


async def update_each(
    conn: AsyncConnection, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """One executemany UPDATE; each row holds its key columns and the columns to set."""
    if not rows:
        return
    # Bound names must differ from column names in an UPDATE's SET clause.
    columns = [name for name in rows[0] if name not in keys]
    statement = (
        table.update()
        .where(*(table.c[key] == bindparam(f"key_{key}") for key in keys))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )
    params = [
        {(f"key_{name}" if name in keys else f"new_{name}"): value for name, value in row.items()}
        for row in rows
    ]
    await conn.execute(statement, params)


def _host_facts(host: Host) -> dict[str, Any]:
    return {
        "uuid": host.uuid,
        "host_name": host.host_name,
        "host_ip": host.host_ip,
        "instance_id": host.instance_id,
        "machine_type": host.machine_type,
        "os_family": host.os_family,
        "tags": list(host.tags),
        "region_id": host.region_id,
        "disk_id": host.disk_id,
        "snapshot_supported": host.snapshot_supported,
    }


def _vulnerability_facts(vul: Vulnerability) -> dict[str, Any]:
    return {
        "vul_name": vul.vul_name,
        "vul_category": vul.vul_category,
        "level": vul.level,
        "cve_ids": list(vul.cve_ids),
        "fix_methods": list(vul.fix_methods),
        "fix_tag": list(vul.fix_tag),
        "packages": [{"Name": p.name, "FixedVersion": p.fixed_version} for p in vul.packages],
        "service": vul.service,
    }


class _Import:
    """One attempt at an import, inside its transaction."""

    def __init__(self, conn: AsyncConnection, account_id: int, at: datetime) -> None:
        self.conn = conn
        self.account_id = account_id
        self.at = at

    async def run(self, inventory: Inventory) -> ImportSummary:
        stored_hosts = await self.host_ids(inventory.outside_quuids())
        stored_vul_ids = await self.stored_vul_ids(inventory.outside_vul_ids())
        check_references(inventory, set(stored_hosts), stored_vul_ids)
        host_ids, hosts_inserted = await self.upsert_hosts(inventory.hosts)
        host_ids.update(stored_hosts)
        vuls_inserted = await self.upsert_vulnerabilities(inventory.vulnerabilities)
        kb_count = await self.replace_kb_patches(inventory.vulnerabilities)
        inserted, updated, kept = await self.upsert_findings(inventory.findings, host_ids)
        return ImportSummary(
            account_id=self.account_id,
            hosts_inserted=hosts_inserted,
            hosts_updated=len(inventory.hosts) - hosts_inserted,
            vulnerabilities_inserted=vuls_inserted,
            vulnerabilities_updated=len(inventory.vulnerabilities) - vuls_inserted,
            kb_patches=kb_count,
            findings_inserted=inserted,
            findings_updated=updated,
            findings_kept=kept,
        )

    async def host_ids(self, quuids: Iterable[str]) -> dict[str, int]:
        wanted = list(quuids)
        if len(wanted) > SMALL_LOOKUP:
            keep = set(wanted)
            query = select(hosts.c.quuid, hosts.c.id).where(hosts.c.account_id == self.account_id)
            return {r.quuid: int(r.id) for r in await self.conn.execute(query) if r.quuid in keep}
        found: dict[str, int] = {}
        for chunk in chunks(wanted):
            query = select(hosts.c.quuid, hosts.c.id).where(
                hosts.c.account_id == self.account_id, hosts.c.quuid.in_(chunk)
            )
            found.update((row.quuid, int(row.id)) for row in await self.conn.execute(query))
        return found

    async def stored_vul_ids(self, vul_ids: Iterable[int]) -> set[int]:
        found: set[int] = set()
        for chunk in chunks(list(vul_ids)):
            query = select(vulnerabilities.c.vul_id).where(
                vulnerabilities.c.account_id == self.account_id,
                vulnerabilities.c.vul_id.in_(chunk),
            )
            found.update(int(vul_id) for vul_id in (await self.conn.execute(query)).scalars())
        return found

    async def upsert_hosts(self, entries: Sequence[Host]) -> tuple[dict[str, int], int]:
        """(Quuid -> host id for every entry, how many were new)."""
        ids = await self.host_ids(h.quuid for h in entries)
        new = [h for h in entries if h.quuid not in ids]
        if new:
            await self.conn.execute(
                insert(hosts),
                [
                    {
                        "account_id": self.account_id,
                        "quuid": h.quuid,
                        **_host_facts(h),
                        "created_at": self.at,
                        "updated_at": self.at,
                    }
                    for h in new
                ],
            )
        await update_each(
            self.conn,
            hosts,
            ("id",),
            [
                {"id": ids[h.quuid], **_host_facts(h), "updated_at": self.at}
                for h in entries
                if h.quuid in ids
            ],
        )
        ids.update(await self.host_ids(h.quuid for h in new))
        return ids, len(new)

    async def upsert_vulnerabilities(self, entries: Sequence[Vulnerability]) -> int:
        stored = await self.stored_vul_ids(v.vul_id for v in entries)
        new = [v for v in entries if v.vul_id not in stored]
        if new:
            await self.conn.execute(
                insert(vulnerabilities),
                [
                    {
                        "account_id": self.account_id,
                        "vul_id": v.vul_id,
                        **_vulnerability_facts(v),
                        "updated_at": self.at,
                    }
                    for v in new
                ],
            )
        await update_each(
            self.conn,
            vulnerabilities,
            ("account_id", "vul_id"),
            [
                {
                    "account_id": self.account_id,
                    "vul_id": v.vul_id,
                    **_vulnerability_facts(v),
                    "updated_at": self.at,
                }
                for v in entries
                if v.vul_id in stored
            ],
        )
        return len(new)

    async def replace_kb_patches(self, entries: Sequence[Vulnerability]) -> int:
        for chunk in chunks([v.vul_id for v in entries]):
            await self.conn.execute(
                delete(kb_patches).where(
                    kb_patches.c.account_id == self.account_id, kb_patches.c.vul_id.in_(chunk)
                )
            )
        rows = [
            {
                "account_id": self.account_id,
                "vul_id": v.vul_id,
                "kb_id": kb.kb_id,
                "kb_number": kb.kb_number,
                "kb_name": kb.kb_name,
                "pre_kb_list": list(kb.pre_kb_list),
            }
            for v in entries
            for kb in v.kbs
        ]
        if rows:
            await self.conn.execute(insert(kb_patches), rows)
        return len(rows)

    async def upsert_findings(
        self, entries: Sequence[Finding], host_ids: dict[str, int]
    ) -> tuple[int, int, int]:
        """(inserted, updated, kept in an engine-owned state)."""
        stored: dict[tuple[int, int], int] = {}
        named = sorted({host_ids[f.quuid] for f in entries})
        columns = (findings.c.host_id, findings.c.vul_id, findings.c.state)
        mine = findings.c.account_id == self.account_id
        queries = (
            [select(*columns).where(mine)]
            if len(named) > SMALL_LOOKUP
            else [select(*columns).where(mine, findings.c.host_id.in_(c)) for c in chunks(named)]
        )
        for query in queries:
            for row in await self.conn.execute(query):
                stored[(int(row.host_id), int(row.vul_id))] = int(row.state)
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        kept = 0
        for finding in entries:
            key = (host_ids[finding.quuid], finding.vul_id)
            values = {"host_id": key[0], "vul_id": key[1], "state": int(finding.state)}
            if key not in stored:
                new.append({**values, "account_id": self.account_id, "updated_at": self.at})
            elif stored[key] in ENGINE_OWNED_STATES:
                kept += 1
            else:
                changed.append({**values, "updated_at": self.at})
        if new:
            await self.conn.execute(insert(findings), new)
        await update_each(self.conn, findings, ("host_id", "vul_id"), changed)
        return len(new), len(changed), kept


class InventoryStore:
    """The repository behind `vulfix import`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def import_document(
        self, account: str | int, inventory: Inventory, now: datetime
    ) -> ImportSummary:
        """Upserts the inventory into the account (by name, created if missing; or by id).

        All or nothing: an unknown reference raises InvalidDocumentError and writes nothing.
        """
        if isinstance(account, str):
            check_account_name(account)
        # A concurrent import or account creation (PostgreSQL) can collide on a unique key;
        # the retry then finds those rows and updates them instead.
        return await retry_on_conflict(lambda: self._import_once(account, inventory, now))

    async def _import_once(
        self, account: str | int, inventory: Inventory, now: datetime
    ) -> ImportSummary:
        async with write_transaction(self._engine) as conn:
            if isinstance(account, str):
                account_id = (await account_named(conn, account)).id
            else:
                account_id = (await account_with_id(conn, account)).id
            # Findings a concurrent CreateVulFix claims are never overwritten (`row_locks`).
            await lock_account(conn, account_id)
            return await _Import(conn, account_id, to_stored(now)).run(inventory)
