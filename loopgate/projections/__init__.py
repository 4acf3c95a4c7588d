"""Read models: query tables kept in step with the log.

A projection is a module with ``TABLE`` (the table it owns), ``EVENTS`` (the
event types it handles) and ``apply(record) -> list[Statement]``: pure SQL for
one event, which the store executes inside the append's transaction, so a
read after a write sees it. A module may also name ``UNLOGGED_COLUMNS``:
columns kept in place rather than derived from events, which
``loopgate audit verify`` leaves out when it compares the tables with the log.
SQL uses ``?`` placeholders; the Postgres backend renumbers them. Timestamps
are passed as ``datetime`` and JSON as text; each backend adapts them.

``loopgate projections rebuild`` empties every table and replays the log
through the same ``apply`` functions, which is how a projection's shape can
change without a data migration.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from loopgate.events import AnyEvent, Event, RecordedEvent

Statement = tuple[str, tuple[Any, ...]]


class Projection(Protocol):
    TABLE: str

    @property
    def EVENTS(self) -> tuple[type[Event], ...]: ...  # read-only: each module's own tuple type

    def apply(self, record: RecordedEvent) -> list[Statement]: ...


def _all() -> Sequence[Projection]:
    from loopgate.projections import (
        api_keys,
        deliveries,
        grants,
        groups,
        identities,
        invitations,
        login_failures,
        members,
        policies,
        requests,
        sessions,
        telegram_messages,
        users,
        workspaces,
    )

    return (
        sessions,
        requests,
        telegram_messages,
        deliveries,
        users,
        login_failures,
        api_keys,
        workspaces,
        members,
        groups,
        identities,
        invitations,
        policies,
        grants,
    )


PROJECTIONS: Sequence[Projection] = _all()

# Which projections each event type reaches: most events concern one or two
# tables, and asking the others costs a rebuild more than deciding the SQL does.
_HANDLERS: dict[type[Event], tuple[Projection, ...]] = {
    cls: tuple(p for p in PROJECTIONS if cls in p.EVENTS) for cls in AnyEvent.__args__
}


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
    handlers = _HANDLERS[type(record.event)]
    return [stmt for projection in handlers for stmt in projection.apply(record)]


def batch_statements(records: Sequence[RecordedEvent]) -> list[Statement]:
    """The SQL for a batch of events, ordered so that the same statements come together.

    Taken event by event, a batch alternates (insert a request, mark one
    delivered, insert the next...) and every statement is a round trip. But
    each row of a query table belongs to one stream, so only the order within
    a stream matters: the events go in waves (the first event of every stream
    in the batch, then the second...), and within a wave the events of one
    type give their first statements, then their second ones, and so on. Each
    event's own statements keep their order.
    """
    waves: dict[int, dict[str, list[list[Statement]]]] = defaultdict(dict)
    seen: Counter[str] = Counter()
    for record in records:
        wave = seen[record.stream]
        seen[record.stream] += 1
        waves[wave].setdefault(record.type, []).append(statements_for(record))
    ordered: list[Statement] = []
    for wave in sorted(waves):
        for per_event in waves[wave].values():
            for step in range(max(map(len, per_event))):
                ordered.extend(stmts[step] for stmts in per_event if step < len(stmts))
    return ordered
