"""Issue 19's quorum, veto, four-eyes and policy must-shows, over HTTP, the console and Telegram.

A request needing two of finance's three approvals is voted on in the
console and then on Telegram; a long-poll parked before the first vote wakes
only at the second; later votes get 409. A veto rejects; with ``veto: false``
a rejection rejects only once the quorum is out of reach. Whoever asked never
votes (``requester_cannot_approve``), and a quorum nobody can reach is refused
when the request is made (``quorum_unreachable``). A policy approves staging
at creation and sends big payments to two of finance; after the policy
changes and the projections are rebuilt, decided requests keep their rule.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import ClientResponse

from loopgate.events import AnswerRefused, RequestDelivered, ResponseReceived, VoteCast
from loopgate.teams import Membership
from loopgate.web.app import ACCOUNTS
from telegram.helpers import PASSWORD, TelegramApp

BOB_TG = 5005
CAROL_TG = 6006
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


async def assert_error(response: ClientResponse, status: int, code: str) -> str:
    """The error's message, once its status and code are the ones expected."""
    body = await response.json()
    assert (response.status, body["error"]["code"]) == (status, code), body
    message: str = body["error"]["message"]
    return message


async def bearer(tg: TelegramApp, member: Membership) -> dict[str, str]:
    token, _ = await tg.client.app[ACCOUNTS].login(member.username, PASSWORD)
    return {"Authorization": f"Bearer {token}"}


async def finance(tg: TelegramApp) -> tuple[Membership, Membership, Membership, Membership]:
    """alice owns the workspace; bob, carol and dave are finance. bob is on Telegram."""
    alice = await tg.member("alice", role="owner")
    bob, carol, dave = [await tg.member(name) for name in ("bob", "carol", "dave")]
    await tg.link(bob, BOB_TG)
    await tg.teams.define_group(alice.actor(), "finance", ["bob", "carol", "dave"])
    await tg.register(telegram_id=None)
    return alice, bob, carol, dave


async def vote_in_console(tg: TelegramApp, member: Membership, request_id: str, option: str) -> int:
    """Sign in as ``member`` and press ``option`` on the request's page; the answer's status."""
    client = tg.client
    client.session.cookie_jar.clear()
    form = await client.get("/console/login")
    csrf = _CSRF.search(await form.text())
    assert csrf is not None
    fields = {"csrf_token": csrf[1], "username": member.username, "password": PASSWORD, "next": ""}
    signed_in = await client.post("/console/login", data=fields, allow_redirects=False)
    assert signed_in.status == 303, await signed_in.text()
    page = await (await client.get(f"/console/requests/{request_id}")).text()
    csrf = _CSRF.search(page)
    assert csrf is not None
    answered = await client.post(
        f"/console/requests/{request_id}/answer",
        data={"csrf_token": csrf[1], "option": option},
        allow_redirects=False,
    )
    client.session.cookie_jar.clear()
    return answered.status


async def press_on_telegram(
    tg: TelegramApp, request_id: str, chat_id: int, label: str, chats: int = 1
) -> None:
    """Press ``label`` on the request's message in ``chat_id``, one of ``chats`` it went to."""
    deliveries = await tg.wait_for_events(request_id, RequestDelivered, count=chats)
    (delivery,) = [
        d for d in deliveries if isinstance(d, RequestDelivered) and d.chat_id == chat_id
    ]
    assert delivery.external_message_id is not None
    message = tg.fake.messages[(chat_id, int(delivery.external_message_id))]
    buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
    (button,) = [b for b in buttons if b["text"] == label]
    update = tg.fake.callback_update(
        from_id=chat_id,
        chat_id=chat_id,
        message_id=int(delivery.external_message_id),
        data=button["callback_data"],
    )
    assert (await tg.post_update(update)).status == 200


async def request_json(tg: TelegramApp, request_id: str, **query: Any) -> dict[str, Any]:
    response = await tg.client.get(f"/v1/requests/{request_id}", params=query)
    assert response.status == 200, await response.text()
    found: dict[str, Any] = await response.json()
    return found


async def test_two_of_finance_console_then_telegram_wake_the_long_poll_at_the_second(
    tg: TelegramApp,
) -> None:
    _, bob, carol, dave = await finance(tg)
    request_id = await tg.ask(
        request_type="confirmation", approvers=["group:finance"], quorum=2, message="Pay $25,000?"
    )
    # The long-poll is parked before anyone votes.
    parked = asyncio.create_task(request_json(tg, request_id, wait=10))
    await tg.wait_for_event(request_id, RequestDelivered)  # bob's message is out

    assert await vote_in_console(tg, carol, request_id, "Approve") == 303
    first = await request_json(tg, request_id)
    assert (first["status"], first["completed"], first["approvals"], first["quorum"]) == (
        "delivered",
        False,
        1,
        2,
    )
    assert [(v["member"], v["option"], v["channel"]) for v in first["votes"]] == [
        (carol.user_id, "Approve", "console")
    ]
    # One vote short of the quorum: the parked long-poll keeps waiting.
    await asyncio.sleep(0.3)
    assert not parked.done()

    await press_on_telegram(tg, request_id, BOB_TG, "Approve")
    decided = await asyncio.wait_for(parked, 10)
    assert (decided["status"], decided["approved"], decided["outcome"]) == (
        "answered",
        True,
        "approved",
    )
    assert decided["approvals"] == 2
    assert [(v["member"], v["channel"], v["approves"]) for v in decided["votes"]] == [
        (carol.user_id, "console", True),
        (bob.user_id, "telegram", True),
    ]
    assert decided["decided_by"]["id"] == bob.user_id
    # The reference's poll says the same.
    assert (await tg.poll(request_id))["approved"] is True

    # A third vote, by dave or by anyone again, is too late: 409, nothing appended.
    before = await tg.events(request_id)
    third = await tg.client.post(
        f"/v1/requests/{request_id}/response",
        json={"option": "Approve"},
        headers=await bearer(tg, dave),
    )
    await assert_error(third, 409, "already_decided")
    assert await tg.events(request_id) == before
    types = [type(e) for e in before]
    assert types.count(VoteCast) == 1 and types.count(ResponseReceived) == 1
    (response,) = [e for e in before if isinstance(e, ResponseReceived)]
    assert [v.member for v in response.votes] == [carol.user_id, bob.user_id]


async def test_a_member_votes_once_whatever_the_channel(tg: TelegramApp) -> None:
    _, _, carol, _ = await finance(tg)
    await tg.link(carol, CAROL_TG)
    request_id = await tg.ask(request_type="confirmation", approvers=["group:finance"], quorum=2)
    voted = await tg.client.post(
        f"/v1/requests/{request_id}/response",
        json={"option": "Approve"},
        headers=await bearer(tg, carol),
    )
    assert voted.status == 200 and (await voted.json())["approvals"] == 1
    again = await tg.client.post(
        f"/v1/requests/{request_id}/response",
        json={"option": "Reject"},
        headers=await bearer(tg, carol),
    )
    await assert_error(again, 409, "already_voted")
    # Her linked Telegram account is her too: its press changes nothing.
    before = await tg.events(request_id)
    await press_on_telegram(tg, request_id, CAROL_TG, "Approve", chats=2)
    await tg.fake.wait_for_call("answerCallbackQuery")
    assert [type(e) for e in await tg.events(request_id)] == [type(e) for e in before]
    assert (await request_json(tg, request_id))["approvals"] == 1


async def test_a_veto_rejects_and_the_votes_say_who(tg: TelegramApp) -> None:
    _, _, carol, dave = await finance(tg)
    request_id = await tg.ask(request_type="confirmation", approvers=["group:finance"], quorum=2)
    for member, option in ((carol, "Approve"), (dave, "Reject")):
        response = await tg.client.post(
            f"/v1/requests/{request_id}/response",
            json={"option": option},
            headers=await bearer(tg, member),
        )
        assert response.status == 200, await response.text()
    found = await request_json(tg, request_id)
    assert (found["outcome"], found["approved"], found["approvals"]) == ("rejected", False, 1)
    assert [(v["member"], v["option"], v["approves"]) for v in found["votes"]] == [
        (carol.user_id, "Approve", True),
        (dave.user_id, "Reject", False),
    ]
    assert found["decided_by"] == {
        "kind": "human",
        "id": dave.user_id,
        "channel": "api",
        "routed_by": "group:finance",
    }


async def test_without_veto_a_rejection_rejects_once_the_quorum_is_out_of_reach(
    tg: TelegramApp,
) -> None:
    _, _, carol, dave = await finance(tg)
    request_id = await tg.ask(
        request_type="confirmation", approvers=["group:finance"], quorum=2, veto=False
    )

    async def vote(member: Membership, option: str) -> dict[str, Any]:
        response = await tg.client.post(
            f"/v1/requests/{request_id}/response",
            json={"option": option},
            headers=await bearer(tg, member),
        )
        assert response.status == 200, await response.text()
        found: dict[str, Any] = await response.json()
        return found

    # Three may vote, two must approve: one "no" leaves two who still can.
    assert (await vote(carol, "Reject"))["completed"] is False
    # A second "no": only bob is left, one short of two.
    found = await vote(dave, "Reject")
    assert (found["outcome"], found["approvals"], len(found["votes"])) == ("rejected", 0, 2)


async def test_the_requester_never_votes_on_their_own_request(tg: TelegramApp) -> None:
    alice, bob, _, _ = await finance(tg)
    accounts = tg.client.app[ACCOUNTS]
    raw, _ = await accounts.create_api_key(alice.actor(), kind="operator")
    key = {"X-API-Key": raw}
    session = {"session_id": "alice-agent", "client_id": "agent"}
    assert (await tg.client.post("/v1/sessions", json=session, headers=key)).status == 201
    created = await tg.client.post(
        "/v1/requests",
        json={**session, "message": "Ship it?", "request_type": "confirmation"},
        headers=key,
    )
    assert created.status == 201, await created.text()
    request_id = (await created.json())["request_id"]

    refused = await tg.client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Approve"}, headers=key
    )
    await assert_error(refused, 403, "requester_cannot_approve")
    # ... in her console too; both refusals are in the log, and the request still waits.
    assert await vote_in_console(tg, alice, request_id, "Approve") == 403
    refusals = [e for e in await tg.events(request_id) if isinstance(e, AnswerRefused)]
    assert [(r.responder, r.reason) for r in refusals] == [
        (alice.user_id, "requester_cannot_approve"),
        (alice.user_id, "requester_cannot_approve"),
    ]
    assert (await request_json(tg, request_id))["completed"] is False
    # bob, an approver, decides it.
    answered = await tg.client.post(
        f"/v1/requests/{request_id}/response",
        json={"option": "Approve"},
        headers=await bearer(tg, bob),
    )
    assert answered.status == 200 and (await answered.json())["approved"] is True


async def test_a_quorum_more_than_the_eligible_approvers_is_refused_at_creation(
    tg: TelegramApp,
) -> None:
    alice, *_ = await finance(tg)
    await tg.teams.define_group(alice.actor(), "finance", ["alice", "bob", "carol"])
    accounts = tg.client.app[ACCOUNTS]
    raw, _ = await accounts.create_api_key(alice.actor())
    key = {"X-API-Key": raw}
    session = {"session_id": "alice-agent", "client_id": "agent"}
    assert (await tg.client.post("/v1/sessions", json=session, headers=key)).status == 201
    log_before = await tg.store.read_all()
    body = {**session, "message": "Pay?", "approvers": ["group:finance"], "quorum": 3}
    refused = await tg.client.post("/v1/requests", json=body, headers=key)
    message = await assert_error(refused, 422, "quorum_unreachable")
    assert "2 who may vote" in message and "requester" in message
    assert await tg.store.read_all() == log_before
    # Two of the three is within reach.
    allowed = await tg.client.post("/v1/requests", json=body | {"quorum": 2}, headers=key)
    assert allowed.status == 201, await allowed.text()


# --- rules as data -------------------------------------------------------------------------

POLICY = {
    "rules": [
        {
            "name": "staging-free",
            "when": [{"field": "session_id", "op": "glob", "value": "staging-*"}],
            "then": {"decide": "approve", "reason": "staging needs nobody"},
        },
        {
            "name": "big-payments",
            "when": [{"field": "metadata.amount", "op": "gte", "value": 10000}],
            "then": {"approvers": ["group:finance"], "quorum": 2},
        },
    ]
}


async def put_policy(tg: TelegramApp, owner: Membership, body: dict[str, Any]) -> dict[str, Any]:
    response = await tg.client.put("/v1/policy", json=body, headers=await bearer(tg, owner))
    assert response.status == 200, await response.text()
    found: dict[str, Any] = await response.json()
    return found


async def test_a_policy_approves_staging_at_once_and_sends_big_payments_to_two_of_finance(
    tg: TelegramApp,
) -> None:
    """``loopgate policy test`` says the same of both: tests/cli/test_policy_cli.py."""
    alice, bob, carol, _ = await finance(tg)
    assert (await put_policy(tg, alice, POLICY))["version"] == 1
    await tg.register("staging-7", telegram_id=None)
    made = await tg.client.post(
        "/hitl/request",
        json={
            "session_id": "staging-7",
            "client_id": "ci",
            "message": "Deploy to staging?",
            "request_type": "confirmation",
        },
    )
    assert (await made.json())["status"] == "completed"  # the reference's word for decided
    staging = await request_json(tg, (await made.json())["request_id"])
    assert (staging["status"], staging["outcome"]) == ("answered", "approved")
    assert staging["decided_by"] == {
        "kind": "policy",
        "id": "staging-free@v1",
        "channel": "system",
        "reason": "staging needs nobody",
    }
    assert staging["policy"] == {"version": 1, "rule": "staging-free"}
    assert staging["votes"] == []

    # The agent asked for anyone's approval; the rule makes it two of finance.
    payment_id = await tg.ask(request_type="confirmation", metadata={"amount": 25000})
    payment = await request_json(tg, payment_id)
    assert (payment["approvers"], payment["quorum"]) == (["group:finance"], 2)
    assert payment["policy"] == {"version": 1, "rule": "big-payments"}
    # alice is an owner, but not in finance: the rule routed it past her.
    refused = await tg.client.post(
        f"/v1/requests/{payment_id}/response",
        json={"option": "Approve"},
        headers=await bearer(tg, alice),
    )
    await assert_error(refused, 403, "not_an_approver")
    for member in (bob, carol):
        voted = await tg.client.post(
            f"/v1/requests/{payment_id}/response",
            json={"option": "Approve"},
            headers=await bearer(tg, member),
        )
        assert voted.status == 200, await voted.text()
    assert (await request_json(tg, payment_id))["outcome"] == "approved"
    # A small payment matches no rule: as asked, with the policy version on record.
    small = await request_json(
        tg, await tg.ask(request_type="confirmation", metadata={"amount": 5})
    )
    assert (small["quorum"], small["policy"]) == (1, {"version": 1, "rule": None})


async def test_after_a_policy_change_and_a_rebuild_decided_requests_keep_their_rule(
    tg: TelegramApp,
) -> None:
    alice, *_ = await finance(tg)
    await put_policy(tg, alice, POLICY)
    await tg.register("staging-8", telegram_id=None)
    staging_id = await tg.ask("staging-8", request_type="confirmation")
    before = await request_json(tg, staging_id)

    # v2 rejects staging instead; what v1 decided stays decided, by v1.
    changed = {"rules": [{**POLICY["rules"][0], "then": {"decide": "reject"}}]}
    assert (await put_policy(tg, alice, changed))["version"] == 2
    assert await tg.store.rebuild_projections() > 0
    after = await request_json(tg, staging_id)
    assert after == before
    assert (after["outcome"], after["decided_by"]["id"]) == ("approved", "staging-free@v1")
    # A new staging request follows v2.
    await tg.register("staging-9", telegram_id=None)
    later = await request_json(tg, await tg.ask("staging-9", request_type="confirmation"))
    assert (later["outcome"], later["decided_by"]["id"]) == ("rejected", "staging-free@v2")
