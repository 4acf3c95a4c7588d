"""A log written before workspaces existed, replayed: the same requests, sessions and keys.

``tests/fixtures/legacy_log.json`` holds the rows Loopgate wrote at the commit
before the teams issue (``tests/fixtures/make_legacy_log.py``; kept, never
regenerated): the open quick start's session and request in ``local``, then
alice and bob registering (each then a tenant of one), alice's agent and
operator keys, bob's agent key, alice's session ``ci`` and three requests:
one answered with her operator key, one cancelled, one left pending.

Here those rows go into an empty store's ``events`` table as they are, as an
upgraded server finds them, and ``rebuild_projections`` replays them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from loopgate.accounts.users import AccountService
from loopgate.audit.verify import verify_log
from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.hub import Hub
from loopgate.store.base import EventStore
from loopgate.store.codec import Row
from loopgate.store.sqlite import sqlite_value
from loopgate.teams import Teams
from loopgate.views import public_request

FIXTURE = Path(__file__).parent.parent / "fixtures" / "legacy_log.json"
ROWS = msgspec.json.decode(FIXTURE.read_bytes(), type=list[Row])
StoreFactory = Any


def events_of(type_: str) -> list[tuple[Row, dict[str, Any]]]:
    """The fixture's events of one type, each with its data and its meta's tenant."""
    found = []
    for row in ROWS:
        if row.type == type_:
            data = msgspec.json.decode(row.data)
            data["_tenant"] = msgspec.json.decode(row.meta)["tenant"]
            found.append((row, data))
    return found


USERS = {data["username"]: data["user_id"] for _, data in events_of("user.registered")}
ALICE, BOB = USERS["alice"], USERS["bob"]


def requests_described() -> dict[str, tuple[str, str, str | None]]:
    """What the fixture says of each request: (tenant, status, the human who decided)."""
    described = {
        d["request_id"]: (d["_tenant"], "pending", None) for _, d in events_of("request.created")
    }
    for _, d in events_of("request.response_received"):
        described[d["request_id"]] = (described[d["request_id"]][0], "answered", d["responder"])
    for _, d in events_of("request.cancelled"):
        described[d["request_id"]] = (described[d["request_id"]][0], "cancelled", None)
    return described


async def insert_rows(store: EventStore, rows: list[Row]) -> None:
    """Put ``rows`` into ``events`` untouched, as the old code wrote them."""
    postgres = not type(store).__module__.endswith("sqlite")
    sql = (
        "INSERT INTO events (position, stream, version, type, data, meta, recorded_at,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?::jsonb, ?::jsonb, ?, ?, ?)"
        if postgres
        else "INSERT INTO events (position, stream, version, type, data, meta, recorded_at,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for r in rows:
        recorded_at = r.recorded_at if postgres else sqlite_value(r.recorded_at)
        params = (r.position, r.stream, r.version, r.type, r.data, r.meta, recorded_at)
        await store.execute(sql, (*params, r.prev_hash, r.hash))


@pytest.fixture
async def replayed(open_test_store: StoreFactory) -> EventStore:
    """An upgraded server's store: the old rows, then ``projections rebuild``, then reopened."""
    first = await open_test_store()
    await insert_rows(first, ROWS)
    assert await first.rebuild_projections() == len(ROWS)
    store: EventStore = await open_test_store()  # a fresh process: nothing cached of the log
    return store


async def test_the_fixture_is_the_log_it_says_it_is() -> None:
    assert len(ROWS) == 15
    assert sorted(USERS) == ["alice", "bob"]
    assert [data["_tenant"] for _, data in events_of("request.created")] == ["local"] + [ALICE] * 3
    assert not any(row.type.startswith(("workspace.", "member.")) for row in ROWS)


async def test_the_same_requests_with_their_statuses_and_deciders(replayed: EventStore) -> None:
    rows = await replayed.fetch("SELECT request_id, tenant, status FROM requests")
    found = {r["request_id"]: (r["tenant"], r["status"]) for r in rows}
    described = requests_described()
    assert found == {rid: (tenant, status) for rid, (tenant, status, _) in described.items()}
    requests = Requests(replayed, Hub(replayed), Sessions(replayed))
    for request_id, (tenant, status, responder) in described.items():
        view = public_request(await requests.get_request(request_id, Actor(tenant=tenant)))
        if status == "answered":
            assert view.decided_by is not None
            assert (view.decided_by.kind, view.decided_by.id) == ("human", responder)
            assert view.decided_by.channel == "api"
        elif status == "cancelled":
            assert view.decided_by is not None and view.decided_by.kind == "agent"
        else:
            assert view.decided_by is None
    answered = [rid for rid, (_, status, _) in described.items() if status == "answered"]
    assert [described[rid][2] for rid in answered] == [ALICE]  # her operator key's answer


async def test_the_anonymous_request_is_in_the_default_workspace(replayed: EventStore) -> None:
    (quick,) = [d for _, d in events_of("request.created") if d["session_id"] == "quick"]
    rows = await replayed.fetch(
        "SELECT tenant, status FROM requests WHERE request_id = ?", (quick["request_id"],)
    )
    assert rows == [{"tenant": "local", "status": "pending"}]


async def test_the_same_sessions(replayed: EventStore) -> None:
    rows = await replayed.fetch("SELECT tenant, session_id, telegram_id, active FROM sessions")
    found = {(r["tenant"], r["session_id"], r["telegram_id"], bool(r["active"])) for r in rows}
    assert found == {
        (d["_tenant"], d["session_id"], d["telegram_id"], True)
        for _, d in events_of("session.registered")
    }
    assert found == {("local", "quick", 1001, True), (ALICE, "ci", 2002, True)}


async def test_the_same_api_keys(replayed: EventStore) -> None:
    rows = await replayed.fetch(
        "SELECT key_id, user_id, label, kind, key_hash, revoked_at FROM api_keys"
    )
    found = {r["key_id"]: (r["user_id"], r["label"], r["kind"], r["key_hash"]) for r in rows}
    assert found == {
        d["key_id"]: (d["user_id"], d["label"], d.get("kind", "agent"), d["key_hash"])
        for _, d in events_of("apikey.created")
    }
    assert {r["label"]: r["kind"] for r in rows} == {
        "alice-agent": "agent",
        "alice-operator": "operator",
        "bob-agent": "agent",
    }
    assert all(r["revoked_at"] is None for r in rows)


async def test_each_user_owns_exactly_one_workspace_their_own(replayed: EventStore) -> None:
    teams = Teams(replayed)
    for user_id in (ALICE, BOB):
        rows = await replayed.fetch(
            "SELECT workspace_id, role FROM members WHERE user_id = ?", (user_id,)
        )
        assert rows == [{"workspace_id": user_id, "role": "owner"}]
        membership = await teams.membership(user_id)
        assert membership is not None
        assert (membership.workspace_id, membership.role) == (user_id, "owner")
        assert [m.user_id for m in await teams.members(user_id)] == [user_id]
    workspaces = {
        r["workspace_id"] for r in await replayed.fetch("SELECT workspace_id FROM workspaces")
    }
    assert {ALICE, BOB} <= workspaces


async def test_the_hash_chain_still_verifies(replayed: EventStore) -> None:
    verification = await verify_log(replayed)
    assert verification.broken_at is None, verification.reason
    assert verification.events == len(ROWS)
    assert verification.last_position == ROWS[-1].position


async def test_an_old_operator_key_still_answers_its_users_old_request(
    replayed: EventStore,
) -> None:
    # The raw key was never kept (only its hash is in the log), so the key is
    # resolved here as authenticate_api_key resolves it, from its api_keys row.
    (key,) = await replayed.fetch(
        "SELECT key_id, user_id FROM api_keys WHERE label = 'alice-operator'"
    )
    created = {d["request_id"]: d for _, d in events_of("request.created")}
    (pending,) = [
        rid
        for rid, (tenant, status, _) in requests_described().items()
        if tenant == ALICE and status == "pending"
    ]
    # Answered on the log's own clock, before the request's five minutes ran out.
    now = datetime.fromisoformat(created[pending]["created_at"]) + timedelta(seconds=30)
    accounts = AccountService(replayed, jwt_secret="legacy-" + "0" * 32, clock=lambda: now)
    actor = await accounts.actor_for_user(key["user_id"], id=f"apikey:{key['key_id']}")
    assert (actor.tenant, actor.role, actor.answers_as) == (ALICE, "owner", ALICE)
    hub = Hub(replayed)
    await hub.start()
    try:
        requests = Requests(replayed, hub, Sessions(replayed, clock=lambda: now), clock=lambda: now)
        answered = await requests.answer(pending, option="Approve", channel="api", actor=actor)
    finally:
        await hub.stop()
    view = public_request(answered)
    assert view.status == "answered"
    assert view.decided_by is not None
    assert (view.decided_by.kind, view.decided_by.id) == ("human", ALICE)
    (last,) = (await replayed.read_stream(f"request-{pending}"))[-1:]
    assert last.meta.actor == f"apikey:{key['key_id']}"
    assert (await verify_log(replayed)).broken_at is None  # the new event chains onto the old
