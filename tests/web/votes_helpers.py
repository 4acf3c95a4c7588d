"""Helpers for the vote tests: a finance group of two, requests needing both (a plain module)."""

from __future__ import annotations

from typing import Any, NamedTuple

from account_helpers import Client, User
from console_helpers import SESSION, agent_session
from teams_helpers import add_member, first_owner

from loopgate.commands.base import Actor
from loopgate.domain import request as request_domain
from loopgate.events import Meta, Option
from loopgate.web.keys import REQUESTS, TEAMS


class Finance(NamedTuple):
    """The workspace's owner (who asks, through an agent) and the two who approve."""

    owner: User
    bob: User
    carol: User


async def finance(client: Client) -> Finance:
    """An owner, and Bob and Carol in the ``finance`` group; the agent's session registered."""
    owner = await first_owner(client)
    bob = await add_member(client, owner, "bob", "approver")
    carol = await add_member(client, owner, "carol", "approver")
    await client.app[TEAMS].define_group(
        await actor_of(client, owner), "finance", [bob.username, carol.username]
    )
    await agent_session(client, owner)
    return Finance(owner, bob, carol)


async def actor_of(client: Client, user: User, *, answers: bool = True) -> Actor:
    membership = await client.app[TEAMS].membership(user.user_id)
    assert membership is not None
    return membership.actor(answers=answers)


async def four_eyes(client: Client, team: Finance, **fields: Any) -> str:
    """A payment for finance that needs two approvals, asked by the owner's agent; its id."""
    view, _ = await client.app[REQUESTS].create_request(
        **SESSION,
        message="Pay invoice 42?",
        request_type="confirmation",
        approvers=["group:finance"],
        quorum=2,
        actor=await actor_of(client, team.owner, answers=False),
        **fields,
    )
    return view.request_id


async def vote(client: Client, user: User, request_id: str, option: str = "Approve") -> None:
    await client.app[REQUESTS].answer(
        request_id, option=option, channel="api", actor=await actor_of(client, user)
    )


async def decided_by_policy(client: Client, team: Finance) -> str:
    """A request a rule of policy v3 approved at creation, as the domain records it; its id."""
    requests = client.app[REQUESTS]
    command = request_domain.CreateRequest(
        request_id=requests.ids(),
        **SESSION,
        message="Refund 5 CHF?",
        request_type="confirmation",
        options=(Option(label="Approve"), Option(label="Reject")),
        timeout_seconds=300,
        approvers=("group:finance",),
        policy_version=3,
        rule="small-refunds",
        decision="approve",
        reason="under 10 CHF",
        now=requests.clock(),
    )
    events = request_domain.decide(command, request_domain.initial)
    tenant = (await actor_of(client, team.owner)).tenant
    await requests.store.append(
        f"request-{command.request_id}", 0, events, Meta(actor="apikey:agent", tenant=tenant)
    )
    return command.request_id
