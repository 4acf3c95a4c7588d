"""Linking a Telegram account to a member: the deep link, ``/start <code>`` and its refusals."""

from __future__ import annotations

from datetime import timedelta

from loopgate.channels.telegram.handlers import LINK_REFUSED
from loopgate.commands.base import utcnow
from loopgate.events import IdentityLinked, LinkCodeIssued
from loopgate.teams import Teams
from loopgate.teams.service import digest
from loopgate.web.keys import TELEGRAM
from telegram.conftest import AppFactory
from telegram.fake_bot_api import BOT_USER, FakeBotAPI
from telegram.helpers import STRANGER, TelegramApp

BOB_TG = 5005
CAROL_TG = 6006


async def test_the_deep_link_names_the_bot_and_carries_the_code(tg: TelegramApp) -> None:
    runtime = tg.client.app[TELEGRAM]
    await runtime.identified.wait()  # getMe, asked at start
    assert runtime.deep_link("AbC_123-x") == (
        f"https://t.me/{BOT_USER['username']}?start=AbC_123-x"
    )


async def test_telegram_down_at_start_gives_no_deep_link_until_the_bot_is_known(
    tg_app: AppFactory, fake_telegram: FakeBotAPI
) -> None:
    fake_telegram.fail_next("getMe", error_code=502, description="Bad Gateway")
    tg = await tg_app()
    runtime = tg.client.app[TELEGRAM]
    await tg.fake.wait_for_call("getMe", failed=True)
    # Retried after a second: until then the member can type /start <code> by hand.
    assert runtime.deep_link("code") is None
    await runtime.identified.wait()
    assert runtime.deep_link("code") == f"https://t.me/{BOT_USER['username']}?start=code"


async def test_start_with_a_code_links_the_account_to_the_member_who_asked(
    tg: TelegramApp,
) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    code = await tg.link_code(bob)

    reply = await tg.say(BOB_TG, f"/start {code}")

    assert reply["chat_id"] == BOB_TG
    assert "acts as bob" in reply["text"]
    linked = await tg.teams.identity("telegram", str(BOB_TG))
    assert linked is not None
    assert (linked.user_id, linked.workspace_id) == (bob.user_id, "local")
    assert f"telegram:{BOB_TG}" in linked.principals
    (member,) = [m for m in await tg.teams.members("local") if m.username == "bob"]
    (identity,) = member.identities
    assert (identity.channel, identity.external_id) == ("telegram", str(BOB_TG))
    assert identity.display == f"@user{BOB_TG}"  # the fake's usernames
    # The code is kept as its digest only, and the link names the Telegram account.
    stream = await tg.store.read_stream(f"linkcode-{digest(code)[:32]}")
    issued, link = (record.event for record in stream)
    assert isinstance(issued, LinkCodeIssued) and issued.code_hash == digest(code)
    assert isinstance(link, IdentityLinked) and link.user_id == bob.user_id
    assert stream[1].meta.actor == f"telegram:{BOB_TG}"


async def test_plain_start_still_tells_the_user_their_id(tg: TelegramApp) -> None:
    reply = await tg.say(STRANGER, "/start")
    assert f"<code>{STRANGER}</code>" in reply["text"]
    assert await tg.teams.identity("telegram", str(STRANGER)) is None


async def test_a_code_links_once(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    code = await tg.link_code(bob)
    await tg.say(BOB_TG, f"/start {code}")

    reply = await tg.say(STRANGER, f"/start {code}")

    assert reply["text"] == LINK_REFUSED["link_code_used"]
    assert await tg.teams.identity("telegram", str(STRANGER)) is None


async def test_an_expired_code_links_nothing(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    # Issued eleven minutes ago: codes last ten.
    earlier = Teams(tg.store, clock=lambda: utcnow() - timedelta(minutes=11))
    code, _ = await earlier.issue_link_code(bob.actor(), "telegram")

    reply = await tg.say(BOB_TG, f"/start {code}")

    assert reply["text"] == LINK_REFUSED["link_code_expired"]
    assert await tg.teams.identity("telegram", str(BOB_TG)) is None


async def test_an_unknown_code_links_nothing(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    reply = await tg.say(BOB_TG, "/start NoSuchCode_0123456789")
    assert reply["text"] == LINK_REFUSED["link_code_not_found"]
    assert await tg.teams.identity("telegram", str(BOB_TG)) is None


async def test_an_account_linked_to_someone_else_is_refused(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    carol = await tg.member("carol")
    await tg.link(bob, BOB_TG)

    reply = await tg.say(BOB_TG, f"/start {await tg.link_code(carol)}")

    assert reply["text"] == LINK_REFUSED["identity_taken"]
    linked = await tg.teams.identity("telegram", str(BOB_TG))
    assert linked is not None and linked.user_id == bob.user_id
    # Carol can still link an account of her own.
    await tg.link(carol, CAROL_TG)
