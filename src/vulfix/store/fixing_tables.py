"""Fix tasks, their items and records, the job queue, and agent enrolment tokens."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    literal_column,
    text,
)

from vulfix.store.tables import BigIdentity, BigIdReference, fix_tasks, metadata

# The states of a host's one active job.
ACTIVE_STATES = ("queued", "leased")
_ACTIVE_CONDITION = f"state IN ({', '.join(repr(state) for state in ACTIVE_STATES)})"


def _partial_index(name: str, condition: str, *columns: str, unique: bool = False) -> Index:
    return Index(
        name,
        *columns,
        unique=unique,
        sqlite_where=text(condition),
        postgresql_where=text(condition),
    )


# Columns the engine adds to `fix_tasks` (migration 0002); declared here with the rest.
for column in (
    Column("save_days", Integer, nullable=False, server_default="0"),
    Column("snapshot_name", String(255), nullable=False, server_default=""),
    # "" (no limit), "10" or "25%": the AWS SSM forms.
    Column("max_concurrency", String(16), nullable=False, server_default=""),
    Column("max_errors", String(16), nullable=False, server_default=""),
    Column("cancelled_at", DateTime(), nullable=True),
    Column("stopped_reason", String(255), nullable=False, server_default=""),
    # Bumped by every change to the task or its records: the key of cached answers.
    Column("version", Integer, nullable=False, server_default="1"),
):
    fix_tasks.append_column(column)

fix_items = Table(
    "fix_items",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("fix_id", BigIdReference, ForeignKey("fix_tasks.fix_id"), nullable=False, index=True),
    Column("vul_id", BigIdReference, nullable=False),
    Column("kb_id", BigIdReference, nullable=False),
    Column("fix_method", Integer, nullable=False),
    Column("vul_name", String(512), nullable=False),
    Column("kb_number", String(64), nullable=False),
    Column("kb_name", String(512), nullable=False),
    Column("pre_kb_list", JSON, nullable=False),
    sqlite_autoincrement=True,
)

snapshot_records = Table(
    "snapshot_records",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("fix_id", BigIdReference, ForeignKey("fix_tasks.fix_id"), nullable=False),
    Column("host_id", BigIdReference, ForeignKey("hosts.id"), nullable=False),
    Column("quuid", String(128), nullable=False),
    Column("host_name", String(255), nullable=False),
    Column("host_ip", String(64), nullable=False),
    Column("machine_type", String(16), nullable=False),
    Column("snapshot_name", String(255), nullable=False),
    Column("snapshot_id", String(32), nullable=False),
    Column("status", Integer, nullable=False),
    Column("fail_reason", String(1024), nullable=False),
    Column("retried", Boolean, nullable=False),
    # The host has entered the task's concurrency window (MaxConcurrency).
    Column("admitted", Boolean, nullable=False),
    Column("modified_at", DateTime(), nullable=False),
    Index("ix_snapshot_records_fix_host", "fix_id", "host_id", unique=True),
    # A host's records in a status, in task order: its next work reads them so, unsorted.
    Index("ix_snapshot_records_host_status", "host_id", "status", "fix_id"),
    sqlite_autoincrement=True,
)

fix_records = Table(
    "fix_records",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("fix_id", BigIdReference, ForeignKey("fix_tasks.fix_id"), nullable=False),
    Column("item_id", BigIdReference, ForeignKey("fix_items.id"), nullable=False),
    Column("host_id", BigIdReference, ForeignKey("hosts.id"), nullable=False),
    Column("quuid", String(128), nullable=False),
    Column("host_name", String(255), nullable=False),
    Column("host_ip", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("fail_reason", String(1024), nullable=False),
    Column("modified_at", DateTime(), nullable=False),
    Column("dispatched_at", DateTime(), nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("output_tail", Text, nullable=False),
    Index("ix_fix_records_fix_item", "fix_id", "item_id"),
    # As the snapshot records': a host's waiting fixes in task order, then by id (the key).
    Index("ix_fix_records_host_status", "host_id", "status", "fix_id"),
    sqlite_autoincrement=True,
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", BigIdentity, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("host_id", BigIdReference, ForeignKey("hosts.id"), nullable=False),
    Column("fix_id", BigIdReference, nullable=True),
    # snapshot | fix | snapshot_delete
    Column("kind", String(16), nullable=False),
    Column("snapshot_record_id", BigIdReference, nullable=True),
    Column("fix_record_id", BigIdReference, nullable=True),
    Column("machine_snapshot_id", BigIdReference, nullable=True),
    # queued -> leased -> done | expired | cancelled
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(), nullable=False),
    Column("leased_at", DateTime(), nullable=True),
    Column("lease_expires_at", DateTime(), nullable=True),
    Column("finished_at", DateTime(), nullable=True),
    # success | failure | unsupported | expired | timeout | cancelled
    Column("outcome", String(16), nullable=False, server_default=""),
    Column("duration_seconds", Float, nullable=True),
    # Partial indexes (migration 0005): a job is in each only while in the state its query
    # looks for, so the finished jobs, nearly all of them, cost it nothing, and leasing and
    # finishing a job change few index pages (a job's rows and commits took a third less).
    # Queries repeat an index's condition in literals (`job_state_is`).
    _partial_index("ix_jobs_leased_expiry", "state = 'leased'", "lease_expires_at"),
    _partial_index("ix_jobs_queued_since", "state = 'queued'", "created_at"),
    _partial_index("ix_jobs_succeeded", "outcome = 'success'", "account_id", "kind", "job_id"),
    # One job at a time per host, enforced by the database even across replicas.
    _partial_index("uq_jobs_active_host", _ACTIVE_CONDITION, "host_id", unique=True),
    sqlite_autoincrement=True,
)
# What a job is for and where it stands: what claims and reports read of it. Its times are
# left out: they are converted from text on every read, and neither needs them.
JOB_WORK = (
    jobs.c.state,
    jobs.c.kind,
    jobs.c.fix_id,
    jobs.c.snapshot_record_id,
    jobs.c.fix_record_id,
    jobs.c.machine_snapshot_id,
)

enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("id", BigIdentity, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(), nullable=False),
    Column("expires_at", DateTime(), nullable=False),
    Column("revoked_at", DateTime(), nullable=True),
    sqlite_autoincrement=True,
)


# A job with its task and its record, whichever kind it has (outer joins on primary keys),
# and the record's status under a name of each kind: what a report or a claim decides by.
JOB_WITH_RECORD = (
    jobs.outerjoin(fix_tasks, fix_tasks.c.fix_id == jobs.c.fix_id)
    .outerjoin(snapshot_records, snapshot_records.c.id == jobs.c.snapshot_record_id)
    .outerjoin(fix_records, fix_records.c.id == jobs.c.fix_record_id)
)
RECORD_STATUSES = (
    snapshot_records.c.status.label("snapshot_status"),
    fix_records.c.status.label("fix_status"),
)


def job_state_is(*states: str) -> ColumnElement[bool]:
    """`jobs.state` is one of `states`, written as literals: SQLite uses a partial index only
    where a query repeats the index's condition term for term, and PostgreSQL's generic plans
    cannot see a bound value."""
    values: list[ColumnElement[str]] = [literal_column(f"'{state}'") for state in states]
    return jobs.c.state == values[0] if len(values) == 1 else jobs.c.state.in_(values)


# The unique index's condition, for queries to repeat: with the states bound, SQLite would
# sort a host's jobs in both states instead of reading its one active job.
JOB_ACTIVE = job_state_is(*ACTIVE_STATES)
