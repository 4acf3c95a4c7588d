-- One delivery model for every approver channel (loopgate/projections/deliveries.py,
-- loopgate/channels/sender.py): each message that shows a request, on any channel.
-- address: whom it went to (a Telegram chat id as text, a Slack user id or #channel,
-- an email address); conversation: where it lives when that differs (the Slack
-- channel id an edit needs); routed_by: the selector served when not a member's own account.
CREATE TABLE deliveries (
    channel      TEXT NOT NULL,
    address      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    conversation TEXT,
    request_id   TEXT NOT NULL,
    routed_by    TEXT,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (channel, address, message_id)
);
CREATE INDEX deliveries_request ON deliveries (request_id);
CREATE INDEX deliveries_conversation ON deliveries (channel, conversation, message_id)
    WHERE conversation IS NOT NULL;

-- The Telegram messages shown so far, as a rebuild from the log would give them.
INSERT INTO deliveries (channel, address, message_id, request_id, delivered_at)
SELECT 'telegram', CAST(chat_id AS TEXT), CAST(message_id AS TEXT), request_id, delivered_at
FROM telegram_messages;
