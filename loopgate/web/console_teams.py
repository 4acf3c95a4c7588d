"""The console's people pages: members, invitations, groups, my linked accounts, and joining.

Each form calls the same service as its JSON route in ``web/teams.py``, with
the same checks (a role that may not is told so on the page, with the
error's status). Every member sees the members and groups; owners and admins
also get the forms that change them.

``/console/join/{token}`` is the one console page besides sign-in that a
signed-out browser may open (``web/console_session.py``): an invited person
chooses a username and a password there, joins the invitation's workspace
with its role, and lands signed in on the queue.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from loopgate.domain.teams import ROLE_SUMMARY, ROLES, allows
from loopgate.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from loopgate.web.auth import actor_of
from loopgate.web.console_pages import decode_form, form_field, render, see_other
from loopgate.web.console_session import (
    HOME,
    login_csrf,
    remember_login_nonce,
    start_session,
)
from loopgate.web.keys import ACCOUNTS, CONSOLE_SESSION, CONSOLE_SESSIONS, REQUEST_ID, TEAMS
from loopgate.web.teams import (
    GroupBody,
    InvitationBody,
    RoleBody,
    deep_link,
    invitation_url,
    require_person,
)

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

# What a form can be refused with, shown on the page it came from.
REFUSED = (ValidationFailed, Conflict, Forbidden, NotFound, Gone)
NOTICES = {
    "role_changed": "Role changed.",
    "removed": "Member removed: their sign-ins and keys no longer act in this workspace.",
    "group_saved": "Group saved.",
    "group_deleted": "Group deleted.",
    "unlinked": "Account unlinked: it no longer acts as you.",
}


def _notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("notice", ""))


def _manages(request: web.Request) -> bool:
    actor = actor_of(request)
    return actor.answers_as is not None and allows(actor.role, "members.manage")


# --- members ------------------------------------------------------------------------------


@routes.get("/console/members")
async def members(request: web.Request) -> web.Response:
    return await _members_page(request, notice=_notice(request))


async def _members_page(
    request: web.Request, *, notice: str | None = None, error: str | None = None, status: int = 200
) -> web.Response:
    actor = actor_of(request)
    context = {
        "members": await request.app[TEAMS].members(actor.tenant),
        "roles": ROLES,
        "role_summary": ROLE_SUMMARY,
        "manages": _manages(request),
        "me": actor.user_id,
        "notice": notice,
        "error": error,
        "nav": "members",
    }
    return render(request, "members.html", context, status=status)


@routes.post("/console/members/role")
async def change_role(request: web.Request) -> web.Response:
    form = await request.post()
    actor = actor_of(request)
    try:
        body = decode_form({"role": form_field(form, "role")}, RoleBody)
        await request.app[TEAMS].change_role(actor, form_field(form, "user_id") or "", body.role)
    except REFUSED as exc:
        return await _members_page(request, error=exc.message, status=exc.status)
    return see_other("/console/members?notice=role_changed")


@routes.post("/console/members/remove")
async def remove_member(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        await request.app[TEAMS].remove_member(actor_of(request), form_field(form, "user_id") or "")
    except REFUSED as exc:
        return await _members_page(request, error=exc.message, status=exc.status)
    return see_other("/console/members?notice=removed")


# --- invitations --------------------------------------------------------------------------


@routes.get("/console/invitations")
async def invitations(request: web.Request) -> web.Response:
    return _invitations_page(request)


def _invitations_page(
    request: web.Request,
    *,
    created: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    context = {
        "roles": ROLES,
        "role_summary": ROLE_SUMMARY,
        "manages": _manages(request),
        "created": created,
        "notice": None,
        "error": error,
        "nav": "members",
    }
    return render(request, "invitations.html", context, status=status)


@routes.post("/console/invitations")
async def create_invitation(request: web.Request) -> web.Response:
    form = await request.post()
    actor = actor_of(request)
    try:
        require_person(actor, "members.manage")
        body = decode_form({"role": form_field(form, "role")}, InvitationBody)
        token, invitation = await request.app[TEAMS].create_invitation(actor, body.role)
    except REFUSED as exc:
        return _invitations_page(request, error=exc.message, status=exc.status)
    created = {"url": invitation_url(request, token), "invitation": invitation}
    # Rendered, not redirected to: the link is in this answer only.
    return _invitations_page(request, created=created, status=201)


# --- groups -------------------------------------------------------------------------------


@routes.get("/console/groups")
async def groups(request: web.Request) -> web.Response:
    return await _groups_page(request, notice=_notice(request), editing=request.query.get("edit"))


async def _groups_page(
    request: web.Request,
    *,
    notice: str | None = None,
    error: str | None = None,
    editing: str | None = None,
    entered: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    actor, teams = actor_of(request), request.app[TEAMS]
    listed = await teams.groups(actor.tenant)
    if entered is None:
        chosen = next((g for g in listed if g.name == editing), None)
        entered = {
            "name": chosen.name if chosen else "",
            "members": list(chosen.members) if chosen else [],
        }
    context = {
        "groups": listed,
        "members": await teams.members(actor.tenant),
        "manages": _manages(request) and allows(actor.role, "groups.manage"),
        "entered": entered,
        "notice": notice,
        "error": error,
        "nav": "groups",
    }
    return render(request, "groups.html", context, status=status)


@routes.post("/console/groups")
async def save_group(request: web.Request) -> web.Response:
    form = await request.post()
    name = (form_field(form, "name") or "").strip()
    chosen = [v for v in form.getall("members", []) if isinstance(v, str)]
    actor = actor_of(request)
    try:
        body = decode_form({"members": chosen}, GroupBody)
        await request.app[TEAMS].define_group(actor, name, body.members)
    except REFUSED as exc:
        entered = {"name": name, "members": chosen}
        return await _groups_page(request, error=exc.message, entered=entered, status=exc.status)
    return see_other("/console/groups?notice=group_saved")


@routes.post("/console/groups/delete")
async def delete_group(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        await request.app[TEAMS].delete_group(actor_of(request), form_field(form, "name") or "")
    except REFUSED as exc:
        return await _groups_page(request, error=exc.message, status=exc.status)
    return see_other("/console/groups?notice=group_deleted")


# --- my linked accounts -------------------------------------------------------------------


@routes.get("/console/links")
async def links(request: web.Request) -> web.Response:
    return await _links_page(request, notice=_notice(request))


async def _links_page(
    request: web.Request,
    *,
    notice: str | None = None,
    error: str | None = None,
    code: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    actor = actor_of(request)
    member = await request.app[TEAMS].member(actor.tenant, actor.user_id or "")
    context = {
        "identities": member.identities,
        "code": code,
        "notice": notice,
        "error": error,
        "nav": "links",
    }
    return render(request, "links.html", context, status=status)


@routes.post("/console/links/telegram")
async def issue_link_code(request: web.Request) -> web.Response:
    try:
        code, expires_at = await request.app[TEAMS].issue_link_code(actor_of(request), "telegram")
    except REFUSED as exc:
        return await _links_page(request, error=exc.message, status=exc.status)
    made = {"code": code, "deep_link": deep_link(request, code), "expires_at": expires_at}
    return await _links_page(request, code=made, status=201)


@routes.post("/console/links/unlink")
async def unlink(request: web.Request) -> web.Response:
    form = await request.post()
    channel, external_id = form_field(form, "channel") or "", form_field(form, "external_id") or ""
    try:
        await request.app[TEAMS].unlink_identity(actor_of(request), channel, external_id)
    except REFUSED as exc:
        return await _links_page(request, error=exc.message, status=exc.status)
    return see_other("/console/links?notice=unlinked")


# --- joining by invitation ----------------------------------------------------------------


@routes.get("/console/join/{token}")
async def join_page(request: web.Request) -> web.Response:
    # Unknown, used or expired: the console's error page says which (404, 409, 410).
    invitation = await request.app[TEAMS].invitation(request.match_info["token"])
    return _join_form(request, role=invitation.role)


def _join_form(
    request: web.Request,
    *,
    role: str,
    username: str = "",
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    session = request.get(CONSOLE_SESSION)
    token, fresh_nonce = (None, None) if session is not None else login_csrf(request)
    context = {
        "join_token": token,
        "token": request.match_info["token"],
        "role": role,
        "role_summary": ROLE_SUMMARY,
        "username": username,
        "error": error,
        "notice": None,
    }
    response = render(request, "join.html", context, status=status)
    if fresh_nonce is not None:
        remember_login_nonce(request, response, fresh_nonce)
    return response


@routes.post("/console/join/{token}")
async def join(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    invitation = await request.app[TEAMS].invitation(token)
    if CONSOLE_SESSION in request:  # the page says to sign out first; a stale form says it again
        return _join_form(request, role=invitation.role, status=409)
    form = await request.post()
    username = (form_field(form, "username") or "").strip()
    password = form_field(form, "password") or ""
    if not username or not password:
        error = "Choose a username and a password."
        return _join_form(request, role=invitation.role, username=username, error=error, status=400)
    if password != (form_field(form, "password_again") or ""):
        error = "The two passwords differ; type the same one twice."
        return _join_form(request, role=invitation.role, username=username, error=error, status=400)
    correlation_id = request.get(REQUEST_ID)
    try:
        user = await request.app[ACCOUNTS].register_user(
            username, password, invitation_token=token, correlation_id=correlation_id
        )
    except (ValidationFailed, Conflict) as exc:
        if exc.code == "invitation_used":
            raise
        return _join_form(
            request, role=invitation.role, username=username, error=exc.message, status=exc.status
        )
    session = await request.app[CONSOLE_SESSIONS].sign_in(user, correlation_id)
    log.info("joined by invitation", user_id=user.user_id, invitation=invitation.invitation_id)
    response = see_other(HOME)
    start_session(request, response, session)
    return response
