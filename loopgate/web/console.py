"""The operator's web console: sign-in, the live queue, a request's page and its answer.

Server-rendered with aiohttp-jinja2 (``loopgate/templates/console/``), styled
and scripted by static files shipped in the package
(``loopgate/static/console/``): no CDN, no build step. The queue stays live
through an ``EventSource`` on ``/console/events``, the tenant's event stream
(``web/stream.py``) authenticated by the console's cookie: a new request's
card is fetched from ``/console/requests/{id}/card`` and slotted in by expiry,
a decided one is taken out. Times are sent as ISO 8601 in ``<time>`` elements
and shown in the viewer's own time zone by the script (UTC without it).

Every page here needs a signed-in browser and every form a CSRF token; both
are checked before a handler runs (``web/console_session.py``). Errors on
console pages are HTML pages with the error's status, never the JSON shape.
History, sessions, API keys and export are in ``web/console_admin.py``; members,
invitations, groups, linked accounts and the join page in ``web/console_teams.py``;
the policy in ``web/console_policy.py``; standing grants in ``web/console_grants.py``;
what all pages share in ``web/console_pages.py``.

A request bound to an action shows the call (tool, args, fingerprint) and,
once approved, the call approved; an ``editable`` one gets an args editor
(``static/console/console.js`` diffs it live; the server is the judge), a
``grantable`` one an "approve and allow for a while" form.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
import msgspec
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from loopgate.accounts.console_sessions import ConsoleSessions
from loopgate.config import api_keys_required
from loopgate.domain.action import edited_keys
from loopgate.domain.approval import approves
from loopgate.domain.console import in_tab, queue_tab, tabs_for
from loopgate.domain.teams import DEFAULT_WORKSPACE, route_match
from loopgate.errors import (
    AlreadyDecided,
    Conflict,
    DomainError,
    Forbidden,
    LoopgateError,
    RequestClosed,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from loopgate.views import RequestView, decided_by, outcome_of, votes_of
from loopgate.web import console_admin, console_grants, console_policy, console_teams, stream
from loopgate.web.audit import timeline_entry
from loopgate.web.auth import actor_of
from loopgate.web.console_pages import (
    OPEN,
    actor_names,
    decode_form,
    error_page,
    form_field,
    named,
    render,
    see_other,
)
from loopgate.web.console_session import (
    HOME,
    LOGIN,
    STATIC,
    end_session,
    is_console_path,
    login_csrf,
    remember_login_nonce,
    safe_next,
    start_session,
)
from loopgate.web.keys import (
    ACCOUNTS,
    CONFIG,
    CONSOLE_SESSION,
    CONSOLE_SESSIONS,
    GRANTS,
    HUB,
    REQUEST_ID,
    REQUESTS,
    STORE,
    TEAMS,
)
from loopgate.wire import AnswerBody

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

STATIC_DIR = Path(str(files("loopgate") / "static" / "console"))
QUEUE_LIMIT = 200
LIVE_TYPES = (
    "request.created,request.vote_cast,request.response_received,request.cancelled,request.expired"
)
NOTICES = {
    "answered": "Your answer was recorded; the agent has it.",
    # Filled in from the request as it is when the page shows (see request_page).
    "voted": "Your vote is recorded: {approvals} of {quorum} approvals.",
    "already_decided": "This request was decided before your answer arrived. Here is the outcome.",
    "closed": "This request expired before your answer arrived.",
    "decided": "This request was decided while you were looking at it.",
}
# No inline script or style anywhere, so the policy can forbid both.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",  # an answer button must never be clicked inside another site
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
VOTE_REFUSED = {
    "already_voted": "You already voted on this request; the other approvers' votes decide it.",
    "requester_cannot_approve": "You asked for this request, so someone else must approve it.",
}
"""What the page says when a vote is refused, by the error's code."""
GRANT_CHOICES = ((900, "15 min"), (1800, "30 min"), (3600, "1 h"), (28800, "8 h"))
"""How long the console offers to allow a granted action for: (seconds, label)."""
GRANT_DEFAULT = 1800
_HTTP_MESSAGES = {
    404: "There is no such page in the console.",
    405: "That page cannot be used this way.",
}


def setup(app: web.Application) -> None:
    """Templates, static files, routes and console sessions for ``create_app``."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("loopgate", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )
    env.filters["iso"] = lambda moment: moment.astimezone(UTC).isoformat()
    env.filters["utc"] = lambda moment: moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    env.filters["compact"] = lambda value: json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=True
    )
    env.filters["pretty"] = pretty_json
    env.globals["approves"] = approves
    env.globals["edited_keys"] = edited_keys
    app.router.add_static(STATIC.rstrip("/"), STATIC_DIR)
    app.add_routes(routes)
    app.add_routes(console_admin.routes)
    app.add_routes(console_teams.routes)
    app.add_routes(console_policy.routes)
    app.add_routes(console_grants.routes)
    app.cleanup_ctx.append(_sessions_context)


async def _sessions_context(app: web.Application) -> AsyncIterator[None]:
    # After the runtime context (app.py): sessions share the accounts' clock.
    app[CONSOLE_SESSIONS] = ConsoleSessions(
        app[STORE],
        ttl_seconds=app[CONFIG].console.session_ttl_seconds,
        clock=app[ACCOUNTS].clock,
    )
    yield


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console pages: errors as HTML pages, and headers that keep pages out of frames and caches."""
    if not is_console_path(request.path):
        return await handler(request)
    try:
        response = await handler(request)
    except LoopgateError as exc:
        if exc.status >= 500:
            log.error("console page failed", code=exc.code, error=exc.message)
        response = error_page(request, exc.status, exc.message)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_page(request, exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason))
    except Exception:
        log.exception("unhandled error")
        response = error_page(request, 500, "Something went wrong; the server log says what.")
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
        if not request.path.startswith(STATIC):
            response.headers["Cache-Control"] = "no-store"
    return response


# --- signing in and out ---------------------------------------------------------------


@routes.get(LOGIN)
async def login_page(request: web.Request) -> web.Response:
    if CONSOLE_SESSION in request:
        return see_other(safe_next(request.query.get("next")))
    signed_out = "signed_out" in request.query
    notice = "You are signed out." if signed_out else None
    return _login_form(request, next_page=request.query.get("next"), notice=notice)


def _login_form(
    request: web.Request,
    *,
    next_page: str | None,
    username: str = "",
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    token, fresh_nonce = login_csrf(request)
    context = {
        "login_token": token,
        "next_page": safe_next(next_page),
        "username": username,
        "error": error,
        "notice": notice,
    }
    response = render(request, "login.html", context, status=status)
    if fresh_nonce is not None:
        remember_login_nonce(request, response, fresh_nonce)
    return response


@routes.post(LOGIN)
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = form_field(form, "username") or "", form_field(form, "password") or ""
    next_page = form_field(form, "next")
    if not username.strip() or not password:
        return _login_form(
            request,
            next_page=next_page,
            username=username,
            error="Enter your username and your password.",
            status=400,
        )
    try:
        _token, user = await request.app[ACCOUNTS].login(
            username.strip(),
            password,
            address=request.remote,
            correlation_id=request.get(REQUEST_ID),
        )
    except TooManyRequests as exc:
        minutes = max(1, round(exc.retry_after / 60))
        response = _login_form(
            request,
            next_page=next_page,
            username=username,
            error=f"Too many failed sign-ins for this user. Try again in about {minutes} "
            f"minute{'s' if minutes != 1 else ''}.",
            status=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthorized:
        response = _login_form(
            request,
            next_page=next_page,
            username=username,
            error="Wrong username or password.",
            status=401,
        )
        # RFC 9110 wants a challenge on every 401; "Form" is one no browser prompts for.
        response.headers["WWW-Authenticate"] = 'Form realm="loopgate console"'
        return response
    session = await request.app[CONSOLE_SESSIONS].sign_in(user, request.get(REQUEST_ID))
    log.info("console sign-in", user_id=user.user_id, session_id=session.session_id)
    response = see_other(safe_next(next_page))
    start_session(request, response, session)
    return response


@routes.post("/console/logout")
async def logout(request: web.Request) -> web.Response:
    session = request[CONSOLE_SESSION]
    await request.app[CONSOLE_SESSIONS].sign_out(session.session_id, actor_of(request))
    response = see_other(f"{LOGIN}?signed_out")
    end_session(response)
    return response


# --- the queue and a request's page -----------------------------------------------------


@routes.get(HOME)
async def queue(request: web.Request) -> web.Response:
    requests, actor = request.app[REQUESTS], actor_of(request)
    # The live stream resumes after the head read before the list, so a request
    # created in between is sent to the page rather than lost (the script skips
    # a card it already shows).
    head = await requests.store.head()
    tab = queue_tab(request.query.get("show"), actor.role)
    pending = await requests.list_requests(
        actor, statuses=OPEN, soonest_expiry_first=True, limit=QUEUE_LIMIT
    )
    events = "/console/events?" + urlencode({"types": LIVE_TYPES, "after": head})
    context = {
        "requests": [
            v for v in pending if in_tab(tab, await requests.approvers_of(v), actor.principals)
        ],
        "tab": tab,
        "tabs": tabs_for(actor.role),
        # The live queue asks for each new card in the same tab, which leaves out the others.
        "card_query": "?show=all" if tab == "all" else "",
        "events_url": events,
        "limit": QUEUE_LIMIT,
        "nav": "queue",
        # Anonymous agents' requests go to the default workspace: a hint for members of others.
        "anonymous_agents": not api_keys_required(request.app[CONFIG])
        and actor.tenant != DEFAULT_WORKSPACE,
    }
    return render(request, "queue.html", context)


@routes.get("/console/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The tenant's event stream (``web/stream.py``), for as long as the browser's session holds."""
    ending = asyncio.create_task(_hang_up_when_the_session_ends(request))
    try:
        return await stream.tenant_events(request)
    finally:
        ending.cancel()


async def _hang_up_when_the_session_ends(request: web.Request) -> None:
    # The gate checks the session once, when the stream opens; a sign-out
    # elsewhere, or the session's expiry, must end a stream that is already open.
    session, sessions = request[CONSOLE_SESSION], request.app[CONSOLE_SESSIONS]
    with request.app[HUB].watch(f"console-{session.session_id}") as changed:
        if await sessions.usable(session.session_id) is not None:  # not ended meanwhile
            lifetime = (session.expires_at - sessions.clock()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(lifetime, 0))
    if request.transport is not None:
        request.transport.close()  # the stream sees its client gone and ends


async def _requested(request: web.Request) -> RequestView:
    """The request the URL names, if it is the signed-in user's tenant's; NotFound otherwise."""
    return await request.app[REQUESTS].get_request(
        request.match_info["request_id"], actor_of(request)
    )


@routes.get("/console/requests/{request_id}/card")
async def card(request: web.Request) -> web.Response:
    view, actor = await _requested(request), actor_of(request)
    tab = queue_tab(request.query.get("show"), actor.role)
    # Decided before the page asked, or not for this tab: nothing to add to the queue.
    approvers = await request.app[REQUESTS].approvers_of(view)
    if view.final or not in_tab(tab, approvers, actor.principals):
        return web.Response(status=204)
    return render(request, "_card.html", {"item": view})


@routes.get("/console/requests/{request_id}")
async def request_page(request: web.Request) -> web.Response:
    head = await request.app[STORE].head()  # before the read: see _request_page
    view = await _requested(request)
    notice = NOTICES.get(request.query.get("notice", ""))
    if notice is not None:
        notice = notice.format(approvals=view.approvals, quorum=view.quorum)
    return await _request_page(request, view, head, notice=notice)


async def _request_page(
    request: web.Request,
    view: RequestView,
    head: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    text: str = "",
    args_text: str | None = None,
    status: int = 200,
) -> web.Response:
    requests, actor = request.app[REQUESTS], actor_of(request)
    approvers = await requests.approvers_of(view)
    usernames = {m.user_id: m.username for m in await request.app[TEAMS].members(actor.tenant)}
    names = usernames | await actor_names(request)
    records = await requests.store.read_stream(f"request-{view.request_id}")
    timeline = [
        msgspec.structs.replace(entry, summary=named(entry.summary, names))
        for entry in map(timeline_entry, records)
    ]
    decider = decided_by(view)
    votes = votes_of(view)
    # Only a grantable request's approval issues grants: no read for the others.
    grants = (
        await request.app[GRANTS].list(actor, request_id=view.request_id) if view.grantable else []
    )
    granted_by = await request.app[GRANTS].get(view.grant, actor) if view.grant else None
    context = {
        "view": view,
        "outcome": outcome_of(view),
        "decided_by": decider,
        "decider": named(decider.id or "", names) if decider else None,
        "votes": [(usernames.get(v.member, v.member), v) for v in votes],
        "my_vote": next((v for v in votes if v.member == actor.answers_as), None),
        "policy_line": policy_line(view),
        "fired": {escalation.step: escalation for escalation in view.escalations},
        "timeline": timeline,
        "text_allowed": view.allow_text or not view.options,
        "notice": notice,
        "error": error,
        "text": text,
        # The action: the approving option the editor and the grant form answer with.
        "approve_label": next((o.label for o in view.options if approves(o)), None),
        "args_text": args_text
        if args_text is not None
        else pretty_json(view.action.args if view.action else {}),
        "grant_choices": GRANT_CHOICES,
        "grant_default": GRANT_DEFAULT,
        "issued_grants": grants,
        "grant_issuer": named(granted_by.issued_by, names) if granted_by else None,
        # Who may answer; a member the request is not routed to gets no buttons to press.
        "approvers": approvers,
        "routed_to_me": route_match(approvers, actor.principals) is not None,
        # An open page follows the decisions committed after ``head``, read before
        # ``view``: one that lands in between is replayed, not missed.
        "watch_url": None
        if view.final
        else "/console/events?" + urlencode({"types": LIVE_TYPES, "after": head}),
        "nav": "queue",
    }
    return render(request, "request.html", context, status=status)


@routes.post("/console/requests/{request_id}/answer")
async def answer(request: web.Request) -> web.Response:
    requests, actor = request.app[REQUESTS], actor_of(request)
    head = await requests.store.head()
    view = await _requested(request)
    form = await request.post()
    option, text = form_field(form, "option"), form_field(form, "text")
    args_text = form_field(form, "args")
    fields: dict[str, Any] = {"option": option} if option is not None else {"text": text}
    if args_text is not None:
        args = _parsed_args(args_text)
        if isinstance(args, str):  # what is wrong with it, shown above the editor
            return await _request_page(
                request, view, head, error=args, args_text=args_text, status=400
            )
        fields["args"] = args
    seconds = form_field(form, "grant_seconds")
    if seconds is not None:
        scope = form_field(form, "grant_scope") or "exact"
        fields["grant"] = {
            "seconds": int(seconds) if seconds.isdigit() else seconds,
            "scope": scope,
        }
    try:
        body = decode_form(fields, AnswerBody)
        answered = await requests.answer(
            view.request_id,
            option=body.option,
            text=body.text,
            channel="console",
            actor=actor,
            args=body.args,
            grant=None if body.grant is None else body.grant.to_ask(),
        )
        # A vote short of the quorum leaves the request open: say how far it is.
        notice = "answered" if answered.final else "voted"
    except AlreadyDecided:
        notice = "already_decided"
    except RequestClosed:
        notice = "closed"
    except (ValidationFailed, DomainError) as exc:
        return await _request_page(
            request,
            view,
            head,
            error=exc.message,
            text=text or "",
            args_text=args_text,
            status=exc.status,
        )
    except (Conflict, Forbidden) as exc:
        if exc.code not in VOTE_REFUSED:
            raise
        return await _request_page(
            request, view, head, error=VOTE_REFUSED[exc.code], text=text or "", status=exc.status
        )
    return see_other(f"/console/requests/{view.request_id}?notice={notice}")


def _parsed_args(args_text: str) -> dict[str, Any] | str:
    """The editor's args as a JSON object, or what is wrong with them, for the page."""
    try:
        args = msgspec.json.decode(args_text.encode())
    except msgspec.DecodeError as exc:
        return f"The edited args are not valid JSON: {exc}. Nothing was recorded."
    if not isinstance(args, dict):
        return "The edited args must be a JSON object ({…}). Nothing was recorded."
    return args


def pretty_json(value: Any) -> str:
    """JSON for people to read and edit: indented, keys sorted, non-ASCII as is."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def policy_line(view: RequestView) -> str | None:
    """Which rule of the workspace's policy shaped the request; None without a policy."""
    if view.policy_version is None:
        return None
    if view.rule is None:
        return f"no rule matched (policy v{view.policy_version})"
    return f"rule {view.rule} of policy v{view.policy_version}"
