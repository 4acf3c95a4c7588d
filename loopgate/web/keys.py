"""Typed keys for what the application shares between its handlers."""

from __future__ import annotations

from aiohttp import web

from loopgate.config import Config
from loopgate.store.base import EventStore

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey[EventStore]("store")
REQUEST_ID = web.RequestKey("request_id", str)
