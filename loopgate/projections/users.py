"""The ``users`` table: one row per operator account, looked up by username at login.

``username_key`` is the lower-cased username and carries the unique key, so
two registrations racing for one name (in any case) cannot both commit: the
loser's append fails with a ``ConcurrencyError``. ``password_hash`` follows
upgrades made at login.
"""

from __future__ import annotations

from loopgate.domain.account import username_key
from loopgate.events import (
    IdentityUnlinked,
    LoginFailed,
    MemberAdded,
    RecordedEvent,
    UserLoggedIn,
    UserRegistered,
    WorkspaceCreated,
)
from loopgate.projections import Statement

TABLE = "users"
# The events a user's stream also holds: they change no column, but the row's
# version must follow the stream for a login to append at it.
_ALSO_ON_USER_STREAMS = (WorkspaceCreated, MemberAdded, IdentityUnlinked)
EVENTS = (UserRegistered, UserLoggedIn, LoginFailed, *_ALSO_ON_USER_STREAMS)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case UserRegistered(user_id=uid, username=name, password_hash=hashed, registered_at=at):
            return [
                (
                    "INSERT INTO users (user_id, username, username_key, password_hash,"
                    " registered_at, last_login_at, version) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                    (uid, name, username_key(name), hashed, at, record.version),
                )
            ]
        case UserLoggedIn(user_id=uid, logged_in_at=at, rehashed_password=rehashed):
            return [
                (
                    "UPDATE users SET last_login_at = ?,"
                    " password_hash = COALESCE(?, password_hash), version = ? WHERE user_id = ?",
                    (at, rehashed, record.version, uid),
                )
            ]
        case LoginFailed(user_id=uid):
            # The row's version tracks the stream, so a login can append at it.
            return [("UPDATE users SET version = ? WHERE user_id = ?", (record.version, uid))]
        case _ if record.stream.startswith("user-"):
            uid = record.stream.removeprefix("user-")
            return [("UPDATE users SET version = ? WHERE user_id = ?", (record.version, uid))]
        case _:
            return []
