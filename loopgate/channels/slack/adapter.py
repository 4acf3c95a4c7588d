"""The Slack channel adapter: where a request goes on Slack, how it is posted and edited.

The :class:`~loopgate.channels.sender.ChannelSender` drives it. A request
goes to the Slack accounts its routed members linked (a DM: ``chat.postMessage``
with the user id as the channel) and to each ``slack:#name`` selector (the
channel itself); Slack answers with the conversation id (``D…``/``C…``) and
the message's ``ts``, which ``chat.update`` needs to edit it as votes arrive
and once it is decided. Reminders are thread replies under the message.

Errors: Slack's 429 carries ``Retry-After``, which the sender waits for;
5xx, connection errors and timeouts are retried; any other Slack error
(``channel_not_found``, ``not_in_channel``, ``user_not_found``…) is for good.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from loopgate.channels.model import Delivery, Nudge, RetryLater, Sent, Target, Undeliverable
from loopgate.channels.slack.render import (
    SlackMessage,
    nudge_text,
    outcome_message,
    request_message,
)
from loopgate.events import Channel
from loopgate.teams import Teams
from loopgate.views import RequestView, votes_of

log = structlog.get_logger(__name__)

GONE_MESSAGE = frozenset({"message_not_found", "cant_update_message", "channel_not_found"})
"""``chat.update`` errors that mean the message is no more (deleted, or too old to edit)."""


class SlackAdapter:
    name: Channel = "slack"

    def __init__(self, client: AsyncWebClient, teams: Teams, *, console_url: str = "") -> None:
        self._client, self._teams = client, teams
        self._console_url = console_url

    async def targets(self, view: RequestView, approvers: Sequence[str]) -> list[Target]:
        return await self._teams.targets("slack", view.tenant, approvers)

    async def send(self, target: Target, view: RequestView) -> Sent:
        message = request_message(view, await self._names(view), self._console_url)
        response = await self._client.chat_postMessage(
            channel=target.address, text=message.text, blocks=message.blocks
        )
        delivery = Delivery(
            address=target.address,
            message_id=str(response["ts"]),
            conversation=str(response["channel"]),
            routed_by=target.routed_by,
        )
        return Sent(delivery, message.text, tuple(option.label for option in view.options))

    async def show_state(self, delivery: Delivery, view: RequestView) -> None:
        names = await self._names(view)
        if view.final:
            responder = None if view.responder is None else await self._name(view.responder)
            message = outcome_message(view, responder, names)
        else:
            message = request_message(view, names, self._console_url)
        await self._update(delivery, view, message)

    async def nudge(self, delivery: Delivery, view: RequestView, kind: Nudge) -> None:
        await self._client.chat_postMessage(
            channel=delivery.conversation or delivery.address,
            thread_ts=delivery.message_id,
            text=nudge_text(view, kind),
        )

    def classify(self, error: BaseException) -> RetryLater | Undeliverable | None:
        if isinstance(error, SlackApiError):
            status = error.response.status_code
            code = str(error.response.get("error", "unknown_error"))
            if status == 429 or code == "ratelimited":
                after = error.response.headers.get("Retry-After")
                return RetryLater(f"slack: {code}", after=_seconds(after))
            if status >= 500:
                return RetryLater(f"slack: HTTP {status} {code}")
            return Undeliverable(f"slack: {code}")
        if isinstance(error, aiohttp.ClientError | TimeoutError):
            return RetryLater(f"slack unreachable: {error!r}")
        return None

    async def _update(self, delivery: Delivery, view: RequestView, message: SlackMessage) -> None:
        try:
            await self._client.chat_update(
                channel=delivery.conversation or delivery.address,
                ts=delivery.message_id,
                text=message.text,
                blocks=message.blocks,
            )
        except SlackApiError as exc:
            code = exc.response.get("error")
            if code not in GONE_MESSAGE:
                raise
            log.warning(
                "slack message could not be edited",
                request_id=view.request_id,
                conversation=delivery.conversation,
                ts=delivery.message_id,
                error=code,
            )

    async def _names(self, view: RequestView) -> Mapping[str, str]:
        """The usernames of the members who voted on ``view``, by user id."""
        names: dict[str, str] = {}
        for vote in votes_of(view):
            name = await self._name(vote.member)
            if name is not None:
                names[vote.member] = name
        return names

    async def _name(self, actor_id: str) -> str | None:
        if ":" in actor_id:  # slack:<id>, apikey:<id>: no member
            return None
        member = await self._teams.membership(actor_id, answers=False)
        return member.username if member is not None else None


def _seconds(header: str | None) -> float | None:
    try:
        return None if header is None else float(header)
    except ValueError:
        return None
