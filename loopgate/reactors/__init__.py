"""Reactors: side effects that follow the log (expiry now; Telegram and webhooks later)."""
