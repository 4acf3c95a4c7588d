"""What the Slack app does with what Slack sends: button clicks and the ``/loopgate`` command.

A click on an option's button (``block_actions``) is acknowledged first
(Slack wants an answer within 3 seconds), then turned into
``Requests.answer(..., channel="slack")`` as the member who linked that Slack
account (:func:`~loopgate.channels.answering.channel_actor`); a click on a
message delivered to a Slack channel (``slack:#ops``) also holds that
selector. Someone the request is not routed to is refused by
``Requests.answer`` (recorded as ``AnswerRefused``) and told so in a message
only they see (``chat.postEphemeral``); so is a second vote, or a click on a
request decided meanwhile. An answer taken needs no reply: the sender edits
every message of the request from the log.

``/loopgate link <code>`` links the Slack account to the member who asked
for the code (``POST /v1/me/links/slack``); ``/loopgate help`` says how it
works. The command's answer is its acknowledgement, seen only by its sender.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from loopgate.channels.answering import Refusals, channel_actor, link_refusals
from loopgate.channels.model import ChannelContext
from loopgate.channels.slack.render import CONSOLE_ACTION, OPTION_ACTION, read_button_value
from loopgate.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    LoopgateError,
    NotFound,
    TooManyRequests,
)
from loopgate.views import RequestView

log = structlog.get_logger(__name__)

NOT_AN_APPROVER = "Not yours to answer: this request is not routed to you."
ROLE_CANNOT_ANSWER = "Not yours to answer: your role in this workspace cannot answer requests."
REQUESTER_CANNOT_APPROVE = (
    "Not yours to answer: you asked for this request, so someone else must approve it."
)
REFUSED = Refusals(NOT_AN_APPROVER, ROLE_CANNOT_ANSWER, REQUESTER_CANNOT_APPROVE)
INVALID_BUTTON = "This button is not valid."
REFUSALS = (DomainError, Conflict, Forbidden, NotFound, TooManyRequests)
"""What an answer may be refused with: each is explained to the clicker alone (:func:`explain`)."""
HELP = (
    "Loopgate asks you here when an agent needs a human: click a button on its message "
    "to answer.\n"
    "• `/loopgate link <code>`: link this Slack account to your Loopgate account "
    "(get the code in the console, or from `POST /v1/me/links/slack`).\n"
    "• `/loopgate help`: this message."
)
LINK_REFUSED = link_refusals("Slack")
"""What ``/loopgate link <code>`` says when the code links nothing, by the error's code."""
_OPTION_BUTTON = re.compile(rf"^{OPTION_ACTION}_\d+$")


def explain(error: LoopgateError, view: RequestView | None) -> str:
    """Why an answer was not taken, in the approver's words."""
    return REFUSED.explain(error, view) or error.message


class SlackAnswers:
    """The listeners of the Slack app; they work once the runtime is started (:meth:`start`)."""

    def __init__(self) -> None:
        self._context: ChannelContext | None = None

    def start(self, context: ChannelContext) -> None:
        self._context = context

    @property
    def context(self) -> ChannelContext:
        if self._context is None:
            raise RuntimeError("the Slack channel is not started")
        return self._context

    async def on_option(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()  # first: Slack shows the user an error after 3 seconds without it
        user_id = str(body["user"]["id"])
        container = body.get("container") or {}
        conversation = container.get("channel_id") or (body.get("channel") or {}).get("id")
        reply = await self._answer(
            user_id, str(action.get("value", "")), conversation, container.get("message_ts")
        )
        if reply is not None and conversation is not None:
            await client.chat_postEphemeral(channel=conversation, user=user_id, text=reply)

    async def _answer(
        self, user_id: str, value: str, conversation: str | None, ts: str | None
    ) -> str | None:
        """Answer as the Slack user who clicked; what to tell them, or None when it was taken."""
        try:
            pressed = read_button_value(value)
        except ValueError as exc:
            log.warning("slack button refused", user_id=user_id, reason=str(exc))
            return INVALID_BUTTON
        requests = self.context.requests
        try:
            view = await requests.find_request(pressed.request_id)
        except NotFound as exc:
            return explain(exc, None)
        if not 0 <= pressed.option < len(view.options):
            return INVALID_BUTTON
        label = view.options[pressed.option].label
        actor = await channel_actor(
            self.context.teams,
            "slack",
            user_id,
            view.tenant,
            routed_by=await self._routed_by(pressed.request_id, conversation, ts),
        )
        try:
            await requests.answer(pressed.request_id, option=label, channel="slack", actor=actor)
        except REFUSALS as exc:
            log.info(
                "slack answer refused", request_id=view.request_id, user_id=user_id, reason=exc.code
            )
            return explain(exc, await requests.find_request(pressed.request_id))
        log.info("slack answer", request_id=view.request_id, user_id=user_id, option=label)
        return None

    async def _routed_by(
        self, request_id: str, conversation: str | None, ts: str | None
    ) -> list[str]:
        """The selector the clicked message was delivered for (a Slack channel's), if any."""
        if conversation is None or ts is None:
            return []
        rows = await self.context.store.fetch(
            "SELECT request_id, routed_by FROM deliveries"
            " WHERE channel = 'slack' AND conversation = ? AND message_id = ?",
            (conversation, ts),
        )
        return [
            row["routed_by"] for row in rows if row["routed_by"] and row["request_id"] == request_id
        ]

    async def on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        words = str(command.get("text", "")).split()
        first = words[0].lower() if words else ""
        if first == "link" and len(words) == 2:
            text = await self._link(command, words[1])
        elif first == "link":
            text = "Usage: `/loopgate link <code>` (the code from the console)."
        else:
            text = HELP
        # The acknowledgement is the answer, seen by the sender alone.
        await ack(text=text, response_type="ephemeral")

    async def _link(self, command: dict[str, Any], code: str) -> str:
        user_id = str(command["user_id"])
        try:
            member = await self.context.teams.link_identity(
                code, "slack", user_id, display=command.get("user_name") or None
            )
        except (NotFound, Conflict, Gone) as exc:
            log.info("slack link refused", user_id=user_id, reason=exc.code)
            return LINK_REFUSED.get(exc.code, f"Not linked: {exc.message}")
        log.info("slack account linked", user_id=user_id, member=member.user_id)
        return (
            f"Linked: this Slack account acts as {member.username} in Loopgate now. "
            "Requests routed to you come to your DMs with the Loopgate app."
        )


async def _ack_only(ack: AsyncAck) -> None:
    await ack()  # a link button: the browser opens the console, nothing to do here


def build_app(client: AsyncWebClient, signing_secret: str, answers: SlackAnswers) -> AsyncApp:
    """The Bolt app over ``client`` (which holds the bot token), its listeners from ``answers``.

    Without ``signing_secret`` (socket mode: what comes over the WebSocket is
    not signed) Bolt checks no signatures; ``/slack/events`` checks them first anyway.
    """
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=bool(signing_secret),
    )
    app.action(_OPTION_BUTTON)(answers.on_option)
    app.action(CONSOLE_ACTION)(_ack_only)
    app.command("/loopgate")(answers.on_command)
    return app
