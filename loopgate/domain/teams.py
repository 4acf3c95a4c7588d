"""Workspaces, pure: what each role may do, who a request is routed to, the last-owner rule.

One table says what a role may do (:data:`ROLE_TABLE`, shown in the README);
:func:`allows` is the one place that reads it. Routing is data on the request
(``RequestCreated.approvers``): selectors matched against what an actor holds
(:func:`principals_for`), at the moment they answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal, get_args

import msgspec

from loopgate.errors import Conflict, ValidationFailed
from loopgate.events import Role

DEFAULT_WORKSPACE = "local"
"""The open loopback mode's tenant, owned by the server's first user."""

ROLES: tuple[Role, ...] = get_args(Role)

Permission = Literal[
    "request.create",
    "request.read",
    "request.answer",
    "audit.export",
    "members.read",
    "members.manage",
    "groups.manage",
    "keys.manage",
    "settings.manage",
    "ownership.transfer",
]

_EVERYONE: frozenset[Permission] = frozenset({"request.read", "members.read", "keys.manage"})
ROLE_TABLE: dict[Role, frozenset[Permission]] = {
    "owner": frozenset(get_args(Permission)),
    "admin": _EVERYONE
    | {
        "request.create",
        "request.answer",
        "audit.export",
        "members.manage",
        "groups.manage",
        "settings.manage",
    },
    "approver": _EVERYONE | {"request.create", "request.answer"},
    "auditor": _EVERYONE | {"audit.export"},
}
"""What each role may do. Keys act with their member's role: an auditor's key only reads."""

ROLE_SUMMARY: dict[Role, str] = {
    "owner": "everything, and hands ownership on",
    "admin": "members, groups, keys and settings; answers and exports",
    "approver": "answers the requests routed to them; asks and reads",
    "auditor": "reads and exports, never answers",
}

APPROVER_ROLES: frozenset[Role] = frozenset({"owner", "admin", "approver"})
"""Who ``role:approver`` names: owners and admins count as approvers."""

ANY_PRINCIPAL = "*"
"""What the open loopback mode's anonymous caller holds: it matches every selector."""

_SELECTOR = re.compile(r"^(user|group|role|telegram|slack):(\S{1,128})$")
_SLACK_CHANNEL = re.compile(r"^(#[a-z0-9_-]{1,80}|[CG][A-Z0-9]{2,20})$")


def allows(role: Role | None, permission: Permission) -> bool:
    """Whether a member with ``role`` may do ``permission`` (no role: nothing)."""
    return role is not None and permission in ROLE_TABLE[role]


def principals_for(
    username: str, role: Role, groups: Iterable[str] = (), linked: Iterable[str] = ()
) -> frozenset[str]:
    """The selectors a member answers to; ``linked`` their accounts as ``<channel>:<id>``."""
    held = {f"user:{username}", f"role:{role}"}
    if role in APPROVER_ROLES:
        held.add("role:approver")
    held.update(f"group:{g}" for g in groups)
    held.update(linked)
    return frozenset(held)


class Target(msgspec.Struct, frozen=True):
    """Where a channel delivers a request: a member's linked account, or a bare selector's place.

    ``address`` is a Telegram chat id as text, a Slack user id or channel, an
    email address; ``routed_by`` the selector it serves when it is no
    member's own account (``slack:#ops``, ``telegram:42``).
    """

    address: str
    routed_by: str | None = None


def is_slack_channel(selector: str) -> bool:
    """Whether ``selector`` names a Slack channel (``slack:#ops``, ``slack:C0123``).

    Such a request is posted in that channel, and any linked member of the
    workspace who clicks there answers to the selector: being in the channel
    is what routes it to them, as a Telegram chat id does for its operator.
    """
    return selector.startswith("slack:")


def route_match(approvers: Sequence[str], principals: frozenset[str]) -> str | None:
    """The first of a request's selectors the actor holds, or None: not theirs to answer."""
    if ANY_PRINCIPAL in principals:
        return ANY_PRINCIPAL
    return next((s for s in approvers if s in principals), None)


def default_approvers(telegram_id: int | None) -> tuple[str, ...]:
    """A request that names nobody: the session's Telegram operator and every approver.

    As before workspaces: the operator a reference client registered answers on
    Telegram, and the workspace's people answer in the console. Name
    ``approvers`` to narrow it.
    """
    everyone: tuple[str, ...] = ("role:approver",)
    return (f"telegram:{telegram_id}", *everyone) if telegram_id is not None else everyone


def parse_approvers(raw: Sequence[str]) -> tuple[str, ...]:
    """Check a request's ``approvers``; ``ValidationFailed`` names the first bad one."""
    for selector in raw:
        match = _SELECTOR.match(selector)
        if match is None:
            raise ValidationFailed(
                f"approvers: {selector!r} is not user:<name>, group:<name>, role:<role>, "
                "telegram:<id> or slack:#<channel>"
            )
        kind, value = match.groups()
        if kind == "role" and value not in ROLES:
            raise ValidationFailed(
                f"approvers: {selector!r} names an unknown role (one of {', '.join(ROLES)})"
            )
        if kind == "telegram" and not value.lstrip("-").isdigit():
            raise ValidationFailed(f"approvers: {selector!r}: a Telegram id is a number")
        if kind == "slack" and _SLACK_CHANNEL.match(value) is None:
            raise ValidationFailed(
                f"approvers: {selector!r}: a Slack channel is #<name> (lowercase) or its id"
            )
    return tuple(dict.fromkeys(raw))


def check_role_change(owners: int, current: Role, new: Role | None) -> None:
    """Refuse a change (``new`` None: removal) that would leave the workspace without an owner."""
    if current == "owner" and new != "owner" and owners <= 1:
        raise Conflict(
            "the last owner cannot be removed or demoted: make another member owner first",
            code="last_owner",
        )


def grantable(actor_role: Role | None, target_current: Role | None, new: Role | None) -> bool:
    """Whether ``actor_role`` may move a member from ``target_current`` to ``new``.

    Admins manage everyone but owners; only an owner makes, demotes or removes an owner.
    """
    if not allows(actor_role, "members.manage"):
        return False
    touches_owner = "owner" in (target_current, new)
    return not touches_owner or allows(actor_role, "ownership.transfer")


PERMISSION_HELP: dict[Permission, str] = {
    "request.create": "ask: register and deactivate sessions, create and cancel requests, "
    "read and rotate the webhook secret",
    "request.read": "see requests and sessions, their history and event streams, the console queue",
    "request.answer": "answer the requests routed to them (never with an agent key)",
    "audit.export": "export the audit log (`GET /v1/audit/export`, the console's Export)",
    "members.read": "list members and groups",
    "members.manage": "add, invite, change the role of and remove members "
    "(never with an agent key)",
    "groups.manage": "define and delete groups (never with an agent key)",
    "keys.manage": "make and revoke their own API keys",
    "settings.manage": "set the approval policy (`PUT /v1/policy`, `loopgate policy apply`; "
    "never with an agent key)",
    "ownership.transfer": "make, invite, demote or remove an owner",
}
"""What each permission lets a member do, for the README's roles table."""


def roles_markdown_table() -> str:
    """``ROLE_TABLE`` as the README's Markdown table: a row per permission, a column per role."""
    rows = [
        "| Permission | " + " | ".join(f"`{role}`" for role in ROLES) + " |",
        "| --- |" + " :---: |" * len(ROLES),
    ]
    for permission in get_args(Permission):
        marks = " | ".join("✓" if allows(role, permission) else "" for role in ROLES)
        rows.append(f"| `{permission}`: {PERMISSION_HELP[permission]} | {marks} |")
    return "\n".join(rows) + "\n"
