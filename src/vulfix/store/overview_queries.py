"""Reads behind the console's lists: hosts, vulnerabilities and fix tasks, a page at a time."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.inventory.overview import (
    SETTLED_STATES,
    HostOverview,
    Page,
    VulnerabilityOverview,
)
from vulfix.inventory.records import AutoFixState
from vulfix.store.database import read_transaction
from vulfix.store.inventory_tables import findings, hosts, machine_snapshots, vulnerabilities
from vulfix.store.tables import as_utc, fix_tasks

_SETTLED = [int(state) for state in SETTLED_STATES]


def _count_state(state: AutoFixState) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((findings.c.state == int(state), 1), else_=0)), 0)


class SqlOverviewReader:
    """The store side of `OverviewReader`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def host_page(self, account_id: int, offset: int, limit: int) -> Page[HostOverview]:
        pending = (
            select(func.count())
            .where(findings.c.host_id == hosts.c.id, findings.c.state.not_in(_SETTLED))
            .scalar_subquery()
        )
        newest_snapshot = (
            select(machine_snapshots.c.snapshot_id, machine_snapshots.c.created_at)
            .where(
                machine_snapshots.c.host_id == hosts.c.id, machine_snapshots.c.deleted_at.is_(None)
            )
            .order_by(machine_snapshots.c.created_at.desc(), machine_snapshots.c.id.desc())
            .limit(1)
        )
        query = (
            select(
                hosts.c.quuid,
                hosts.c.host_name,
                hosts.c.host_ip,
                hosts.c.os_family,
                hosts.c.machine_type,
                hosts.c.tags,
                hosts.c.enrolled_at,
                hosts.c.last_seen_at,
                pending.label("pending"),
                newest_snapshot.with_only_columns(machine_snapshots.c.snapshot_id)
                .scalar_subquery()
                .label("snapshot_id"),
                newest_snapshot.with_only_columns(machine_snapshots.c.created_at)
                .scalar_subquery()
                .label("snapshot_at"),
            )
            .where(hosts.c.account_id == account_id)
            .order_by(hosts.c.host_name, hosts.c.quuid)
            .limit(limit)
            .offset(offset)
        )
        total_query = select(func.count()).where(hosts.c.account_id == account_id)
        async with read_transaction(self.engine) as conn:
            total = int((await conn.execute(total_query)).scalar_one())
            rows = (await conn.execute(query)).all()
        return Page(
            total,
            [
                HostOverview(
                    quuid=row.quuid,
                    host_name=row.host_name,
                    host_ip=row.host_ip,
                    os_family=row.os_family,
                    machine_type=row.machine_type,
                    tags=list(row.tags),
                    enrolled=row.enrolled_at is not None,
                    last_seen_at=as_utc(row.last_seen_at) if row.last_seen_at else None,
                    pending_vulnerabilities=int(row.pending),
                    latest_snapshot_id=row.snapshot_id or "",
                    latest_snapshot_at=as_utc(row.snapshot_at) if row.snapshot_at else None,
                )
                for row in rows
            ],
        )

    async def vulnerability_page(
        self, account_id: int, offset: int, limit: int
    ) -> Page[VulnerabilityOverview]:
        unsettled = func.coalesce(
            func.sum(case((findings.c.state.not_in(_SETTLED), 1), else_=0)), 0
        )
        query = (
            select(
                vulnerabilities.c.vul_id,
                vulnerabilities.c.vul_name,
                vulnerabilities.c.level,
                vulnerabilities.c.vul_category,
                vulnerabilities.c.cve_ids,
                vulnerabilities.c.fix_methods,
                unsettled.label("affected"),
                _count_state(AutoFixState.CAN_FIX).label("can_fix"),
                _count_state(AutoFixState.FIXING).label("fixing"),
                _count_state(AutoFixState.FIXED).label("fixed"),
                _count_state(AutoFixState.FIX_FAILED).label("failed"),
            )
            .select_from(
                vulnerabilities.outerjoin(
                    findings,
                    and_(
                        findings.c.account_id == vulnerabilities.c.account_id,
                        findings.c.vul_id == vulnerabilities.c.vul_id,
                    ),
                )
            )
            .where(vulnerabilities.c.account_id == account_id)
            .group_by(vulnerabilities.c.id)
            .order_by(case((unsettled > 0, 0), else_=1), vulnerabilities.c.vul_id)
            .limit(limit)
            .offset(offset)
        )
        total_query = select(func.count()).where(vulnerabilities.c.account_id == account_id)
        async with read_transaction(self.engine) as conn:
            total = int((await conn.execute(total_query)).scalar_one())
            rows = (await conn.execute(query)).all()
        return Page(
            total,
            [
                VulnerabilityOverview(
                    vul_id=row.vul_id,
                    vul_name=row.vul_name,
                    level=row.level,
                    vul_category=row.vul_category,
                    cve_ids=list(row.cve_ids),
                    fix_methods=list(row.fix_methods),
                    affected_hosts=int(row.affected),
                    can_fix_hosts=int(row.can_fix),
                    fixing_hosts=int(row.fixing),
                    fixed_hosts=int(row.fixed),
                    failed_hosts=int(row.failed),
                )
                for row in rows
            ],
        )

    async def fix_id_page(self, account_id: int, offset: int, limit: int) -> Page[int]:
        mine = fix_tasks.c.account_id == account_id
        query = (
            select(fix_tasks.c.fix_id)
            .where(mine)
            .order_by(fix_tasks.c.fix_id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with read_transaction(self.engine) as conn:
            total = int((await conn.execute(select(func.count()).where(mine))).scalar_one())
            fix_ids = [int(fix_id) for fix_id in (await conn.execute(query)).scalars()]
        return Page(total, fix_ids)
