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
