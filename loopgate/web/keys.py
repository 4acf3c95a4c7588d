"""Typed keys for what the application shares between its handlers."""

from __future__ import annotations

from aiohttp import web

from loopgate.config import Config
from loopgate.hub import Hub
from loopgate.reactors.expirer import Expirer
from loopgate.service import Service
from loopgate.store.base import EventStore

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey[EventStore]("store")
REQUEST_ID = web.RequestKey("request_id", str)
HUB = web.AppKey("hub", Hub)
SERVICE = web.AppKey("service", Service)
EXPIRER = web.AppKey("expirer", Expirer)
