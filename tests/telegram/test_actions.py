"""Issue 20 on Telegram: the action in the message, "Edit in console", "Allow 30 min".

A request bound to an action shows its tool, one line per arg and its short
fingerprint; an editable one links to its console page; a grantable one
(quorum 1) has "✅ Allow 30 min", which approves and issues a 30-minute grant:
the next identical request is approved at creation and never sent to Telegram.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
import pytest
from aiohttp import web

from loopgate.channels.telegram.callbacks import CallbackSigner, ForgedCallback
from loopgate.channels.telegram.render import (
    ALLOW_LABEL,
    EDIT_LABEL,
    MAX_MESSAGE_CHARS,
    request_text,
    visible_length,
)
from loopgate.config import Config, ConsoleConfig, ServerConfig, TelegramConfig, console_public_url
from loopgate.events import Action, GrantIssued, RequestDelivered, ResponseReceived
from loopgate.store.base import EventStore
from loopgate.views import RequestView
from loopgate.web.app import create_app
from telegram.conftest import AppFactory, Client
from telegram.fake_bot_api import FakeBotAPI
from telegram.helpers import OPERATOR, Shown, TelegramApp, telegram_config
from telegram.test_render import view as render_view

WIRE = {
    "tool": "wire_transfer",
    "args": {"amount": 1500000, "to": "<ACME & Co>", "memo": "m" * 300, "tags": ["a", "b"]},
}
DEPLOY = {"tool": "deploy", "args": {"env": "staging", "version": "v2.1"}}
BOB_TG = 5005


async def create(tg: TelegramApp, **fields: Any) -> dict[str, Any]:
    body = {
        "session_id": "s1",
        "client_id": "agent",
        "message": "Go ahead?",
        "request_type": "confirmation",
        **fields,
    }
    response = await tg.client.post("/v1/requests", json=body)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def press(tg: TelegramApp, shown: Shown, label: str, update_id: int | None = None) -> Any:
    (button,) = [b for b in shown.buttons() if b["text"] == label]
    update = tg.fake.callback_update(
        from_id=OPERATOR,
        chat_id=shown.chat_id,
        message_id=shown.message_id,
        data=button["callback_data"],
        update_id=update_id,
    )
    response = await tg.post_update(update)
    assert response.status == 200
    return update


async def grants(tg: TelegramApp) -> list[dict[str, Any]]:
    response = await tg.client.get("/v1/grants")
    assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = (await response.json())["grants"]
    return found


async def test_the_message_shows_the_tool_the_args_and_the_short_fingerprint(
    tg: TelegramApp,
) -> None:
    await tg.register()
    created = await create(tg, action=WIRE)
    shown = await tg.delivered(created["request_id"])
    text = shown.message["text"]

    assert "🛠 <b>wire_transfer</b>" in text
    assert "<code>amount</code>: 1500000" in text
    assert "<code>to</code>: &lt;ACME &amp; Co&gt;" in text  # escaped like the question
    assert '<code>tags</code>: ["a","b"]' in text
    memo = next(line for line in text.splitlines() if "<code>memo</code>" in line)
    assert memo.endswith("…") and len(memo) < 150  # a long value is cut
    fingerprint = created["fingerprint"]
    assert f"🔏 <code>{fingerprint[:12]}</code>" in text and fingerprint not in text
    # Below the question.
    assert text.index("Go ahead?") < text.index("wire_transfer")
    # What the log says was shown is what was shown.
    delivery = await tg.wait_for_event(created["request_id"], RequestDelivered)
    assert isinstance(delivery, RequestDelivered) and delivery.shown_text == text
    # A plain request has neither extra button.
    labels = [b["text"] for b in shown.buttons()]
    assert labels == ["Approve", "Reject"]


def _view(**changes: Any) -> RequestView:
    fields = {
        "session_id": "s" * 64,
        "client_id": "c" * 64,
        "message": "&" * 2500,
        "metadata": {f"k{i}" * 10: "<" * 100 for i in range(12)},
    }
    return render_view(**(fields | changes))


def test_a_huge_action_is_cut_to_fit_telegrams_limit_args_first() -> None:
    args = {f"arg{i:02}" + "x" * 40: "&" * 400 for i in range(30)}
    view = _view(action=Action(tool="t" * 100, args=args), fingerprint="ab" * 32)
    text = request_text(view)
    assert visible_length(text) <= MAX_MESSAGE_CHARS
    # The whole question is still there; the args gave way.
    assert html.unescape(text).count("&") >= 2500
    assert "more" in text and "🔏 <code>abababababab</code>" in text
    shown_args = [line for line in text.splitlines() if line.startswith("  <code>arg")]
    assert len(shown_args) < 30
    # With room to spare, every arg is shown (up to twenty).
    small = _view(
        message="Pay?",
        metadata={},
        action=Action(tool="t", args={f"a{i}": i for i in range(5)}),
    )
    assert sum(line.startswith("  <code>a") for line in request_text(small).splitlines()) == 5


async def test_an_editable_request_links_to_its_console_page(tg_app: AppFactory) -> None:
    tg = await tg_app()
    await tg.register()
    created = await create(tg, action=DEPLOY, editable=True)
    shown = await tg.delivered(created["request_id"])
    (edit,) = [b for b in shown.buttons() if b["text"] == EDIT_LABEL]
    # The test config sets neither console.public_url nor a webhook URL: server.host:port.
    assert edit["url"] == f"http://127.0.0.1:8080/console/requests/{created['request_id']}"
    assert "callback_data" not in edit
    assert ALLOW_LABEL not in [b["text"] for b in shown.buttons()]


def test_the_console_url_comes_from_the_setting_or_the_webhook_or_the_bind() -> None:
    assert console_public_url(Config()) == "http://127.0.0.1:8080"
    bound = Config(server=ServerConfig(host="::1", port=9000))
    assert console_public_url(bound) == "http://[::1]:9000"
    hooked = Config(telegram=TelegramConfig(webhook_url="https://lg.example:8443/telegram/webhook"))
    assert console_public_url(hooked) == "https://lg.example:8443"
    told = msgspec.structs.replace(
        hooked, console=ConsoleConfig(public_url="https://console.example/lg/")
    )
    assert console_public_url(told) == "https://console.example/lg"


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://console.example/lg", "https://console.example/lg/console/requests/"),
        ("console.example", None),  # not http(s): no button, the others stay
    ],
)
async def test_console_public_url_makes_the_edit_link(
    store: EventStore,
    fake_telegram: FakeBotAPI,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    public_url: str,
    expected: str | None,
) -> None:
    settings = msgspec.structs.replace(
        config,
        telegram=telegram_config(fake_telegram),
        console=ConsoleConfig(public_url=public_url),
    )
    app = create_app(settings, store=store)
    tg = TelegramApp(await aiohttp_client(app), fake_telegram, store)
    await tg.register()
    created = await create(tg, action=DEPLOY, editable=True, grantable=True)
    shown = await tg.delivered(created["request_id"])
    urls = [b["url"] for b in shown.buttons() if b["text"] == EDIT_LABEL]
    assert urls == ([] if expected is None else [expected + created["request_id"]])
    assert ALLOW_LABEL in [b["text"] for b in shown.buttons()]


async def test_allow_30_min_grants_and_the_next_identical_request_never_reaches_telegram(
    tg: TelegramApp,
) -> None:
    await tg.register()
    first = await create(tg, message="Deploy staging?", action=DEPLOY, grantable=True)
    rid = first["request_id"]
    shown = await tg.delivered(rid)
    allow = next(b for b in shown.buttons() if b["text"] == ALLOW_LABEL)
    assert len(allow["callback_data"].encode()) <= 64

    await press(tg, shown, ALLOW_LABEL)
    answer = await tg.fake.wait_for_call("answerCallbackQuery")
    assert answer["text"] == "Approved and allowed for 30 min"
    (grant,) = await grants(tg)
    assert (grant["scope"], grant["active"], grant["request_id"]) == ("exact", True, rid)
    assert grant["fingerprint"] == first["fingerprint"] and grant["tool"] == "deploy"
    issued = datetime.fromisoformat(grant["issued_at"])
    assert (datetime.fromisoformat(grant["expires_at"]) - issued).total_seconds() == 1800
    response = await tg.wait_for_event(rid, ResponseReceived)
    assert isinstance(response, ResponseReceived) and response.channel == "telegram"
    assert response.responder == f"telegram:{OPERATOR}"

    # The message is edited like any decision, and says so.
    edited = await tg.fake.wait_for_call("editMessageText")
    assert (edited["chat_id"], edited["message_id"]) == (shown.chat_id, shown.message_id)
    assert (
        f"Approved and allowed for 30 min</b> (grant <code>{grant['grant_id'][:8]}</code>)"
        in edited["text"]
    )
    assert "deploy" in edited["text"]
    assert "reply_markup" not in tg.fake.messages[shown.chat_id, shown.message_id]

    # The same action again: approved at creation, by the grant.
    second = await create(tg, message="Deploy staging again?", action=DEPLOY)
    assert (second["status"], second["outcome"]) == ("answered", "approved")
    assert second["decided_by"]["kind"] == "policy"
    assert second["decided_by"]["id"] == f"grant:{grant['grant_id']}"
    # ... and never sent to Telegram, as a request a policy rule decided: once a
    # request made after it is delivered, it still has no message.
    later = await create(tg, message="Something else?", action={"tool": "other", "args": {}})
    await tg.delivered(later["request_id"])
    await asyncio.sleep(0.1)
    assert RequestDelivered not in await tg.event_types(second["request_id"])
    sent = [call["text"] for call in tg.fake.calls_to("sendMessage")]
    assert not any("Deploy staging again?" in text for text in sent)
    assert len(sent) == 2


async def test_a_replayed_allow_press_changes_nothing(tg: TelegramApp) -> None:
    await tg.register()
    created = await create(tg, action=DEPLOY, grantable=True)
    rid = created["request_id"]
    shown = await tg.delivered(rid)
    update = await press(tg, shown, ALLOW_LABEL)
    await tg.wait_for_event(rid, ResponseReceived)
    await tg.fake.wait_for_call("editMessageText")
    before = await tg.events(rid)
    assert sum(isinstance(e, GrantIssued) for e in before) == 1

    # Telegram delivers the same update again, then the same button is pressed again.
    assert (await tg.post_update(update)).status == 200
    await press(tg, shown, ALLOW_LABEL)
    await tg.fake.wait_for_call("answerCallbackQuery", count=2)
    assert await tg.events(rid) == before
    assert len(await grants(tg)) == 1


async def test_no_allow_button_unless_grantable_with_a_quorum_of_one(tg: TelegramApp) -> None:
    alice = await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    await tg.member("carol")
    await tg.link(bob, BOB_TG)
    await tg.teams.define_group(alice.actor(), "finance", ["bob", "carol"])
    await tg.register()

    plain = await create(tg, action=DEPLOY)
    assert ALLOW_LABEL not in [
        b["text"] for b in (await tg.delivered(plain["request_id"])).buttons()
    ]
    quorum = await create(tg, action=DEPLOY, grantable=True, approvers=["group:finance"], quorum=2)
    shown = await tg.delivered(quorum["request_id"])
    assert shown.chat_id == BOB_TG
    assert [b["text"] for b in shown.buttons()] == ["Approve", "Reject"]


def test_an_allow_button_cannot_be_made_from_a_plain_one() -> None:
    signer = CallbackSigner.for_bot_token("123456:secret-token")
    plain = signer.sign("abc", 0)
    prefix, ref, index, tag = plain.split(".")
    with pytest.raises(ForgedCallback):
        signer.verify_press(".".join((prefix, ref, index + "g", tag)))
    granting = signer.sign("abc", 0, grant=True)
    assert signer.verify_press(granting) == ("abc", 0, True)
    assert signer.verify_press(plain) == ("abc", 0, False)
    with pytest.raises(ForgedCallback):
        signer.verify(granting)  # the plain reader never takes a grant for an answer
