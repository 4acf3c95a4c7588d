"""The approver channels inside the app: each registers its runtime; the app starts them all.

A channel's own ``web/<channel>.py`` ``setup(app, config)`` builds its
runtime (and adds its routes, e.g. ``/telegram/webhook``, ``/slack/events``)
and calls :func:`register_channel`; ``create_app`` calls that ``setup`` only
when the channel is configured. The runtimes start after the reactors, with
one :class:`~loopgate.channels.model.ChannelContext`, and stop before them.
"""

from __future__ import annotations

from functools import partial

import structlog
from aiohttp import web

from loopgate.channels.model import ChannelContext, ChannelRuntime
from loopgate.channels.sender import ChannelSender
from loopgate.metrics import Metrics
from loopgate.web.keys import CHANNEL_RUNTIMES

log = structlog.get_logger(__name__)


def register_channel(app: web.Application, name: str, runtime: ChannelRuntime) -> None:
    """Start ``runtime`` with the app (once its services exist) and stop it with it."""
    app.setdefault(CHANNEL_RUNTIMES, {})[name] = runtime


async def start_channels(app: web.Application, context: ChannelContext, metrics: Metrics) -> None:
    runtimes = app.get(CHANNEL_RUNTIMES, {})
    for name, runtime in runtimes.items():
        await runtime.start(context)
        sender = getattr(runtime, "sender", None)
        if isinstance(sender, ChannelSender):
            metrics.reactor(sender.name, partial(_lag, sender))
        log.info("channel on", channel=name)
    if not runtimes:
        log.info("no approver channel on: requests are answered in the console or the API")


def _lag(sender: ChannelSender) -> int | None:
    return sender.lag


async def stop_channels(app: web.Application) -> None:
    for runtime in reversed(app.get(CHANNEL_RUNTIMES, {}).values()):
        await runtime.stop()
