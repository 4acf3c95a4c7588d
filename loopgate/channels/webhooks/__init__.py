"""Outgoing webhooks: each decision POSTed, signed, to its callback_url, retried from the log."""
