"""The device paths' reads: one SELECT on a connection kept open, straight through the driver.

The serial list and the pass-version check are what every device calls after every push,
so they are the server's hottest paths. Measured per request on PostgreSQL
(bench/http_paths.py and in-process timings in BENCHMARKS.md), a bare Flask request costs
about 470 µs of CPU; on top of it, a pool checkout with its transaction cost about as much as
the query, SQLAlchemy's execution layer about 90 µs, and PostgreSQL parsing and planning the
three-table join about 250 µs on every call. So these reads:

- run on autocommit connections held from request to request: no checkout, no BEGIN and
  ROLLBACK;
- go to the DBAPI cursor directly, with SQLAlchemy still compiling the statement (once) and
  converting the results by the columns' types (UTC datetimes, booleans);
- on PostgreSQL, run as server-side prepared statements, planned once per connection.

Everything else uses the ORM session as usual.
"""

from __future__ import annotations

import hashlib
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

# PostgreSQL error codes that mean "this connection's prepared statement is no longer
# usable": gone (a DISCARD ALL, a pooler that moved us to another server connection), or
# planned for a schema a migration has since changed ("cached plan must not change result
# type"). A new connection prepares it afresh.
PREPARED_STATEMENT_GONE = "26000"
CACHED_PLAN_CHANGED = "0A000"
# Behind a pooler, the server connection may hold our statement already: by its name, the
# very same one (see Reads._compile_prepared).
ALREADY_PREPARED = "42P05"


@dataclass(frozen=True)
class _Compiled:
    """One statement made ready for the driver."""

    sql: str  # in the driver's own parameter style
    parameter_names: list[str] | None  # the order of positional parameters; None: by name
    bound: dict[str, Any]  # values the statement binds itself (literals such as an id of 1)
    # (column index, conversion) for the columns whose SQLAlchemy type converts what the
    # driver returns: SQLite's text datetimes and 0/1 booleans, our UTCDateTime.
    conversions: list[tuple[int, Callable[[Any], Any]]]
    row: Any  # a namedtuple class of the selected columns' names
    prepare: str = ""  # PostgreSQL: the PREPARE to run once per connection, before `sql`
    name: str = ""  # PostgreSQL: the prepared statement's name

    def parameters(self, params: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = {**self.bound, **params}
        if self.parameter_names is None:
            return values
        return tuple(values[name] for name in self.parameter_names)

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[Any]:
        make = self.row._make
        if not self.conversions:
            return list(map(make, fetched))
        rows = []
        for raw in fetched:
            values = list(raw)
            for index, convert in self.conversions:
                values[index] = convert(values[index])
            rows.append(make(values))
        return rows


class _Connection:
    """A DBAPI connection we hold, and the statements prepared on it."""

    def __init__(self, pooled: Any) -> None:
        self.pooled = pooled  # SQLAlchemy's proxy: close() hands it back to its engine
        self.prepared: set[str] = set()

    def run(self, compiled: _Compiled, params: dict[str, Any]) -> list[Any]:
        cursor = self.pooled.cursor()
        try:
            if compiled.prepare and compiled.name not in self.prepared:
                try:
                    cursor.execute(compiled.prepare)
                except Exception as error:
                    if getattr(error, "pgcode", None) != ALREADY_PREPARED:
                        raise
                self.prepared.add(compiled.name)
            cursor.execute(compiled.sql, compiled.parameters(params))
            return compiled.rows(cursor.fetchall())
        finally:
            cursor.close()


class Reads:
    """Runs module-level SELECT statements for the device paths; thread-safe.

    One connection is held for each read running at the same moment, so a sync gunicorn
    worker holds one, beside the pool it uses for everything else. Statements are
    compiled on first use and kept: pass the same module-level statement every time, with
    parameters the driver takes as they are (strings, numbers).
    """

    def __init__(self, engine: sa.Engine) -> None:
        url = engine.url
        # An in-memory SQLite database exists only inside the one connection that the
        # engine shares with the session: read through it like the session, keeping nothing.
        self._shared = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        self._engine = (
            engine
            if self._shared
            # NullPool: the connections we hold are all there is; one we drop is closed.
            else sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        )
        self._compiled: dict[sa.Select[Any], _Compiled] = {}
        self._idle: list[_Connection] = []  # append() and pop() are atomic: thread-safe

    def rows(self, statement: sa.Select[Any], params: dict[str, Any]) -> list[Any]:
        """The statement's rows as named tuples, their values converted by column type."""
        compiled = self._compiled.get(statement) or self._compile(statement)
        if self._shared:
            return self._read_once(compiled, params)
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = _Connection(self._engine.raw_connection())
        try:
            rows = connection.run(compiled, params)
        except self._engine.dialect.loaded_dbapi.Error as error:
            connection.pooled.invalidate()
            if not self._worth_a_new_connection(error, connection):
                raise
            return self._read_once(compiled, params)
        except BaseException:
            connection.pooled.invalidate()
            raise
        self._idle.append(connection)
        return rows

    def close(self) -> None:
        """Close the connections held between reads (new reads open new ones)."""
        while self._idle:
            self._idle.pop().pooled.close()

    def _worth_a_new_connection(self, error: Exception, connection: _Connection) -> bool:
        """A read is safe to repeat: do so, once, when the connection is what failed."""
        if self._engine.dialect.is_disconnect(error, connection.pooled, None):
            return True  # the server dropped it: a restart, an idle timeout
        return getattr(error, "pgcode", None) in (PREPARED_STATEMENT_GONE, CACHED_PLAN_CHANGED)

    def _read_once(self, compiled: _Compiled, params: dict[str, Any]) -> list[Any]:
        """On a connection of its own, closed (or given back to a shared pool) afterwards."""
        connection = _Connection(self._engine.raw_connection())
        try:
            return connection.run(compiled, params)
        finally:
            connection.pooled.close()

    def _compile(self, statement: sa.Select[Any]) -> _Compiled:
        dialect = self._engine.dialect
        columns = list(statement.selected_columns)
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        conversions = [(index, p) for index, p in enumerate(processors) if p is not None]
        row = namedtuple("Row", [column.key for column in columns])  # type: ignore[misc]
        if dialect.name == "postgresql":
            compiled = self._compile_prepared(statement, conversions, row)
        else:
            plain = statement.compile(dialect=dialect)
            compiled = _Compiled(
                sql=plain.string,
                parameter_names=list(plain.positiontup or []) if plain.positional else None,
                bound=plain.params,
                conversions=conversions,
                row=row,
            )
        self._compiled[statement] = compiled
        return compiled

    def _compile_prepared(
        self,
        statement: sa.Select[Any],
        conversions: list[tuple[int, Callable[[Any], Any]]],
        row: Any,
    ) -> _Compiled:
        # PREPARE takes $1, $2, ...; EXECUTE then passes them in that order through the
        # driver's own %s placeholders.
        numbering = type(self._engine.dialect)(paramstyle="numeric_dollar")
        numbered = statement.compile(dialect=numbering)
        names = list(numbered.positiontup or [])
        # Named after the SQL itself: a server connection that already has a statement of
        # this name (behind a pooler, from another process) has the very same one.
        name = "read_" + hashlib.sha256(numbered.string.encode()).hexdigest()[:16]
        return _Compiled(
            sql=f"EXECUTE {name}({', '.join(['%s'] * len(names))})" if names else f"EXECUTE {name}",
            parameter_names=names,
            bound=numbered.params,
            conversions=conversions,
            row=row,
            prepare=f"PREPARE {name} AS {numbered.string}",
            name=name,
        )
