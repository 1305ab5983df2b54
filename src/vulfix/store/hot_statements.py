"""The agents' hot statements, run on SQLite's driver directly.

An agent job is some twenty small statements. Through SQLAlchemy each cost about 50 us of
Python (a greenlet hop, the compiled cache's key, parameter and result processing) around
2 to 5 us of SQLite. A statement built once at import is compiled here once, with its
parameter order, defaults and type conversions worked out, and then runs as one `sqlite3`
call inside the caller's transaction, its rows converted as SQLAlchemy would convert them.

PostgreSQL, and statements this cannot take (expanding IN lists), go through SQLAlchemy as
before: the result offers the few `Result` methods the store uses, either way.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import JSON, Executable, Insert, Table, bindparam, insert
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import (
    DBAPIError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.util import greenlet_spawn

from vulfix.store.database import read_row, sqlite_driver, storage_errors

Converter = Callable[[Any], Any]
Processor = Converter | None


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    default: Any
    required: bool
    convert: Processor


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    parameters: tuple[_Parameter, ...]
    row: type[tuple[Any, ...]] | None  # a named tuple for statements returning rows
    # (index, converter) of the result columns that need converting.
    converters: tuple[tuple[int, Converter], ...]
    # The usual call gives the statement's required parameters and none of its literals:
    # their values in order, the literals' (converted once) in their places and the given
    # values converted where they need it, built by one function written for the statement.
    values_of: Callable[[dict[str, Any]], tuple[Any, ...]]
    optional: frozenset[str]  # parameters with a value of their own, which a call may give


class Rows:
    """What the store reads of a result: rows with named fields, or a changed-row count and,
    after an INSERT on SQLite's driver, the new row's id (`lastrowid`: a RETURNING clause
    costs SQLite a temporary table, a third of a small insert's time)."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int, lastrowid: int | None = None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def all(self) -> list[Any]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


def bound_insert(table: Table, *columns: str) -> Insert:
    """`INSERT INTO table (columns) VALUES (:column, ...)`: one row, every value bound, so
    that it compiles once."""
    return insert(table).values({column: bindparam(column) for column in columns})


_json_decode = msgspec.json.Decoder().decode

# Far more than the hot path's statements.
MAX_PLANS = 512
_plans: dict[int, tuple[Executable, _Plan | None]] = {}


# The connection last run on, its dialect and its `sqlite3` driver (None on PostgreSQL): a
# shared transaction runs hundreds of statements on one connection, and reaching the driver
# through SQLAlchemy's layers cost a microsecond each time. Held weakly, read and replaced
# whole.
_last_connection: tuple[weakref.ref[AsyncConnection] | None, Dialect | None, Any] = (
    None,
    None,
    None,
)


async def run(conn: AsyncConnection, statement: Executable, parameters: dict[str, Any]) -> Rows:
    """`statement` with `parameters` in `conn`'s transaction."""
    global _last_connection
    last, dialect, driver = _last_connection
    if last is None or last() is not conn:
        dialect = conn.dialect
        driver = sqlite_driver(conn.sync_connection) if dialect.name == "sqlite" else None
        _last_connection = (weakref.ref(conn), dialect, driver)
    if driver is not None and dialect is not None:
        plan = _plan(dialect, statement)
        if plan is not None:
            return _run_on_driver(driver, plan, parameters)
    result = await conn.execute(statement, parameters)
    if not result.returns_rows:
        return Rows((), result.rowcount)
    return Rows(result.all(), result.rowcount)


async def read_first(engine: AsyncEngine, statement: Executable, parameters: dict[str, Any]) -> Any:
    """The first row of one read statement, on a connection of its own (`database.read_row`).
    On SQLite it runs as the driver's own implicit transaction: no BEGIN, no COMMIT."""
    plan = _plan(engine.dialect, statement)
    if plan is None:
        return await read_row(engine, statement, parameters)

    def hop() -> Any:
        with engine.sync_engine.connect() as conn:
            return _run_on_driver(sqlite_driver(conn), plan, parameters).first()

    with storage_errors():
        return await greenlet_spawn(hop)


def _plan(dialect: Dialect, statement: Executable) -> _Plan | None:
    if dialect.name != "sqlite":
        return None
    # Keyed by identity, and holding the statement: statements built once at import are
    # what this is for; one built per call is compiled again each time, as SQLAlchemy would.
    known = _plans.get(id(statement))
    if known is not None and known[0] is statement:
        return known[1]
    if len(_plans) >= MAX_PLANS:
        _plans.clear()
    plan = _compile(dialect, statement)
    _plans[id(statement)] = (statement, plan)
    return plan


def _compile(dialect: Dialect, statement: Executable) -> _Plan | None:
    compiled = cast(ClauseElement, statement).compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if compiled.positiontup is None or any(b.expanding for b in compiled.binds.values()):
        return None  # rendered again for each execution: leave it to SQLAlchemy
    converts = compiled._bind_processors
    parameters = tuple(
        _Parameter(
            name,
            compiled.binds[name].effective_value,
            compiled.binds[name].required,
            _faster(dialect, compiled.binds[name], cast(Processor, converts.get(name))),
        )
        for name in compiled.positiontup
    )
    row: Any = None
    converters: tuple[Processor, ...] = ()
    columns = compiled._result_columns
    if columns:
        row = _row_type([column.keyname for column in columns])
        converters = tuple(_faster_result(dialect, column.type) for column in columns)
    return _Plan(
        str(compiled),
        parameters,
        row,
        tuple((index, convert) for index, convert in enumerate(converters) if convert is not None),
        values_of=_values_function(parameters),
        optional=frozenset(p.name for p in parameters if not p.required),
    )


def _values_function(parameters: tuple[_Parameter, ...]) -> Callable[[dict[str, Any]], Any]:
    """`given -> (value, ...)` for a call that gives every required parameter and no literal,
    written out for these parameters: a tuple built in one expression, where looking each
    place up in loops took half a microsecond more a statement. A missing value raises
    KeyError, for `_values` to report as SQLAlchemy would."""
    namespace: dict[str, Any] = {}
    places = []
    for index, parameter in enumerate(parameters):
        if not parameter.required:
            default = parameter.default
            namespace[f"d{index}"] = (
                default if parameter.convert is None else parameter.convert(default)
            )
            places.append(f"d{index}")
        elif parameter.convert is None:
            places.append(f"given[{parameter.name!r}]")
        else:
            namespace[f"c{index}"] = parameter.convert
            places.append(f"c{index}(given[{parameter.name!r}])")
    source = f"def values(given):\n    return ({', '.join(places)}{',' if places else ''})\n"
    exec(source, namespace)  # noqa: S102 - the source is built above from names and indexes
    return cast(Callable[[dict[str, Any]], Any], namespace["values"])


def _faster_result(dialect: Dialect, column_type: Any) -> Processor:
    """The column's result processor, or a quicker one that reads the same values. SQLAlchemy
    reads a JSON column with `json.loads`; msgspec parses the same text several times faster,
    and whatever it would not parse goes to `json.loads` as before."""
    convert: Processor = column_type._cached_result_processor(dialect, None)
    if convert is None or not isinstance(column_type.dialect_impl(dialect), JSON):
        return convert
    slow = convert

    def load(value: Any) -> Any:
        if value.__class__ is str:
            try:
                return _json_decode(value)
            except msgspec.DecodeError:
                pass
        return slow(value)

    return load


def _faster(dialect: Dialect, bind: BindParameter[Any], convert: Processor) -> Processor:
    """`convert`, or a quicker one that writes the same text. SQLAlchemy writes a SQLite
    DATETIME through a %-format of seven named fields (1.5 us, and an agent job binds a dozen
    times); `datetime.isoformat` writes a naive time in that very format in C."""
    if convert is None:
        return None
    impl = bind.type.dialect_impl(dialect)
    if not isinstance(impl, DATETIME) or impl._storage_format != DATETIME._storage_format:
        return convert
    slow = convert

    def stamp(value: Any) -> Any:
        if value.__class__ is datetime and value.tzinfo is None:
            text = _stamps.get(value)
            if text is None:
                text = value.isoformat(" ", "microseconds")
                if len(_stamps) >= MAX_STAMPS:
                    _stamps.clear()
                _stamps[value] = text
            return text
        return slow(value)

    return stamp


# Times lately written, with their text: an operation writes its `now` and a time or two
# derived from it into row after row, and a shared transaction interleaves many operations'.
MAX_STAMPS = 256
_stamps: dict[datetime, str] = {}


def _row_type(names: list[str]) -> Any:
    make: Any = namedtuple  # a type built at run time, from the statement's columns
    return make("HotRow", names, rename=True)


def _run_on_driver(driver: sqlite3.Connection, plan: _Plan, given: dict[str, Any]) -> Rows:
    values = _values(plan, given)
    try:
        cursor = driver.execute(plan.sql, values)
        if plan.row is None:
            return Rows((), cursor.rowcount, cursor.lastrowid)
        fetched = cursor.fetchall()
    except sqlite3.Error as error:
        raise DBAPIError.instance(plan.sql, values, error, sqlite3.Error) from error
    make = plan.row._make  # type: ignore[attr-defined]
    if plan.converters and fetched:
        return Rows([make(_converted(row, plan.converters)) for row in fetched], cursor.rowcount)
    return Rows(list(map(make, fetched)), cursor.rowcount)


def _converted(row: tuple[Any, ...], converters: tuple[tuple[int, Converter], ...]) -> list[Any]:
    """The row with its values converted where its columns need it. NULL stays None, as
    every SQLAlchemy result processor leaves it, without a call."""
    values = list(row)
    for index, convert in converters:
        value = values[index]
        if value is not None:
            values[index] = convert(value)
    return values


def _values(plan: _Plan, given: dict[str, Any]) -> Sequence[Any]:
    """The statement's values in order, for a call giving `given`."""
    if plan.optional and not plan.optional.isdisjoint(given):
        return _values_and_defaults(plan, given)  # a literal's value given: the careful way
    try:
        return plan.values_of(given)
    except KeyError:
        return _values_and_defaults(plan, given)  # SQLAlchemy's error for the missing one


def _values_and_defaults(plan: _Plan, given: dict[str, Any]) -> list[Any]:
    """The values of a call that leaves out some parameters: their defaults, or SQLAlchemy's
    error where a value is required."""
    values = []
    for parameter in plan.parameters:
        if parameter.name in given:
            value = given[parameter.name]
        elif parameter.required:  # as SQLAlchemy says it
            problem = InvalidRequestError(
                f"A value is required for bind parameter {parameter.name!r}"
            )
            raise StatementError(str(problem), plan.sql, given, problem)
        else:
            value = parameter.default
        values.append(value if parameter.convert is None else parameter.convert(value))
    return values
