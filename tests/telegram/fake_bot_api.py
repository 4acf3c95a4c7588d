"""A local fake of the Telegram Bot API server, for tests.

The real, unmodified aiogram ``Bot`` talks to it over HTTP, so tests exercise
aiogram's own request encoding, response parsing and error mapping. Point a bot
at it with ``AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

TEST_TOKEN = "123456:TEST-token"
BOT_ID = 123456
BOT_USER: dict[str, Any] = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Loopgate",
    "username": "loopgate_test_bot",
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup"
    " are exactly the same as a current content and reply markup of the message"
)
# Telegram treats these as plain strings: JSON-decoding a text of "42" would turn it into an int.
_STRING_FIELDS = frozenset(
    {"text", "caption", "parse_mode", "callback_query_id", "url", "secret_token", "action"}
)

Params = dict[str, Any]


@dataclass
class Call:
    """One request the fake answered; ``failed`` when the answer was an error.

    ``at`` is ``time.monotonic()`` when the call was answered (recorded just before the reply).
    """

    method: str
    params: Params
    failed: bool = False
    at: float = field(default_factory=time.monotonic)


@dataclass
class _APIError(Exception):
    """Raised by a method handler to answer with a Telegram error."""

    error_code: int
    description: str
    retry_after: int | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _decode(key: str, value: Any) -> Any:
    """Undo aiogram's form encoding: nested objects, numbers and bools arrive as JSON text."""
    if key in _STRING_FIELDS or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _inline_markup(markup: Any) -> dict[str, Any] | None:
    """Telegram echoes only inline keyboards back on a message."""
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        return markup
    return None


def _user(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": f"User{user_id}",
        "username": f"user{user_id}",
    }


class FakeBotAPI:
    """In-memory Bot API: records calls, keeps sent messages, serves queued updates."""

    def __init__(self, token: str = TEST_TOKEN) -> None:
        self.token = token
        self.base_url = ""
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.webhook: Params | None = None
        self._updates: list[dict[str, Any]] = []
        self._last_update_id = 0
        self._callback_ids = itertools.count(1)
        self._last_message_id: dict[int, int] = {}
        self._failures: dict[str, deque[_APIError]] = {}
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, Callable[[Params], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._true,
            "sendChatAction": self._true,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
        }

    async def start(self) -> str:
        """Serve on a free port of 127.0.0.1, so parallel test runs never collide."""
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        """Stop serving; pending long polls answer [] at once so shutdown never waits on them."""
        self._closing = True
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def calls_to(self, method: str) -> list[Params]:
        return [call.params for call in self.calls if call.method == method]

    async def wait_for_call(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented API
        where: Callable[[Params], bool] | None = None,
        failed: bool = False,
    ) -> Params:
        """Params of the ``count``-th successful (or failed) call to ``method``, once answered."""

        def matching() -> list[Params]:
            return [
                call.params
                for call in self.calls
                if call.method == method
                and call.failed == failed
                and (where is None or where(call.params))
            ]

        if not await self._wait_until(lambda: len(matching()) >= count, timeout):
            seen = "\n".join(f"  {call!r}" for call in self.calls) or "  (none)"
            raise AssertionError(
                f"expected {count} {'failed' if failed else 'successful'} call(s) to {method}"
                f" within {timeout}s;"
                f" calls seen:\n{seen}"
            )
        return matching()[count - 1]

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        error_code: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls to ``method`` with an error (429 when ``retry_after``).

        ``description`` defaults to what Telegram says for that code.
        """
        if retry_after is not None:
            error_code = 429
            description = description or f"Too Many Requests: retry after {retry_after}"
        error = _APIError(error_code, description or HTTPStatus(error_code).phrase, retry_after)
        self._failures.setdefault(method, deque()).extend([error] * times)

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates and wake a waiting long poll."""
        update_id = update.get("update_id") or self._next_update_id()
        self._last_update_id = max(self._last_update_id, update_id)
        self._updates.append({**update, "update_id": update_id})
        self._notify()
        return update_id

    def callback_update(
        self,
        *,
        from_id: int,
        chat_id: int,
        message_id: int,
        data: str,
        update_id: int | None = None,
    ) -> dict[str, Any]:
        """A button press on message ``(chat_id, message_id)``."""
        return {
            "update_id": update_id or self._next_update_id(),
            "callback_query": {
                "id": str(next(self._callback_ids)),
                "from": _user(from_id),
                "chat_instance": str(chat_id),
                "data": data,
                "message": self._message_or_stub(chat_id, message_id),
            },
        }

    def message_update(
        self,
        *,
        from_id: int,
        chat_id: int,
        text: str,
        reply_to_message_id: int | None = None,
        update_id: int | None = None,
    ) -> dict[str, Any]:
        """A private-chat text message; commands carry the entity aiogram's Command filter needs."""
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": _user(from_id),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            length = len(command.encode("utf-16-le")) // 2
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if reply_to_message_id is not None:
            message["reply_to_message"] = self._message_or_stub(chat_id, reply_to_message_id)
        return {"update_id": update_id or self._next_update_id(), "message": message}

    def _next_update_id(self) -> int:
        self._last_update_id += 1
        return self._last_update_id

    def _next_message_id(self, chat_id: int) -> int:
        """Per chat, shared by both sides, as in a Telegram private chat."""
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _message_or_stub(self, chat_id: int, message_id: int) -> dict[str, Any]:
        known = self.messages.get((chat_id, message_id))
        if known is not None:
            return copy.deepcopy(known)
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
        }

    def _notify(self) -> None:
        """Wake every waiter; each re-checks its own condition."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, condition: Callable[[], bool], within: float) -> bool:
        """Event-driven wait; False on timeout."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = await request.post()
        params = {key: _decode(key, value) for key, value in form.items()}
        try:
            if request.match_info["token"] != self.token:
                raise _APIError(401, "Unauthorized")
            handler = self._handlers.get(method)
            if handler is None:
                raise _APIError(404, "Not Found")
            failures = self._failures.get(method)
            if failures:
                raise failures.popleft()
            result = await handler(params)
        except _APIError as error:
            self._record(Call(method, params, failed=True))
            return web.json_response(error.payload(), status=error.error_code)
        self._record(Call(method, params))
        return web.json_response({"ok": True, "result": result})

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._notify()

    async def _true(self, params: Params) -> bool:
        return True

    async def _get_me(self, params: Params) -> dict[str, Any]:
        return BOT_USER

    async def _send_message(self, params: Params) -> dict[str, Any]:
        if not params.get("text"):
            raise _APIError(400, "Bad Request: message text is empty")
        chat_id = params["chat_id"]
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": params["text"],
        }
        if "parse_mode" in params:
            message["parse_mode"] = params["parse_mode"]
        markup = _inline_markup(params.get("reply_markup"))
        if markup is not None:
            message["reply_markup"] = markup
        self.messages[chat_id, message["message_id"]] = message
        return message

    async def _edit_message_text(self, params: Params) -> dict[str, Any]:
        return self._edit(params, text=params.get("text"))

    async def _edit_message_reply_markup(self, params: Params) -> dict[str, Any]:
        return self._edit(params, text=None)

    def _edit(self, params: Params, *, text: str | None) -> dict[str, Any]:
        """Shared by both edits: ``text`` None keeps the text; a missing markup drops it."""
        # Ids start at 1, so 0 stands for "not given" (e.g. an inline_message_id edit).
        message = self.messages.get((params.get("chat_id", 0), params.get("message_id", 0)))
        if message is None:
            raise _APIError(400, "Bad Request: message to edit not found")
        markup = _inline_markup(params.get("reply_markup"))
        new_text = message["text"] if text is None else text
        if new_text == message.get("text") and markup == message.get("reply_markup"):
            raise _APIError(400, NOT_MODIFIED)
        message["text"] = new_text
        if text is not None:
            message.pop("parse_mode", None)
            if "parse_mode" in params:
                message["parse_mode"] = params["parse_mode"]
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return message

    async def _set_webhook(self, params: Params) -> bool:
        self.webhook = params
        return True

    async def _delete_webhook(self, params: Params) -> bool:
        self.webhook = None
        return True

    async def _get_webhook_info(self, params: Params) -> dict[str, Any]:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _get_updates(self, params: Params) -> list[dict[str, Any]]:
        """Long poll as Telegram does: an offset confirms (drops) every earlier update."""
        if self.webhook is not None:
            raise _APIError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset: int = params.get("offset", 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        await self._wait_until(
            lambda: self._closing or bool(self._updates), params.get("timeout", 0)
        )
        return self._updates[: params.get("limit", 100)]


@contextlib.asynccontextmanager
async def running_fake(token: str = TEST_TOKEN) -> AsyncIterator[FakeBotAPI]:
    """For fixtures: a started fake, closed afterwards even when the test fails."""
    fake = FakeBotAPI(token)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
