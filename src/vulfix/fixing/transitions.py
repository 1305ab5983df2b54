"""How a job's outcome, a retry or a timeout moves records, checked against the tables."""

from __future__ import annotations

from collections.abc import Iterable

from vulfix.fixing.agent_port import Outcome
from vulfix.fixing.statuses import (
    FIX_FAILED,
    FIX_TRANSITIONS,
    FIX_UNFINISHED,
    SNAPSHOT_TRANSITIONS,
    FixStatus,
    SnapshotStatus,
)
from vulfix.inventory.records import AutoFixState

FINDING_FIXING = int(AutoFixState.FIXING)
FINDING_FIXED = int(AutoFixState.FIXED)
FINDING_FAILED = int(AutoFixState.FIX_FAILED)

REASON_SNAPSHOT_FAILED = "not fixed: the snapshot before the fix failed"
REASON_LEASE_EXPIRED = "agent lost contact: no result within the {seconds:.0f} s lease"
REASON_DISPATCH_TIMEOUT = "agent offline: the job was not picked up within {seconds:.0f} s"
REASON_BUDGET = "stopped: error budget exceeded"
REASON_CANCELLED = "cancelled by the operator"


class IllegalTransition(Exception):
    """A change the transition tables forbid: a bug, never an answer to a client."""


def check_snapshot(old: SnapshotStatus, new: SnapshotStatus) -> None:
    if new not in SNAPSHOT_TRANSITIONS[old]:
        raise IllegalTransition(f"snapshot record {old.name} -> {new.name}")


def check_fix(old: FixStatus, new: FixStatus) -> None:
    if new not in FIX_TRANSITIONS[old]:
        raise IllegalTransition(f"fix record {old.name} -> {new.name}")


def snapshot_outcome(outcome: Outcome, reason: str) -> tuple[SnapshotStatus, str]:
    if outcome == "success":
        return SnapshotStatus.CREATED, ""
    if outcome == "unsupported":
        # The host cannot snapshot after all: record 10 and fix it without one, as for a
        # machine type without snapshots.
        return SnapshotStatus.NOT_SUPPORTED, ""
    return SnapshotStatus.FAILED, reason or "snapshot failed"


def fix_outcome(outcome: Outcome, reason: str) -> tuple[FixStatus, str]:
    if outcome == "success":
        return FixStatus.FIXED, ""
    if outcome == "unsupported":
        return (
            FixStatus.FAILED,
            f"not supported on this host: {reason}" if reason else "not supported on this host",
        )
    return FixStatus.FAILED, reason or "fix failed"


def finding_state(statuses: Iterable[FixStatus]) -> int:
    """IsSupportAutoFix of a (host, vulnerability) from its records in the latest task."""
    seen = set(statuses)
    if seen & FIX_UNFINISHED:
        return FINDING_FIXING
    if seen & FIX_FAILED:
        return FINDING_FAILED
    return FINDING_FIXED
