"""Each projection names the events it handles, and only those reach it.

``statements_for`` asks a projection only about the event types in its
``EVENTS``; an event type left out there would silently never reach its
table, live or in a rebuild. So every event type, built with every field
filled in, must give no SQL to a projection that does not list it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from loopgate.events import AnyEvent, Event, Meta, RecordedEvent
from loopgate.projections import PROJECTIONS, Projection, statements_for

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EVENT_CLASSES: tuple[type[Event], ...] = AnyEvent.__args__


def filled(kind: msgspec.inspect.Type) -> Any:
    """A value of ``kind``, never None where something else is allowed."""
    match kind:
        case msgspec.inspect.Metadata(type=inner):  # e.g. a field marked SECRET
            return filled(inner)
        case msgspec.inspect.UnionType(types=types):
            return filled(next(t for t in types if not isinstance(t, msgspec.inspect.NoneType)))
        case msgspec.inspect.LiteralType(values=values):
            return values[0]
        case msgspec.inspect.StrType():
            return "x1"
        case msgspec.inspect.BoolType():
            return True
        case msgspec.inspect.IntType():
            return 1
        case msgspec.inspect.FloatType():
            return 1.5
        case msgspec.inspect.DateTimeType():
            return T0
        case msgspec.inspect.ListType() | msgspec.inspect.VarTupleType():
            return []
        case msgspec.inspect.DictType():
            return {"k": "v"}
        case msgspec.inspect.StructType(cls=cls):
            return sample(cls)
        case msgspec.inspect.AnyType():
            return {"k": "v"}
    raise AssertionError(f"no sample value for {kind}")


def sample(cls: type[Any]) -> Any:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return msgspec.convert(
        {field.name: filled(field.type) for field in info.fields},
        cls,
        from_attributes=False,
    )


def recorded(event: Event) -> RecordedEvent:
    return RecordedEvent(
        position=1,
        stream="s-1",
        version=1,
        event=event,
        meta=Meta(actor="a", tenant="t"),
        recorded_at=T0,
        prev_hash="0" * 64,
        hash="0" * 64,
    )


UNLISTED = [
    pytest.param(projection, cls, id=f"{projection.TABLE}-{cls.__name__}")
    for projection in PROJECTIONS
    for cls in EVENT_CLASSES
    if cls not in projection.EVENTS
]


@pytest.mark.parametrize(("projection", "cls"), UNLISTED)
def test_gives_no_sql_for_an_event_it_does_not_list(
    projection: Projection, cls: type[Event]
) -> None:
    assert projection.apply(recorded(sample(cls))) == []


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_statements_for_an_event_are_those_of_the_projections_listing_it(
    cls: type[Event],
) -> None:
    record = recorded(sample(cls))
    everyone = [stmt for projection in PROJECTIONS for stmt in projection.apply(record)]
    assert statements_for(record) == everyone
    # The samples are full enough to reach the SQL of every projection that lists them.
    assert bool(everyone) == any(cls in projection.EVENTS for projection in PROJECTIONS)
