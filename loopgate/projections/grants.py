"""The ``grants`` table: standing grants, as issued and revoked.

A grant is live while ``revoked_at`` is NULL and ``expires_at`` is in the
future; the row stays after either, so ``GET /v1/grants`` shows the history.
"""

from __future__ import annotations

from loopgate.events import GrantIssued, GrantRevoked, RecordedEvent
from loopgate.projections import Statement

TABLE = "grants"
EVENTS = (GrantIssued, GrantRevoked)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case GrantIssued() as grant:
            return [
                (
                    "INSERT INTO grants (grant_id, tenant, session_id, scope, tool, fingerprint,"
                    " request_id, issued_by, issued_at, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        grant.grant_id,
                        grant.workspace,
                        grant.session_id,
                        grant.scope,
                        grant.tool,
                        grant.fingerprint,
                        grant.request_id,
                        grant.issued_by,
                        grant.issued_at,
                        grant.expires_at,
                    ),
                )
            ]
        case GrantRevoked(grant_id=grant_id, revoked_by=by, revoked_at=at):
            return [
                (
                    "UPDATE grants SET revoked_by = ?, revoked_at = ?"
                    " WHERE grant_id = ? AND revoked_at IS NULL",
                    (by, at, grant_id),
                )
            ]
        case _:
            return []
