"""The ``sessions`` table: one row per agent session, its operator and whether it is active.

A session is keyed by (tenant, session_id): session ids are per tenant. The
tenant is the event's, so old logs' ``session-<id>`` streams fill it too.
"""

from __future__ import annotations

from loopgate.events import RecordedEvent, SessionDeactivated, SessionRegistered
from loopgate.projections import Statement

TABLE = "sessions"
EVENTS = (SessionRegistered, SessionDeactivated)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case SessionRegistered(
            session_id=sid, client_id=client, telegram_id=tg, callback_url=url, registered_at=at
        ):
            return [
                (
                    "INSERT INTO sessions (session_id, client_id, telegram_id, callback_url,"
                    " tenant, active, registered_at, deactivated_at, version)"
                    " VALUES (?, ?, ?, ?, ?, TRUE, ?, NULL, ?)"
                    " ON CONFLICT (tenant, session_id) DO UPDATE"
                    " SET client_id = excluded.client_id, telegram_id = excluded.telegram_id,"
                    " callback_url = excluded.callback_url,"
                    " active = TRUE, registered_at = excluded.registered_at,"
                    " deactivated_at = NULL, version = excluded.version",
                    (sid, client, tg, url, record.meta.tenant, at, record.version),
                )
            ]
        case SessionDeactivated(session_id=sid, deactivated_at=at):
            return [
                (
                    "UPDATE sessions SET active = FALSE, deactivated_at = ?, version = ?"
                    " WHERE tenant = ? AND session_id = ?",
                    (at, record.version, record.meta.tenant, sid),
                )
            ]
        case _:
            return []
