"""What the bot does with updates: button presses, text replies and commands.

A Telegram account a member linked (``/start <code>``, the deep link of
``POST /v1/me/links/telegram``) acts as that member; any other account is an
outside operator, known by its id alone (a session's ``telegram_id``). Only
someone a request is routed to may answer it: ``Requests.answer`` records
anyone else's attempt as ``AnswerRefused`` and the bot says no politely. A
text reply is matched to its request by the message it replies to
(``telegram_messages``), never by parsing the text. Every refusal explains
itself in the chat.

:func:`build_router` makes a fresh router each time: an aiogram router can
belong to one dispatcher only, and each app (and each test) has its own.
"""

from __future__ import annotations

import structlog
from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message

# ALREADY_VOTED is one of this channel's texts too (shared with every channel).
from loopgate.channels.answering import ALREADY_VOTED as ALREADY_VOTED
from loopgate.channels.answering import Refusals, link_refusals
from loopgate.channels.telegram.callbacks import ANSWER_PREFIX, GRANT_SECONDS, ForgedCallback
from loopgate.channels.telegram.desk import HTML, OperatorDesk
from loopgate.channels.telegram.render import duration_text, escape
from loopgate.domain.request import GrantAsk
from loopgate.errors import Conflict, DomainError, Forbidden, Gone, LoopgateError, NotFound
from loopgate.views import RequestView

log = structlog.get_logger(__name__)

PENDING_SHOWN = 10

NOT_AN_APPROVER = "Sorry, this request is not routed to you, so you cannot answer it."
ROLE_CANNOT_ANSWER = "Sorry, your role in this workspace cannot answer requests."
REQUESTER_CANNOT_APPROVE = (
    "You asked for this request, so someone else must approve it: your vote does not count."
)
REFUSED = Refusals(NOT_AN_APPROVER, ROLE_CANNOT_ANSWER, REQUESTER_CANNOT_APPROVE)
LINK_REFUSED = link_refusals("Telegram")
"""What ``/start <code>`` says when the code links nothing, by the error's code."""
INVALID_BUTTON = "This button is not valid."
REFUSALS = (DomainError, Conflict, Forbidden, NotFound)
"""What an answer may be refused with: each is explained in the chat (:func:`explain`)."""
HOW_TO_ANSWER = (
    "To answer a request, tap one of its buttons or reply to its message. "
    "/pending shows the requests waiting for you."
)


def build_router() -> Router:
    router = Router(name="loopgate")
    router.message.register(on_link, CommandStart(deep_link=True))
    router.message.register(on_start, CommandStart())
    router.message.register(on_pending, Command("pending"))
    router.message.register(on_status, Command("status"))
    router.callback_query.register(on_answer_button, F.data.startswith(f"{ANSWER_PREFIX}."))
    router.callback_query.register(on_unknown_button)
    router.message.register(on_reply, F.reply_to_message, F.text)
    router.message.register(on_other_message)
    return router


def explain(error: LoopgateError, view: RequestView | None) -> str:
    """Why an answer was not taken, in the operator's words."""
    said = REFUSED.explain(error, view)
    if said is not None:
        return said
    if error.code == "text_not_allowed" and view is not None:
        labels = ", ".join(option.label for option in view.options)
        return f"This request takes one of its buttons: {labels}."
    return error.message


async def on_answer_button(query: CallbackQuery, desk: OperatorDesk) -> None:
    try:
        request_id, index, grants = desk.signer.verify_press(query.data or "")
    except ForgedCallback as exc:
        log.warning("telegram button refused", user_id=query.from_user.id, reason=str(exc))
        await query.answer(INVALID_BUTTON, show_alert=True)
        return
    try:
        view = await desk.requests.find_request(request_id)
    except NotFound as exc:
        await query.answer(explain(exc, None), show_alert=True)
        return
    if index >= len(view.options):
        await query.answer(INVALID_BUTTON, show_alert=True)
        return
    label = view.options[index].label
    # "✅ Allow 30 min": approve, and let the same action of the session through for a while.
    grant = GrantAsk(seconds=GRANT_SECONDS, scope="exact") if grants else None
    try:
        answered = await desk.answer_as(request_id, query.from_user.id, option=label, grant=grant)
    except REFUSALS as exc:
        await _refused(query, desk, exc, request_id)
        return
    log.info(
        "telegram answer",
        request_id=request_id,
        user_id=query.from_user.id,
        option=label,
        grant=grants,
    )
    if grant is not None and answered.approved:
        await query.answer(f"Approved and allowed for {duration_text(GRANT_SECONDS)}")
        return
    await query.answer(f"Recorded: {label}{_still_open(answered)}")


def _still_open(view: RequestView) -> str:
    """After a vote that did not decide: how far the request is from its quorum."""
    if view.final:
        return ""
    return f" ({view.approvals} of {view.quorum} approvals so far)"


async def _refused(
    query: CallbackQuery, desk: OperatorDesk, error: LoopgateError, request_id: str
) -> None:
    view = await desk.requests.find_request(request_id)
    await query.answer(explain(error, view), show_alert=True)
    if view.final and isinstance(error, DomainError) and query.message:
        # A press on a stale message: make the message say how it ended.
        await desk.show_outcome(query.message.chat.id, query.message.message_id, view)


async def on_unknown_button(query: CallbackQuery) -> None:
    log.warning("telegram button refused", user_id=query.from_user.id, reason="unknown data")
    await query.answer(INVALID_BUTTON, show_alert=True)


async def on_reply(message: Message, desk: OperatorDesk) -> None:
    assert message.reply_to_message is not None and message.text is not None
    if message.from_user is None:
        return
    request_id = await desk.request_of_message(message.chat.id, message.reply_to_message.message_id)
    if request_id is None:
        await message.reply("That message is not a request, so your reply answers nothing.")
        return
    view = await desk.requests.find_request(request_id)
    # Typing a button's label is the same as tapping it.
    typed = message.text.strip().casefold()
    option = next((o.label for o in view.options if o.label.strip().casefold() == typed), None)
    try:
        answered = await desk.answer_as(
            request_id,
            message.from_user.id,
            option=option,
            text=None if option is not None else message.text,
        )
    except REFUSALS as exc:
        await message.reply(explain(exc, await desk.requests.find_request(request_id)))
        return
    log.info("telegram answer", request_id=request_id, user_id=message.from_user.id, text=True)
    if not answered.final:
        await message.reply(f"Your vote is recorded{_still_open(answered)}.")
        return
    verdict = "approved" if answered.approved else "rejected"
    await message.reply(f"Recorded ({verdict}).")


async def on_other_message(message: Message) -> None:
    await message.reply(HOW_TO_ANSWER)


async def on_start(message: Message) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    await message.answer(
        "👋 This is Loopgate: agents ask here, you decide.\n\n"
        f"Your Telegram id is <code>{user_id}</code>. Register an agent session with "
        f'<code>"telegram_id": {user_id}</code> and its requests come to this chat, '
        "with buttons to answer them.\n\n" + escape(HOW_TO_ANSWER),
        parse_mode=HTML,
    )


async def on_link(message: Message, command: CommandObject, desk: OperatorDesk) -> None:
    """``/start <code>``: link this Telegram account to the member who asked for the code."""
    if message.from_user is None or not command.args:
        return
    user = message.from_user
    display = f"@{user.username}" if user.username else user.full_name
    try:
        member = await desk.teams.link_identity(
            command.args.strip(), "telegram", str(user.id), display=display
        )
    except (NotFound, Conflict, Gone) as exc:
        log.info("telegram link refused", user_id=user.id, reason=exc.code)
        await message.answer(LINK_REFUSED.get(exc.code, f"Not linked: {exc.message}"))
        return
    log.info("telegram account linked", user_id=user.id, member=member.user_id)
    await message.answer(
        f"Linked: this Telegram account acts as {member.username} in Loopgate now. "
        "Requests routed to you come to this chat.\n\n" + HOW_TO_ANSWER
    )


async def on_pending(message: Message, desk: OperatorDesk) -> None:
    if message.from_user is None:
        return
    views = await desk.open_requests_of(message.from_user.id, limit=PENDING_SHOWN + 1)
    if not views:
        await message.answer("Nothing is waiting for you. 🎉")
        return
    shown = views[:PENDING_SHOWN]
    more = f" (showing the oldest {PENDING_SHOWN})" if len(views) > PENDING_SHOWN else ""
    await message.answer(f"{len(shown)} request(s) waiting for you{more}:")
    for view in shown:
        await desk.show(message.chat.id, view)


async def on_status(message: Message, desk: OperatorDesk) -> None:
    if message.from_user is None:
        return
    rows = await desk.store.fetch(
        "SELECT COUNT(*) AS sessions FROM sessions WHERE telegram_id = ? AND active = TRUE",
        (message.from_user.id,),
    )
    views = await desk.open_requests_of(message.from_user.id, limit=1000)
    lines = [
        "Loopgate is running.",
        f"Active sessions you operate: {rows[0]['sessions']}",
        f"Requests waiting for you: {len(views)}",
    ]
    if views:
        lines.append(f"Oldest since: {views[0].created_at:%Y-%m-%d %H:%M} UTC")
    await message.answer("\n".join(lines))
