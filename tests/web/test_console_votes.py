"""The console shows a quorum request's votes, its policy and its escalation, and takes votes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from account_helpers import Client, FakeClock
from console_helpers import SESSION, as_, ask, submit, text_of
from hitl_helpers import event_types
from votes_helpers import Finance, actor_of, decided_by_policy, finance, four_eyes, vote

from loopgate.domain.request import GrantAsk
from loopgate.errors import DomainError
from loopgate.events import Action, EscalationStep
from loopgate.web.console import VOTE_REFUSED
from loopgate.web.keys import GRANTS, REQUESTS, SCHEDULER


@pytest.fixture
async def team(keyed_client: Client) -> Finance:
    return await finance(keyed_client)


async def page_of(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return text_of(await response.text())


async def test_the_queue_card_counts_approvals_and_a_console_vote_says_how_far_it_is(
    keyed_client: Client, team: Finance
) -> None:
    request_id = await four_eyes(keyed_client, team)
    await ask(keyed_client, team.owner, "Restart the cache?", approvers=["group:finance"])
    await as_(keyed_client, team.bob)
    queue = await page_of(keyed_client, "/console")
    assert queue.count("0 of 2 approvals") == 1  # the quorum-1 request counts nothing

    voted = await submit(keyed_client, f"/console/requests/{request_id}/answer", option="Approve")

    assert voted.status == 303
    assert voted.headers["Location"] == f"/console/requests/{request_id}?notice=voted"
    page = await page_of(keyed_client, voted.headers["Location"])
    assert "Your vote is recorded: 1 of 2 approvals." in page
    assert "You voted “Approve”" in page and "1 more approval needed" in page
    assert f"{team.bob.username} Approve (for) console" in page  # the votes table's row
    await as_(keyed_client, team.carol)
    assert "1 of 2 approvals" in await page_of(keyed_client, "/console")
    card = await keyed_client.get(f"/console/requests/{request_id}/card")
    assert "1 of 2 approvals" in text_of(await card.text())


async def test_the_deciding_vote_shows_the_outcome_and_every_vote(
    keyed_client: Client, team: Finance
) -> None:
    request_id = await four_eyes(keyed_client, team)
    await vote(keyed_client, team.bob, request_id)
    await as_(keyed_client, team.carol)

    decided = await submit(keyed_client, f"/console/requests/{request_id}/answer", option="Approve")

    assert decided.headers["Location"] == f"/console/requests/{request_id}?notice=answered"
    page = await page_of(keyed_client, decided.headers["Location"])
    assert "Approved" in page and "you (" in page
    for username, channel in ((team.bob.username, "api"), (team.carol.username, "console")):
        assert f"{username} Approve (for) {channel}" in page
    assert "Quorum 2 approvals; one rejection rejects it (veto)" in page


async def test_a_second_vote_is_refused_on_the_page_and_changes_nothing(
    keyed_client: Client, team: Finance
) -> None:
    request_id = await four_eyes(keyed_client, team)
    await vote(keyed_client, team.bob, request_id)
    before = await event_types(keyed_client.app[REQUESTS].store, f"request-{request_id}")
    await as_(keyed_client, team.bob)

    again = await submit(keyed_client, f"/console/requests/{request_id}/answer", option="Reject")

    assert again.status == 409
    assert VOTE_REFUSED["already_voted"] in text_of(await again.text())
    assert await event_types(keyed_client.app[REQUESTS].store, f"request-{request_id}") == before


async def test_the_page_shows_the_escalation_plan_and_what_fired(
    keyed_client: Client, team: Finance, clock: FakeClock
) -> None:
    requests = keyed_client.app[REQUESTS]
    requests.clock = clock  # the app gives its clock to the accounts only; the steps need it
    # The test takes each step by hand; the app's scheduler, on the same advanced clock,
    # would otherwise race it and send the next reminders too.
    await keyed_client.app[SCHEDULER].stop()
    step = EscalationStep(after_seconds=600, approvers=(f"user:{team.owner.username}",))
    request_id = await four_eyes(
        keyed_client,
        team,
        timeout_seconds=3600,
        escalation=[step],
        remind_every_seconds=300,
        warn_before_expiry_seconds=120,
    )
    await as_(keyed_client, team.bob)
    path = f"/console/requests/{request_id}"
    page = await page_of(keyed_client, path)
    assert f"After 600 s → user:{team.owner.username} : not yet." in page
    assert "Reminders every 300 s: 0 sent so far." in page
    assert "Expiry warning 120 s before it expires: not sent yet." in page

    view = await requests.find_request(request_id)
    assert view.expires_at is not None
    clock.advance(600)
    await requests.remind(request_id, view.tenant, 1)
    await requests.escalate(request_id, view.tenant, 0)
    clock.now = view.expires_at - timedelta(seconds=60)
    await requests.warn_expiry(request_id, view.tenant)

    page = await page_of(keyed_client, path)
    assert f"After 600 s → user:{team.owner.username} : escalated" in page
    assert "Reminders every 300 s: 1 sent so far." in page
    assert "Expiry warning 120 s before it expires: sent" in page
    assert "policy v" not in page  # no policy in force when it was asked (the nav says "Policy")


async def test_a_policy_decision_names_its_rule_and_reason(
    keyed_client: Client, team: Finance
) -> None:
    request_id = await decided_by_policy(keyed_client, team)
    await as_(keyed_client, team.bob)

    page = await page_of(keyed_client, f"/console/requests/{request_id}")

    assert "Policy rule small-refunds of policy v3" in page
    assert "Decided by the policy: rule small-refunds@v3 (under 10 CHF)" in page
    assert "Votes" not in page  # a rule decided: nobody voted


async def test_a_quorum_request_is_never_granted_nor_approved_by_a_grant(
    keyed_client: Client, team: Finance
) -> None:
    requests = keyed_client.app[REQUESTS]
    deploy = Action(tool="deploy", args={"env": "staging"})
    quorum = await four_eyes(keyed_client, team, action=deploy, grantable=True)
    with pytest.raises(DomainError) as refused:
        await requests.answer(
            quorum,
            option="Approve",
            channel="api",
            actor=await actor_of(keyed_client, team.bob),
            grant=GrantAsk(seconds=600),
        )
    assert refused.value.code == "grant_needs_single_approver"
    # A grant issued on a single-approver request of the same session...
    single, _ = await requests.create_request(
        **SESSION,
        message="Deploy staging?",
        request_type="confirmation",
        approvers=["group:finance"],
        action=deploy,
        grantable=True,
        actor=await actor_of(keyed_client, team.owner, answers=False),
    )
    await requests.answer(
        single.request_id,
        option="Approve",
        channel="api",
        actor=await actor_of(keyed_client, team.bob),
        grant=GrantAsk(seconds=600),
    )
    assert len(await keyed_client.app[GRANTS].list(await actor_of(keyed_client, team.bob))) == 1
    # ...never approves a quorum request for the very same action.
    again = await four_eyes(keyed_client, team, action=deploy)
    view = await requests.find_request(again)
    assert view.status == "pending" and view.grant is None
