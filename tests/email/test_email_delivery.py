"""A request routed to members with an email address: the mail, its record, its follow-up."""

from __future__ import annotations

from email.message import EmailMessage

from email_helpers import PUBLIC_URL, AppFactory, EmailApp, html_of, links_in, text_of
from smtp_sink import SmtpSink, dropping
from waiting import eventually

from loopgate.events import (
    DeliveryFailed,
    ExpiryWarned,
    ReminderSent,
    RequestDelivered,
    ResponseReceived,
)

ALICE = "alice@example.com"


async def test_a_routed_member_gets_one_mail_with_a_link_per_option(mail: EmailApp) -> None:
    alice = await mail.member("alice")
    await mail.link_address(alice, ALICE)
    request_id = await mail.ask(
        approvers=["user:alice"],
        message="Deploy v2 to prod?\nIt has the <b>migration</b>.",
        action={"tool": "deploy", "args": {"env": "prod"}},
        metadata={"ticket": "OPS-1"},
    )
    delivery = await mail.delivered(request_id)
    (sent,) = await mail.mails_to(ALICE)
    assert sent["Subject"] == "Approval needed: Deploy v2 to prod?"
    assert sent["To"] == ALICE
    assert sent["Message-ID"] == delivery.external_message_id
    assert delivery.channel == "email" and delivery.address == ALICE
    assert delivery.shown_options == ("Approve", "Reject")
    links = links_in(sent)
    assert sorted(links) == ["Approve", "Reject"]
    assert all(path.startswith("/email/answer/") for path in links.values())
    assert len(set(links.values())) == 2
    text = text_of(sent)
    # What the mail said is in the log, but not its links: each one answers.
    shown = text
    for path in links.values():
        shown = shown.replace(path, "/email/answer/<signed link>")
    assert delivery.shown_text == shown
    log = str([record.event for record in await mail.store.read_all()])
    assert not any(path.rsplit("/", 1)[1] in log for path in links.values())
    for shown in ("Action: deploy", "env: prod", "ticket: OPS-1", f"Sent to {ALICE}", "expires"):
        assert shown in text
    assert f"{PUBLIC_URL}/email/answer/" in text
    page = html_of(sent)
    assert "&lt;b&gt;migration&lt;/b&gt;" in page and "<b>migration" not in page
    # Once: the sender is done with it.
    events = await mail.events(request_id)
    assert sum(isinstance(e, RequestDelivered) for e in events) == 1


async def test_nobody_with_an_address_gets_no_mail(mail: EmailApp) -> None:
    await mail.member("bob")
    request_id = await mail.ask(approvers=["user:bob"])
    answered = await mail.client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Approve"}
    )
    assert answered.status == 200
    await mail.wait_for(request_id, ResponseReceived)
    assert not any(isinstance(e, RequestDelivered) for e in await mail.events(request_id))
    assert mail.smtp.messages == []


async def test_the_decision_is_mailed_once_as_a_reply(mail: EmailApp) -> None:
    alice = await mail.member("alice")
    await mail.link_address(alice, ALICE)
    request_id = await mail.ask(approvers=["user:alice"])
    await mail.delivered(request_id)
    (first,) = await mail.mails_to(ALICE)
    decided = await mail.confirm(links_in(first)["Approve"])
    assert decided.status == 200, await decided.text()
    _, follow_up = await mail.mails_to(ALICE, 2)
    assert follow_up["In-Reply-To"] == first["Message-ID"]
    assert follow_up["References"] == first["Message-ID"]
    assert follow_up["Subject"] == f"Re: {first['Subject']}"
    assert text_of(follow_up).startswith("Decided: approved by alice at ")
    await mail.ask(approvers=["user:alice"])  # a new request's mail: the old one's came before it
    await mail.mails_to(ALICE, 3)
    assert [m["In-Reply-To"] for m in mail.smtp.to(ALICE)].count(first["Message-ID"]) == 1


async def test_a_refused_recipient_is_a_delivery_failure(mail: EmailApp) -> None:
    alice = await mail.member("alice")
    await mail.link_address(alice, ALICE)
    mail.smtp.refused.add(ALICE)
    request_id = await mail.ask(approvers=["user:alice"])
    (failed,) = await mail.wait_for(request_id, DeliveryFailed)
    assert isinstance(failed, DeliveryFailed)
    assert failed.channel == "email" and failed.address == ALICE
    assert failed.attempts == 1  # a 550 is final: no retry
    assert "no such mailbox" in failed.error
    assert not any(isinstance(e, RequestDelivered) for e in await mail.events(request_id))


async def test_an_smtp_server_down_then_up_gets_the_mail_once(
    email_app: AppFactory, smtp: SmtpSink
) -> None:
    smtp.stop()  # the fixture's server is replaced by one that hangs up, then by a new one
    app = await email_app(delivery_attempts=6, retry_seconds=0.1)
    alice = await app.member("alice")
    await app.link_address(alice, ALICE)
    async with dropping(smtp.port) as dropped:
        request_id = await app.ask(approvers=["user:alice"])
        await eventually(lambda: len(dropped) >= 1)
    back = SmtpSink(smtp.port)
    back.start()
    try:
        app.smtp = back
        delivery = await app.delivered(request_id)
        (sent,) = await app.mails_to(ALICE)
        assert sent["Message-ID"] == delivery.external_message_id
        events = await app.events(request_id)
        assert not any(isinstance(e, DeliveryFailed) for e in events)
        assert sum(isinstance(e, RequestDelivered) for e in events) == 1
    finally:
        back.stop()


async def test_reminders_and_the_expiry_warning_are_replies_in_the_thread(mail: EmailApp) -> None:
    alice = await mail.member("alice")
    await mail.link_address(alice, ALICE)
    request_id = await mail.ask(
        approvers=["user:alice"],
        timeout_seconds=30,
        remind_every_seconds=1,
        warn_before_expiry_seconds=29,  # due 1 s after creation, like reminder 1
    )
    await mail.delivered(request_id)
    await mail.wait_for(request_id, ReminderSent)
    await mail.wait_for(request_id, ExpiryWarned)
    first = (await mail.mails_to(ALICE))[0]

    def note(starts: str) -> list[EmailMessage]:
        return [m for m in mail.smtp.to(ALICE) if text_of(m).startswith(starts)]

    await eventually(lambda: bool(note("Reminder: still waiting") and note("Expires soon, at ")))
    for sent in (*note("Reminder: still waiting"), *note("Expires soon, at ")):
        assert sent["In-Reply-To"] == first["Message-ID"]
