"""The email channel's pages: answering from a mail's link, and confirming an address.

Public pages: the signed token in the path (``channels/email/links.py``) is
the credential, so no login or key is read (``web/auth.py``), and they answer
in HTML, errors included (404 for a link that is none of ours, 410 for an
expired one).

A GET never changes anything: mail scanners and link previews open every
link in a mail by themselves. ``GET /email/answer/{token}`` shows the request
and a form with one button; only its POST, carrying the page's CSRF token
(the HMAC of the link's token) and, when the browser names one, this server's
``Origin``, answers, through ``channel_actor`` and ``Requests.answer`` as every
channel does. A link is single use: once its member's vote or answer is in
the request, each of its links says "already used".

Linking an address: ``POST /v1/me/links/email`` (``web/teams.py`` hands it here)
mails the address a link ``/email/link/{token}`` whose token binds the link
code to that address, so the address linked is the one the member asked for
and never one a form sent. Its page's POST links it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from email.utils import make_msgid
from typing import Annotated
from urllib.parse import urlsplit

import aiohttp_jinja2
import msgspec
import structlog
from aiohttp import web

from loopgate import __version__
from loopgate.channels.answering import channel_actor
from loopgate.channels.email.adapter import classify, sender_domain
from loopgate.channels.email.links import AddressLink, AnswerLink, LinkSigner, epoch
from loopgate.channels.email.render import Envelope, address_link_mail, decided_note, when
from loopgate.channels.email.runtime import EmailRuntime
from loopgate.channels.model import RetryLater
from loopgate.commands.base import Actor
from loopgate.config import Config, console_public_url
from loopgate.errors import (
    AlreadyDecided,
    BadRequest,
    Conflict,
    Forbidden,
    LoopgateError,
    NotFound,
    RequestClosed,
)
from loopgate.views import RequestView, votes_of
from loopgate.web.channels import register_channel
from loopgate.web.console_pages import form_field
from loopgate.web.console_session import CSRF_FIELD
from loopgate.web.describe import Media, describe
from loopgate.web.keys import REQUESTS, TEAMS
from loopgate.web.params import read_body
from loopgate.web.responses import json_response
from loopgate.wire import Body

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

EMAIL = web.AppKey("email", EmailRuntime)
ANSWER = "/email/answer/{token}"
LINK = "/email/link/{token}"
PAGE = Media(("text/html",), "A page for people")
PAGE_HEADERS = {
    # No script at all; a form that posts only here; never inside another site's frame.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The token is in the URL: no Referer may carry it to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_ADDRESS_CHARS = 254  # RFC 5321's limit on a path


class EmailUnavailable(LoopgateError):
    """The mail server did not take a mail (down, or slow); trying again later may work."""

    status, code = 503, "email_unavailable"


# --- shapes -------------------------------------------------------------------------------


class EmailLinkBody(Body, frozen=True, kw_only=True):
    """``POST /v1/me/links/email``: the address to send approval requests to."""

    address: Annotated[str, msgspec.Meta(min_length=3, max_length=MAX_ADDRESS_CHARS)]


class EmailLinkSent(msgspec.Struct, frozen=True, kw_only=True):
    """The mail with the confirm link is on its way; the link works once, until ``expires_at``."""

    sent_to: str
    expires_at: datetime


def checked_address(raw: str) -> str:
    """``raw`` as one plain address (``local@domain``); ``BadRequest`` saying what is wrong."""
    address = raw.strip()
    local, at, domain = address.rpartition("@")
    plain = all(c.isprintable() and not c.isspace() and c not in '<>()[],;:"\\' for c in address)
    if not at or not local or "." not in domain.strip(".") or "@" in local or not plain:
        raise BadRequest(
            f"address: {raw!r} is not an email address (user@example.com)",
            code="invalid_address",
        )
    return f"{local}@{domain.lower()}"


# --- pages --------------------------------------------------------------------------------


def page(
    request: web.Request,
    title: str,
    *lines: str,
    status: int = 200,
    view: RequestView | None = None,
    form: Mapping[str, str] | None = None,
) -> web.Response:
    context = {
        "title": title,
        "lines": lines,
        "status": status,
        "view": view,
        "form": form,
        "version": __version__,
    }
    response = aiohttp_jinja2.render_template("email/page.html", request, context, status=status)
    response.headers.update(PAGE_HEADERS)
    return response


_TITLES = {403: "Refused", 404: "Not a valid link", 409: "Already done", 410: "Expired"}

Handler = Callable[[web.Request], Awaitable[web.Response]]


def html_errors(handler: Handler) -> Handler:
    """The handler's refusals as pages with their status, never the API's JSON."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except LoopgateError as exc:
            if exc.status >= 500:
                raise
            return page(
                request, _TITLES.get(exc.status, "Cannot do that"), exc.message, status=exc.status
            )

    return wrapped


def _runtime(request: web.Request) -> tuple[EmailRuntime, LinkSigner]:
    runtime = request.app[EMAIL]
    if runtime.signer is None:  # only between the app's start-up steps
        raise EmailUnavailable("email is starting; try again in a moment")
    return runtime, runtime.signer


def _now(request: web.Request) -> datetime:
    return request.app[TEAMS].clock()


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        raise Forbidden("this form was sent from another site", code="cross_origin")


async def _check_form(request: web.Request, signer: LinkSigner, token: str) -> None:
    """Refuse a POST without the CSRF token of this very link's page (nothing is recorded)."""
    _check_origin(request)
    if not signer.csrf_matches(token, form_field(await request.post(), CSRF_FIELD)):
        raise Forbidden(
            "this form did not come from the link's page; open the link from the mail again",
            code="csrf_failed",
        )


# --- answering ------------------------------------------------------------------------------


def _voter(link: AnswerLink) -> str:
    # As votes are recorded: a member by user id, an address no one linked as itself.
    return link.user_id or f"email:{link.address}"


def _used(view: RequestView, link: AnswerLink) -> str | None:
    """What the link's member answered already, for the page; None if they have not.

    An answer by mail used the links up. One given on another channel did
    not: once the request is decided, the page says so ("already decided")
    rather than speak of a link nobody opened.
    """
    vote = next((v for v in votes_of(view) if v.member == _voter(link)), None)
    if vote is None:
        return None
    said, at = vote.option or vote.text or "", when(vote.at)
    if vote.channel == "email":
        return f"This link was already used: you answered “{said}” on email at {at}."
    if view.final:
        return None
    return f"You already answered “{said}” on {vote.channel} at {at}: nothing more to do here."


async def _outcome(request: web.Request, view: RequestView) -> str:
    """How the request ended, naming members: ``Decided: approved by alice at … UTC.``"""
    names = {m.user_id: m.username for m in await request.app[TEAMS].members(view.tenant)}
    return decided_note(view, names)


async def _decided(request: web.Request, view: RequestView) -> str:
    """``Already decided: approved by alice at … UTC.`` (or how else it ended)."""
    note = await _outcome(request, view)
    return f"Already d{note[1:]}" if note.startswith("Decided:") else note


async def _link_and_request(
    request: web.Request,
) -> tuple[LinkSigner, str, AnswerLink, RequestView]:
    _, signer = _runtime(request)
    token = request.match_info["token"]
    link = signer.read_answer(token, _now(request))
    try:
        view = await request.app[REQUESTS].find_request(link.request_id)
    except NotFound:
        raise NotFound("this link is not valid", code="invalid_link") from None
    return signer, token, link, view


@routes.get(ANSWER)
@describe(
    "An email answer link's confirm page: the request, and one button (a GET never answers)",
    replies={200: PAGE},
    errors=(404, 410),
)
@html_errors
async def answer_page(request: web.Request) -> web.Response:
    signer, token, link, view = await _link_and_request(request)
    used = _used(view, link)
    if used is not None:
        return page(request, "Already answered", used, view=view)
    if view.final:
        return page(request, "Already decided", await _decided(request, view), view=view)
    who = await _who(request, link)
    form = {"action": request.path, "csrf": signer.csrf(token), "button": f"Confirm: {link.option}"}
    lines = [f"You are answering as {who}: {link.option}."]
    if view.quorum > 1:
        lines.append(f"{view.approvals} of {view.quorum} approvals so far.")
    return page(request, "Confirm your answer", *lines, view=view, form=form)


async def _who(request: web.Request, link: AnswerLink) -> str:
    if link.user_id is None:
        return link.address
    member = await request.app[TEAMS].membership(link.user_id)
    return member.username if member is not None else link.address


async def _email_actor(request: web.Request, link: AnswerLink, view: RequestView) -> Actor:
    """Who answers: the member the address is linked to now, who must be the one mailed."""
    actor = await channel_actor(request.app[TEAMS], "email", link.address, view.tenant)
    if link.user_id is not None and actor.user_id not in (None, link.user_id):
        raise Forbidden(
            f"{link.address} is linked to another member now; this mail was not for them",
            code="not_an_approver",
        )
    return actor


@routes.post(ANSWER)
@describe(
    "Answer from an email link (the confirm page's form, with its CSRF token)",
    replies={200: PAGE},
    errors=(403, 404, 409, 410),
)
@html_errors
async def answer(request: web.Request) -> web.Response:
    signer, token, link, view = await _link_and_request(request)
    await _check_form(request, signer, token)
    used = _used(view, link)
    if used is not None:
        return page(request, "Already answered", used, status=409, view=view)
    if view.final:
        return page(
            request, "Already decided", await _decided(request, view), status=409, view=view
        )
    actor = await _email_actor(request, link, view)
    requests = request.app[REQUESTS]
    try:
        answered = await requests.answer(
            view.request_id, option=link.option, channel="email", actor=actor
        )
    except AlreadyDecided:
        decided = await requests.find_request(view.request_id)
        return page(request, "Already decided", await _decided(request, decided), status=409)
    except RequestClosed as exc:
        return page(request, "Expired", exc.message, status=410)
    except Conflict as exc:
        if exc.code != "already_voted":
            raise
        fresh = await requests.find_request(view.request_id)
        return page(request, "Already answered", _used(fresh, link) or exc.message, status=409)
    log.info("email answer recorded", request_id=view.request_id, option=link.option)
    if answered.final:
        line = f"Recorded: you answered “{link.option}”. {await _outcome(request, answered)}"
        return page(request, "Recorded", line, view=answered)
    line = (
        f"Recorded your vote “{link.option}”: {answered.approvals} of {answered.quorum} approvals."
    )
    return page(request, "Recorded", line, view=answered)


# --- linking an address ---------------------------------------------------------------------


async def send_address_link(request: web.Request, actor: Actor) -> web.Response:
    """``POST /v1/me/links/email``: mail the address a link that links it to the caller."""
    runtime = request.app.get(EMAIL)
    if runtime is None:
        raise NotFound("email is off on this server (no email.smtp_url)", code="unknown_channel")
    _, signer = _runtime(request)
    body = await read_body(request, EmailLinkBody)
    address = checked_address(body.address)
    teams = request.app[TEAMS]
    code, expires_at = await teams.issue_link_code(actor, "email")
    assert actor.user_id is not None  # issue_link_code refuses anyone but a member in person
    member = await teams.membership(actor.user_id)
    link = AddressLink(code=code, address=address, expires=epoch(expires_at) or 0)
    url = runtime.public_url + LINK.format(token=signer.address_token(link))
    envelope = Envelope(
        runtime.config.from_address,
        address,
        make_msgid(domain=sender_domain(runtime.config.from_address)),
    )
    username = member.username if member is not None else "A Loopgate member"
    mail = address_link_mail(envelope, url, username, expires_at, at=_now(request))
    try:
        await runtime.mailer.send(mail)
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        log.warning("email link not sent", error=str(failure))
        if isinstance(failure, RetryLater):
            raise EmailUnavailable(f"the mail server did not take the mail: {failure}") from None
        raise BadRequest(
            f"the mail server refused {address}: {failure}", code="address_refused"
        ) from None
    return json_response(EmailLinkSent(sent_to=address, expires_at=expires_at), status=202)


def _address_link(request: web.Request) -> tuple[LinkSigner, str, AddressLink]:
    _, signer = _runtime(request)
    token = request.match_info["token"]
    return signer, token, signer.read_address(token, _now(request))


@routes.get(LINK)
@describe(
    "An address-linking link's confirm page (a GET never links)",
    replies={200: PAGE},
    errors=(404, 409, 410),
)
@html_errors
async def link_page(request: web.Request) -> web.Response:
    signer, token, link = _address_link(request)
    if await request.app[TEAMS].identity("email", link.address) is not None:
        raise Conflict(f"{link.address} is linked already", code="identity_taken")
    form = {"action": request.path, "csrf": signer.csrf(token), "button": "Link this address"}
    return page(
        request,
        "Link this address",
        f"Approval requests will be mailed to {link.address}, for the member who asked.",
        form=form,
    )


@routes.post(LINK)
@describe(
    "Link the address an address-linking link names (its page's form, with its CSRF token)",
    replies={200: PAGE},
    errors=(403, 404, 409, 410),
)
@html_errors
async def link_address(request: web.Request) -> web.Response:
    signer, token, link = _address_link(request)
    await _check_form(request, signer, token)
    member = await request.app[TEAMS].link_identity(
        link.code, "email", link.address, display=link.address
    )
    log.info("email address linked", user_id=member.user_id)
    return page(
        request,
        "Linked",
        f"Linked: approval requests for {member.username} will be mailed to {link.address}.",
    )


def setup(app: web.Application, config: Config) -> None:
    """The email runtime for ``config`` and its pages; ``ConfigError`` for a bad ``[email]``."""
    runtime = EmailRuntime(config.email, console_url=console_public_url(config))
    app[EMAIL] = runtime
    register_channel(app, "email", runtime)
    app.add_routes(routes)
