"""The ``requests`` table: each request's question, status and decision.

``status`` is the lifecycle state: pending, delivered, answered, cancelled or
expired. ``votes`` (a JSON array) and ``approvals`` follow the votes cast;
``approvers`` grows as escalation steps fire, which ``escalations`` lists.
Final states are never overwritten by a late event (the domain does
not emit one, and the ``WHERE`` clauses make replays of odd logs harmless).
"""

from __future__ import annotations

import msgspec

from loopgate.events import (
    AnswerRefused,
    DeliveryFailed,
    ExpiryWarned,
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
)
from loopgate.projections import Statement

TABLE = "requests"
EVENTS = (
    RequestCreated,
    RequestDelivered,
    ResponseReceived,
    RequestCancelled,
    RequestExpired,
    ReminderSent,
    ExpiryWarned,
    RequestEscalated,
    VoteCast,
    DeliveryFailed,
    AnswerRefused,
    WebhookDelivered,
    WebhookFailed,
)

# "Still open", written as "not final" on purpose: ``status IN ('pending',
# 'delivered')`` is the predicate of the partial index ``requests_open_expiry``,
# so Postgres's generic plan for these UPDATEs scans that index (every open
# request) instead of probing the primary key. While a rebuild replays the log,
# every request passes through pending, and each UPDATE became a scan of them all.
_OPEN = "status NOT IN ('answered', 'cancelled', 'expired')"


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _json_or_null(value: object | None) -> str | None:
    return None if value is None else _json(value)


def _append(column: str, items: list[object] | tuple[object, ...]) -> Statement:
    """``column`` (a JSON array as text) with ``items`` added at its end.

    Plain text functions, the same in SQLite and Postgres, so no JSON
    extension is needed: ``[a]`` + ``b`` is ``[a`` + ``,`` + ``b]``.
    """
    inner = _json(list(items))[1:-1]
    return (
        f"{column} = CASE WHEN {column} = '[]' THEN '[' || ? || ']'"
        f" ELSE substr({column}, 1, length({column}) - 1) || ',' || ? || ']' END",
        (inner, inner),
    )


def apply(record: RecordedEvent) -> list[Statement]:
    version = record.version
    match record.event:
        case RequestCreated() as created:
            return [
                (
                    "INSERT INTO requests (request_id, session_id, client_id, tenant, message,"
                    " request_type, options, allow_text, metadata, timeout_seconds, on_timeout,"
                    " callback_url, idempotency_key, status, created_at, expires_at, version,"
                    " approvers, quorum, veto, requester, policy_version, rule,"
                    " remind_every_seconds, warn_before_expiry_seconds, escalation,"
                    " action, fingerprint, editable, args_schema, grantable, grant_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?,"
                    " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        created.request_id,
                        created.session_id,
                        created.client_id,
                        record.meta.tenant,
                        created.message,
                        created.request_type,
                        msgspec.json.encode(created.options).decode(),
                        created.allow_text,
                        msgspec.json.encode(created.metadata).decode(),
                        created.timeout_seconds,
                        created.on_timeout,
                        created.callback_url,
                        created.idempotency_key,
                        created.created_at,
                        created.expires_at,
                        version,
                        _json(created.approvers),
                        created.quorum,
                        created.veto,
                        created.requester,
                        created.policy_version,
                        created.rule,
                        created.remind_every_seconds,
                        created.warn_before_expiry_seconds,
                        _json(created.escalation),
                        _json_or_null(created.action),
                        created.fingerprint,
                        created.editable,
                        _json_or_null(created.args_schema),
                        created.grantable,
                        created.grant,
                    ),
                )
            ]
        case RequestDelivered(
            request_id=rid, channel=channel, external_message_id=ext, delivered_at=at
        ):
            return [
                (
                    "UPDATE requests SET status = 'delivered', delivered_at = ?, channel = ?,"
                    f" external_message_id = ?, version = ? WHERE request_id = ? AND {_OPEN}",
                    (at, channel, ext, version, rid),
                )
            ]
        case ResponseReceived() as answer:
            # The votes before the deciding one were VoteCasts; the last is this answer.
            # A lone answer holds no votes (views.votes_of reads it as one): both stay as they are.
            if answer.votes:
                votes_sql, votes_params = _append("votes", answer.votes[-1:])
                votes_sql += ", approvals = ?"
                votes_params += (sum(v.approves for v in answer.votes),)
            else:
                votes_sql, votes_params = "votes = votes", ()
            return [
                (
                    "UPDATE requests SET status = 'answered', approved = ?, response_option = ?,"
                    " response_text = ?, responder = ?, channel = ?, decided_at = ?, version = ?,"
                    " routed_by = ?, decided_policy = ?, decision_reason = ?,"
                    " decided_action = ?, decided_fingerprint = ?, edited = ?,"
                    f" {votes_sql} WHERE request_id = ? AND {_OPEN}",
                    (
                        answer.approved,
                        answer.option,
                        answer.text,
                        answer.responder,
                        answer.channel,
                        answer.responded_at,
                        version,
                        answer.routed_by,
                        answer.policy,
                        answer.reason,
                        _json_or_null(answer.action),
                        answer.fingerprint,
                        answer.edited,
                        *votes_params,
                        answer.request_id,
                    ),
                )
            ]
        case VoteCast() as cast:
            votes_sql, votes_params = _append("votes", [cast.vote])
            return [
                (
                    f"UPDATE requests SET {votes_sql}, approvals = approvals + ?, version = ?"
                    f" WHERE request_id = ? AND {_OPEN}",
                    (*votes_params, int(cast.approves), version, cast.request_id),
                )
            ]
        case RequestEscalated() as escalated:
            step_sql, step_params = _append(
                "escalations",
                [
                    {
                        "step": escalated.step,
                        "approvers": escalated.approvers,
                        "at": escalated.escalated_at,
                    }
                ],
            )
            approvers_sql, approvers_params = _append("approvers", escalated.approvers)
            return [
                (
                    f"UPDATE requests SET {step_sql}, {approvers_sql}, version = ?"
                    " WHERE request_id = ?",
                    (*step_params, *approvers_params, version, escalated.request_id),
                )
            ]
        case ReminderSent(request_id=rid):
            return [
                (
                    "UPDATE requests SET reminders = reminders + 1, version = ?"
                    " WHERE request_id = ?",
                    (version, rid),
                )
            ]
        case ExpiryWarned(request_id=rid, warned_at=at):
            return [
                (
                    "UPDATE requests SET warned_at = ?, version = ? WHERE request_id = ?",
                    (at, version, rid),
                )
            ]
        case RequestCancelled(request_id=rid, cancelled_at=at):
            return [
                (
                    "UPDATE requests SET status = 'cancelled', responder = ?, decided_at = ?,"
                    f" version = ? WHERE request_id = ? AND {_OPEN}",
                    (record.meta.actor, at, version, rid),
                )
            ]
        case RequestExpired(request_id=rid, approved=approved, expired_at=at):
            return [
                (
                    "UPDATE requests SET status = 'expired', approved = ?, decided_at = ?,"
                    f" version = ? WHERE request_id = ? AND {_OPEN}",
                    (approved, at, version, rid),
                )
            ]
        case (
            DeliveryFailed(request_id=rid)
            | AnswerRefused(request_id=rid)
            | WebhookDelivered(request_id=rid)
            | WebhookFailed(request_id=rid)
        ):
            # These change no column, but the row's version still tracks the
            # stream so a reader can pass it back as the expected version.
            return [("UPDATE requests SET version = ? WHERE request_id = ?", (version, rid))]
        case _:
            return []
