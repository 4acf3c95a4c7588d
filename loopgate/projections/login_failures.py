"""The ``login_failures`` table: the failed logins that still throttle, by user and address.

A failure throttles further logins from its client address
(:func:`loopgate.domain.account.login_retry_after`) while it is within the
window and no login has succeeded since from that address. So a successful
login empties the user's rows from its address (all of them for a login
recorded before addresses were), and each new failure drops the rows, of its
user and of its address, that have left the window as of its own time: the
table stays small however long an attack goes on, and a rebuild prunes the
same way.
"""

from __future__ import annotations

from loopgate.domain.account import LOGIN_FAILURE_WINDOW
from loopgate.events import LoginFailed, RecordedEvent, UserLoggedIn
from loopgate.projections import Statement

TABLE = "login_failures"
EVENTS = (UserLoggedIn, LoginFailed)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case LoginFailed(user_id=uid, failed_at=at, address=address):
            where = address or ""
            return [
                (
                    "DELETE FROM login_failures WHERE (user_id = ? OR address = ?)"
                    " AND failed_at <= ?",
                    (uid, where, at - LOGIN_FAILURE_WINDOW),
                ),
                (
                    "INSERT INTO login_failures (user_id, version, failed_at, address)"
                    " VALUES (?, ?, ?, ?)",
                    (uid, record.version, at, where),
                ),
            ]
        case UserLoggedIn(user_id=uid, address=None):
            return [("DELETE FROM login_failures WHERE user_id = ?", (uid,))]
        case UserLoggedIn(user_id=uid, address=address):
            return [
                ("DELETE FROM login_failures WHERE user_id = ? AND address = ?", (uid, address))
            ]
        case _:
            return []
