"""The ``deliveries`` table: every message that shows a request, on every channel.

Fed by :class:`RequestDelivered`. The channel senders (``channels/sender.py``)
read it to edit or follow up a request's messages as votes arrive and once it
is decided; Slack finds the message a click came from by its conversation and
``ts``. Telegram's chat id is kept as text in ``address`` here (its own
``telegram_messages`` matches text replies by number).
"""

from __future__ import annotations

from loopgate.events import RecordedEvent, RequestDelivered
from loopgate.projections import Statement

TABLE = "deliveries"
EVENTS = (RequestDelivered,)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case RequestDelivered(external_message_id=str(message_id)) as delivered if (
            delivered.target is not None
        ):
            return [
                (
                    "INSERT INTO deliveries (channel, address, message_id, conversation,"
                    " request_id, routed_by, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (channel, address, message_id) DO NOTHING",
                    (
                        delivered.channel,
                        delivered.target,
                        message_id,
                        delivered.conversation,
                        delivered.request_id,
                        delivered.routed_by,
                        delivered.delivered_at,
                    ),
                )
            ]
        case _:
            return []
