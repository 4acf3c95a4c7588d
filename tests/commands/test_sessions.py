"""Sessions per tenant, and logs written while session ids were global.

Such a log has ``session-<id>`` streams. They keep working for the tenant that
wrote them; another tenant registering the same id gets a session of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions, legacy_session_stream, session_stream
from loopgate.errors import Conflict
from loopgate.events import SessionRegistered
from loopgate.hub import Hub
from loopgate.store.base import EventStore

ALICE = Actor(id="alice", tenant="a", role="approver")
BOB = Actor(id="bob", tenant="b", role="approver")
THEN = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def service(store: EventStore) -> Requests:
    return Requests(store, Hub(store), Sessions(store))


async def old_registration(store: EventStore, session_id: str, actor: Actor, **fields: Any) -> None:
    """What a server before per-tenant sessions wrote: the session on ``session-<id>``."""
    event = SessionRegistered(
        session_id=session_id,
        client_id=fields.get("client_id", "agent"),
        telegram_id=fields.get("telegram_id", 7),
        registered_at=THEN,
    )
    await store.append(legacy_session_stream(session_id), 0, [event], actor.meta())


async def tables(store: EventStore) -> dict[str, list[dict[str, Any]]]:
    return {
        "sessions": await store.fetch("SELECT * FROM sessions ORDER BY tenant, session_id"),
        "requests": await store.fetch("SELECT * FROM requests ORDER BY request_id"),
    }


async def test_a_new_session_lives_on_a_stream_of_its_tenant(
    store: EventStore, service: Requests
) -> None:
    await service.sessions.register_session("s1", "agent", None, ALICE)
    [record] = await store.read_all()
    assert record.stream == session_stream("a", "s1") == "session-a/s1"


async def test_a_session_of_an_old_log_keeps_working_on_its_old_stream(
    store: EventStore, service: Requests
) -> None:
    await old_registration(store, "s1", ALICE)
    sessions = service.sessions

    view, changed = await sessions.register_session("s1", "agent", 7, ALICE)
    assert not changed and (view.tenant, view.client_id, view.telegram_id) == ("a", "agent", 7)
    request, _ = await service.create_request(
        session_id="s1", client_id="agent", message="Deploy?", request_type="input", actor=ALICE
    )
    await sessions.deactivate_session("s1", ALICE)
    again, changed = await sessions.register_session("s1", "agent", 8, ALICE)

    assert changed and again.active and again.telegram_id == 8
    old = await store.read_stream(legacy_session_stream("s1"))
    registered, deactivated = "session.registered", "session.deactivated"
    assert [r.type for r in old] == [registered, deactivated, registered]
    assert await store.read_stream(session_stream("a", "s1")) == []
    listed = await service.list_requests(ALICE, session_id="s1")
    assert [r.request_id for r in listed] == [request.request_id]

    live = await tables(store)
    await store.rebuild_projections()
    assert await tables(store) == live


async def test_an_id_squatted_in_an_old_log_is_free_for_every_other_tenant(
    store: EventStore, service: Requests
) -> None:
    await old_registration(store, "mcp", BOB, client_id="squatter")

    view, changed = await service.sessions.register_session("mcp", "mcp", None, ALICE)
    await service.create_request(
        session_id="mcp", client_id="mcp", message="Mine?", request_type="input", actor=ALICE
    )

    assert changed and view.client_id == "mcp"
    assert (await service.sessions.get_session("mcp", BOB)).client_id == "squatter"
    assert [r.tenant for r in await service.list_requests(ALICE)] == ["a"]
    assert await service.list_requests(BOB) == []
    streams = {r.stream for r in await store.read_all() if r.type == "session.registered"}
    assert streams == {legacy_session_stream("mcp"), session_stream("a", "mcp")}

    live = await tables(store)
    await store.rebuild_projections()
    assert await tables(store) == live


async def test_an_old_id_that_looks_like_a_new_stream_name_is_not_mistaken_for_it(
    store: EventStore, service: Requests
) -> None:
    # "a/x" was a valid global id; its old stream has the name of tenant a's "x".
    await old_registration(store, "a/x", BOB)

    with pytest.raises(Conflict) as caught:
        await service.sessions.register_session("x", "agent", None, ALICE)
    assert caught.value.code == "session_id_unavailable"
    # Bob's old session is untouched and still his.
    view, changed = await service.sessions.register_session("a/x", "agent", 7, BOB)
    assert not changed and view.session_id == "a/x"
