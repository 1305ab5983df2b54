"""Columns holding ids are 64-bit on PostgreSQL, as the ids themselves are.

Host, task, record and job ids come from 64-bit sequences, and clients may name VulIds and
KbIds up to 2^63 - 1; 32-bit columns failed the first id past 2^31, and any comparison with
a larger value. SQLite's INTEGER is 64-bit already: nothing changes there.

Each table is rewritten once, under an exclusive lock: on a large database this takes a
while, during which the API waits (docs/deploy.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 23:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WIDENED = {
    "vulnerabilities": ("vul_id",),
    "kb_patches": ("vul_id", "kb_id"),
    "findings": ("host_id", "vul_id"),
    "machine_snapshots": ("host_id", "fix_id"),
    "fix_items": ("fix_id", "vul_id", "kb_id"),
    "snapshot_records": ("fix_id", "host_id"),
    "fix_records": ("fix_id", "item_id", "host_id"),
    "jobs": ("host_id", "fix_id", "snapshot_record_id", "fix_record_id", "machine_snapshot_id"),
}


def _alter(column_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in WIDENED.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE {column_type}" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    _alter("BIGINT")


def downgrade() -> None:
    _alter("INTEGER")
