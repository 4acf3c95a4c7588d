"""The ``identities`` table: channel accounts (Telegram user ids) that act as a member."""

from __future__ import annotations

from loopgate.events import IdentityLinked, IdentityUnlinked, RecordedEvent
from loopgate.projections import Statement

TABLE = "identities"
EVENTS = (IdentityLinked, IdentityUnlinked)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case IdentityLinked() as linked:
            return [
                (
                    "INSERT INTO identities (channel, external_id, user_id, workspace_id,"
                    " display, linked_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        linked.channel,
                        linked.external_id,
                        linked.user_id,
                        linked.workspace_id,
                        linked.display,
                        linked.linked_at,
                    ),
                )
            ]
        case IdentityUnlinked(channel=channel, external_id=ext, user_id=uid):
            return [
                (
                    "DELETE FROM identities WHERE channel = ? AND external_id = ? AND user_id = ?",
                    (channel, ext, uid),
                )
            ]
        case _:
            return []
