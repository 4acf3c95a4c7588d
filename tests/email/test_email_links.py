"""The signed links, the SMTP URL and the error classes: pure parts, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiosmtplib
import pytest

from loopgate.channels.email.adapter import classify
from loopgate.channels.email.links import AddressLink, AnswerLink, LinkSigner
from loopgate.channels.email.smtp import SmtpServer, parse_smtp_url
from loopgate.channels.model import RetryLater, Undeliverable
from loopgate.config import Config, ConfigError, EmailConfig
from loopgate.errors import Gone, NotFound
from loopgate.web.app import create_app

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def answer_link(**overrides: object) -> AnswerLink:
    fields: dict[str, object] = {
        "request_id": "r1",
        "address": "alice@example.com",
        "user_id": "u1",
        "option": "Approve",
        "expires": int((NOW + timedelta(minutes=5)).timestamp()),
    }
    return AnswerLink(**(fields | overrides))  # type: ignore[arg-type]


def test_a_token_reads_back_as_made() -> None:
    signer = LinkSigner(KEY)
    link = answer_link()
    assert signer.read_answer(signer.answer_token(link), NOW) == link
    assert signer.read_answer(signer.answer_token(answer_link(expires=None)), NOW).expires is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the mac
        lambda t: ("e" if t[0] != "e" else "f") + t[1:],  # the payload
        lambda t: t.replace(".", ""),
        lambda t: t.split(".")[0],
        lambda t: "",
        lambda t: t + "é",
        lambda t: t + "A" * 3000,
    ],
)
def test_a_tampered_token_is_no_link(tamper: object) -> None:
    signer = LinkSigner(KEY)
    token = signer.answer_token(answer_link())
    with pytest.raises(NotFound) as raised:
        signer.read_answer(tamper(token), NOW)  # type: ignore[operator]
    assert raised.value.code == "invalid_link"


def test_another_servers_token_is_no_link() -> None:
    token = LinkSigner(b"x" * 32).answer_token(answer_link())
    with pytest.raises(NotFound):
        LinkSigner(KEY).read_answer(token, NOW)


def test_an_answer_token_is_no_address_token_and_back() -> None:
    signer = LinkSigner(KEY)
    with pytest.raises(NotFound):
        signer.read_address(signer.answer_token(answer_link()), NOW)
    address = AddressLink(code="c", address="a@example.com", expires=int(NOW.timestamp()) + 60)
    with pytest.raises(NotFound):
        signer.read_answer(signer.address_token(address), NOW)
    assert signer.read_address(signer.address_token(address), NOW) == address


def test_a_token_past_its_expiry_is_gone() -> None:
    signer = LinkSigner(KEY)
    token = signer.answer_token(answer_link(expires=int(NOW.timestamp())))
    with pytest.raises(Gone) as raised:
        signer.read_answer(token, NOW)
    assert raised.value.code == "link_expired"


def test_the_csrf_token_belongs_to_one_link() -> None:
    signer = LinkSigner(KEY)
    one, other = signer.answer_token(answer_link()), signer.answer_token(answer_link(option="No"))
    assert signer.csrf_matches(one, signer.csrf(one))
    assert not signer.csrf_matches(one, signer.csrf(other))
    assert not signer.csrf_matches(one, None)
    assert not signer.csrf_matches(one, "")
    assert not signer.csrf_matches(one, "é")


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 25)),
        ("smtp://127.0.0.1:2525", SmtpServer("127.0.0.1", 2525)),
        ("smtps://mail.example.com", SmtpServer("mail.example.com", 465, use_tls=True)),
        (
            "smtp+starttls://bob:p%40ss@mail.example.com",
            SmtpServer("mail.example.com", 587, start_tls=True, username="bob", password="p@ss"),
        ),
    ],
)
def test_the_smtp_url_says_where_and_how(url: str, server: SmtpServer) -> None:
    assert parse_smtp_url(url) == server


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mail.example.com", "scheme"),
        ("smtp://", "no host"),
        ("smtp://mail.example.com/inbox", "no path"),
        ("smtp://mail.example.com:99999", "not a URL"),
        ("mail.example.com", "scheme"),
    ],
)
def test_a_bad_smtp_url_is_a_config_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_smtp_url(url)


def test_the_password_stays_out_of_the_servers_repr() -> None:
    assert "s3cret" not in repr(parse_smtp_url("smtp://bob:s3cret@mail.example.com"))


def test_refusals_retrying_cannot_fix_are_undeliverable() -> None:
    refused = aiosmtplib.SMTPRecipientRefused(550, "no such mailbox", "x@example.com")
    assert isinstance(classify(aiosmtplib.SMTPRecipientsRefused([refused])), Undeliverable)
    assert isinstance(classify(aiosmtplib.SMTPDataError(554, "rejected")), Undeliverable)


def test_failures_later_may_fix_are_retried() -> None:
    full = aiosmtplib.SMTPRecipientRefused(452, "mailbox full", "x@example.com")
    assert isinstance(classify(aiosmtplib.SMTPRecipientsRefused([full])), RetryLater)
    assert isinstance(classify(aiosmtplib.SMTPSenderRefused(421, "busy", "me")), RetryLater)
    assert isinstance(classify(aiosmtplib.SMTPConnectError("refused")), RetryLater)
    assert isinstance(classify(aiosmtplib.SMTPServerDisconnected("gone")), RetryLater)
    assert isinstance(classify(ConnectionRefusedError()), RetryLater)
    assert isinstance(classify(TimeoutError()), RetryLater)
    assert classify(ValueError("a bug")) is None


@pytest.mark.parametrize(
    ("email", "says"),
    [
        (EmailConfig(smtp_url="imap://mail.example.com"), "email.smtp_url"),
        (EmailConfig(smtp_url="smtp://mail.example.com", from_address="Loopgate"), "email.from"),
    ],
)
def test_the_app_refuses_an_email_set_up_that_cannot_work(email: EmailConfig, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        create_app(Config(email=email))
