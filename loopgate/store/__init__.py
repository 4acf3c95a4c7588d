"""The event store. ``open_store(url)`` picks the backend from the URL scheme."""

from __future__ import annotations

from loopgate.config import database_kind, sqlite_path
from loopgate.events import RecordedEvent
from loopgate.store.base import EventStore
from loopgate.store.postgres import PostgresStore
from loopgate.store.sqlite import SqliteStore

__all__ = ["EventStore", "PostgresStore", "RecordedEvent", "SqliteStore", "open_store"]


async def open_store(url: str, *, migrate: bool = True) -> SqliteStore | PostgresStore:
    """Open (and by default migrate) the store at ``sqlite:///path`` or ``postgresql://…``."""
    if database_kind(url) == "sqlite":
        return await SqliteStore.open(sqlite_path(url), migrate=migrate)
    return await PostgresStore.open(url, migrate=migrate)
