"""The console's other pages: history, sessions, API keys and the audit export.

The same rules as everywhere: a signed-in user sees and changes only their
own tenant's sessions, requests and keys, through the same service calls
and body checks as the JSON API. Dates typed into a filter are days in the
viewer's time zone (which the page's script puts in a hidden ``tz`` field;
UTC without it), so "today" means the viewer's today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from loopgate.audit.export import ExportFilter, session_streams
from loopgate.commands.base import require
from loopgate.errors import StateConflict, ValidationFailed
from loopgate.web.accounts import CreateKeyBody
from loopgate.web.audit import export_format, send_export
from loopgate.web.auth import actor_of
from loopgate.web.console_pages import (
    OPEN,
    actor_names,
    decode_form,
    form_field,
    render,
    see_other,
)
from loopgate.web.keys import ACCOUNTS, REQUESTS, SESSIONS
from loopgate.web.params import decode_cursor, encode_cursor
from loopgate.wire import CreateSessionBody, SessionRef

routes = web.RouteTableDef()

HISTORY_PAGE = 25
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "": (),
    "open": OPEN,
    "answered": ("answered",),
    "expired": ("expired",),
    "cancelled": ("cancelled",),
}
NOTICES = {
    "registered": "Session registered.",
    "unchanged": "That session was already registered with these values.",
    "deactivated": "Session deactivated: it takes no new requests; open ones stay open.",
    "revoked": "API key revoked: it stops working with the next call.",
}


def _zone(name: str | None) -> tzinfo:
    """The viewer's time zone, as the page's script reported it; UTC if unknown."""
    try:
        return ZoneInfo(name.strip()) if name and name.strip() else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _day(request: web.Request, field: str, zone: tzinfo, *, next_day: bool) -> datetime | None:
    """The start of the day ``field`` names (of the day after, with ``next_day``), in ``zone``."""
    raw = request.query.get(field, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"{field}: expected a date like 2026-05-01, got {raw!r}") from None
    return datetime.combine(day + timedelta(days=1 if next_day else 0), time(), tzinfo=zone)


def _filters(request: web.Request) -> dict[str, str]:
    """The filter fields of a list or export form, as the page should keep showing them."""
    return {name: request.query.get(name, "").strip() for name in ("session_id", "from", "to")}


# --- history ------------------------------------------------------------------------------


@routes.get("/console/history")
async def history(request: web.Request) -> web.Response:
    requests, actor = request.app[REQUESTS], actor_of(request)
    status = request.query.get("status", "")
    if status not in STATUS_FILTERS:
        raise ValidationFailed(f"status: expected one of {sorted(STATUS_FILTERS)}, got {status!r}")
    zone, filters = _zone(request.query.get("tz")), _filters(request)
    cursor = request.query.get("cursor", "").strip()
    # One more than a page: whether it came says if there is a next page.
    views = await requests.list_requests(
        actor,
        statuses=STATUS_FILTERS[status],
        session_id=filters["session_id"] or None,
        created_since=_day(request, "from", zone, next_day=False),
        created_until=_day(request, "to", zone, next_day=True),
        after=decode_cursor(cursor) if cursor else None,
        limit=HISTORY_PAGE + 1,
    )
    page, more = views[:HISTORY_PAGE], len(views) > HISTORY_PAGE
    kept = {**filters, "status": status, "tz": request.query.get("tz", "")}
    context = {
        "requests": page,
        "filters": kept,
        "zone": str(zone),
        "names": await actor_names(request),
        "sessions": await request.app[SESSIONS].list_sessions(actor),
        "next_url": "?" + urlencode({**kept, "cursor": encode_cursor(page[-1])}) if more else None,
        "first_url": "?" + urlencode(kept) if cursor else None,
        "nav": "history",
    }
    return render(request, "history.html", context)


# --- sessions -----------------------------------------------------------------------------


@routes.get("/console/sessions")
async def sessions(request: web.Request) -> web.Response:
    return await _sessions_page(request, notice=NOTICES.get(request.query.get("notice", "")))


async def _sessions_page(
    request: web.Request,
    *,
    notice: str | None = None,
    error: str | None = None,
    entered: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    listed = await request.app[SESSIONS].list_sessions(actor_of(request))
    context = {
        "sessions": listed,
        "notice": notice,
        "error": error,
        "entered": entered or {"session_id": "", "client_id": "", "telegram_id": ""},
        "nav": "sessions",
    }
    return render(request, "sessions.html", context, status=status)


@routes.post("/console/sessions")
async def register_session(request: web.Request) -> web.Response:
    form = await request.post()
    entered = {
        name: (form_field(form, name) or "").strip()
        for name in ("session_id", "client_id", "telegram_id")
    }
    try:
        telegram_id = _telegram_id(entered["telegram_id"])
        fields = {**entered, "telegram_id": telegram_id}
        body = decode_form(fields, CreateSessionBody)
        _, changed = await request.app[SESSIONS].register_session(
            body.session_id, body.client_id, body.telegram_id, actor_of(request)
        )
    except (ValidationFailed, StateConflict) as exc:
        return await _sessions_page(request, error=exc.message, entered=entered, status=exc.status)
    return see_other(f"/console/sessions?notice={'registered' if changed else 'unchanged'}")


def _telegram_id(raw: str) -> int | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed(
            f"telegram_id: expected your Telegram user id, a number (the bot's /start "
            f"says it), got {raw!r}"
        ) from None


@routes.post("/console/sessions/deactivate")
async def deactivate_session(request: web.Request) -> web.Response:
    form = await request.post()
    body = decode_form({"session_id": form_field(form, "session_id")}, SessionRef)
    try:
        await request.app[SESSIONS].deactivate_session(body.session_id, actor_of(request))
    except StateConflict as exc:  # already inactive, e.g. from another tab
        return await _sessions_page(request, error=exc.message, status=exc.status)
    return see_other("/console/sessions?notice=deactivated")


# --- API keys -----------------------------------------------------------------------------


@routes.get("/console/keys")
async def keys(request: web.Request) -> web.Response:
    return await _keys_page(request, notice=NOTICES.get(request.query.get("notice", "")))


async def _keys_page(
    request: web.Request,
    *,
    notice: str | None = None,
    error: str | None = None,
    created: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    accounts = request.app[ACCOUNTS]
    context = {
        "keys": await accounts.list_api_keys(actor_of(request)),
        "now": accounts.clock(),
        "notice": notice,
        "error": error,
        "created": created,
        "nav": "keys",
    }
    return render(request, "keys.html", context, status=status)


@routes.post("/console/keys")
async def create_key(request: web.Request) -> web.Response:
    form = await request.post()
    label = (form_field(form, "label") or "").strip()
    expires = (form_field(form, "expires") or "").strip()
    try:
        expires_at = None
        if expires:
            # Valid through the day the viewer picked, in the viewer's time zone.
            zone = _zone(form_field(form, "tz"))
            day = date.fromisoformat(expires) + timedelta(days=1)
            expires_at = datetime.combine(day, time(), tzinfo=zone).isoformat()
        kind = form_field(form, "kind") or "agent"
        fields = {"label": label or None, "expires_at": expires_at, "kind": kind}
        body = decode_form(fields, CreateKeyBody)
        raw_key, key = await request.app[ACCOUNTS].create_api_key(
            actor_of(request), label=body.label, expires_at=body.expires_at, kind=body.kind
        )
    except ValueError:  # a date the browser's date field would not have sent
        message = f"expires: expected a date like 2026-05-01, got {expires!r}"
        return await _keys_page(request, error=message, status=400)
    except ValidationFailed as exc:
        return await _keys_page(request, error=exc.message, status=exc.status)
    return await _keys_page(request, created={"raw_key": raw_key, "key": key})


@routes.post("/console/keys/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    key_id = form_field(await request.post(), "key_id") or ""
    await request.app[ACCOUNTS].revoke_api_key(actor_of(request), key_id)
    return see_other("/console/keys?notice=revoked")


# --- export -------------------------------------------------------------------------------


@routes.get("/console/export")
async def export_page(request: web.Request) -> web.Response:
    require(actor_of(request), "audit.export")  # as GET /v1/audit/export: 403 role_forbids
    listed = await request.app[SESSIONS].list_sessions(actor_of(request))
    return render(request, "export.html", {"sessions": listed, "nav": "export"})


@routes.get("/console/export/download")
async def export_download(request: web.Request) -> web.StreamResponse:
    kind = export_format(request)
    requests, actor = request.app[REQUESTS], actor_of(request)
    require(actor, "audit.export")
    zone, filters = _zone(request.query.get("tz")), _filters(request)
    session_id = filters["session_id"]
    only = ExportFilter(
        tenant=actor.tenant,
        streams=await session_streams(requests.store, session_id, actor.tenant)
        if session_id
        else None,
        since=_day(request, "from", zone, next_day=False),
        until=_day(request, "to", zone, next_day=True),
    )
    return await send_export(request, only, kind)
