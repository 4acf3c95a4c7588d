"""``batch_statements``: a batch's SQL regrouped, each stream's order kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loopgate.events import (
    Event,
    LoginFailed,
    Meta,
    RecordedEvent,
    RequestCreated,
    RequestDelivered,
    ResponseReceived,
    UserLoggedIn,
)
from loopgate.projections import batch_statements, grouped, statements_for

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def recorded(position: int, stream: str, version: int, event: Event) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream=stream,
        version=version,
        event=event,
        meta=Meta(),
        recorded_at=T0,
        prev_hash="0" * 64,
        hash="0" * 64,
    )


def request_story(rid: str) -> list[Event]:
    return [
        RequestCreated(
            request_id=rid,
            session_id="s1",
            client_id="c",
            message="?",
            request_type="input",
            timeout_seconds=0,
            created_at=T0,
        ),
        RequestDelivered(
            request_id=rid,
            channel="telegram",
            chat_id=1,
            external_message_id=rid.removeprefix("r"),
            delivered_at=T0,
        ),
        ResponseReceived(
            request_id=rid, responder="u", text="ok", approved=True, channel="api", responded_at=T0
        ),
    ]


def interleaved(count: int) -> list[RecordedEvent]:
    """``count`` requests whose events alternate, as concurrent appends make them."""
    stories = {f"r{i}": request_story(f"r{i}") for i in range(count)}
    records, position = [], 0
    for step in range(3):
        for rid, story in stories.items():
            position += 1
            records.append(recorded(position, f"request-{rid}", step + 1, story[step]))
    return records


def per_stream(statements_in_order: list[tuple[str, tuple[object, ...]]]) -> list[object]:
    return [params for _, params in statements_in_order]


def test_the_statements_are_the_same_ones_in_few_runs() -> None:
    records = interleaved(50)
    plain = [stmt for record in records for stmt in statements_for(record)]
    batched = batch_statements(records)
    assert sorted(map(repr, batched)) == sorted(map(repr, plain))
    assert len(grouped(plain)) > 100
    assert len(grouped(batched)) == 5  # insert; update + telegram message + delivery; update


def test_each_streams_statements_keep_their_order() -> None:
    records = interleaved(5)
    batched = batch_statements(records)
    for rid in (f"r{i}" for i in range(5)):
        mine = [
            stmt
            for record in records
            if record.stream == f"request-{rid}"
            for stmt in statements_for(record)
        ]
        assert [s for s in batched if s in mine] == mine


def test_an_events_own_statements_keep_their_order() -> None:
    # A failed login prunes old failures, then records itself: never the other way round.
    failures = [
        recorded(i + 1, f"user-u{i}", 2, LoginFailed(user_id=f"u{i}", reason="x", failed_at=T0))
        for i in range(3)
    ]
    login = recorded(4, "user-u0", 3, UserLoggedIn(user_id="u0", logged_in_at=T0 + timedelta(1)))
    batched = batch_statements([*failures, login])
    failure_sql = [sql.split()[0] for sql, _ in batched if "login_failures" in sql]
    assert failure_sql == ["DELETE"] * 3 + ["INSERT"] * 3 + ["DELETE"]  # the login comes last
