"""Reminders and escalation through the whole app, on real (short) seconds.

The requests are made through ``Requests.create_request``, as the app's
handlers do with the body's ``escalation``, ``remind_every_seconds`` and
``warn_before_expiry_seconds`` (the real server's route: tests/cli/test_escalation_server.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from account_helpers import Client, User
from teams_helpers import add_member, first_owner

from loopgate.events import EscalationStep, RecordedEvent, ReminderSent, RequestEscalated
from loopgate.hub import Hub
from loopgate.teams import Teams
from loopgate.web.keys import REQUESTS, SCHEDULER, SESSIONS, TEAMS

SETTLE = 10.0  # a generous bound for something that should take milliseconds


async def test_an_escalation_adds_its_approvers_who_may_answer_only_after_it(
    keyed_client: Client,
) -> None:
    owner = await first_owner(keyed_client)
    bob = await add_member(keyed_client, owner, "bob", "approver")
    lead = await add_member(keyed_client, owner, "lead", "approver")
    response = await keyed_client.put(
        "/v1/groups/leads", json={"members": [lead.username]}, headers=owner.bearer
    )
    assert response.status in (200, 201), await response.text()
    request_id = await create_in_app(
        keyed_client,
        owner.user_id,
        approvers=[f"user:{bob.username}"],
        escalation=[EscalationStep(after_seconds=2, approvers=("group:leads",))],
    )

    early = await keyed_client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Approve"}, headers=lead.bearer
    )
    before = await get(keyed_client, request_id, owner)
    assert before["escalations"] == [], "the step fired before the first answer: too slow a run"
    assert early.status == 403, await early.text()
    assert (await early.json())["error"]["code"] == "not_an_approver"

    await escalated_in(keyed_client, request_id)
    after = await get(keyed_client, request_id, owner)
    assert after["approvers"] == [f"user:{bob.username}", "group:leads"]
    [fired] = after["escalations"]
    assert (fired["step"], fired["approvers"]) == (0, ["group:leads"])
    created_at = datetime.fromisoformat(after["created_at"])
    assert datetime.fromisoformat(fired["at"]) >= created_at + timedelta(seconds=2)

    answered = await keyed_client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Approve"}, headers=lead.bearer
    )
    assert answered.status == 200, await answered.text()
    decided = await answered.json()
    assert (decided["status"], decided["decided_by"]["id"]) == ("answered", lead.user_id)
    assert decided["decided_by"]["routed_by"] == "group:leads"
    assert keyed_client.app[SCHEDULER].armed == 0


async def test_an_expiry_with_reminders_is_still_decided_by_the_policy(
    keyed_client: Client,
) -> None:
    owner = await first_owner(keyed_client)
    # Reminder 1 at 1 s; reminder 2 would come at the deadline: never sent.
    request_id = await create_in_app(
        keyed_client, owner.user_id, timeout_seconds=2, remind_every_seconds=1
    )

    response = await keyed_client.get(f"/v1/requests/{request_id}?wait=8", headers=owner.bearer)
    view = await response.json()

    assert (view["status"], view["outcome"]) == ("expired", "expired")
    assert view["decided_by"]["kind"] == "policy"
    stream = await keyed_client.app[REQUESTS].store.read_stream(f"request-{request_id}")
    assert [r.event.number for r in stream if isinstance(r.event, ReminderSent)] == [1]
    assert keyed_client.app[SCHEDULER].armed == 0


async def create_in_app(client: Client, user_id: str, **fields: Any) -> str:
    """A request made as ``user_id`` through the app's command handlers."""
    teams: Teams = client.app[TEAMS]
    member = await teams.membership(user_id)
    assert member is not None
    actor = member.actor()
    await client.app[SESSIONS].register_session("s1", "agent", None, actor)
    view, _ = await client.app[REQUESTS].create_request(
        session_id="s1",
        client_id="agent",
        message="Deploy?",
        request_type="confirmation",
        actor=actor,
        **({"timeout_seconds": 60} | fields),
    )
    return view.request_id


async def get(client: Client, request_id: str, user: User) -> dict[str, Any]:
    response = await client.get(f"/v1/requests/{request_id}", headers=user.bearer)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def escalated_in(client: Client, request_id: str) -> RecordedEvent:
    hub: Hub = client.app[REQUESTS].hub
    store = client.app[REQUESTS].store
    async with asyncio.timeout(SETTLE):
        with hub.watch(f"request-{request_id}") as changed:
            while True:
                for record in await store.read_stream(f"request-{request_id}"):
                    if isinstance(record.event, RequestEscalated):
                        return record
                await changed.wait()
                changed.clear()
