"""Accounts: users and their passwords, API keys, login tokens and console sessions."""
