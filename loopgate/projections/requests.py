"""The ``requests`` table: each request's question, status and decision.

``status`` is the lifecycle state: pending, delivered, answered, cancelled or
expired. Final states are never overwritten by a late event (the domain does
not emit one, and the ``WHERE`` clauses make replays of odd logs harmless).
"""

from __future__ import annotations

import msgspec

from loopgate.events import (
    AnswerRefused,
    DeliveryFailed,
    RecordedEvent,
    ReminderSent,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestExpired,
    ResponseReceived,
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


def apply(record: RecordedEvent) -> list[Statement]:
    version = record.version
    match record.event:
        case RequestCreated() as created:
            return [
                (
                    "INSERT INTO requests (request_id, session_id, client_id, tenant, message,"
                    " request_type, options, allow_text, metadata, timeout_seconds, on_timeout,"
                    " callback_url, idempotency_key, status, created_at, expires_at, version,"
                    " approvers)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
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
                        msgspec.json.encode(created.approvers).decode(),
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
            return [
                (
                    "UPDATE requests SET status = 'answered', approved = ?, response_option = ?,"
                    " response_text = ?, responder = ?, channel = ?, decided_at = ?, version = ?,"
                    f" routed_by = ? WHERE request_id = ? AND {_OPEN}",
                    (
                        answer.approved,
                        answer.option,
                        answer.text,
                        answer.responder,
                        answer.channel,
                        answer.responded_at,
                        version,
                        answer.routed_by,
                        answer.request_id,
                    ),
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
            ReminderSent(request_id=rid)
            | DeliveryFailed(request_id=rid)
            | AnswerRefused(request_id=rid)
            | WebhookDelivered(request_id=rid)
            | WebhookFailed(request_id=rid)
        ):
            # These change no column, but the row's version still tracks the
            # stream so a reader can pass it back as the expected version.
            return [("UPDATE requests SET version = ? WHERE request_id = ?", (version, rid))]
        case _:
            return []
