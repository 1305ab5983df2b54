"""IN lists: long ones in pieces, so a list of ids never exceeds a driver's bound-parameter
limit; short fixed ones as ORs, so a hot statement is not expanded on every execution."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_

T = TypeVar("T")

# Far below the limits of SQLite (32 766 parameters) and asyncpg (32 767).
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def any_of(column: ColumnElement[Any], values: Iterable[object]) -> ColumnElement[bool]:
    """`column IN (values)` for a fixed list, written as ORs of plain bound parameters.

    SQLAlchemy renders `in_()` of a list as an expanding parameter, expanded again on every
    execution; in the agents' hot statements that cost more than the statement itself."""
    return or_(*(column == value for value in values))
