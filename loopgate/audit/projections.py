"""Check the query tables against the log: replay it into scratch tables and compare.

The hash chain proves the log was not edited; it says nothing of the query
tables, which every read serves from. A hand-edited ``requests`` row (a
request marked answered that nobody answered) is caught here: the log is
replayed into a scratch SQLite file (the same projections' SQL a rebuild runs,
``store/scratch.py``) and every table is compared row by row with the live
one, naming the first row that differs.

Each table is held in memory while it is compared (its rows by primary key),
one table at a time. Columns a projection declares as not from the log
(``UNLOGGED_COLUMNS``, e.g. ``api_keys.last_used_at``) are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from loopgate.projections import PROJECTIONS, Projection
from loopgate.store.base import EventStore, replay
from loopgate.store.scratch import ScratchTables
from loopgate.store.sqlite import sqlite_value

REPLAY_BATCH = 5000


class ProjectionCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome: ``difference`` says what differs first, None when the tables match."""

    tables: int
    rows: int
    events: int
    difference: str | None = None

    @property
    def ok(self) -> bool:
        return self.difference is None


async def check_projections(
    store: EventStore, progress: Callable[[int], None] | None = None
) -> ProjectionCheck:
    """Replay ``store``'s log into scratch tables and compare each with the live table."""
    scratch = ScratchTables()
    try:
        replayed = 0
        async for statements, count in replay(store.read_rows, REPLAY_BATCH):
            scratch.apply(statements)
            replayed += count
            if progress is not None:
                progress(replayed)
        rows = 0
        for projection in PROJECTIONS:
            compared, difference = await _compare(store, scratch, projection)
            rows += compared
            if difference is not None:
                return ProjectionCheck(
                    tables=len(PROJECTIONS), rows=rows, events=replayed, difference=difference
                )
        if await store.head() != replayed:
            # Not a corruption: the log grew while it was compared, so the live
            # tables may hold rows the replay did not see.
            return ProjectionCheck(
                tables=len(PROJECTIONS),
                rows=rows,
                events=replayed,
                difference="the log grew during the check; run it again on a quiet server",
            )
        return ProjectionCheck(tables=len(PROJECTIONS), rows=rows, events=replayed)
    finally:
        scratch.close()


async def _compare(
    store: EventStore, scratch: ScratchTables, projection: Projection
) -> tuple[int, str | None]:
    table = projection.TABLE
    unlogged = set(getattr(projection, "UNLOGGED_COLUMNS", ()))
    described = scratch.columns(table)
    columns = [name for name, _ in described if name not in unlogged]
    key = [name for name, is_key in described if is_key]
    json_columns = await _json_columns(store, table)
    rebuilt = {
        _key(row, columns, key): row
        for chunk in scratch.rows(table, columns, REPLAY_BATCH)
        for row in (
            _normal(dict(zip(columns, values, strict=True)), json_columns) for values in chunk
        )
    }
    live_rows = await store.fetch(f"SELECT {', '.join(columns)} FROM {table}")
    for raw in live_rows:
        row = _normal(raw, json_columns)
        row_key = _key(row, columns, key)
        expected = rebuilt.pop(row_key, None)
        where = f"{table} row {_describe(row_key, key)}"
        if expected is None:
            return len(live_rows), f"{where} is in the table but not in the log"
        for column in columns:
            if row[column] != expected[column]:
                return len(live_rows), (
                    f"{where}: {column} is {row[column]!r} in the table,"
                    f" {expected[column]!r} from the log"
                )
    if rebuilt:
        missing = next(iter(rebuilt))
        return len(live_rows), f"{table} row {_describe(missing, key)} is missing from the table"
    return len(live_rows), None


async def _json_columns(store: EventStore, table: str) -> frozenset[str]:
    if store.backend != "postgres":
        return frozenset()  # SQLite keeps JSON as the text the projection wrote
    rows = await store.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = ? AND data_type IN ('json', 'jsonb')",
        (table,),
    )
    return frozenset(row["column_name"] for row in rows)


def _normal(row: dict[str, Any], json_columns: frozenset[str]) -> dict[str, Any]:
    """One form for both backends: timestamps as SQLite's text, booleans as 0/1, JSON decoded."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        if column in json_columns and isinstance(value, str):
            value = msgspec.json.decode(value)
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, datetime):
            value = sqlite_value(value)
        out[column] = value
    return out


def _key(row: dict[str, Any], columns: list[str], key: list[str]) -> tuple[Any, ...]:
    return tuple(row[name] for name in (key or columns))


def _describe(row_key: tuple[Any, ...], key: list[str]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in zip(key, row_key, strict=False))
