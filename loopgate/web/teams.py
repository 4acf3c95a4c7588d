"""Managing people over HTTP: members, invitations, groups, and the caller's linked accounts.

Every route acts in the caller's workspace (``actor.tenant``) through the
``Teams`` service and the account service, which check the role
(:func:`loopgate.domain.teams.allows`): a role without the permission is 403
``role_forbids``. An agent API key reads (``GET /v1/members``, ``/v1/groups``,
``/v1/me``) but never manages people, whatever its member's role: it acts for
a program, and who may answer is a person's decision.

An invitation's token is in the answer to its creation only (inside ``url``,
the console's join page); the log keeps its SHA-256. A link code likewise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from loopgate.commands.base import Actor, require
from loopgate.domain.account import check_password, check_username
from loopgate.domain.teams import Permission
from loopgate.errors import Forbidden, NotFound
from loopgate.events import Role
from loopgate.teams import IdentityView, MemberView
from loopgate.teams.service import CHANNELS, GroupView
from loopgate.web.auth import actor_of
from loopgate.web.describe import describe
from loopgate.web.email import EmailLinkBody, EmailLinkSent, send_address_link
from loopgate.web.keys import ACCOUNTS, REQUEST_ID, TEAMS, TELEGRAM
from loopgate.web.params import read_body
from loopgate.web.responses import json_response
from loopgate.wire import Body

routes = web.RouteTableDef()

JOIN_PATH = "/console/join/"
MAX_GROUP_MEMBERS = 1000


# --- shapes -------------------------------------------------------------------------------


class LinkedAccount(msgspec.Struct, frozen=True, kw_only=True):
    """A channel account that acts as the member (a Telegram user id)."""

    channel: str
    external_id: str
    display: str | None
    linked_at: datetime


class MemberInfo(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    username: str
    role: Role
    groups: list[str]
    identities: list[LinkedAccount]
    added_at: datetime


class AddMemberBody(Body, frozen=True, kw_only=True):
    """``POST /v1/members``: an account made by an admin, straight into the workspace."""

    username: str
    password: str
    role: Role


class RoleBody(Body, frozen=True, kw_only=True):
    """``PATCH /v1/members/{user_id}``."""

    role: Role


class MemberRemoved(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    user_id: str


class InvitationBody(Body, frozen=True, kw_only=True):
    """``POST /v1/invitations``: the role the invited person joins with."""

    role: Role


class NewInvitation(msgspec.Struct, frozen=True, kw_only=True):
    """``url`` (the console's join page, with the token) is shown this once; it works once."""

    invitation_id: str
    role: Role
    url: str
    expires_at: datetime


class GroupInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    members: list[str]
    """Usernames."""
    defined_at: datetime


class GroupBody(Body, frozen=True, kw_only=True):
    """``PUT /v1/groups/{name}``: the group's members, by username (replacing the old list)."""

    members: Annotated[list[str], msgspec.Meta(max_length=MAX_GROUP_MEMBERS)]


class GroupDeleted(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    name: str


class Me(msgspec.Struct, frozen=True, kw_only=True):
    """The caller's membership; ``user_id`` is None for the open mode's anonymous caller."""

    user_id: str | None
    username: str | None
    workspace_id: str
    role: Role | None
    identities: list[LinkedAccount]


class LinkCode(msgspec.Struct, frozen=True, kw_only=True):
    """Send the code from the channel's account within ten minutes; once (``how`` says how).

    Telegram: ``/start <code>`` to the bot, or open ``deep_link``, which is None when this
    server runs no Telegram bot, or before the bot learned its own name (Telegram
    unreachable since start). Slack: ``/loopgate link <code>`` in any conversation.
    """

    channel: str
    code: str
    deep_link: str | None
    how: str
    expires_at: datetime


LINK_HOW = {
    "telegram": "send /start {code} to the bot, or open deep_link",
    "slack": "type /loopgate link {code} in Slack",
    "email": "open the link mailed to the address",
}


class Unlinked(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    channel: str
    external_id: str


def linked_account(identity: IdentityView) -> LinkedAccount:
    return LinkedAccount(
        channel=identity.channel,
        external_id=identity.external_id,
        display=identity.display,
        linked_at=identity.linked_at,
    )


def member_info(member: MemberView) -> MemberInfo:
    return MemberInfo(
        user_id=member.user_id,
        username=member.username,
        role=member.role,
        groups=list(member.groups),
        identities=[linked_account(i) for i in member.identities],
        added_at=member.added_at,
    )


def group_info(group: GroupView) -> GroupInfo:
    return GroupInfo(name=group.name, members=list(group.members), defined_at=group.defined_at)


# --- who may ------------------------------------------------------------------------------


def require_person(actor: Actor, permission: Permission | None = None) -> None:
    """As :func:`require`, and never for an agent API key (it acts for a program)."""
    if actor.answers_as is None:
        raise Forbidden(
            "an agent API key may read members and groups but never change them",
            code="role_forbids",
        )
    if permission is not None:
        require(actor, permission)


def invitation_url(request: web.Request, token: str) -> str:
    """The console's join page for ``token``, absolute, on the address the caller used."""
    return f"{request.url.origin()}{JOIN_PATH}{token}"


def deep_link(request: web.Request, code: str) -> str | None:
    """``https://t.me/<bot>?start=<code>``, when this server runs a bot whose name it knows."""
    runtime = request.app.get(TELEGRAM)
    return runtime.deep_link(code) if runtime is not None else None


# --- members ------------------------------------------------------------------------------


@routes.get("/v1/members")
@describe(
    "The workspace's members, with their roles, groups and linked accounts",
    replies={200: list[MemberInfo]},
)
async def list_members(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require(actor, "members.read")
    members = await request.app[TEAMS].members(actor.tenant)
    return json_response([member_info(m) for m in members])


@routes.post("/v1/members")
@describe(
    "Make an account that joins this workspace with a role (no invitation)",
    body=AddMemberBody,
    replies={201: MemberInfo},
    errors=(409,),
)
async def add_member(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require_person(actor, "members.manage")
    body = await read_body(request, AddMemberBody)
    check_username(body.username)  # a bad name is a 400 before anything is recorded
    check_password(body.password)
    teams = request.app[TEAMS]
    # An invitation made and used at once: the same role checks as inviting, and the
    # log says who added the member (InvitationCreated by the admin, then MemberAdded).
    # A name found taken leaves it unused; its token was never shown to anyone.
    token, _ = await teams.create_invitation(actor, body.role)
    user = await request.app[ACCOUNTS].register_user(
        body.username, body.password, invitation_token=token, correlation_id=request.get(REQUEST_ID)
    )
    member = await teams.member(actor.tenant, user.user_id)
    return json_response(member_info(member), status=201)


@routes.patch("/v1/members/{user_id}")
@describe(
    "Change a member's role (the last owner stays owner: 409 last_owner)",
    body=RoleBody,
    replies={200: MemberInfo},
    errors=(404, 409),
)
async def change_role(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require_person(actor, "members.manage")
    body = await read_body(request, RoleBody)
    member = await request.app[TEAMS].change_role(actor, request.match_info["user_id"], body.role)
    return json_response(member_info(member))


@routes.delete("/v1/members/{user_id}")
@describe(
    "Remove a member from the workspace (never the last owner: 409 last_owner)",
    replies={200: MemberRemoved},
    errors=(404, 409),
)
async def remove_member(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require_person(actor, "members.manage")
    user_id = request.match_info["user_id"]
    await request.app[TEAMS].remove_member(actor, user_id)
    return json_response(MemberRemoved(message="Member removed", user_id=user_id))


# --- invitations --------------------------------------------------------------------------


@routes.post("/v1/invitations")
@describe(
    "Invite someone: a single-use link to the console's join page, valid 7 days",
    body=InvitationBody,
    replies={201: NewInvitation},
)
async def create_invitation(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require_person(actor, "members.manage")
    body = await read_body(request, InvitationBody)
    token, invitation = await request.app[TEAMS].create_invitation(actor, body.role)
    reply = NewInvitation(
        invitation_id=invitation.invitation_id,
        role=invitation.role,
        url=invitation_url(request, token),
        expires_at=invitation.expires_at,
    )
    return json_response(reply, status=201)


# --- groups -------------------------------------------------------------------------------


@routes.get("/v1/groups")
@describe(
    "The workspace's groups (a request routes to one as group:<name>)",
    replies={200: list[GroupInfo]},
)
async def list_groups(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require(actor, "members.read")
    groups = await request.app[TEAMS].groups(actor.tenant)
    return json_response([group_info(g) for g in groups])


@routes.get("/v1/groups/{name}")
@describe("One group and its members", replies={200: GroupInfo}, errors=(404,))
async def get_group(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require(actor, "members.read")
    group = await request.app[TEAMS].group(actor.tenant, request.match_info["name"])
    return json_response(group_info(group))


@routes.put("/v1/groups/{name}")
@describe(
    "Define a group, or replace its members (by username; an unknown one is a 400 naming it)",
    body=GroupBody,
    replies={200: GroupInfo},
)
async def put_group(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require_person(actor, "groups.manage")
    body = await read_body(request, GroupBody)
    group = await request.app[TEAMS].define_group(actor, request.match_info["name"], body.members)
    return json_response(group_info(group))


@routes.delete("/v1/groups/{name}")
@describe("Delete a group", replies={200: GroupDeleted}, errors=(404,))
async def delete_group(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require_person(actor, "groups.manage")
    name = request.match_info["name"]
    await request.app[TEAMS].delete_group(actor, name)
    return json_response(GroupDeleted(message="Group deleted", name=name))


# --- the caller ---------------------------------------------------------------------------


@routes.get("/v1/me")
@describe("Who the caller is: workspace, role and linked accounts", replies={200: Me})
async def me(request: web.Request) -> web.Response:
    actor = actor_of(request)
    membership = None
    if actor.user_id is not None:
        membership = await request.app[TEAMS].membership(actor.user_id)
    if membership is None:  # the open mode's anonymous caller
        reply = Me(
            user_id=actor.user_id,
            username=None,
            workspace_id=actor.tenant,
            role=actor.role,
            identities=[],
        )
        return json_response(reply)
    member = await request.app[TEAMS].member(membership.workspace_id, membership.user_id)
    reply = Me(
        user_id=member.user_id,
        username=member.username,
        workspace_id=membership.workspace_id,
        role=member.role,
        identities=[linked_account(i) for i in member.identities],
    )
    return json_response(reply)


def _channel(request: web.Request) -> str:
    channel = request.match_info["channel"]
    if channel not in CHANNELS:
        raise NotFound(
            f"unknown channel {channel!r} (one of: {', '.join(CHANNELS)})", code="unknown_channel"
        )
    return channel


@routes.post("/v1/me/links/{channel}")
@describe(
    "A code to link a channel account: /start <code> to the Telegram bot, /loopgate link <code>"
    " in Slack (single use, 10 minutes); for email, the address (body) is mailed a link (202)",
    body=EmailLinkBody,
    body_required=False,
    replies={201: LinkCode, 202: EmailLinkSent},
    errors=(404, 503),
)
async def issue_link_code(request: web.Request) -> web.Response:
    actor = actor_of(request)
    channel = _channel(request)
    if channel == "email":  # no code to send from a mailbox: the link goes to the address
        return await send_address_link(request, actor)
    code, expires_at = await request.app[TEAMS].issue_link_code(actor, channel)
    reply = LinkCode(
        channel=channel,
        code=code,
        deep_link=deep_link(request, code) if channel == "telegram" else None,
        how=LINK_HOW[channel].format(code=code),
        expires_at=expires_at,
    )
    return json_response(reply, status=201)


@routes.delete("/v1/me/links/{channel}/{external_id}")
@describe("Unlink one of the caller's channel accounts", replies={200: Unlinked}, errors=(404,))
async def unlink(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require_person(actor)
    channel, external_id = _channel(request), request.match_info["external_id"]
    await request.app[TEAMS].unlink_identity(actor, channel, external_id)
    return json_response(Unlinked(message="Unlinked", channel=channel, external_id=external_id))
