"""Reads behind DescribeCanFixVulMachine and DescribeMachineSnapshot, scoped by account."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import ColumnElement, Row, Subquery, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.inventory.can_fix import AffectedHost, AffectedVulnerability
from vulfix.inventory.machine_snapshots import MachineSnapshot, SnapshotListing
from vulfix.store.bounded_in import chunks
from vulfix.store.database import read_transaction
from vulfix.store.inventory_tables import findings, hosts, machine_snapshots, vulnerabilities
from vulfix.store.tables import as_utc

_SNAPSHOT_COLUMNS = (
    machine_snapshots.c.id,
    machine_snapshots.c.host_id,
    machine_snapshots.c.snapshot_id,
    machine_snapshots.c.snapshot_name,
    machine_snapshots.c.disk_id,
    machine_snapshots.c.created_at,
)


def _visible_snapshots(account_id: int, host_ids: Sequence[int], latest_only: bool) -> Subquery:
    """Snapshots of these hosts that are not deleted; with `latest_only`, each host's newest."""
    conditions = (
        machine_snapshots.c.account_id == account_id,
        machine_snapshots.c.host_id.in_(host_ids),
        machine_snapshots.c.deleted_at.is_(None),
    )
    if not latest_only:
        return select(*_SNAPSHOT_COLUMNS).where(*conditions).subquery()
    newest_first = (machine_snapshots.c.created_at.desc(), machine_snapshots.c.id.desc())
    rank = func.row_number().over(partition_by=machine_snapshots.c.host_id, order_by=newest_first)
    ranked = select(*_SNAPSHOT_COLUMNS, rank.label("rank")).where(*conditions).subquery()
    columns = [ranked.c[column.name] for column in _SNAPSHOT_COLUMNS]
    return select(*columns).where(ranked.c.rank == 1).subquery()


async def _snapshot_rows(
    conn: AsyncConnection, visible: Subquery, limit: int, offset: int
) -> list[Row[Any]]:
    query = (
        select(visible)
        .order_by(visible.c.created_at.desc(), visible.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(query)).all())


@dataclass(frozen=True, slots=True)
class _SnapshotHost:
    quuid: str
    host_name: str
    host_ip: str
    instance_id: str
    region_id: int
    newest: datetime | None


class SqlInventoryReader:
    """The store side of `FindingReader` and `SnapshotReader`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def affected_hosts(
        self, account_id: int, vul_ids: Sequence[int], quuids: Sequence[str] | None
    ) -> list[AffectedVulnerability]:
        answer: list[AffectedVulnerability] = []
        async with read_transaction(self.engine) as conn:
            # Named hosts are resolved first, so their findings are read by primary key
            # rather than by scanning every finding of each vulnerability.
            host_ids = None if quuids is None else await self._host_ids(conn, account_id, quuids)
            for chunk in chunks(vul_ids):
                known = select(
                    vulnerabilities.c.vul_id,
                    vulnerabilities.c.vul_name,
                    vulnerabilities.c.vul_category,
                    vulnerabilities.c.fix_tag,
                ).where(
                    vulnerabilities.c.account_id == account_id,
                    vulnerabilities.c.vul_id.in_(chunk),
                )
                vul_rows = (await conn.execute(known)).all()
                affected: dict[int, list[AffectedHost]] = {int(r.vul_id): [] for r in vul_rows}
                if host_ids is None:
                    scope = [findings.c.account_id == account_id]
                    await self._add_affected(conn, affected, scope)
                else:
                    # Ascending pieces keep each host list in host order.
                    for piece in chunks(host_ids):
                        await self._add_affected(conn, affected, [findings.c.host_id.in_(piece)])
                answer.extend(
                    AffectedVulnerability(
                        vul_id=int(r.vul_id),
                        vul_name=r.vul_name,
                        vul_category=int(r.vul_category),
                        fix_tag=tuple(r.fix_tag),
                        hosts=tuple(affected[int(r.vul_id)]),
                    )
                    for r in vul_rows
                )
        return answer

    async def _host_ids(
        self, conn: AsyncConnection, account_id: int, quuids: Sequence[str]
    ) -> list[int]:
        found: list[int] = []
        for chunk in chunks(quuids):
            query = select(hosts.c.id).where(
                hosts.c.account_id == account_id, hosts.c.quuid.in_(chunk)
            )
            found.extend(int(host_id) for host_id in (await conn.execute(query)).scalars())
        return sorted(found)

    async def _add_affected(
        self,
        conn: AsyncConnection,
        affected: dict[int, list[AffectedHost]],
        scope: list[ColumnElement[bool]],
    ) -> None:
        """Appends the hosts with a finding for each vulnerability in `affected`, in host order."""
        if not affected:
            return
        query = (
            select(
                findings.c.vul_id,
                findings.c.state,
                hosts.c.quuid,
                hosts.c.uuid,
                hosts.c.host_name,
                hosts.c.host_ip,
                hosts.c.instance_id,
                hosts.c.machine_type,
                hosts.c.tags,
                hosts.c.last_seen_at,
            )
            .join_from(findings, hosts, findings.c.host_id == hosts.c.id)
            .where(*scope, findings.c.vul_id.in_(list(affected)))
            .order_by(findings.c.vul_id, hosts.c.id)
        )
        for row in await conn.execute(query):
            affected[int(row.vul_id)].append(
                AffectedHost(
                    quuid=row.quuid,
                    uuid=row.uuid,
                    host_name=row.host_name,
                    host_ip=row.host_ip,
                    instance_id=row.instance_id,
                    machine_type=row.machine_type,
                    tags=tuple(row.tags),
                    state=int(row.state),
                    last_seen_at=None if row.last_seen_at is None else as_utc(row.last_seen_at),
                )
            )

    async def snapshot_listing(
        self, account_id: int, quuids: Sequence[str], latest_only: bool, limit: int, offset: int
    ) -> SnapshotListing:
        async with read_transaction(self.engine) as conn:
            host_rows = await self._hosts(conn, account_id, quuids)
            pieces = list(chunks(sorted(host_rows)))
            total = 0
            pages = []
            for piece in pieces:
                visible = _visible_snapshots(account_id, piece, latest_only)
                total += int(
                    (await conn.execute(select(func.count()).select_from(visible))).scalar_one()
                )
                if len(pieces) == 1:
                    pages.append(await _snapshot_rows(conn, visible, limit, offset))
                else:
                    # Each piece's first offset+limit rows hold every row of the merged page.
                    pages.append(await _snapshot_rows(conn, visible, offset + limit, 0))
        if len(pages) == 1:
            rows = pages[0]
        else:
            merged = heapq.merge(*pages, key=lambda r: (r.created_at, r.id), reverse=True)
            rows = list(islice(merged, offset, offset + limit))
        snapshots = []
        for row in rows:
            host = host_rows[int(row.host_id)]
            snapshots.append(
                MachineSnapshot(
                    quuid=host.quuid,
                    host_name=host.host_name,
                    host_ip=host.host_ip,
                    snapshot_name=row.snapshot_name,
                    created_at=as_utc(row.created_at),
                    disk_id=row.disk_id,
                    instance_id=host.instance_id,
                    region_id=host.region_id,
                    snapshot_id=row.snapshot_id,
                )
            )
        latest = {host.quuid: host.newest for host in host_rows.values()}
        return SnapshotListing(snapshots, total, latest)

    async def _hosts(
        self, conn: AsyncConnection, account_id: int, quuids: Sequence[str]
    ) -> dict[int, _SnapshotHost]:
        """The account's hosts among `quuids` by id, each with its newest live snapshot time."""
        newest = (
            select(func.max(machine_snapshots.c.created_at))
            .where(
                machine_snapshots.c.host_id == hosts.c.id,
                machine_snapshots.c.deleted_at.is_(None),
            )
            .scalar_subquery()
        )
        found: dict[int, _SnapshotHost] = {}
        for chunk in chunks(quuids):
            query = select(
                hosts.c.id,
                hosts.c.quuid,
                hosts.c.host_name,
                hosts.c.host_ip,
                hosts.c.instance_id,
                hosts.c.region_id,
                newest.label("newest"),
            ).where(hosts.c.account_id == account_id, hosts.c.quuid.in_(chunk))
            for row in await conn.execute(query):
                found[int(row.id)] = _SnapshotHost(
                    quuid=row.quuid,
                    host_name=row.host_name,
                    host_ip=row.host_ip,
                    instance_id=row.instance_id,
                    region_id=int(row.region_id),
                    newest=None if row.newest is None else as_utc(row.newest),
                )
        return found
