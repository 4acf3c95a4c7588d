"""Channels: where a request reaches a human and a decision goes out (Telegram, webhooks)."""
