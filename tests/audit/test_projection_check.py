"""``check_projections``: the query tables compared with a replay of the log, row by row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from loopgate.accounts.users import AccountService
from loopgate.audit.projections import check_projections
from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.hub import Hub
from loopgate.store.base import EventStore

AGENT = Actor(id="agent", tenant="t1", role="approver")


@pytest.fixture
async def requests(store: EventStore) -> AsyncIterator[Requests]:
    hub = Hub(store)
    await hub.start()
    handler = Requests(store, hub, Sessions(store))
    await handler.sessions.register_session("s1", "ci", None, AGENT)
    for message in ("Deploy?", "Roll back?"):
        await handler.create_request(
            session_id="s1",
            client_id="ci",
            message=message,
            request_type="input",
            actor=AGENT,
        )
    yield handler
    await hub.stop()


async def _first_request(store: EventStore) -> str:
    rows = await store.fetch("SELECT request_id FROM requests WHERE message = ?", ("Deploy?",))
    request_id: str = rows[0]["request_id"]
    return request_id


async def test_tables_built_by_the_log_match_it(store: EventStore, requests: Requests) -> None:
    request_id = await _first_request(store)
    await requests.cancel(request_id, "not today", AGENT)

    result = await check_projections(store)

    assert result.ok, result.difference
    assert (result.events, result.rows) == (await store.head(), 3)  # 1 session, 2 requests


async def test_a_hand_edited_row_is_named_with_its_column(
    store: EventStore, requests: Requests
) -> None:
    request_id = await _first_request(store)
    await store.execute(
        "UPDATE requests SET status = 'answered', approved = ? WHERE request_id = ?",
        (True, request_id),
    )

    result = await check_projections(store)

    assert not result.ok
    assert result.difference is not None
    assert f"requests row request_id={request_id!r}" in result.difference
    assert "is 'answered' in the table, 'pending' from the log" in result.difference


async def test_a_deleted_row_and_an_invented_one_are_both_caught(
    store: EventStore, requests: Requests
) -> None:
    await store.execute("DELETE FROM sessions WHERE session_id = ?", ("s1",))
    missing = await check_projections(store)
    assert (
        missing.difference == "sessions row tenant='t1', session_id='s1' is missing from the table"
    )

    await requests.sessions.register_session("s2", "ci", None, AGENT)
    await store.execute("UPDATE sessions SET session_id = 's1' WHERE session_id = 's2'")
    invented = await check_projections(store)
    assert invented.difference is not None
    assert "session_id='s1'" in invented.difference


async def test_columns_kept_in_place_rather_than_by_events_are_left_out(
    store: EventStore, requests: Requests
) -> None:
    accounts = AccountService(store, jwt_secret="s" * 32, token_ttl_seconds=60)
    user = await accounts.register_user("alice", "correct horse battery")
    owner = await accounts.actor_for_user(user.user_id)
    await accounts.create_api_key(owner, label="ci")
    await store.execute("UPDATE api_keys SET last_used_at = ?", (datetime.now(UTC),))

    assert (await check_projections(store)).ok

    await store.execute("UPDATE api_keys SET label = 'edited'")
    edited = await check_projections(store)
    assert edited.difference is not None
    assert "label is 'edited' in the table, 'ci' from the log" in edited.difference
