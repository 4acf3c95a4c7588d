"""Issue 21's must-shows across channels: Telegram, Slack and email on one server.

One member linked on all three gets one message on each; a click in Slack
decides the request once, the Telegram and Slack messages both come to say
so, and the mailed link then says "already decided". A quorum of two is met
by one vote from Slack and one from Telegram. The three services are local
fakes that the real libraries talk to (aiogram, slack_sdk/slack_bolt,
aiosmtplib).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from slack_channel.fake_slack_api import FakeSlackAPI, Posted
from slack_channel.fake_slack_api import running_fake as running_slack
from slack_channel.helpers import SlackApp, slack_config
from smtp_sink import SmtpSink
from telegram.fake_bot_api import FakeBotAPI
from telegram.fake_bot_api import running_fake as running_telegram
from telegram.helpers import TelegramApp, telegram_config
from telegram.test_votes_must_show import press_on_telegram
from waiting import eventually

from loopgate.config import Config, EmailConfig
from loopgate.events import Event, RequestDelivered, ResponseReceived, VoteCast
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

Client = TestClient[Any, Any]
BOB_TG, BOB_SLACK, BOB_MAIL = 5005, "U0BOB", "bob@example.com"
CAROL_TG, CAROL_SLACK = 6006, "U0CAROL"
_LINK = re.compile(r"https?://\S+/email/answer/[A-Za-z0-9_.=-]+")


class Everywhere:
    """One app with every channel on; ``tg`` and ``sl`` are the channels' own test handles."""

    def __init__(
        self,
        client: Client,
        store: EventStore,
        telegram: FakeBotAPI,
        slack: FakeSlackAPI,
        smtp: SmtpSink,
    ) -> None:
        self.client, self.smtp = client, smtp
        self.tg = TelegramApp(client, telegram, store)
        self.sl = SlackApp(client, slack, store)

    async def events(self, request_id: str) -> list[Event]:
        return await self.tg.events(request_id)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeBotAPI, FakeSlackAPI]]:
    async with running_telegram() as telegram, running_slack() as slack:
        yield telegram, slack


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def everywhere(
    store: EventStore,
    fakes: tuple[FakeBotAPI, FakeSlackAPI],
    smtp: SmtpSink,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> Everywhere:
    telegram, slack = fakes
    settings = msgspec.structs.replace(
        config,
        telegram=telegram_config(telegram),
        slack=slack_config(slack),
        email=EmailConfig(
            smtp_url=smtp.url,
            public_url="http://loopgate.test",
            delivery_attempts=3,
            retry_seconds=0.05,
        ),
    )
    app = create_app(settings, store=store)
    return Everywhere(await aiohttp_client(app), store, telegram, slack, smtp)


async def linked_everywhere(
    on: Everywhere, name: str, tg_id: int, slack_id: str, address: str | None = None
) -> str:
    """A member linked on Telegram and Slack (and to ``address``), as they would; their user id."""
    member = await on.tg.member(name)
    await on.tg.link(member, tg_id)
    await on.sl.link(member, slack_id)
    if address is not None:
        code, _ = await on.tg.teams.issue_link_code(member.actor(), "email")
        await on.tg.teams.link_identity(code, "email", address, display=address)
    return member.user_id


def slack_message(on: Everywhere, deliveries: list[RequestDelivered], address: str) -> Posted:
    """The Slack message delivered to ``address``, as the fake holds it now."""
    (delivery,) = [d for d in deliveries if d.channel == "slack" and d.address == address]
    assert delivery.conversation is not None and delivery.external_message_id is not None
    return on.sl.fake.message(delivery.conversation, delivery.external_message_id)


async def test_one_message_per_channel_one_decision_from_slack_shown_everywhere(
    everywhere: Everywhere,
) -> None:
    on = everywhere
    await on.tg.member("alice", role="owner")
    bob = await linked_everywhere(on, "bob", BOB_TG, BOB_SLACK, BOB_MAIL)
    await on.tg.register(telegram_id=None)
    sent_before = len(on.tg.fake.calls_to("sendMessage"))  # the "Linked" reply
    request_id = await on.tg.ask(
        request_type="confirmation", approvers=["user:bob"], message="Deploy v2.1 to prod?"
    )

    deliveries = [
        d
        for d in await on.tg.wait_for_events(request_id, RequestDelivered, count=3)
        if isinstance(d, RequestDelivered)
    ]
    assert sorted(d.channel for d in deliveries) == ["email", "slack", "telegram"]
    assert len(on.tg.fake.calls_to("sendMessage")) == sent_before + 1
    posts = on.sl.fake.succeeded("chat.postMessage")
    assert [p.params["channel"] for p in posts] == [BOB_SLACK]
    (mail,) = on.smtp.to(BOB_MAIL)
    links = _LINK.findall(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert len(links) == 2  # Approve, Reject

    await on.sl.click(slack_message(on, deliveries, BOB_SLACK), "Approve", BOB_SLACK)

    (decided,) = await on.tg.wait_for_events(request_id, ResponseReceived)
    assert isinstance(decided, ResponseReceived)
    assert (decided.responder, decided.channel, decided.option) == (bob, "slack", "Approve")
    telegram_delivery = next(d for d in deliveries if d.channel == "telegram")
    slack_delivery = next(d for d in deliveries if d.channel == "slack")
    assert telegram_delivery.external_message_id and slack_delivery.external_message_id

    def telegram_shows_it() -> bool:
        shown = on.tg.fake.messages[(BOB_TG, int(telegram_delivery.external_message_id or 0))]
        return "Approve" in shown["text"] and not (shown.get("reply_markup") or {}).get(
            "inline_keyboard"
        )

    def slack_shows_it() -> bool:
        shown = on.sl.fake.message(
            slack_delivery.conversation or "", slack_delivery.external_message_id or ""
        )
        return not shown.buttons() and "Approve" in shown.all_text()

    await eventually(telegram_shows_it)
    await eventually(slack_shows_it)

    page = await on.client.get(links[0].split("loopgate.test", 1)[1])
    assert "Already decided" in await page.text()
    events = await on.events(request_id)
    assert sum(isinstance(e, ResponseReceived) for e in events) == 1


async def test_a_quorum_of_two_is_met_by_a_slack_vote_and_a_telegram_vote(
    everywhere: Everywhere,
) -> None:
    on = everywhere
    alice = await on.tg.member("alice", role="owner")
    bob = await linked_everywhere(on, "bob", BOB_TG, BOB_SLACK)
    carol = await linked_everywhere(on, "carol", CAROL_TG, CAROL_SLACK)
    await on.tg.teams.define_group(alice.actor(), "ops", ["bob", "carol"])
    await on.tg.register(telegram_id=None)
    request_id = await on.tg.ask(
        request_type="confirmation", approvers=["group:ops"], quorum=2, message="Rotate keys?"
    )
    deliveries = [
        d
        for d in await on.tg.wait_for_events(request_id, RequestDelivered, count=4)
        if isinstance(d, RequestDelivered)
    ]
    await on.sl.click(slack_message(on, deliveries, BOB_SLACK), "Approve", BOB_SLACK)
    await on.tg.wait_for_events(request_id, VoteCast)
    await press_on_telegram(on.tg, request_id, CAROL_TG, "Approve", chats=4)

    (decided,) = await on.tg.wait_for_events(request_id, ResponseReceived)
    assert isinstance(decided, ResponseReceived) and decided.option == "Approve"
    assert [(v.member, v.channel) for v in decided.votes] == [
        (bob, "slack"),
        (carol, "telegram"),
    ]
