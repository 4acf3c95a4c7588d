"""Linking a Slack account: a code from ``POST /v1/me/links/slack``, then ``/loopgate link``."""

from __future__ import annotations

from datetime import timedelta

from loopgate.channels.slack.app import LINK_REFUSED
from loopgate.events import IdentityLinked
from slack_channel.helpers import BOB_SLACK, CAROL_SLACK, PASSWORD, SlackApp


async def code_for(sl: SlackApp, username: str) -> str:
    """What the member gets from ``POST /v1/me/links/slack``, logged in."""
    login = await sl.client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert login.status == 200, await login.text()
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    response = await sl.client.post("/v1/me/links/slack", headers=headers)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["channel"] == "slack"
    code: str = body["code"]
    return code


async def test_a_member_links_slack_and_then_gets_requests_in_their_dm(sl: SlackApp) -> None:
    await sl.member("alice", role="owner")
    bob = await sl.member("bob")
    code = await code_for(sl, "bob")

    answer = await sl.command(f"link {code}", BOB_SLACK, "bob.slack")

    assert answer.startswith("Linked: this Slack account acts as bob")
    linked = await sl.teams.identity("slack", BOB_SLACK)
    assert linked is not None and linked.user_id == bob.user_id
    assert f"slack:{BOB_SLACK}" in linked.principals
    (member,) = [m for m in await sl.teams.members("local") if m.username == "bob"]
    (identity,) = member.identities
    assert (identity.channel, identity.external_id, identity.display) == (
        "slack",
        BOB_SLACK,
        "bob.slack",
    )
    (event,) = [
        r
        for r in await sl.store.read_all()
        if isinstance(r.event, IdentityLinked) and r.event.channel == "slack"
    ]
    assert event.meta.actor == f"slack:{BOB_SLACK}"

    await sl.register()
    request_id = await sl.ask(approvers=["user:bob"])
    (delivery,) = await sl.deliveries(request_id)
    assert delivery.address == BOB_SLACK
    assert delivery.conversation == sl.fake.dm_of(BOB_SLACK)


async def test_a_used_unknown_or_expired_code_is_explained(sl: SlackApp) -> None:
    await sl.member("alice", role="owner")
    await sl.member("bob")
    code = await code_for(sl, "bob")
    assert (await sl.command(f"link {code}", BOB_SLACK)).startswith("Linked")

    assert await sl.command(f"link {code}", CAROL_SLACK) == LINK_REFUSED["link_code_used"]
    assert await sl.command("link nope", CAROL_SLACK) == LINK_REFUSED["link_code_not_found"]
    assert await sl.teams.identity("slack", CAROL_SLACK) is None

    later = await code_for(sl, "bob")
    now = sl.teams.clock
    sl.teams.clock = lambda: now() + timedelta(minutes=11)
    assert await sl.command(f"link {later}", CAROL_SLACK) == LINK_REFUSED["link_code_expired"]


async def test_link_without_a_code_says_how(sl: SlackApp) -> None:
    assert "Usage" in await sl.command("link", BOB_SLACK)
    assert "Usage" in await sl.command("LINK", BOB_SLACK)
