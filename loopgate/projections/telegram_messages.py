"""The ``telegram_messages`` table: the Telegram message that shows each request.

Fed by :class:`RequestDelivered` on the telegram channel. The sender reads it
to edit a request's messages once it is decided, and a text reply is matched
to its request by ``(chat_id, reply_to_message.message_id)`` here, never by
parsing the message's text.
"""

from __future__ import annotations

from loopgate.events import RecordedEvent, RequestDelivered
from loopgate.projections import Statement

TABLE = "telegram_messages"
EVENTS = (RequestDelivered,)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case (
            RequestDelivered(
                channel="telegram", chat_id=int(chat_id), external_message_id=str(message_id)
            ) as delivered
        ):
            return [
                (
                    "INSERT INTO telegram_messages (chat_id, message_id, request_id, delivered_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, message_id) DO NOTHING",
                    (chat_id, int(message_id), delivered.request_id, delivered.delivered_at),
                )
            ]
        case _:
            return []
