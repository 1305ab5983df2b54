"""The jobs' state indexes become partial: each holds only the jobs its query looks for.

Leased jobs by lease expiry, queued jobs by age, and successful jobs by account and kind
(the observed durations behind RemainingTime). Finished jobs, nearly all of them, leave
the first two, and the host and state index goes: a host's active job has the unique
partial index. Leasing and finishing a job touched nine index entries and now touch four.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 15:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = {
    "ix_jobs_leased_expiry": ("state = 'leased'", ["lease_expires_at"]),
    "ix_jobs_queued_since": ("state = 'queued'", ["created_at"]),
    "ix_jobs_succeeded": ("outcome = 'success'", ["account_id", "kind", "job_id"]),
}
FULL = {
    "ix_jobs_host_state": ["host_id", "state"],
    "ix_jobs_state_lease": ["state", "lease_expires_at"],
    "ix_jobs_state_created": ["state", "created_at"],
    "ix_jobs_account_kind_outcome": ["account_id", "kind", "outcome"],
}


def upgrade() -> None:
    for name in FULL:
        op.drop_index(name, table_name="jobs")
    for name, (condition, columns) in PARTIAL.items():
        where = sa.text(condition)
        op.create_index(name, "jobs", columns, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name in PARTIAL:
        op.drop_index(name, table_name="jobs")
    for name, columns in FULL.items():
        op.create_index(name, "jobs", columns)
