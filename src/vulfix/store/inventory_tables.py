"""Inventory tables: hosts, vulnerabilities with their KB patches, findings, machine snapshots.

Everything belongs to an account; identifiers the API shows (Quuid, VulId, KbId, SnapshotId)
are unique within an account, so another account's ids simply do not exist for a caller.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)

from vulfix.store.tables import BigIdentity, BigIdReference, metadata

hosts = Table(
    "hosts",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("quuid", String(128), nullable=False),
    Column("uuid", String(128), nullable=False),
    Column("host_name", String(255), nullable=False),
    Column("host_ip", String(64), nullable=False),
    Column("instance_id", String(128), nullable=False),
    Column("machine_type", String(16), nullable=False),
    Column("os_family", String(32), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("region_id", Integer, nullable=False),
    Column("disk_id", String(64), nullable=False),
    Column("snapshot_supported", Boolean, nullable=False),
    # Agent side: set by enrolment; the token itself is never stored, only its SHA-256.
    Column("host_token_hash", String(64), nullable=True, unique=True),
    Column("enrolled_at", DateTime(), nullable=True),
    Column("last_seen_at", DateTime(), nullable=True),
    Column("created_at", DateTime(), nullable=False),
    Column("updated_at", DateTime(), nullable=False),
    UniqueConstraint("account_id", "quuid", name="uq_hosts_account_quuid"),
    sqlite_autoincrement=True,
)

vulnerabilities = Table(
    "vulnerabilities",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("vul_id", BigIdReference, nullable=False),
    Column("vul_name", String(512), nullable=False),
    Column("vul_category", Integer, nullable=False),
    Column("level", String(16), nullable=False),
    Column("cve_ids", JSON, nullable=False),
    Column("fix_methods", JSON, nullable=False),
    Column("fix_tag", JSON, nullable=False),
    # [{"Name", "FixedVersion"}]: what FixMethod 0 upgrades on Linux.
    Column("packages", JSON, nullable=False),
    # The service FixMethod 1 disables; "" when the vulnerability has none.
    Column("service", String(128), nullable=False),
    Column("updated_at", DateTime(), nullable=False),
    UniqueConstraint("account_id", "vul_id", name="uq_vulnerabilities_account_vul_id"),
    sqlite_autoincrement=True,
)

kb_patches = Table(
    "kb_patches",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("vul_id", BigIdReference, nullable=False),
    Column("kb_id", BigIdReference, nullable=False),
    Column("kb_number", String(64), nullable=False),
    Column("kb_name", String(512), nullable=False),
    Column("pre_kb_list", JSON, nullable=False),
    UniqueConstraint("account_id", "vul_id", "kb_id", name="uq_kb_patches_account_vul_kb"),
    sqlite_autoincrement=True,
)

findings = Table(
    "findings",
    metadata,
    Column("host_id", BigIdReference, ForeignKey("hosts.id"), primary_key=True),
    Column("vul_id", BigIdReference, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    # IsSupportAutoFix as imported (1 can fix, 0/3/4/11/12 cannot, 7 detecting, 10 ignored),
    # overlaid by fix records: 5 fixing, 6 fixed, 9 fix failed (spec §3.3).
    Column("state", Integer, nullable=False),
    Column("updated_at", DateTime(), nullable=False),
    Index("ix_findings_account_vul", "account_id", "vul_id"),
)

machine_snapshots = Table(
    "machine_snapshots",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("host_id", BigIdReference, ForeignKey("hosts.id"), nullable=False),
    Column("snapshot_id", String(32), nullable=False, unique=True),
    Column("snapshot_name", String(255), nullable=False),
    Column("disk_id", String(64), nullable=False),
    # What the agent's provider calls it (an LV name, a ZFS dataset@snap, ...).
    Column("provider_ref", String(512), nullable=False),
    Column("fix_id", BigIdReference, nullable=True),
    Column("created_at", DateTime(), nullable=False),
    Column("expires_at", DateTime(), nullable=True),
    Column("deleted_at", DateTime(), nullable=True),
    Index("ix_machine_snapshots_host_created", "host_id", "created_at"),
    # A host's kept snapshots by expiry: its next work's third arm reads them in order.
    Index(
        "ix_machine_snapshots_host_expiry",
        "host_id",
        "expires_at",
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    # Kept snapshots by expiry alone: the retention sweep asks for the expired ones.
    Index(
        "ix_machine_snapshots_expiry",
        "expires_at",
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    sqlite_autoincrement=True,
)
