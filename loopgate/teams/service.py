"""The ``Teams`` service: who is in a workspace, with which role, and what they may change.

Member changes after registration (role, removal, groups) are appended to
``workspace-<id>`` at the version read, so two admins demoting the last two
owners at once cannot both succeed: the second re-reads and meets the
last-owner rule. Joining happens with the registration itself, on the new
user's stream (``AccountService.register_user``), so a user never exists
without a workspace.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from loopgate.commands.base import APPEND_ATTEMPTS, Actor, new_id, require, utcnow
from loopgate.domain.teams import (
    Target,
    allows,
    check_role_change,
    grantable,
    is_slack_channel,
    principals_for,
    route_match,
)
from loopgate.errors import ConcurrencyError, Conflict, Forbidden, Gone, NotFound, ValidationFailed
from loopgate.events import (
    Event,
    GroupDefined,
    GroupDeleted,
    IdentityLinked,
    IdentityUnlinked,
    InvitationAccepted,
    InvitationCreated,
    LinkCodeIssued,
    MemberRemoved,
    MemberRoleChanged,
    Role,
)
from loopgate.store.base import EventStore

INVITATION_TTL = timedelta(days=7)
LINK_CODE_TTL = timedelta(minutes=10)
CHANNELS = ("telegram", "slack", "email")
"""Channels a member can link an account of."""
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def digest(secret: str) -> str:
    """The SHA-256 (hex) a token or code is kept and found under: they are random, not guessable."""
    return hashlib.sha256(secret.encode()).hexdigest()


class IdentityView(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    external_id: str
    display: str | None
    linked_at: datetime


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    """A user's place in their workspace, and the approver selectors they answer to."""

    workspace_id: str
    user_id: str
    username: str
    role: Role
    principals: frozenset[str]

    def actor(
        self, *, id: str | None = None, answers: bool = True, correlation_id: str | None = None
    ) -> Actor:
        """The actor this member's credential acts as (``answers`` False: an agent key)."""
        return Actor(
            id=id or self.user_id,
            tenant=self.workspace_id,
            correlation_id=correlation_id,
            answers_as=self.user_id if answers else None,
            user_id=self.user_id,
            role=self.role,
            principals=self.principals if answers else frozenset(),
        )


class MemberView(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    username: str
    role: Role
    groups: list[str]
    identities: list[IdentityView]
    added_at: datetime


class GroupView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    members: list[str]
    """Usernames."""
    defined_at: datetime


class InvitationView(msgspec.Struct, frozen=True, kw_only=True):
    invitation_id: str
    workspace_id: str
    role: Role
    expires_at: datetime
    created_at: datetime
    accepted_at: datetime | None = None
    accepted_by: str | None = None


class _InvitationRow(InvitationView, frozen=True, kw_only=True):
    version: int


def _convert(value: Any, kind: Any) -> Any:
    # SQLite hands back timestamps as ISO text, Postgres as datetimes.
    return msgspec.convert(value, kind, strict=False)


class Teams:
    def __init__(
        self,
        store: EventStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        ids: Callable[[], str] = new_id,
    ) -> None:
        self.store, self.clock, self.ids = store, clock, ids

    # --- reads ------------------------------------------------------------------

    async def membership(self, user_id: str, *, answers: bool = True) -> Membership | None:
        """Where the user is a member, as what; None once removed.

        ``answers`` False leaves ``principals`` empty, sparing two queries for a
        caller that never answers (an agent key, on every call it makes).
        """
        rows = await self.store.fetch(
            "SELECT m.workspace_id, m.role, u.username FROM members m"
            " JOIN users u ON u.user_id = m.user_id WHERE m.user_id = ?",
            (user_id,),
        )
        if not rows:
            return None
        workspace_id, role, username = rows[0]["workspace_id"], rows[0]["role"], rows[0]["username"]
        if not answers:
            return Membership(
                workspace_id=workspace_id,
                user_id=user_id,
                username=username,
                role=role,
                principals=frozenset(),
            )
        groups = await self._groups_of(workspace_id)
        linked = await self.store.fetch(
            "SELECT channel, external_id FROM identities WHERE user_id = ?", (user_id,)
        )
        return Membership(
            workspace_id=workspace_id,
            user_id=user_id,
            username=username,
            role=role,
            principals=principals_for(
                username,
                role,
                [name for name, ids in groups.items() if user_id in ids],
                [f"{row['channel']}:{row['external_id']}" for row in linked],
            ),
        )

    async def identity(self, channel: str, external_id: str) -> Membership | None:
        """The member a channel account acts as, if someone linked it."""
        rows = await self.store.fetch(
            "SELECT user_id FROM identities WHERE channel = ? AND external_id = ?",
            (channel, external_id),
        )
        return await self.membership(rows[0]["user_id"]) if rows else None

    async def members(self, workspace_id: str) -> list[MemberView]:
        rows = await self.store.fetch(
            "SELECT m.user_id, m.role, m.added_at, u.username FROM members m"
            " JOIN users u ON u.user_id = m.user_id WHERE m.workspace_id = ?",
            (workspace_id,),
        )
        groups = await self._groups_of(workspace_id)
        linked = await self.store.fetch(
            "SELECT * FROM identities WHERE workspace_id = ?", (workspace_id,)
        )
        views = [
            MemberView(
                user_id=row["user_id"],
                username=row["username"],
                role=row["role"],
                groups=sorted(name for name, ids in groups.items() if row["user_id"] in ids),
                identities=[
                    _convert(i, IdentityView) for i in linked if i["user_id"] == row["user_id"]
                ],
                added_at=_convert(row["added_at"], datetime),
            )
            for row in rows
        ]
        return sorted(views, key=lambda m: m.username.lower())

    async def member(self, workspace_id: str, user_id: str) -> MemberView:
        for view in await self.members(workspace_id):
            if view.user_id == user_id:
                return view
        raise NotFound(f"member {user_id!r} not found", code="member_not_found")

    async def groups(self, workspace_id: str) -> list[GroupView]:
        rows = await self.store.fetch(
            "SELECT * FROM groups WHERE workspace_id = ? ORDER BY name", (workspace_id,)
        )
        names = await self._usernames(workspace_id)
        return [
            GroupView(
                name=row["name"],
                members=sorted(names.get(u, u) for u in msgspec.json.decode(row["members"])),
                defined_at=_convert(row["defined_at"], datetime),
            )
            for row in rows
        ]

    async def group(self, workspace_id: str, name: str) -> GroupView:
        for view in await self.groups(workspace_id):
            if view.name == name:
                return view
        raise NotFound(f"group {name!r} not found", code="group_not_found")

    async def resolve(self, workspace_id: str, approvers: Sequence[str]) -> list[MemberView]:
        """The members a request's approvers name, as the workspace is now."""
        return [
            m
            for m in await self.members(workspace_id)
            if route_match(approvers, _principals(m)) is not None
        ]

    async def voters(self, workspace_id: str, approvers: Sequence[str]) -> frozenset[str]:
        """Who may vote on a request with these approvers, as their votes are recorded.

        Routed members whose role answers (their user id), each bare
        ``telegram:<id>`` that is no member's linked account (an outside
        operator) and, for a Slack channel selector, every member whose role
        answers with a linked Slack account (any of them may be in the channel).
        """
        members = await self.members(workspace_id)
        linked = {
            f"telegram:{i.external_id}"
            for m in members
            for i in m.identities
            if i.channel == "telegram"
        }
        in_slack_channel = any(is_slack_channel(s) for s in approvers)
        routed = {
            m.user_id
            for m in members
            if allows(m.role, "request.answer")
            and (
                route_match(approvers, _principals(m))
                or (in_slack_channel and any(i.channel == "slack" for i in m.identities))
            )
        }
        outsiders = {s for s in approvers if s.startswith("telegram:") and s not in linked}
        return frozenset(routed | outsiders)

    async def targets(
        self, channel: str, workspace_id: str, approvers: Sequence[str]
    ) -> list[Target]:
        """Where to deliver a request on ``channel``: routed members' accounts, bare selectors.

        A bare ``<channel>:<x>`` selector is delivered to ``x`` itself (a
        Telegram chat, a Slack channel), unless it is also a routed member's
        account: then once, as theirs.
        """
        found: dict[str, Target] = {}
        for member in await self.resolve(workspace_id, approvers):
            for identity in member.identities:
                if identity.channel == channel:
                    found.setdefault(identity.external_id, Target(identity.external_id))
        prefix = f"{channel}:"
        for selector in approvers:
            if selector.startswith(prefix):
                address = selector.removeprefix(prefix)
                found.setdefault(address, Target(address, routed_by=selector))
        return list(found.values())

    # --- member changes ----------------------------------------------------------

    async def change_role(self, actor: Actor, user_id: str, role: Role) -> MemberView:
        await self._change_member(actor, user_id, role)
        return await self.member(actor.tenant, user_id)

    async def remove_member(self, actor: Actor, user_id: str) -> None:
        await self._change_member(actor, user_id, None)

    async def _change_member(self, actor: Actor, user_id: str, role: Role | None) -> None:
        require(actor, "members.manage")
        stream = f"workspace-{actor.tenant}"
        for attempt in range(APPEND_ATTEMPTS):
            version = len(await self.store.read_stream(stream))
            members = {m.user_id: m for m in await self.members(actor.tenant)}
            target = members.get(user_id)
            if target is None:
                raise NotFound(f"member {user_id!r} not found", code="member_not_found")
            if target.role == role:
                return
            if not grantable(actor.role, target.role, role):
                raise Forbidden(
                    "only an owner may make, demote or remove an owner", code="role_forbids"
                )
            owners = sum(m.role == "owner" for m in members.values())
            check_role_change(owners, target.role, role)
            now = self.clock()
            event: Event = (
                MemberRemoved(workspace_id=actor.tenant, user_id=user_id, removed_at=now)
                if role is None
                else MemberRoleChanged(
                    workspace_id=actor.tenant, user_id=user_id, role=role, changed_at=now
                )
            )
            try:
                await self.store.append(stream, version, [event], actor.meta())
                return
            except ConcurrencyError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise

    # --- groups ------------------------------------------------------------------

    async def define_group(self, actor: Actor, name: str, usernames: Sequence[str]) -> GroupView:
        require(actor, "groups.manage")
        if not _GROUP_NAME.match(name):
            raise ValidationFailed(f"group name {name!r}: 1 to 64 of A-Z a-z 0-9 _ . -")
        by_name = {v.lower(): k for k, v in (await self._usernames(actor.tenant)).items()}
        unknown = [u for u in usernames if u.lower() not in by_name]
        if unknown:
            raise ValidationFailed(f"members: {unknown[0]!r} is not a member of this workspace")
        user_ids = tuple(dict.fromkeys(by_name[u.lower()] for u in usernames))
        event = GroupDefined(
            workspace_id=actor.tenant, name=name, members=user_ids, defined_at=self.clock()
        )
        await self.store.append(f"workspace-{actor.tenant}", None, [event], actor.meta())
        return await self.group(actor.tenant, name)

    async def delete_group(self, actor: Actor, name: str) -> None:
        require(actor, "groups.manage")
        await self.group(actor.tenant, name)  # NotFound for an unknown group
        event = GroupDeleted(workspace_id=actor.tenant, name=name, deleted_at=self.clock())
        await self.store.append(f"workspace-{actor.tenant}", None, [event], actor.meta())

    # --- invitations -------------------------------------------------------------

    async def create_invitation(self, actor: Actor, role: Role) -> tuple[str, InvitationView]:
        """A single-use token to join the actor's workspace as ``role``, valid 7 days."""
        require(actor, "members.manage")
        if not grantable(actor.role, None, role):
            raise Forbidden("only an owner may invite an owner", code="role_forbids")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        event = InvitationCreated(
            invitation_id=self.ids(),
            workspace_id=actor.tenant,
            role=role,
            token_hash=digest(token),
            expires_at=now + INVITATION_TTL,
            created_at=now,
        )
        await self.store.append(f"invitation-{event.invitation_id}", 0, [event], actor.meta())
        return token, _convert(msgspec.structs.asdict(event), InvitationView)

    async def invitation(self, token: str) -> InvitationView:
        """The open invitation a token names: 404 unknown, 409 used, 410 expired."""
        return await self._open_invitation(token)

    async def _open_invitation(self, token: str) -> _InvitationRow:
        rows = await self.store.fetch(
            "SELECT * FROM invitations WHERE token_hash = ?", (digest(token),)
        )
        if not rows:
            raise NotFound("no such invitation", code="invitation_not_found")
        row: _InvitationRow = _convert(rows[0], _InvitationRow)
        if row.accepted_at is not None:
            raise Conflict("this invitation was already used", code="invitation_used")
        if row.expires_at <= self.clock():
            raise Gone("this invitation has expired", code="invitation_expired")
        return row

    async def accept_invitation(
        self, token: str, user_id: str, correlation_id: str | None = None
    ) -> InvitationView:
        """Use the invitation for the new ``user_id``; a second use is 409 ``invitation_used``."""
        row = await self._open_invitation(token)
        event = InvitationAccepted(
            invitation_id=row.invitation_id, user_id=user_id, accepted_at=self.clock()
        )
        meta = Actor(id=user_id, tenant=row.workspace_id, correlation_id=correlation_id).meta()
        try:
            await self.store.append(f"invitation-{row.invitation_id}", row.version, [event], meta)
        except ConcurrencyError as exc:
            raise Conflict("this invitation was already used", code="invitation_used") from exc
        return row

    # --- linked accounts ---------------------------------------------------------

    async def issue_link_code(self, actor: Actor, channel: str) -> tuple[str, datetime]:
        """A code the member sends from ``channel`` (``/start <code>``): single use, 10 minutes."""
        if channel not in CHANNELS:
            raise NotFound(f"unknown channel {channel!r}", code="unknown_channel")
        if actor.user_id is None or actor.answers_as is None:
            raise Forbidden("only a member, in person, links an account", code="role_forbids")
        code = secrets.token_urlsafe(16)  # 22 of [A-Za-z0-9_-]: fits a Telegram deep link
        now = self.clock()
        event = LinkCodeIssued(
            code_hash=digest(code),
            user_id=actor.user_id,
            workspace_id=actor.tenant,
            channel=channel,
            expires_at=now + LINK_CODE_TTL,
            issued_at=now,
        )
        await self.store.append(_link_stream(code), 0, [event], actor.meta())
        return code, event.expires_at

    async def link_identity(
        self, code: str, channel: str, external_id: str, display: str | None = None
    ) -> Membership:
        """Link the channel account that sent ``code`` to the member who asked for it."""
        stream = _link_stream(code)
        history = await self.store.read_stream(stream)
        issued = history[0].event if history else None
        if not isinstance(issued, LinkCodeIssued) or issued.channel != channel:
            raise NotFound("no such link code", code="link_code_not_found")
        if len(history) > 1:
            raise Conflict("this link code was already used", code="link_code_used")
        now = self.clock()
        if issued.expires_at <= now:
            raise Gone("this link code has expired", code="link_code_expired")
        holder = await self.identity(channel, external_id)
        if holder is not None and holder.user_id != issued.user_id:
            raise Conflict(
                f"this {channel} account is linked to another member", code="identity_taken"
            )
        member = await self.membership(issued.user_id)
        if member is None:
            raise NotFound("the member who asked for this code left", code="member_not_found")
        if holder is None:
            event = IdentityLinked(
                user_id=issued.user_id,
                workspace_id=member.workspace_id,
                channel=channel,
                external_id=external_id,
                display=display,
                linked_at=now,
            )
            meta = member.actor(id=f"{channel}:{external_id}").meta()
            try:
                await self.store.append(stream, 1, [event], meta)
            except ConcurrencyError as exc:
                raise Conflict("this link code was already used", code="link_code_used") from exc
        return await self.membership(issued.user_id) or member

    async def unlink_identity(self, actor: Actor, channel: str, external_id: str) -> None:
        """Unlink one of the actor's own accounts; anyone else's is ``NotFound``."""
        rows = await self.store.fetch(
            "SELECT user_id FROM identities WHERE channel = ? AND external_id = ?",
            (channel, external_id),
        )
        if not rows or rows[0]["user_id"] != actor.user_id or actor.user_id is None:
            raise NotFound(f"no linked {channel} account {external_id!r}", code="link_not_found")
        event = IdentityUnlinked(
            user_id=actor.user_id,
            workspace_id=actor.tenant,
            channel=channel,
            external_id=external_id,
            unlinked_at=self.clock(),
        )
        await self.store.append(f"user-{actor.user_id}", None, [event], actor.meta())

    # --- helpers -----------------------------------------------------------------

    async def _groups_of(self, workspace_id: str) -> dict[str, list[str]]:
        rows = await self.store.fetch(
            "SELECT name, members FROM groups WHERE workspace_id = ?", (workspace_id,)
        )
        return {row["name"]: msgspec.json.decode(row["members"]) for row in rows}

    async def _usernames(self, workspace_id: str) -> dict[str, str]:
        rows = await self.store.fetch(
            "SELECT m.user_id, u.username FROM members m JOIN users u ON u.user_id = m.user_id"
            " WHERE m.workspace_id = ?",
            (workspace_id,),
        )
        return {row["user_id"]: row["username"] for row in rows}


def _link_stream(code: str) -> str:
    return f"linkcode-{digest(code)[:32]}"


def _principals(member: MemberView) -> frozenset[str]:
    return principals_for(
        member.username,
        member.role,
        member.groups,
        [f"{i.channel}:{i.external_id}" for i in member.identities],
    )
