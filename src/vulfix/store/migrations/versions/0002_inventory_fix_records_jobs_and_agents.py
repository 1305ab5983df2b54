"""inventory, fix records, jobs and agents

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:41:37.477148
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_enrollment_tokens_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_enrollment_tokens_token_hash")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "hosts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("quuid", sa.String(length=128), nullable=False),
        sa.Column("uuid", sa.String(length=128), nullable=False),
        sa.Column("host_name", sa.String(length=255), nullable=False),
        sa.Column("host_ip", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=128), nullable=False),
        sa.Column("machine_type", sa.String(length=16), nullable=False),
        sa.Column("os_family", sa.String(length=32), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("disk_id", sa.String(length=64), nullable=False),
        sa.Column("snapshot_supported", sa.Boolean(), nullable=False),
        sa.Column("host_token_hash", sa.String(length=64), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_hosts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("account_id", "quuid", name="uq_hosts_account_quuid"),
        sa.UniqueConstraint("host_token_hash", name=op.f("uq_hosts_host_token_hash")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "kb_patches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("vul_id", sa.Integer(), nullable=False),
        sa.Column("kb_id", sa.Integer(), nullable=False),
        sa.Column("kb_number", sa.String(length=64), nullable=False),
        sa.Column("kb_name", sa.String(length=512), nullable=False),
        sa.Column("pre_kb_list", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_kb_patches_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_patches")),
        sa.UniqueConstraint("account_id", "vul_id", "kb_id", name="uq_kb_patches_account_vul_kb"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "vulnerabilities",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("vul_id", sa.Integer(), nullable=False),
        sa.Column("vul_name", sa.String(length=512), nullable=False),
        sa.Column("vul_category", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("cve_ids", sa.JSON(), nullable=False),
        sa.Column("fix_methods", sa.JSON(), nullable=False),
        sa.Column("fix_tag", sa.JSON(), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_vulnerabilities_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulnerabilities")),
        sa.UniqueConstraint("account_id", "vul_id", name="uq_vulnerabilities_account_vul_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "findings",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("vul_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_findings_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_findings_host_id_hosts")),
        sa.PrimaryKeyConstraint("host_id", "vul_id", name=op.f("pk_findings")),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("ix_findings_account_vul", ["account_id", "vul_id"], unique=False)

    op.create_table(
        "fix_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("fix_id", sa.Integer(), nullable=False),
        sa.Column("vul_id", sa.Integer(), nullable=False),
        sa.Column("kb_id", sa.Integer(), nullable=False),
        sa.Column("fix_method", sa.Integer(), nullable=False),
        sa.Column("vul_name", sa.String(length=512), nullable=False),
        sa.Column("kb_number", sa.String(length=64), nullable=False),
        sa.Column("kb_name", sa.String(length=512), nullable=False),
        sa.Column("pre_kb_list", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fix_id"], ["fix_tasks.fix_id"], name=op.f("fk_fix_items_fix_id_fix_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fix_items")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("fix_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fix_items_fix_id"), ["fix_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column(
            "job_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("fix_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("snapshot_record_id", sa.Integer(), nullable=True),
        sa.Column("fix_record_id", sa.Integer(), nullable=True),
        sa.Column("machine_snapshot_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("leased_at", sa.DateTime(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), server_default="", nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_jobs_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_jobs_host_id_hosts")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_jobs")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_account_kind_outcome", ["account_id", "kind", "outcome"], unique=False
        )
        batch_op.create_index("ix_jobs_host_state", ["host_id", "state"], unique=False)
        batch_op.create_index("ix_jobs_state_created", ["state", "created_at"], unique=False)
        batch_op.create_index("ix_jobs_state_lease", ["state", "lease_expires_at"], unique=False)
        batch_op.create_index(
            "uq_jobs_active_host",
            ["host_id"],
            unique=True,
            sqlite_where=sa.text("state IN ('queued', 'leased')"),
            postgresql_where=sa.text("state IN ('queued', 'leased')"),
        )

    op.create_table(
        "machine_snapshots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=32), nullable=False),
        sa.Column("snapshot_name", sa.String(length=255), nullable=False),
        sa.Column("disk_id", sa.String(length=64), nullable=False),
        sa.Column("provider_ref", sa.String(length=512), nullable=False),
        sa.Column("fix_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_machine_snapshots_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_machine_snapshots_host_id_hosts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machine_snapshots")),
        sa.UniqueConstraint("snapshot_id", name=op.f("uq_machine_snapshots_snapshot_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("machine_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_machine_snapshots_host_created", ["host_id", "created_at"], unique=False
        )

    op.create_table(
        "snapshot_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("fix_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("quuid", sa.String(length=128), nullable=False),
        sa.Column("host_name", sa.String(length=255), nullable=False),
        sa.Column("host_ip", sa.String(length=64), nullable=False),
        sa.Column("machine_type", sa.String(length=16), nullable=False),
        sa.Column("snapshot_name", sa.String(length=255), nullable=False),
        sa.Column("snapshot_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("fail_reason", sa.String(length=1024), nullable=False),
        sa.Column("retried", sa.Boolean(), nullable=False),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fix_id"], ["fix_tasks.fix_id"], name=op.f("fk_snapshot_records_fix_id_fix_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_snapshot_records_host_id_hosts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshot_records")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("snapshot_records", schema=None) as batch_op:
        batch_op.create_index("ix_snapshot_records_fix_host", ["fix_id", "host_id"], unique=True)
        batch_op.create_index(
            "ix_snapshot_records_host_status", ["host_id", "status"], unique=False
        )

    op.create_table(
        "fix_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("fix_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("quuid", sa.String(length=128), nullable=False),
        sa.Column("host_name", sa.String(length=255), nullable=False),
        sa.Column("host_ip", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("fail_reason", sa.String(length=1024), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("output_tail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fix_id"], ["fix_tasks.fix_id"], name=op.f("fk_fix_records_fix_id_fix_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_fix_records_host_id_hosts")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["fix_items.id"], name=op.f("fk_fix_records_item_id_fix_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fix_records")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("fix_records", schema=None) as batch_op:
        batch_op.create_index("ix_fix_records_fix_item", ["fix_id", "item_id"], unique=False)
        batch_op.create_index("ix_fix_records_host_status", ["host_id", "status"], unique=False)

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_actions", sa.JSON(), nullable=True))

    with op.batch_alter_table("fix_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("save_days", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("snapshot_name", sa.String(length=255), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("max_concurrency", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("max_errors", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("stopped_reason", sa.String(length=255), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("fix_tasks", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("stopped_reason")
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("max_errors")
        batch_op.drop_column("max_concurrency")
        batch_op.drop_column("snapshot_name")
        batch_op.drop_column("save_days")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("allowed_actions")

    with op.batch_alter_table("fix_records", schema=None) as batch_op:
        batch_op.drop_index("ix_fix_records_host_status")
        batch_op.drop_index("ix_fix_records_fix_item")

    op.drop_table("fix_records")
    with op.batch_alter_table("snapshot_records", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshot_records_host_status")
        batch_op.drop_index("ix_snapshot_records_fix_host")

    op.drop_table("snapshot_records")
    with op.batch_alter_table("machine_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_machine_snapshots_host_created")

    op.drop_table("machine_snapshots")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_jobs_active_host",
            sqlite_where=sa.text("state IN ('queued', 'leased')"),
            postgresql_where=sa.text("state IN ('queued', 'leased')"),
        )
        batch_op.drop_index("ix_jobs_state_lease")
        batch_op.drop_index("ix_jobs_state_created")
        batch_op.drop_index("ix_jobs_host_state")
        batch_op.drop_index("ix_jobs_account_kind_outcome")

    op.drop_table("jobs")
    with op.batch_alter_table("fix_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fix_items_fix_id"))

    op.drop_table("fix_items")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_account_vul")

    op.drop_table("findings")
    op.drop_table("vulnerabilities")
    op.drop_table("kb_patches")
    op.drop_table("hosts")
    op.drop_table("enrollment_tokens")
