-- Telegram (see loopgate/projections/telegram_messages.py and loopgate/channels/telegram/).

-- Which message shows which request: edits find their message here, and a
-- text reply finds its request by the message it replies to.
CREATE TABLE telegram_messages (
    chat_id      BIGINT  NOT NULL,
    message_id   BIGINT  NOT NULL,
    request_id   TEXT    NOT NULL,
    delivered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX telegram_messages_request ON telegram_messages (request_id);

CREATE INDEX sessions_telegram ON sessions (telegram_id) WHERE telegram_id IS NOT NULL;

-- Bookkeeping, not projections (a rebuild keeps them): how far each reactor
-- has acted on the log, and which Telegram updates were already handled.
CREATE TABLE reactor_checkpoints (
    name       TEXT PRIMARY KEY,
    position   BIGINT  NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE telegram_updates (
    update_id   BIGINT  PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX telegram_updates_received ON telegram_updates (received_at);
