"""Role x route: every route, every kind of caller, allowed or refused exactly as the README says.

The README's role table (``loopgate.domain.teams.ROLE_TABLE``) says what each
role may do; this file says which permission each route needs (:data:`ROUTES`),
and proves it on both stores by calling every route as every kind of caller:

- anonymous, on a server that requires keys, and anonymous in the open mode
  (``auth.require_api_key`` off), where it acts in the default workspace as an
  approver that every request is routed to;
- an owner, an admin, an approver and an auditor of one workspace, each by
  login (a login token for the API, the console's signed cookie for the
  console), by an ``agent`` key and by an ``operator`` key.

What a caller should get follows from the route's :class:`Rule` and the
caller, in :func:`expected`: allowed (the call succeeds: below 400, or a
status the row names), 401 ``unauthorized``, a sign-in redirect (the console
takes no keys), or 403 with its code (``role_forbids``, ``agent_cannot_answer``,
``role_cannot_answer``, ``not_an_approver``, ``agent_cannot_export``). An
answer refused is also found in the log, as ``AnswerRefused`` with that reason.
The console's people pages render a refusal as a page, without the code: there
the status is checked.

:func:`test_every_route_has_a_row` walks ``app.router`` like
``tests/web/test_openapi.py`` does, so a new route fails until it has a row
here. ``POST /telegram/webhook`` exists only
in Telegram's webhook mode, answers Telegram's secret header alone, and is
tested in ``tests/telegram/``; ``POST /slack/events`` likewise exists only
with Slack on in http mode, answers Slack's signature alone, and is tested in
``tests/slack_channel/test_events_route.py``. The email pages (``/email/*``) are public: a
signed link is their credential; the world runs with email on, mailing to a
local SMTP server (``tests/smtp_sink.py``), and their behaviour is tested in
``tests/email/``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import pytest
from account_helpers import PASSWORD, TEST_JWT_SECRET, Client, unique
from aiohttp import web
from console_helpers import csrf_in
from smtp_sink import SmtpSink

from loopgate.channels.email.links import AddressLink, AnswerLink, LinkSigner, epoch
from loopgate.config import AuthConfig, Config, EmailConfig
from loopgate.domain.teams import ROLES, Permission, allows
from loopgate.events import AnswerRefused, Role
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.console_session import SESSION_COOKIE
from loopgate.web.email import EMAIL
from loopgate.web.keys import ACCOUNTS, TEAMS

Surface = Literal["public", "agent", "user", "console", "console_public"]
CallerKind = Literal["anonymous", "open_anonymous", "login", "agent_key", "operator_key"]


# --- the rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | None = None  # None: allowed
    code: str | None = None

    def __str__(self) -> str:
        return "allowed" if self.status is None else f"{self.status} {self.code}"


ALLOWED = Outcome()
UNAUTHORIZED = Outcome(401, "unauthorized")
SIGNED_OUT = Outcome(303, "sign-in redirect")


def refused(code: str) -> Outcome:
    return Outcome(403, code)


@dataclass(frozen=True)
class Rule:
    """What a route asks of its caller.

    ``surface``: ``public`` reads no credentials; ``agent`` takes a key or a login
    token (keys are required here); ``user`` only a login token; ``console`` only
    the console's cookie (signed out: a redirect to sign in); ``console_public``
    is a console page anyone may open. ``permission``: the role must allow it
    (None: any member). ``agent_key``: the code every agent key gets, whatever
    its member's role. ``routed_elsewhere``: the request names nobody the caller is.
    ``open_anonymous``: what the open mode's anonymous caller gets, where it is
    not what an approver holding every selector would.
    """

    surface: Surface
    permission: Permission | None = None
    agent_key: str | None = None
    routed_elsewhere: bool = False
    open_anonymous: Outcome | None = None
    answering: bool = True
    """With ``request.answer``: the route answers a request, so a refusal is
    ``role_cannot_answer`` and recorded (False: a plain ``role_forbids``)."""


PUBLIC = Rule("public")
CONSOLE_PUBLIC = Rule("console_public")
ASK = Rule("agent", "request.create")
READ = Rule("agent", "request.read")
ANSWER = Rule("agent", "request.answer", agent_key="agent_cannot_answer")
ANSWER_NOT_ROUTED = Rule(
    "agent", "request.answer", agent_key="agent_cannot_answer", routed_elsewhere=True
)
# The open mode's anonymous caller reads its whole log (web/audit.py).
EXPORT = Rule("agent", "audit.export", agent_key="agent_cannot_export", open_anonymous=ALLOWED)
READ_MEMBERS = Rule("agent", "members.read")
MANAGE_MEMBERS = Rule("agent", "members.manage", agent_key="role_forbids")
MANAGE_GROUPS = Rule("agent", "groups.manage", agent_key="role_forbids")
ME = Rule("agent")
SET_POLICY = Rule("agent", "settings.manage", agent_key="role_forbids")
REVOKE_GRANT = Rule("agent", "request.answer", agent_key="agent_cannot_revoke", answering=False)
# Nobody to link an account to, and no account of its own to unlink.
LINK = Rule("agent", agent_key="role_forbids", open_anonymous=refused("role_forbids"))
UNLINK = Rule("agent", agent_key="role_forbids", open_anonymous=Outcome(404, "link_not_found"))
KEYS = Rule("user", "keys.manage")
CONSOLE_READ = Rule("console", "request.read")
CONSOLE_ASK = Rule("console", "request.create")
CONSOLE_ANSWER = Rule("console", "request.answer")
CONSOLE_ANSWER_NOT_ROUTED = Rule("console", "request.answer", routed_elsewhere=True)
CONSOLE_EXPORT = Rule("console", "audit.export")
CONSOLE_KEYS = Rule("console", "keys.manage")
CONSOLE_MEMBERS = Rule("console", "members.read")
CONSOLE_MANAGE_MEMBERS = Rule("console", "members.manage")
CONSOLE_MANAGE_GROUPS = Rule("console", "groups.manage")
CONSOLE_ME = Rule("console")
CONSOLE_REVOKE_GRANT = Rule("console", "request.answer", answering=False)


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    role: Role | None = None

    def __str__(self) -> str:
        return self.kind if self.role is None else f"{self.role} {self.kind}"


CALLERS = (
    Caller("anonymous"),
    Caller("open_anonymous"),
    *(Caller(kind, role) for role in ROLES for kind in ("login", "agent_key", "operator_key")),
)


def expected(rule: Rule, caller: Caller) -> Outcome:
    """What ``caller`` gets from a route with ``rule``: the README's role table, applied."""
    if rule.surface in ("public", "console_public"):
        return ALLOWED
    if rule.surface == "console" and caller.kind != "login":
        return SIGNED_OUT  # the console takes its cookie, never a key
    if caller.kind == "anonymous" or (rule.surface == "user" and caller.kind != "login"):
        return UNAUTHORIZED
    if caller.kind == "open_anonymous":
        if rule.open_anonymous is not None:
            return rule.open_anonymous
        caller = Caller("login", "approver")  # an approver, and every request is routed to it
        rule = dataclasses.replace(rule, routed_elsewhere=False)
    if caller.kind == "agent_key" and rule.agent_key is not None:
        return refused(rule.agent_key)
    if rule.permission == "request.answer" and rule.answering:
        if not allows(caller.role, "request.answer"):
            return refused("role_cannot_answer")
        return refused("not_an_approver") if rule.routed_elsewhere else ALLOWED
    if rule.permission is not None and not allows(caller.role, rule.permission):
        return refused("role_forbids")
    return ALLOWED


# --- the world the calls run in ----------------------------------------------------------------


@dataclass
class Member:
    role: Role
    user_id: str
    username: str
    token: str
    agent_key: str
    operator_key: str
    cookie: str = ""
    csrf: str = ""


@dataclass
class World:
    client: Client
    open_client: Client  # the same store, served in the open mode (no key required)
    store: EventStore
    members: dict[Role, Member]
    session_id: str = "matrix"

    @property
    def owner(self) -> Member:
        return self.members["owner"]

    def client_for(self, caller: Caller) -> Client:
        return self.open_client if caller.kind == "open_anonymous" else self.client

    def member_for(self, caller: Caller) -> Member:
        """The member behind a caller (the owner stands in for the anonymous one)."""
        return self.members[caller.role or "owner"]

    async def as_owner(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.owner.token}"}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        assert response.status < 300, (method, path, response.status, await response.text())
        return await response.json()

    async def new_request(self, approvers: tuple[str, ...] = ("role:approver",)) -> str:
        body = {
            "session_id": self.session_id,
            "client_id": "matrix",
            "message": "Deploy?",
            "options": ["Approve", "Reject"],
            "approvers": list(approvers),
        }
        # Asked by the open mode's anonymous agent, so no caller is its requester
        # (who would never answer it: four eyes, tests/telegram/test_votes_must_show.py).
        response = await self.open_client.post("/v1/requests", json=body)
        assert response.status == 201, await response.text()
        request_id: str = (await response.json())["request_id"]
        return request_id

    async def new_session(self) -> str:
        session_id = f"s-{uuid.uuid4().hex[:10]}"
        body = {"session_id": session_id, "client_id": "matrix"}
        await self.as_owner("POST", "/v1/sessions", json=body)
        return session_id

    async def new_member(self, role: Role = "approver") -> str:
        user = await self.client.app[ACCOUNTS].register_user(unique("target"), PASSWORD, role=role)
        return user.user_id

    async def new_group(self) -> str:
        name = f"g-{uuid.uuid4().hex[:8]}"
        body = {"members": [self.members["approver"].username]}
        await self.as_owner("PUT", f"/v1/groups/{name}", json=body)
        return name

    async def new_link(self, member: Member) -> str:
        """A Telegram account linked to ``member``; its id."""
        app = self.client.app
        actor = await app[ACCOUNTS].actor_for_user(member.user_id)
        code, _ = await app[TEAMS].issue_link_code(actor, "telegram")
        external_id = str(uuid.uuid4().int % 10**9)
        await app[TEAMS].link_identity(code, "telegram", external_id, "matrix")
        return external_id

    @property
    def email_signer(self) -> LinkSigner:
        signer = self.client.app[EMAIL].signer
        assert signer is not None
        return signer

    async def email_link(self) -> str:
        """An answer link of a fresh request for the approver, whose address is linked once."""
        approver = self.members["approver"]
        address = f"{approver.username}@example.com"
        teams = self.client.app[TEAMS]
        if await teams.identity("email", address) is None:
            actor = await self.client.app[ACCOUNTS].actor_for_user(approver.user_id)
            code, _ = await teams.issue_link_code(actor, "email")
            await teams.link_identity(code, "email", address, display=address)
        request_id = await self.new_request()
        link = AnswerLink(
            request_id=request_id,
            address=address,
            user_id=approver.user_id,
            option="Approve",
            expires=None,
        )
        return self.email_signer.answer_token(link)

    async def address_link(self) -> str:
        """An address-linking link for the approver, to an address nobody linked."""
        actor = await self.client.app[ACCOUNTS].actor_for_user(self.members["approver"].user_id)
        code, expires_at = await self.client.app[TEAMS].issue_link_code(actor, "email")
        address = f"{uuid.uuid4().hex[:12]}@example.com"
        link = AddressLink(code=code, address=address, expires=epoch(expires_at) or 0)
        return self.email_signer.address_token(link)

    async def console_sign_in(self, username: str) -> tuple[str, str]:
        """A fresh console session: (cookie, CSRF token); the client's jar is left empty."""
        jar = self.client.session.cookie_jar
        form = await self.client.get("/console/login")
        fields = {"csrf_token": csrf_in(await form.text()), "username": username}
        fields["password"] = PASSWORD
        signed_in = await self.client.post("/console/login", data=fields, allow_redirects=False)
        assert signed_in.status == 303, await signed_in.text()
        cookie = next(c.value for c in jar if c.key == SESSION_COOKIE)
        jar.clear()
        page = await self.client.get(
            "/console/sessions", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
        )
        return cookie, csrf_in(await page.text())


@dataclass(frozen=True)
class Call:
    """What to send: the path (parameters filled in), a JSON body or a form, a query."""

    path: str
    json: Any = None
    form: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None
    cookie: tuple[str, str] | None = None  # a console session of its own: (cookie, csrf)
    headers: Mapping[str, str] | None = None
    request_id: str | None = None  # the request answered: where a refusal is recorded


Builder = Callable[[World, Caller], Awaitable[Call]]


def at(path: str, **kwargs: Any) -> Builder:
    """A call with nothing to prepare."""

    async def build(world: World, caller: Caller) -> Call:
        return Call(path, **kwargs)

    return build


def on_request(
    path: str, *, approvers: tuple[str, ...] = ("role:approver",), **kwargs: Any
) -> Builder:
    """A call about a fresh request: ``{id}`` in ``path`` and ``"{id}"`` values are filled in."""

    async def build(world: World, caller: Caller) -> Call:
        request_id = await world.new_request(approvers)
        filled = _filled(kwargs, request_id)
        return Call(path.format(id=request_id), request_id=request_id, **filled)

    return build


def on_session(path: str, **kwargs: Any) -> Builder:
    """A call about a fresh session, as :func:`on_request`."""

    async def build(world: World, caller: Caller) -> Call:
        session_id = await world.new_session()
        return Call(path.format(id=session_id), **_filled(kwargs, session_id))

    return build


def _filled(kwargs: dict[str, Any], value: str) -> dict[str, Any]:
    def fill(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: fill(v) for k, v in item.items()}
        return value if item == "{id}" else item

    return {k: fill(v) for k, v in kwargs.items()}


def fresh_session(path: str) -> Builder:
    """A call registering a session nobody has used yet."""

    async def build(world: World, caller: Caller) -> Call:
        body = {"session_id": f"s-{uuid.uuid4().hex[:10]}", "client_id": "c", "telegram_id": 7}
        return Call(path, json=body)

    return build


async def _own_key(world: World, caller: Caller) -> Call:
    member = world.member_for(caller)
    headers = {"Authorization": f"Bearer {member.token}"}
    made = await world.client.post("/api/user/apikeys", json={"label": "x"}, headers=headers)
    key_id = (await made.json())["id"]
    return Call(f"/api/user/apikeys/{key_id}")


async def _revoke_key_form(world: World, caller: Caller) -> Call:
    key_id = (await _own_key(world, caller)).path.rsplit("/", 1)[1]
    return Call("/console/keys/revoke", form={"key_id": key_id})


async def _login_body(world: World, caller: Caller) -> Call:
    member = world.member_for(caller)
    return Call("/api/auth/login", json={"username": member.username, "password": PASSWORD})


async def _register_body(world: World, caller: Caller) -> Call:
    return Call("/api/auth/register", json={"username": unique("new"), "password": PASSWORD})


async def _console_login(world: World, caller: Caller) -> Call:
    # The sign-in form's own CSRF token comes with its page; the jar carries its cookie.
    member = world.member_for(caller)
    form = await world.client_for(caller).get("/console/login")
    fields = {"csrf_token": csrf_in(await form.text()), "username": member.username}
    return Call("/console/login", form={**fields, "password": PASSWORD})


async def _console_logout(world: World, caller: Caller) -> Call:
    # Signing out ends the session: give the call one of its own.
    return Call(
        "/console/logout",
        form={},
        cookie=await world.console_sign_in(world.member_for(caller).username),
    )


async def _member_target(world: World, caller: Caller) -> Call:
    user_id = await world.new_member()
    return Call(f"/v1/members/{user_id}", json={"role": "auditor"})


async def _member_delete(world: World, caller: Caller) -> Call:
    return Call(f"/v1/members/{await world.new_member()}")


async def _console_member_role(world: World, caller: Caller) -> Call:
    return Call(
        "/console/members/role", form={"user_id": await world.new_member(), "role": "auditor"}
    )


async def _console_member_remove(world: World, caller: Caller) -> Call:
    return Call("/console/members/remove", form={"user_id": await world.new_member()})


async def _add_member(world: World, caller: Caller) -> Call:
    body = {"username": unique("added"), "password": PASSWORD, "role": "approver"}
    return Call("/v1/members", json=body)


async def _group(world: World, caller: Caller) -> Call:
    return Call(f"/v1/groups/{await world.new_group()}")


async def _group_put(world: World, caller: Caller) -> Call:
    name = f"g-{uuid.uuid4().hex[:8]}"
    return Call(f"/v1/groups/{name}", json={"members": [world.members["approver"].username]})


async def _console_group_save(world: World, caller: Caller) -> Call:
    name = f"g-{uuid.uuid4().hex[:8]}"
    return Call(
        "/console/groups", form={"name": name, "members": world.members["approver"].username}
    )


async def _console_group_delete(world: World, caller: Caller) -> Call:
    return Call("/console/groups/delete", form={"name": await world.new_group()})


async def _unlink(world: World, caller: Caller) -> Call:
    external_id = await world.new_link(world.member_for(caller))
    return Call(f"/v1/me/links/telegram/{external_id}")


async def _console_unlink(world: World, caller: Caller) -> Call:
    external_id = await world.new_link(world.member_for(caller))
    return Call("/console/links/unlink", form={"channel": "telegram", "external_id": external_id})


async def _join(world: World, caller: Caller) -> Call:
    made = await world.as_owner("POST", "/v1/invitations", json={"role": "approver"})
    return Call(urlsplit(made["url"]).path)


async def _join_form(world: World, caller: Caller) -> Call:
    joined = await _join(world, caller)
    page = await world.client_for(caller).get(joined.path)
    fields = {"csrf_token": csrf_in(await page.text()), "username": unique("joiner")}
    return Call(joined.path, form={**fields, "password": PASSWORD, "password_again": PASSWORD})


async def _email_answer_page(world: World, caller: Caller) -> Call:
    return Call(f"/email/answer/{await world.email_link()}")


async def _email_answer_form(world: World, caller: Caller) -> Call:
    token = await world.email_link()
    return Call(f"/email/answer/{token}", form={"csrf_token": world.email_signer.csrf(token)})


async def _email_link_page(world: World, caller: Caller) -> Call:
    return Call(f"/email/link/{await world.address_link()}")


async def _email_link_form(world: World, caller: Caller) -> Call:
    token = await world.address_link()
    return Call(f"/email/link/{token}", form={"csrf_token": world.email_signer.csrf(token)})


async def _grant(world: World, caller: Caller) -> Call:
    """A call about a fresh standing grant, issued by the open mode's anonymous approver."""
    body = {**ASKED, "action": {"tool": "deploy", "args": {"n": uuid.uuid4().hex}}}
    made = await world.open_client.post("/v1/requests", json={**body, "grantable": True})
    assert made.status == 201, await made.text()
    request_id = (await made.json())["request_id"]
    answer = {"option": "Approve", "grant": {"seconds": 600}}
    answered = await world.open_client.post(f"/v1/requests/{request_id}/response", json=answer)
    assert answered.status == 200, await answered.text()
    grants = await (await world.open_client.get("/v1/grants")).json()
    (grant_id,) = [g["grant_id"] for g in grants["grants"] if g["request_id"] == request_id]
    return Call(f"/v1/grants/{grant_id}")


async def _console_revoke_grant(world: World, caller: Caller) -> Call:
    grant_id = (await _grant(world, caller)).path.rsplit("/", 1)[1]
    return Call(f"/console/grants/{grant_id}/revoke", form={})


async def _receipt(world: World, caller: Caller) -> Call:
    """A redemption of a fresh receipt: an action asked and approved in the open mode."""
    action = {"tool": "wire_transfer", "args": {"amount": 1500000, "to": uuid.uuid4().hex}}
    made = await world.open_client.post("/v1/requests", json={**ASKED, "action": action})
    assert made.status == 201, await made.text()
    request_id = (await made.json())["request_id"]
    answered = await world.open_client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Approve"}
    )
    assert answered.status == 200, await answered.text()
    decided = await (await world.open_client.get(f"/v1/requests/{request_id}")).json()
    return Call("/v1/receipts/redeem", json={"receipt": decided["receipt"], "action": action})


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # the route's template, as the router has it
    rule: Rule
    call: Builder
    also_allowed: frozenset[int] = field(
        default_factory=frozenset
    )  # an allowed call's other answers
    name: str = ""  # tells apart two rows of one route

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"

    def __str__(self) -> str:
        return self.route + (f" ({self.name})" if self.name else "")


def row(method: str, path: str, rule: Rule, call: Builder | None = None, **options: Any) -> Row:
    return Row(method, path, rule, call or at(path), **options)


SESSION = {"session_id": "matrix", "client_id": "matrix"}
ASKED = {**SESSION, "message": "Deploy?", "options": ["Approve", "Reject"]}
ELSEWHERE = ("user:somebody-else",)
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
MCP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "matrix", "version": "1"},
    },
}

ROUTES: tuple[Row, ...] = (
    # Public: no credentials read.
    row("GET", "/health", PUBLIC),
    row("GET", "/healthz", PUBLIC),
    row("GET", "/readyz", PUBLIC),
    row("GET", "/metrics", PUBLIC),
    row("GET", "/openapi.json", PUBLIC),
    row("GET", "/.well-known/jwks.json", PUBLIC),
    row("GET", "/docs", PUBLIC),
    row("POST", "/api/auth/register", PUBLIC, _register_body),
    row("POST", "/api/auth/login", PUBLIC, _login_body),
    # The reference's agent routes.
    row("POST", "/hitl/register", ASK, fresh_session("/hitl/register")),
    row("POST", "/sessions/register", ASK, fresh_session("/sessions/register")),
    row("POST", "/hitl/request", ASK, at("/hitl/request", json=ASKED)),
    row("GET", "/hitl/pending", READ),
    row("GET", "/hitl/poll", READ, on_request("/hitl/poll", params={"request_id": "{id}"})),
    row("GET", "/hitl/status", READ, at("/hitl/status", params={"session_id": "matrix"})),
    row("POST", "/hitl/cancel", ASK, on_request("/hitl/cancel", json={"request_id": "{id}"})),
    row(
        "POST", "/hitl/deactivate", ASK, on_session("/hitl/deactivate", json={"session_id": "{id}"})
    ),
    # The v1 API.
    row("POST", "/v1/sessions", ASK, fresh_session("/v1/sessions")),
    row("GET", "/v1/sessions/{session_id}", READ, at("/v1/sessions/matrix")),
    row("GET", "/v1/sessions/{session_id}/events", READ, at("/v1/sessions/matrix/events")),
    row("POST", "/v1/requests", ASK, at("/v1/requests", json=ASKED)),
    row("GET", "/v1/requests", READ),
    row("GET", "/v1/requests/{request_id}", READ, on_request("/v1/requests/{id}")),
    row("GET", "/v1/requests/{request_id}/events", READ, on_request("/v1/requests/{id}/events")),
    row("GET", "/v1/requests/{request_id}/history", READ, on_request("/v1/requests/{id}/history")),
    row("POST", "/v1/requests/{request_id}/cancel", ASK, on_request("/v1/requests/{id}/cancel")),
    row(
        "POST",
        "/v1/requests/{request_id}/response",
        ANSWER,
        on_request("/v1/requests/{id}/response", json={"option": "Approve"}),
        name="routed to role:approver",
    ),
    row(
        "POST",
        "/v1/requests/{request_id}/response",
        ANSWER_NOT_ROUTED,
        on_request("/v1/requests/{id}/response", approvers=ELSEWHERE, json={"option": "Approve"}),
        name="routed to somebody else",
    ),
    row("GET", "/v1/events", READ),
    row("GET", "/v1/audit/export", EXPORT),
    row("GET", "/v1/webhook-secret", ASK),
    row("POST", "/v1/webhook-secret", ASK),
    row("*", "/mcp", READ, at("/mcp", json=MCP_INIT, headers=MCP_HEADERS)),
    row("GET", "/mcp/tools", READ),
    row("GET", "/mcp/capabilities", READ),
    # People: the teams routes (owner and admin manage; everyone reads; agent keys never manage).
    row("GET", "/v1/members", READ_MEMBERS),
    row("POST", "/v1/members", MANAGE_MEMBERS, _add_member),
    row("PATCH", "/v1/members/{user_id}", MANAGE_MEMBERS, _member_target),
    row("DELETE", "/v1/members/{user_id}", MANAGE_MEMBERS, _member_delete),
    row(
        "POST", "/v1/invitations", MANAGE_MEMBERS, at("/v1/invitations", json={"role": "approver"})
    ),
    row("GET", "/v1/groups", READ_MEMBERS),
    row("GET", "/v1/groups/{name}", READ_MEMBERS, _group),
    row("PUT", "/v1/groups/{name}", MANAGE_GROUPS, _group_put),
    row("DELETE", "/v1/groups/{name}", MANAGE_GROUPS, _group),
    row("GET", "/v1/me", ME),
    row("POST", "/v1/me/links/{channel}", LINK, at("/v1/me/links/telegram"), name="telegram"),
    row(
        "POST",
        "/v1/me/links/{channel}",
        LINK,
        at("/v1/me/links/email", json={"address": "matrix@example.com"}),
        name="email",
    ),
    row("DELETE", "/v1/me/links/{channel}/{external_id}", UNLINK, _unlink),
    # The approval policy: everyone reads; owners and admins set it, never with an agent key.
    row("GET", "/v1/policy", READ),
    row("PUT", "/v1/policy", SET_POLICY, at("/v1/policy", json={"rules": []})),
    # Standing grants: everyone reads; a person who may answer revokes, never an agent key.
    row("GET", "/v1/grants", READ),
    row("GET", "/v1/grants/{grant_id}", READ, _grant),
    row("DELETE", "/v1/grants/{grant_id}", REVOKE_GRANT, _grant),
    # Receipts: any credential of the receipt's workspace redeems, agent keys above all.
    row("POST", "/v1/receipts/redeem", ME, _receipt),
    # API keys: a login token only.
    row("GET", "/api/user/apikeys", KEYS),
    row("POST", "/api/user/apikeys", KEYS, at("/api/user/apikeys", json={"label": "matrix"})),
    row("DELETE", "/api/user/apikeys/{key_id}", KEYS, _own_key),
    # The console: its cookie only.
    row("GET", "/console/static", CONSOLE_PUBLIC, at("/console/static/console.css")),
    row("GET", "/console/login", CONSOLE_PUBLIC),
    row("POST", "/console/login", CONSOLE_PUBLIC, _console_login),
    row("POST", "/console/logout", CONSOLE_READ, _console_logout),
    row("GET", "/console", CONSOLE_READ),
    row("GET", "/console/events", CONSOLE_READ),
    row("GET", "/console/history", CONSOLE_READ),
    row(
        "GET", "/console/requests/{request_id}", CONSOLE_READ, on_request("/console/requests/{id}")
    ),
    row(
        "GET",
        "/console/requests/{request_id}/card",
        CONSOLE_READ,
        on_request("/console/requests/{id}/card"),
    ),
    row(
        "POST",
        "/console/requests/{request_id}/answer",
        CONSOLE_ANSWER,
        on_request("/console/requests/{id}/answer", form={"option": "Approve"}),
        name="routed to role:approver",
    ),
    row(
        "POST",
        "/console/requests/{request_id}/answer",
        CONSOLE_ANSWER_NOT_ROUTED,
        on_request(
            "/console/requests/{id}/answer", approvers=ELSEWHERE, form={"option": "Approve"}
        ),
        name="routed to somebody else",
    ),
    row("GET", "/console/sessions", CONSOLE_READ),
    row(
        "POST",
        "/console/sessions",
        CONSOLE_ASK,
        at("/console/sessions", form={"session_id": "console-s", "client_id": "c"}),
    ),
    row(
        "POST",
        "/console/sessions/deactivate",
        CONSOLE_ASK,
        on_session("/console/sessions/deactivate", form={"session_id": "{id}"}),
    ),
    row("GET", "/console/keys", CONSOLE_KEYS),
    row("POST", "/console/keys", CONSOLE_KEYS, at("/console/keys", form={"label": "matrix"})),
    row("POST", "/console/keys/revoke", CONSOLE_KEYS, _revoke_key_form),
    row("GET", "/console/export", CONSOLE_EXPORT),
    row("GET", "/console/export/download", CONSOLE_EXPORT),
    # The console's people pages.
    row("GET", "/console/members", CONSOLE_MEMBERS),
    row("POST", "/console/members/role", CONSOLE_MANAGE_MEMBERS, _console_member_role),
    row("POST", "/console/members/remove", CONSOLE_MANAGE_MEMBERS, _console_member_remove),
    row("GET", "/console/invitations", CONSOLE_MEMBERS),
    row(
        "POST",
        "/console/invitations",
        CONSOLE_MANAGE_MEMBERS,
        at("/console/invitations", form={"role": "approver"}),
    ),
    row("GET", "/console/groups", CONSOLE_MEMBERS),
    row("POST", "/console/groups", CONSOLE_MANAGE_GROUPS, _console_group_save),
    row("POST", "/console/groups/delete", CONSOLE_MANAGE_GROUPS, _console_group_delete),
    row("GET", "/console/policy", CONSOLE_READ),
    row("GET", "/console/grants", CONSOLE_READ),
    row("POST", "/console/grants/{grant_id}/revoke", CONSOLE_REVOKE_GRANT, _console_revoke_grant),
    row("GET", "/console/links", CONSOLE_ME),
    row("POST", "/console/links/telegram", CONSOLE_ME, at("/console/links/telegram", form={})),
    row("POST", "/console/links/unlink", CONSOLE_ME, _console_unlink),
    row("GET", "/console/join/{token}", CONSOLE_PUBLIC, _join),
    # Signed in, the join form says to sign out first (409).
    row("POST", "/console/join/{token}", CONSOLE_PUBLIC, _join_form, also_allowed=frozenset({409})),
    # Email: a mail's signed link is the credential, whoever opens it.
    row("GET", "/email/answer/{token}", PUBLIC, _email_answer_page),
    row("POST", "/email/answer/{token}", PUBLIC, _email_answer_form),
    row("GET", "/email/link/{token}", PUBLIC, _email_link_page),
    row("POST", "/email/link/{token}", PUBLIC, _email_link_form),
)


# --- calling -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    location: str
    code: str | None  # a JSON error's code
    refusal: str | None  # the reason of the AnswerRefused the call recorded, if any

    def __str__(self) -> str:
        if self.status in (301, 302, 303):
            return f"{self.status} to {self.location}"
        return f"{self.status} {self.code or ''}".strip() + (
            f" (recorded: {self.refusal})" if self.refusal else ""
        )

    @property
    def signed_out(self) -> bool:
        # The gate's redirect; signing out also lands on /console/login, with ?signed_out.
        login, _, query = self.location.partition("?")
        return self.status == 303 and login == "/console/login" and query[:5] in ("", "next=")

    def matches(self, want: Outcome, row: Row) -> bool:
        if want == SIGNED_OUT:
            return self.signed_out
        if want == ALLOWED:
            return not self.signed_out and (self.status < 400 or self.status in row.also_allowed)
        if self.status != want.status:
            return False
        if (
            want.status == 403
            and row.rule.permission == "request.answer"
            and row.rule.answering
            and self.refusal != want.code
        ):
            return False  # every refused answer is in the log, with its reason
        # The console's pages render a refusal, code and all, as HTML: there, the status.
        return self.code is None if row.rule.surface == "console" else self.code == want.code


def is_console(row: Row) -> bool:
    return row.rule.surface in ("console", "console_public")


async def send(world: World, row: Row, caller: Caller) -> Answer:
    """Make ``row``'s call as ``caller``."""
    call = await row.call(world, caller)
    member = None if caller.role is None else world.members[caller.role]
    headers = dict(call.headers or {})
    form = None if call.form is None else dict(call.form)
    if member is not None and caller.kind == "login":
        if is_console(row):
            cookie, csrf = call.cookie or (member.cookie, member.csrf)
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
            if form is not None:
                form["csrf_token"] = csrf
        else:
            headers["Authorization"] = f"Bearer {member.token}"
    elif member is not None:
        headers["X-API-Key"] = (
            member.agent_key if caller.kind == "agent_key" else member.operator_key
        )
    method = "POST" if row.method == "*" else row.method
    client = world.client_for(caller)
    try:
        response = await client.request(
            method,
            call.path,
            headers=headers,
            json=call.json,
            data=form,
            params=call.params,
            allow_redirects=False,
        )
        code = None
        if response.status >= 400 and response.content_type == "application/json":
            code = (await response.json())["error"]["code"]
        location = response.headers.get("Location", "")
        response.close()  # streams stay open otherwise
    finally:
        client.session.cookie_jar.clear()  # what a call signed in to stays with that call
    refusal = None
    if call.request_id is not None:
        records = await world.store.read_stream(f"request-{call.request_id}")
        refusals = [r.event.reason for r in records if isinstance(r.event, AnswerRefused)]
        refusal = refusals[-1] if refusals else None
    return Answer(response.status, location, code, refusal)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def world(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    store: EventStore,
    config: Config,
    smtp: SmtpSink,
) -> World:
    """A server that requires keys, with one member of each role, each with both kinds of key."""
    config = msgspec.structs.replace(config, email=EmailConfig(smtp_url=smtp.url))
    auth = AuthConfig(jwt_secret=TEST_JWT_SECRET, require_api_key="true")
    client = await aiohttp_client(
        create_app(msgspec.structs.replace(config, auth=auth), store=store)
    )
    accounts = client.app[ACCOUNTS]
    members: dict[Role, Member] = {}
    for role in ROLES:
        username = unique(role)
        if role == "owner":  # the server's first user owns the default workspace
            made = await client.post(
                "/api/auth/register", json={"username": username, "password": PASSWORD}
            )
            assert made.status == 201, await made.text()
            user_id = (await made.json())["user_id"]
        else:
            user_id = (await accounts.register_user(username, PASSWORD, role=role)).user_id
        login = {"username": username, "password": PASSWORD}
        token = (await (await client.post("/api/auth/login", json=login)).json())["token"]
        keys = {}
        for kind in ("agent", "operator"):
            made = await client.post(
                "/api/user/apikeys",
                json={"label": kind, "kind": kind},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status == 201, await made.text()
            keys[kind] = (await made.json())["raw_key"]
        members[role] = Member(role, user_id, username, token, keys["agent"], keys["operator"])
    open_app = create_app(
        msgspec.structs.replace(config, auth=AuthConfig(jwt_secret=TEST_JWT_SECRET)), store=store
    )
    world = World(client, await aiohttp_client(open_app), store, members)
    for member in members.values():
        member.cookie, member.csrf = await world.console_sign_in(member.username)
    await world.as_owner("POST", "/v1/sessions", json=SESSION)
    return world


def routes_of(app: web.Application) -> set[str]:
    """Every route as ``METHOD /template``, without aiohttp's HEAD twin of each GET."""
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        found.add(f"{route.method} {route.resource.canonical}")
    return found


# --- the tests ------------------------------------------------------------------------------


def unlisted(app: web.Application) -> list[str]:
    """The app's routes that no row of ROUTES names."""
    return sorted(routes_of(app) - {row.route for row in ROUTES})


def test_every_route_has_a_row() -> None:
    auth = AuthConfig(jwt_secret=TEST_JWT_SECRET, require_api_key="true")
    # Email on (nothing connects until a mail is sent): its pages are routes too.
    app = create_app(Config(auth=auth, email=EmailConfig(smtp_url="smtp://127.0.0.1:25")))
    assert unlisted(app) == [], "add a row to ROUTES for each of these"
    built = {row.route for row in ROUTES}
    assert sorted(built - routes_of(app)) == [], "a row names a route the app lacks"


def test_names_a_route_without_a_row() -> None:
    app = create_app(Config(auth=AuthConfig(jwt_secret=TEST_JWT_SECRET)))

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/v1/unlisted/{thing}", handler)
    app.router.add_patch("/v1/requests/{request_id}", handler)  # a new method on a listed path
    assert unlisted(app) == ["GET /v1/unlisted/{thing}", "PATCH /v1/requests/{request_id}"]


def test_each_head_route_is_the_twin_of_a_get() -> None:
    app = create_app(Config(auth=AuthConfig(jwt_secret=TEST_JWT_SECRET)))
    heads = {r.resource.canonical for r in app.router.routes() if r.method == "HEAD" and r.resource}
    gets = {r.resource.canonical for r in app.router.routes() if r.method == "GET" and r.resource}
    assert heads <= gets


def test_the_rules_give_each_refusal_somewhere() -> None:
    """The table is not vacuous: every refusal the issue names happens to some caller."""
    seen = {str(expected(row.rule, caller)) for row in ROUTES for caller in CALLERS}
    assert {
        "allowed",
        "401 unauthorized",
        "303 sign-in redirect",
        "403 role_forbids",
        "403 agent_cannot_answer",
        "403 role_cannot_answer",
        "403 not_an_approver",
    } <= seen


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_the_route_allows_and_refuses_as_the_role_table_says(
    route: Row, world: World
) -> None:
    wrong = []
    for caller in CALLERS:
        want = expected(route.rule, caller)
        got = await send(world, route, caller)
        if not got.matches(want, route):
            wrong.append(f"  {caller}: expected {want}, got {got}")
    assert not wrong, "\n".join([f"{route}:", *wrong])
