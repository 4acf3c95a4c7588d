"""Read models: query tables kept in step with the log.

A projection is a module with ``TABLE`` (the table it owns) and
``apply(record) -> list[Statement]``: pure SQL for one event, which the store
executes inside the append's transaction, so a read after a write sees it.
SQL uses ``?`` placeholders; the Postgres backend renumbers them. Timestamps
are passed as ``datetime`` and JSON as text; each backend adapts them.

``loopgate projections rebuild`` empties every table and replays the log
through the same ``apply`` functions, which is how a projection's shape can
change without a data migration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the stores import this package: a runtime import would be circular
    from loopgate.store.codec import RecordedEvent

Statement = tuple[str, tuple[Any, ...]]


class Projection(Protocol):
    TABLE: str

    def apply(self, record: RecordedEvent) -> list[Statement]: ...


def _all() -> Sequence[Projection]:
    from loopgate.projections import (
        api_keys,
        login_failures,
        requests,
        sessions,
        telegram_messages,
        users,
    )

    return (sessions, requests, telegram_messages, users, login_failures, api_keys)


PROJECTIONS: Sequence[Projection] = _all()


def grouped(statements: list[Statement]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Runs of the same SQL, in order, so a backend can send each run as one ``executemany``."""
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    for sql, params in statements:
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(params)
        else:
            runs.append((sql, [params]))
    return runs


def statements_for(record: RecordedEvent) -> list[Statement]:
    """Every projection's SQL for one event, in projection order."""
    return [stmt for projection in PROJECTIONS for stmt in projection.apply(record)]
