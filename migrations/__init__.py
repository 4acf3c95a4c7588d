"""Installed as ``loopgate._migrations``: the SQL files beside this one are its data."""
