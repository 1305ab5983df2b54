"""The schema, as SQLAlchemy Core tables. Migrations under `migrations/versions` must match it.

Times are stored as naive UTC `DateTime` (the same on SQLite and PostgreSQL); `utc_now` makes
them and `as_utc` turns what the database returns back into aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

# Stable constraint names on every dialect, so later migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# First AppId handed out; AppIds look like the cloud's 10-digit ones and stay below 2**53 so
# JavaScript clients read them exactly.
FIRST_APP_ID = 1_250_000_001

KEY_ENABLED = "enabled"
KEY_DISABLED = "disabled"

# SQLite only auto-increments an `INTEGER PRIMARY KEY`, not a BIGINT one.
BigIdentity = BigInteger().with_variant(Integer(), "sqlite")
# A column holding an id (one of those, or a VulId or KbId, which clients may name up to
# 2^63 - 1) is as wide: PostgreSQL refuses to compare a 32-bit column with a larger value.
# SQLite's INTEGER is 64-bit whatever it is called.
BigIdReference = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("app_id", BigInteger, nullable=False, unique=True),
    Column("created_at", DateTime(), nullable=False),
    # A change freeze set by the operator: no new fix task may start while it is set.
    Column("frozen_at", DateTime(), nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("secret_id", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("secret_key_encrypted", LargeBinary, nullable=False),
    Column("read_only", Boolean, nullable=False),
    # A CAM-like policy: the actions this key may call; NULL allows every action.
    Column("allowed_actions", JSON, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(), nullable=False),
    CheckConstraint(f"status IN ('{KEY_ENABLED}', '{KEY_DISABLED}')", name="status"),
)

fix_tasks = Table(
    "fix_tasks",
    metadata,
    Column("fix_id", BigIdentity, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", DateTime(), nullable=False),
    # FixIds only ever grow, even after retention deletes the newest task.
    sqlite_autoincrement=True,
)


def utc_now() -> datetime:
    """The current time as stored: naive UTC."""
    return to_stored(datetime.now(UTC))


# Conversions by arithmetic on an epoch: exact, and on CPython 3.11 a twelfth of the time of
# `astimezone(UTC).replace(tzinfo=None)` (0.05 us against 0.7; `replace` parses keyword
# arguments). An agent job converts a dozen times; a task's status answer, once per record.
_AWARE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def as_utc(stored: datetime) -> datetime:
    """A stored naive-UTC time as an aware datetime."""
    if stored.tzinfo is not None:  # a driver that gave it a zone already: relabelled
        return stored.replace(tzinfo=UTC)
    return _AWARE_EPOCH + (stored - _NAIVE_EPOCH)


def to_stored(moment: datetime) -> datetime:
    """An aware time as stored: naive UTC."""
    if moment.tzinfo is None:  # naive: taken as local time, as `astimezone` takes it
        return moment.astimezone(UTC).replace(tzinfo=None)
    return _NAIVE_EPOCH + (moment - _AWARE_EPOCH)
