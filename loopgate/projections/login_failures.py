"""The ``login_failures`` table: each user's failed logins that still count.

A failure counts towards the lock-out (:func:`loopgate.domain.account.login_retry_after`)
while it is within the window and no login has succeeded since. So a successful
login empties the user's rows, and each new failure drops the ones that have
left the window as of its own time: the table stays a handful of rows per user
however long an attack goes on, and a rebuild prunes exactly the same way.
"""

from __future__ import annotations

from loopgate.domain.account import LOGIN_FAILURE_WINDOW
from loopgate.events import LoginFailed, RecordedEvent, UserLoggedIn
from loopgate.projections import Statement

TABLE = "login_failures"
EVENTS = (UserLoggedIn, LoginFailed)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case LoginFailed(user_id=uid, failed_at=at):
            return [
                (
                    "DELETE FROM login_failures WHERE user_id = ? AND failed_at <= ?",
                    (uid, at - LOGIN_FAILURE_WINDOW),
                ),
                (
                    "INSERT INTO login_failures (user_id, version, failed_at) VALUES (?, ?, ?)",
                    (uid, record.version, at),
                ),
            ]
        case UserLoggedIn(user_id=uid):
            return [("DELETE FROM login_failures WHERE user_id = ?", (uid,))]
        case _:
            return []
