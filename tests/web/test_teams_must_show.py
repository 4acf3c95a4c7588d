"""Issue 18's second must-show, over HTTP on both stores.

The owner invites bob as approver; bob opens the link, sets a password and
signs in. A request routed to ``group:finance`` (bob in it) is answered by bob
in the console; carol, an approver outside finance, gets 403
``not_an_approver`` (recorded); an auditor exports the audit log but cannot answer.
"""

from __future__ import annotations

import json

from account_helpers import Client, User, log_in, unique
from console_helpers import agent_session, ask, sign_in, submit, text_of
from hitl_helpers import assert_error
from teams_helpers import add_member, first_owner, invite, join

from loopgate.events import AnswerRefused
from loopgate.store.base import EventStore


async def test_an_invited_approver_in_finance_answers_carol_and_the_auditor_cannot(
    keyed_client: Client, store: EventStore
) -> None:
    client = keyed_client
    owner = await first_owner(client)

    # The owner invites bob as approver; bob opens the link and chooses a password.
    path = await invite(client, owner, "approver")
    bob_name = unique("bob")
    joined = await join(client, path, bob_name)
    assert joined.status == 303 and joined.headers["Location"] == "/console"
    # bob signs in again later, with the password he chose
    client.session.cookie_jar.clear()
    assert (await sign_in(client, bob_name)).status == 303
    client.session.cookie_jar.clear()
    bob_token = await log_in(client, bob_name)
    me = await (await client.get("/v1/me", headers={"Authorization": f"Bearer {bob_token}"})).json()
    assert (me["role"], me["workspace_id"]) == ("approver", "local")
    bob = User(me["user_id"], bob_name, bob_token)

    carol = await add_member(client, owner, "carol", "approver")
    auditor = await add_member(client, owner, "audrey", "auditor")
    finance = await client.put(
        "/v1/groups/finance", json={"members": [bob.username]}, headers=owner.bearer
    )
    assert finance.status == 200, await finance.text()

    # The agent asks finance.
    await agent_session(client, owner)
    request_id = await ask(client, owner, "Pay invoice 1042?", approvers=["group:finance"])

    # carol is an approver, but not in finance: refused, and the refusal is recorded.
    refused = await client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Approve"}, headers=carol.bearer
    )
    await assert_error(refused, 403, "not_an_approver")
    # ... in the console too: the request is not in her queue, and her answer is refused.
    client.session.cookie_jar.clear()
    assert (await sign_in(client, carol.username)).status == 303
    assert request_id not in await (await client.get("/console")).text()
    page = await (await client.get(f"/console/requests/{request_id}")).text()
    assert "data-not-routed" in page and "group:finance" in page
    assert 'name="option"' not in page  # no buttons that could only be refused
    refused_page = await submit(client, f"/console/requests/{request_id}/answer", option="Approve")
    assert refused_page.status == 403

    # The auditor: exports, never answers.
    export = await client.get("/v1/audit/export", headers=auditor.bearer)
    assert export.status == 200, await export.text()
    exported = [json.loads(line) for line in (await export.text()).splitlines() if line]
    assert any(r.get("stream") == f"request-{request_id}" for r in exported), exported[:3]
    no = await client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Approve"}, headers=auditor.bearer
    )
    await assert_error(no, 403, "role_cannot_answer")

    # bob finds it in his console queue ("Routed to me") and answers it there.
    client.session.cookie_jar.clear()
    assert (await sign_in(client, bob.username)).status == 303
    queue = await (await client.get("/console")).text()
    assert request_id in queue and "Pay invoice 1042?" in text_of(queue)
    answered = await submit(client, f"/console/requests/{request_id}/answer", option="Approve")
    assert answered.status == 303, await answered.text()
    assert answered.headers["Location"].endswith("notice=answered")

    view = await (await client.get(f"/v1/requests/{request_id}", headers=owner.bearer)).json()
    assert view["status"] == "answered" and view["approved"] is True
    assert view["decided_by"]["id"] == bob.user_id
    assert view["decided_by"]["channel"] == "console"
    assert view["decided_by"]["routed_by"] == "group:finance"

    refusals = [
        r.event
        for r in await store.read_stream(f"request-{request_id}")
        if isinstance(r.event, AnswerRefused)
    ]
    assert [(r.responder, r.reason) for r in refusals] == [
        (carol.user_id, "not_an_approver"),
        (carol.user_id, "not_an_approver"),
        (auditor.user_id, "role_cannot_answer"),
    ]
