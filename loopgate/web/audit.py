"""Audit routes: the tenant's log as a file, and one request's decision record.

``GET /v1/audit/export`` streams the caller's tenant's events in position
order, a batch at a time, as NDJSON or CSV (``loopgate/audit/export.py``): memory
stays flat however long the log. ``GET /v1/requests/{id}/history`` tells one
request's story: who asked what, what the operator was shown and where, who
answered (or tried to), and how it ended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from loopgate.audit.export import ExportFilter, csv_rows, export_batches, ndjson, session_streams
from loopgate.commands.base import Actor, require
from loopgate.errors import Forbidden, ValidationFailed
from loopgate.events import (
    EVENT_TYPES,
    Action,
    AnswerRefused,
    DeliveryFailed,
    Event,
    ExpiryWarned,
    GrantIssued,
    GrantRevoked,
    PolicySet,
    RecordedEvent,
    ReminderSent,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestEscalated,
    RequestExpired,
    ResponseReceived,
    VoteCast,
    WebhookDelivered,
    WebhookFailed,
    event_data,
)
from loopgate.web.auth import actor_of
from loopgate.web.describe import Media, Param, describe
from loopgate.web.keys import REQUESTS, STORE
from loopgate.web.responses import json_response

routes = web.RouteTableDef()

FORMATS = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
MOMENT = {"type": "string", "format": "date-time"}
EXPORT_PARAMS = (
    Param("format", "ndjson (the default) or csv.", {"enum": sorted(FORMATS)}),
    Param("since", "Events recorded at or after this moment (ISO 8601).", MOMENT),
    Param("until", "Events recorded before this moment (ISO 8601).", MOMENT),
    Param("types", "Comma-separated event types to keep."),
    Param("session_id", "Only this session's events and its requests'."),
    Param("request_id", "Only this request's events."),
)


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a request's story, in words (``summary``) and in detail."""

    position: int
    at: str
    type: str
    actor: str
    channel: str | None
    summary: str
    details: dict[str, Any]


class History(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    status: str
    timeline: list[TimelineEntry]


def _moment(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name}: expected an ISO 8601 date or time, e.g. 2026-11-25T12:00:00Z, got {raw!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _types(request: web.Request) -> frozenset[str] | None:
    types = frozenset(t.strip() for t in request.query.get("types", "").split(",") if t.strip())
    unknown = sorted(types - EVENT_TYPES.keys())
    if unknown:
        raise ValidationFailed(f"types: unknown {unknown}; known types: {sorted(EVENT_TYPES)}")
    return types or None


async def _streams(request: web.Request, actor: Actor) -> frozenset[str] | None:
    """The streams ``session_id`` and ``request_id`` narrow the export to (None: all)."""
    streams: frozenset[str] | None = None
    session_id = request.query.get("session_id", "").strip()
    if session_id:
        streams = await session_streams(request.app[STORE], session_id, actor.tenant)
    request_id = request.query.get("request_id", "").strip()
    if request_id:
        only = frozenset({f"request-{request_id}"})
        streams = only if streams is None else streams & only
    return streams


def export_format(request: web.Request) -> str:
    """``?format=``: ``ndjson`` (the default) or ``csv``."""
    kind = request.query.get("format", "ndjson")
    if kind not in FORMATS:
        raise ValidationFailed(f"format: expected one of {sorted(FORMATS)}, got {kind!r}")
    return kind


@routes.get("/v1/audit/export")
@describe(
    "The tenant's log as NDJSON or CSV, streamed (not for agent keys)",
    params=EXPORT_PARAMS,
    replies={200: Media(tuple(FORMATS.values()), "One event a line (NDJSON) or a row (CSV).")},
    errors=(403,),
)
async def export(request: web.Request) -> web.StreamResponse:
    """The tenant's log; a person's to read (login token, console, operator key), not an agent's."""
    kind = export_format(request)
    actor = actor_of(request)
    if actor.answers_as is None:
        raise Forbidden(
            "an agent key cannot export the audit log; use a login token, an operator key "
            "or the console",
            code="agent_cannot_export",
        )
    if actor.user_id is not None:  # a member: by role; the open mode's anonymous reads it all
        require(actor, "audit.export")
    only = ExportFilter(
        tenant=actor.tenant,
        streams=await _streams(request, actor),
        types=_types(request),
        since=_moment(request, "since"),
        until=_moment(request, "until"),
    )
    return await send_export(request, only, kind)


async def send_export(request: web.Request, only: ExportFilter, kind: str) -> web.StreamResponse:
    """Stream the events ``only`` selects as a file download, a batch at a time."""
    requests = request.app[REQUESTS]
    stamp = requests.clock().strftime("%Y%m%dT%H%M%SZ")
    response = web.StreamResponse(
        headers={
            "Content-Type": FORMATS[kind],
            "Content-Disposition": f'attachment; filename="loopgate-audit-{stamp}.{kind}"',
        }
    )
    await response.prepare(request)
    if kind == "csv":
        await response.write(csv_rows([]))
    async for records in export_batches(requests.store, only):
        await response.write(csv_rows(records, header=False) if kind == "csv" else ndjson(records))
    await response.write_eof()
    return response


@routes.get("/v1/requests/{request_id}/history")
@describe("A request's story: asked, shown, answered, ended", replies={200: History}, errors=(404,))
async def history(request: web.Request) -> web.Response:
    requests, actor = request.app[REQUESTS], actor_of(request)
    view = await requests.get_request(request.match_info["request_id"], actor)
    records = await requests.store.read_stream(f"request-{view.request_id}")
    return json_response(
        History(
            request_id=view.request_id,
            status=view.status,
            timeline=[timeline_entry(record) for record in records],
        )
    )


def timeline_entry(record: RecordedEvent) -> TimelineEntry:
    summary, details = _told(record.event, record.meta.actor)
    return TimelineEntry(
        position=record.position,
        at=record.recorded_at.isoformat(),
        type=record.type,
        actor=record.meta.actor,
        channel=getattr(record.event, "channel", None),
        summary=summary,
        details=details,
    )


def _action_details(action: Action | None, fingerprint: str | None) -> dict[str, Any]:
    if action is None:
        return {}
    return {"action": {"tool": action.tool, "args": action.args}, "fingerprint": fingerprint}


def _told(event: Event, actor: str) -> tuple[str, dict[str, Any]]:
    match event:
        case RequestCreated() as created:
            return f"{actor} asked: {created.message!r}", {
                "session_id": created.session_id,
                "client_id": created.client_id,
                "request_type": created.request_type,
                "options": [option.label for option in created.options],
                "allow_text": created.allow_text,
                "metadata": created.metadata,
                "timeout_seconds": created.timeout_seconds,
                "on_timeout": created.on_timeout,
                "expires_at": created.expires_at.isoformat() if created.expires_at else None,
                **_action_details(created.action, created.fingerprint),
                "editable": created.editable,
                "grantable": created.grantable,
            }
        case RequestDelivered() as shown:
            details: dict[str, Any] = {
                "chat_id": shown.chat_id,
                "message_id": shown.external_message_id,
                "shown_text": shown.shown_text,
                "shown_options": list(shown.shown_options),
            }
            if shown.chat_id:
                where = f" (chat {shown.chat_id}, message {shown.external_message_id})"
            elif shown.address is not None:
                via = f" in {shown.routed_by}" if shown.routed_by else ""
                where = f" (to {shown.address}{via})"
                details |= {
                    "address": shown.address,
                    "conversation": shown.conversation,
                    "routed_by": shown.routed_by,
                }
            else:
                where = ""
            return f"shown on {shown.channel}{where}", details
        case DeliveryFailed() as failed:
            whom = f" (chat {failed.chat_id})" if failed.chat_id is not None else ""
            if failed.address is not None:
                whom = f" (to {failed.address})"
            return (
                f"{failed.channel} gave up{whom} after {failed.attempts} attempt(s):"
                f" {failed.error}",
                {
                    "error": failed.error,
                    "attempts": failed.attempts,
                    "chat_id": failed.chat_id,
                    **({"address": failed.address} if failed.address is not None else {}),
                },
            )
        case AnswerRefused() as refused:
            return (
                f"{refused.responder} tried to answer on {refused.channel}: refused "
                f"({refused.reason})",
                {"responder": refused.responder, "reason": refused.reason},
            )
        case VoteCast() as vote:
            given = vote.option if vote.option is not None else vote.text
            stance = "for" if vote.approves else "against"
            return f"{vote.member} voted {given!r} on {vote.channel} ({stance}); not decided yet", {
                "member": vote.member,
                "option": vote.option,
                "text": vote.text,
                "approves": vote.approves,
                "routed_by": vote.routed_by,
            }
        case ResponseReceived(policy=str(policy)) as decision:
            verdict = "approved" if decision.approved else "rejected"
            reason = f": {decision.reason}" if decision.reason else ""
            by = (
                f"standing grant {policy.removeprefix('grant:')}"
                if policy.startswith("grant:")
                else f"policy rule {policy}"
            )
            return f"{verdict} by {by}{reason}", {
                "policy": policy,
                "reason": decision.reason,
                "approved": decision.approved,
                **_action_details(decision.action, decision.fingerprint),
            }
        case ResponseReceived() as answer:
            verdict = "approved" if answer.approved else "rejected"
            given = answer.option if answer.option is not None else answer.text
            votes = f" (the deciding vote of {len(answer.votes)})" if answer.votes else ""
            edited = ", with the action's args edited" if answer.edited else ""
            told = f"{answer.responder} answered {given!r} on {answer.channel}{votes}{edited}"
            return f"{told}: {verdict}", {
                "responder": answer.responder,
                "option": answer.option,
                "text": answer.text,
                "approved": answer.approved,
                "votes": [
                    {"member": v.member, "approves": v.approves, "channel": v.channel}
                    for v in answer.votes
                ],
                **_action_details(answer.action, answer.fingerprint),
                "edited": answer.edited,
            }
        case RequestCancelled() as cancelled:
            reason = f": {cancelled.reason}" if cancelled.reason else ""
            return f"cancelled by {actor}{reason}", {"reason": cancelled.reason}
        case RequestExpired() as expired:
            verdict = {True: "approved", False: "rejected", None: "no decision"}[expired.approved]
            return f"expired unanswered; on_timeout={expired.on_timeout}: {verdict}", {
                "on_timeout": expired.on_timeout,
                "approved": expired.approved,
            }
        case ReminderSent() as reminder:
            number = f" {reminder.number}" if reminder.number is not None else ""
            return f"reminder{number} sent on {reminder.channel}", {"number": reminder.number}
        case ExpiryWarned() as warned:
            return f"approvers warned: it expires at {warned.expires_at.isoformat()}", {
                "expires_at": warned.expires_at.isoformat()
            }
        case RequestEscalated() as escalated:
            to = ", ".join(escalated.approvers)
            return f"escalated (step {escalated.step + 1}) to {to}", {
                "step": escalated.step,
                "approvers": list(escalated.approvers),
            }
        case GrantIssued() as grant:
            what = f"{grant.tool} exactly as approved" if grant.scope == "exact" else grant.tool
            return (
                f"{grant.issued_by} allowed {what} for session {grant.session_id} until"
                f" {grant.expires_at.isoformat()} (grant {grant.grant_id})",
                {
                    "grant_id": grant.grant_id,
                    "scope": grant.scope,
                    "tool": grant.tool,
                    "fingerprint": grant.fingerprint,
                    "expires_at": grant.expires_at.isoformat(),
                },
            )
        case GrantRevoked() as revoked:
            return f"grant {revoked.grant_id} revoked by {revoked.revoked_by}", {
                "grant_id": revoked.grant_id
            }
        case PolicySet() as policy:
            rules = len(policy.rules)
            return f"policy v{policy.version} set: {rules} rule{'s' if rules != 1 else ''}", {
                "version": policy.version,
                "rules": [rule.name for rule in policy.rules],
            }
        case WebhookDelivered() as hook:
            return f"decision POSTed to {hook.url}: HTTP {hook.status_code}", {
                "url": hook.url,
                "status_code": hook.status_code,
                "attempt": hook.attempt,
            }
        case WebhookFailed() as hook:
            return f"POST to {hook.url} failed: {hook.error}", {
                "url": hook.url,
                "error": hook.error,
                "attempt": hook.attempt,
                "final": hook.final,
            }
        case _:
            return type(event).__name__, event_data(event)
