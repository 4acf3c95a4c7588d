"""A throwaway SQLite file that folds the log into final query-table rows.

Why a Postgres rebuild goes through it: replaying the log into Postgres costs
one statement per event (insert a request, mark it delivered, mark it
answered), and each one is a trip through the executor, a new row version and
an entry in every index of the table: some 35 µs of server time, so a million
events took a minute. The projections' SQL already runs unchanged on SQLite
(the embedded store), where the same statement costs a few microseconds in
this process. So the rebuild replays into a scratch file, then loads only the
final rows into Postgres with COPY: each row is written there once.

A file rather than ``:memory:`` keeps this process's memory flat however long
the log is; nothing in it needs to survive a crash, so it skips the journal
and fsyncs.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopgate.projections import Statement, grouped
from loopgate.store.migrations import migrations_for
from loopgate.store.sqlite import split_sql, sqlite_value

CACHE_KIB = 16 * 1024  # the scratch file's page cache: bounds the memory a rebuild takes


class ScratchTables:
    """The query tables in a temporary SQLite file; ``close()`` deletes it."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="loopgate-rebuild-")
        self._db = sqlite3.connect(Path(self._directory.name) / "tables.db", isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_KIB}"):
            self._db.execute(f"PRAGMA {pragma}")
        for migration in migrations_for("sqlite"):
            for statement in split_sql(migration.sql):
                self._db.execute(statement)
        # Secondary indexes serve readers, and there are none here. Unique ones
        # stay: ON CONFLICT clauses and the log's own consistency depend on them.
        secondary = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND sql NOT LIKE 'CREATE UNIQUE%'"
        ).fetchall()
        for (name,) in secondary:
            self._db.execute(f"DROP INDEX {name}")
        self._db.execute("BEGIN")

    def apply(self, statements: list[Statement]) -> None:
        """Run projection SQL in order, each run of one statement as one ``executemany``."""
        for sql, runs in grouped(statements):
            self._db.executemany(sql, [tuple(map(sqlite_value, params)) for params in runs])

    def columns(self, table: str) -> list[tuple[str, bool]]:
        """The table's columns in order, each with whether it is part of the primary key."""
        info = self._db.execute(f"PRAGMA table_info({table})").fetchall()
        return [(name, pk > 0) for _cid, name, _type, _notnull, _default, pk in info]

    def rows(self, table: str, columns: list[str], batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows, ``batch`` at a time, with the columns in the order given."""
        cursor = self._db.execute(f"SELECT {', '.join(columns)} FROM {table}")
        while chunk := cursor.fetchmany(batch):
            yield chunk

    def close(self) -> None:
        self._db.close()
        self._directory.cleanup()
