"""The operator's desk on Telegram: show a request, record that it was shown, show its outcome.

Shared by the sender reactor (new requests) and the ``/pending`` command
(requests shown again on demand). Every message shown is recorded as
``RequestDelivered`` with its chat and message id: that is how a text reply is
matched to its request (``telegram_messages``) and how the message is found
again to be edited (``deliveries``).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from loopgate.channels.answering import channel_actor
from loopgate.channels.model import Delivery, Sent, console_page
from loopgate.channels.sender import record_sent
from loopgate.channels.telegram.callbacks import CallbackSigner
from loopgate.channels.telegram.render import (
    IssuedGrant,
    Keyboard,
    keyboard,
    outcome_text,
    request_text,
)
from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.domain.request import GrantAsk
from loopgate.domain.teams import allows, route_match
from loopgate.teams import Teams
from loopgate.views import RequestView, request_view, votes_of

log = structlog.get_logger(__name__)


class _GrantRow(msgspec.Struct):
    grant_id: str
    issued_at: datetime
    expires_at: datetime


HTML = "HTML"
_OPEN = "('pending', 'delivered')"
_SCANNED = 1000
"""Open requests looked at per source for ``/pending``: a bound on one command's work."""


class OperatorDesk:
    def __init__(
        self,
        requests: Requests,
        sessions: Sessions,
        bot: Bot,
        signer: CallbackSigner,
        teams: Teams,
        *,
        console_url: str = "",
    ) -> None:
        self.requests, self.sessions, self.teams = requests, sessions, teams
        self.store = requests.store
        self.bot, self.signer = bot, signer
        self.console_url = console_url
        """Where "✏️ Edit in console" links to (``console.public_url``, or derived)."""
        if console_page(console_url, "x") is None:
            log.warning(
                "telegram edit-in-console buttons off: the console URL is not http(s)",
                console_url=console_url,
            )

    def keyboard(self, view: RequestView) -> Keyboard:
        return keyboard(view, self.signer, self.console_url)

    async def actor_of(self, telegram_user_id: int, workspace_id: str) -> Actor:
        """Who a Telegram account acts as in ``workspace_id`` (``channels/answering.py``).

        A linked account acts as its member there; any other account is an
        outside operator, holding ``telegram:<id>`` alone: it may answer what
        names that id (a session's ``telegram_id``) and nothing else.
        """
        return await channel_actor(self.teams, "telegram", str(telegram_user_id), workspace_id)

    async def answer_as(
        self,
        request_id: str,
        telegram_user_id: int,
        *,
        option: str | None = None,
        text: str | None = None,
        grant: GrantAsk | None = None,
    ) -> RequestView:
        """Answer for a Telegram user, as the member they linked or as an outside operator.

        ``Requests.answer`` decides whether they may: someone the request is
        not routed to is recorded as ``AnswerRefused`` and refused with
        ``Forbidden`` (``not_an_approver``, or ``role_cannot_answer`` for a
        member whose role never answers); the request is left as it was.
        """
        view = await self.requests.find_request(request_id)
        actor = await self.actor_of(telegram_user_id, view.tenant)
        return await self.requests.answer(
            request_id, option=option, text=text, channel="telegram", actor=actor, grant=grant
        )

    async def open_requests_of(self, telegram_user_id: int, limit: int = 20) -> list[RequestView]:
        """Open requests this Telegram user may answer, oldest first.

        Those of the sessions they operate and, for a linked account, those of
        its member's workspace; either way only the ones routed to them.
        """
        where = (
            "SELECT r.* FROM requests r"
            " JOIN sessions s ON s.tenant = r.tenant AND s.session_id = r.session_id"
            f" WHERE s.telegram_id = ? AND r.status IN {_OPEN}"
            " ORDER BY r.created_at, r.request_id LIMIT ?"
        )
        rows = await self.store.fetch(where, (telegram_user_id, _SCANNED))
        member = await self.teams.identity("telegram", str(telegram_user_id))
        if member is not None:
            rows += await self.store.fetch(
                f"SELECT * FROM requests WHERE tenant = ? AND status IN {_OPEN}"
                " ORDER BY created_at, request_id LIMIT ?",
                (member.workspace_id, _SCANNED),
            )
        found: dict[str, RequestView] = {}
        actors: dict[str, Actor] = {}
        for view in map(request_view, rows):
            if view.request_id in found:
                continue
            if view.tenant not in actors:
                actors[view.tenant] = await self.actor_of(telegram_user_id, view.tenant)
            actor = actors[view.tenant]
            if actor.user_id is not None and not allows(actor.role, "request.answer"):
                continue  # an auditor: nothing is waiting for them
            if route_match(await self.requests.approvers_of(view), actor.principals):
                found[view.request_id] = view
        ordered = sorted(found.values(), key=lambda v: (v.created_at, v.request_id))
        return ordered[:limit]

    async def send_request(self, chat_id: int, view: RequestView) -> Message:
        """Post the question with its buttons; Telegram errors propagate to the caller."""
        return await self.bot.send_message(
            chat_id=chat_id,
            text=await self.request_text(view),
            parse_mode=HTML,
            reply_markup=self.keyboard(view),
        )

    async def request_text(self, view: RequestView) -> str:
        """The question as its message shows it, votes so far named by their members."""
        return request_text(view, await self.voter_names(view))

    async def reply_to(self, chat_id: int, message_id: int, text: str) -> Message:
        """Send ``text`` as a reply to a request's message (sent anyway if it was deleted)."""
        return await self.bot.send_message(
            chat_id=chat_id,
            text=text,
            parse_mode=HTML,
            reply_parameters=ReplyParameters(
                message_id=message_id, allow_sending_without_reply=True
            ),
        )

    async def show(self, chat_id: int, view: RequestView) -> Message:
        """Send a request and record it (``/pending``): no retries, errors propagate."""
        message = await self.send_request(chat_id, view)
        sent = Sent(
            Delivery(str(chat_id), str(message.message_id)),
            shown_text=await self.request_text(view),
            shown_options=tuple(option.label for option in view.options),
        )

        async def show_decided(decided: RequestView) -> None:
            await self.show_outcome(chat_id, message.message_id, decided)

        await record_sent(self.requests, "telegram", view, sent, show_decided)
        return message

    async def show_outcome(self, chat_id: int, message_id: int, view: RequestView) -> None:
        """Edit a request's message to say how it ended; its buttons go away."""
        names = await self.voter_names(view)
        grant = await self.grant_issued_by(view)
        text = outcome_text(view, await self.responder_name(view), names, grant)
        await self._edit(chat_id, message_id, view, text, None)

    async def grant_issued_by(self, view: RequestView) -> IssuedGrant | None:
        """The standing grant approving ``view`` issued, if it issued one."""
        if not view.approved or view.action is None or not view.grantable:
            return None
        rows = await self.store.fetch(
            "SELECT grant_id, issued_at, expires_at FROM grants WHERE request_id = ?",
            (view.request_id,),
        )
        if not rows:
            return None
        grant = msgspec.convert(rows[0], _GrantRow, strict=False)
        return IssuedGrant(grant.grant_id, (grant.expires_at - grant.issued_at).total_seconds())

    async def show_progress(self, chat_id: int, message_id: int, view: RequestView) -> None:
        """Edit an open request's message to show the votes so far; its buttons stay."""
        text = await self.request_text(view)
        await self._edit(chat_id, message_id, view, text, self.keyboard(view))

    async def show_state(self, chat_id: int, message_id: int, view: RequestView) -> None:
        """Edit a request's message to show it as it is now: its outcome, or its votes."""
        if view.final:
            await self.show_outcome(chat_id, message_id, view)
        else:
            await self.show_progress(chat_id, message_id, view)

    async def _edit(
        self, chat_id: int, message_id: int, view: RequestView, text: str, markup: Keyboard
    ) -> None:
        try:
            await self.bot.edit_message_text(
                text=text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=HTML,
                # A reply prompt is no inline keyboard: an edit cannot keep one, only drop it.
                reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
            )
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return  # already shows it (an edit redone after a restart)
            # Deleted by the user, or too old to edit: nothing more to do.
            log.warning(
                "telegram message could not be edited",
                request_id=view.request_id,
                chat_id=chat_id,
                message_id=message_id,
                error=exc.message,
            )

    async def responder_name(self, view: RequestView) -> str | None:
        """The username of the member who decided, if a member did."""
        return None if view.responder is None else await self._username(view.responder)

    async def voter_names(self, view: RequestView) -> dict[str, str]:
        """The usernames of the members who voted on ``view``, by user id."""
        names: dict[str, str] = {}
        for vote in votes_of(view):
            name = await self._username(vote.member)
            if name is not None:
                names[vote.member] = name
        return names

    async def _username(self, actor_id: str) -> str | None:
        if ":" in actor_id:  # telegram:<id>, apikey:<id>: no member
            return None
        member = await self.teams.membership(actor_id, answers=False)
        return member.username if member is not None else None

    async def request_of_message(self, chat_id: int, message_id: int) -> str | None:
        """The request a message shows, if it shows one."""
        rows = await self.store.fetch(
            "SELECT request_id FROM telegram_messages WHERE chat_id = ? AND message_id = ?",
            (chat_id, message_id),
        )
        return rows[0]["request_id"] if rows else None
