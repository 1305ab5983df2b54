"""Record statuses and their transition tables, as data (DESIGN §2, spec §3.3)."""

from __future__ import annotations

from enum import IntEnum


class SnapshotStatus(IntEnum):
    PENDING = 0
    CREATED = 1
    FAILED = 2
    NOT_SUPPORTED = 10
    NOT_NEEDED = 11


class FixStatus(IntEnum):
    WAITING = 0
    DISPATCHED = 1
    FIXED = 2
    FAILED = 3
    SNAPSHOT_FAILED = 4


SNAPSHOT_TERMINAL = frozenset(
    {
        SnapshotStatus.CREATED,
        SnapshotStatus.FAILED,
        SnapshotStatus.NOT_SUPPORTED,
        SnapshotStatus.NOT_NEEDED,
    }
)
# A host's fixes may start once its snapshot record is in one of these.
SNAPSHOT_CLEARS_FIX = frozenset(
    {SnapshotStatus.CREATED, SnapshotStatus.NOT_SUPPORTED, SnapshotStatus.NOT_NEEDED}
)
FIX_TERMINAL = frozenset({FixStatus.FIXED, FixStatus.FAILED, FixStatus.SNAPSHOT_FAILED})
FIX_FAILED = frozenset({FixStatus.FAILED, FixStatus.SNAPSHOT_FAILED})
# Fix records with work left: waiting for their turn, or dispatched to the agent.
FIX_UNFINISHED = frozenset({FixStatus.WAITING, FixStatus.DISPATCHED})

SNAPSHOT_TRANSITIONS: dict[SnapshotStatus, frozenset[SnapshotStatus]] = {
    SnapshotStatus.PENDING: frozenset(
        {SnapshotStatus.CREATED, SnapshotStatus.FAILED, SnapshotStatus.NOT_SUPPORTED}
    ),
    SnapshotStatus.FAILED: frozenset({SnapshotStatus.PENDING}),  # RetryCreateSnapshot
    SnapshotStatus.CREATED: frozenset(),
    SnapshotStatus.NOT_SUPPORTED: frozenset(),
    SnapshotStatus.NOT_NEEDED: frozenset(),
}

FIX_TRANSITIONS: dict[FixStatus, frozenset[FixStatus]] = {
    FixStatus.WAITING: frozenset(
        {FixStatus.DISPATCHED, FixStatus.SNAPSHOT_FAILED, FixStatus.FAILED}
    ),
    FixStatus.DISPATCHED: frozenset({FixStatus.FIXED, FixStatus.FAILED}),
    FixStatus.FAILED: frozenset({FixStatus.WAITING}),  # RetryVulFix
    FixStatus.SNAPSHOT_FAILED: frozenset({FixStatus.WAITING}),  # RetryCreateSnapshot
    FixStatus.FIXED: frozenset(),
}
