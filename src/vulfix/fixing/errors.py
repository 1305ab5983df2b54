"""The domain's own failures. The action layer maps each to an API code in one table."""

from __future__ import annotations


class FixingError(Exception):
    """Base of every domain failure; `str()` is an English sentence fit for an operator."""

    def __init__(self, message: str, message_zh: str | None = None) -> None:
        super().__init__(message)
        self.message_zh = message_zh or message


class LookupIncomplete(FixingError):
    """Neither FixId nor VulId was given to find a task."""


class TaskNotFound(FixingError):
    """No task of this account matches (another account's task looks exactly the same)."""


class InvalidFixRequest(FixingError):
    """The request names hosts or vulnerabilities that cannot be fixed as asked."""


class IncompleteFixItem(FixingError):
    """A fix item names neither a vulnerability nor a KB patch."""


class MalformedBudget(FixingError):
    """MaxConcurrency or MaxErrors is neither a number nor a percentage."""


class CannotAutoFix(FixingError):
    """Some hosts lack the capability to be fixed automatically (IsSupportAutoFix 0/2/3/4/11/12)."""


class RecordNotFound(FixingError):
    """No record of that task, host (and vulnerability) exists."""


class RecordBusy(FixingError):
    """The record is still running; it cannot be retried yet."""


class RecordNotRetryable(FixingError):
    """The record is not in a failed state that this retry applies to."""


class RecordBlocked(FixingError):
    """The record cannot run: its snapshot failed, or its host's agent is offline."""


class SnapshotQuotaExhausted(FixingError):
    """The host already keeps as many snapshots as it may."""


class StorageUnavailable(FixingError):
    """The database failed or could not be reached."""


class ChangeFreeze(FixingError):
    """The operator froze changes for this account: no new fix task may start."""
