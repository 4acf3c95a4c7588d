"""What an approver channel is: one delivery model for Telegram, Slack and email.

A channel is an adapter (:class:`ChannelAdapter`) that knows how to reach
people on one service: where a request goes (:meth:`~ChannelAdapter.targets`),
how to post it (:meth:`~ChannelAdapter.send`), how to make a posted message
show the request as it is now (:meth:`~ChannelAdapter.show_state`), how to
nudge under it (:meth:`~ChannelAdapter.nudge`) and which of its library's
errors retrying can fix (:meth:`~ChannelAdapter.classify`). Everything else —
following the log under a lease, retrying, recording ``RequestDelivered`` and
``DeliveryFailed``, redoing work safely after a restart — is the one
:class:`~loopgate.channels.sender.ChannelSender`, the same for every channel.
An answer coming back from a channel goes through
:func:`~loopgate.channels.answering.channel_actor` and ``Requests.answer``,
the same command the console and the API use.

A channel's *runtime* (its bot, its HTTP client, its sender) is started with
the server: :class:`ChannelRuntime`, given a :class:`ChannelContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import msgspec

from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.config import KeySource
from loopgate.domain.teams import Target
from loopgate.events import Channel
from loopgate.reactors.lease import Lease
from loopgate.store.base import EventStore
from loopgate.teams import Teams
from loopgate.views import RequestView

__all__ = [
    "ChannelAdapter",
    "ChannelContext",
    "ChannelRuntime",
    "Delivery",
    "Nudge",
    "RetryLater",
    "Sent",
    "Target",
    "Undeliverable",
    "console_page",
]

Nudge = Literal["reminder", "expiry"]
"""A note under an open request's message: a reminder, or the time it expires."""


class Delivery(msgspec.Struct, frozen=True):
    """One message that shows a request, as ``RequestDelivered`` recorded it.

    ``address`` is whom it went to (a Telegram chat id as text, a Slack user id
    or channel, an email address), ``message_id`` its id there (a Telegram
    message id as text, Slack's ``ts``, a Message-ID), ``conversation`` where
    it lives when that differs (the Slack channel id ``chat.update`` needs).
    """

    address: str
    message_id: str
    conversation: str | None = None
    routed_by: str | None = None


class Sent(msgspec.Struct, frozen=True):
    """A message a channel posted, and what it showed: the evidence of an audit."""

    delivery: Delivery
    shown_text: str
    shown_options: tuple[str, ...]


class RetryLater(Exception):
    """A failure that trying again may fix; ``after``: the seconds the service asked to wait."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Undeliverable(Exception):
    """A refusal that trying again cannot fix: no such chat, user or mailbox."""


def console_page(console_url: str, request_id: str) -> str | None:
    """The request's page in the console, that every channel links to; None unless http(s)."""
    if not console_url.startswith(("http://", "https://")):
        return None
    return f"{console_url.rstrip('/')}/console/requests/{request_id}"


class ChannelAdapter(Protocol):
    """How one service reaches people; the sender does the rest."""

    @property
    def name(self) -> Channel: ...

    async def targets(self, view: RequestView, approvers: Sequence[str]) -> list[Target]:
        """Where ``view`` goes on this channel, for these approvers (``Teams.targets``)."""
        ...

    async def send(self, target: Target, view: RequestView) -> Sent:
        """Post the request to ``target``; errors go through :meth:`classify`."""
        ...

    async def show_state(self, delivery: Delivery, view: RequestView) -> None:
        """Make the message show the request as it is now: the votes so far, or its outcome."""
        ...

    async def nudge(self, delivery: Delivery, view: RequestView, kind: Nudge) -> None:
        """A reminder, or the expiry warning, under an open request's message."""
        ...

    def classify(self, error: BaseException) -> RetryLater | Undeliverable | None:
        """What a library error means: retry, give up, or None (not the service's: a bug)."""
        ...


@dataclass(frozen=True)
class ChannelContext:
    """What a channel's runtime is started with: the server's services over its store."""

    requests: Requests
    sessions: Sessions
    teams: Teams
    store: EventStore
    lease_for: Callable[[str], Lease]
    """A channel's own lease, by channel name: one process sends for each channel."""
    clock: Callable[[], datetime]
    server_key: KeySource
    """Gives the server's secret key, that channels derive their signing keys from
    (``loopgate.config.derive_key``); called when needed, so no key file is made for nothing."""


class ChannelRuntime(Protocol):
    """A channel inside the server, started after the reactors and stopped before them."""

    async def start(self, context: ChannelContext) -> None: ...

    async def stop(self) -> None: ...
