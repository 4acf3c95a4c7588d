"""The email channel's adapter: one mail per routed approver, follow-ups in its thread.

The :class:`~loopgate.channels.sender.ChannelSender` drives it like every
channel's (it retries, records ``RequestDelivered`` and ``DeliveryFailed``):

- ``targets``: the routed members' linked email addresses
  (``Teams.targets("email", …)``).
- ``send``: one mail to the address, with one signed link per option
  (``links.py``); its ``Message-ID`` is the delivery's message id.
- ``show_state``: nothing while the request is open (a mail cannot change once
  sent, and a mail per vote would be noise); once it is final, one reply in the
  thread saying how it ended (``Decided: approved by alice``).
- ``nudge``: a short reply in the thread (a reminder, or when it expires),
  pointing back at the first mail's links, while the request is open.
- ``classify``: a refused recipient or any 5xx is undeliverable (retrying
  cannot fix it); a 4xx, a refused or dropped connection and a timeout are
  retried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from email.utils import make_msgid, parseaddr

import aiosmtplib

from loopgate.channels.email.links import AnswerLink, LinkSigner, epoch
from loopgate.channels.email.render import (
    Envelope,
    OptionLink,
    decided_note,
    follow_up_mail,
    request_mail,
    request_text,
    when,
)
from loopgate.channels.email.smtp import Mailer
from loopgate.channels.model import Delivery, Nudge, RetryLater, Sent, Target, Undeliverable
from loopgate.events import Channel
from loopgate.teams import Teams
from loopgate.views import RequestView

ANSWER_PATH = "/email/answer/"
SIGNED_LINK = "{base}" + ANSWER_PATH + "<signed link>"
FALLBACK_DOMAIN = "loopgate.localhost"


def sender_domain(sender: str) -> str:
    """The domain of the ``From`` address, which Message-IDs end with."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2]
    return domain or FALLBACK_DOMAIN


def classify(error: BaseException) -> RetryLater | Undeliverable | None:
    """What an aiosmtplib error means: retry, give up, or None (not the mail server's)."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in error.recipients]
        if codes and all(400 <= code < 500 for code in codes):
            return RetryLater(str(error))  # a full mailbox, greylisting: later may work
        return Undeliverable(str(error))
    if isinstance(error, aiosmtplib.SMTPResponseException):
        reason = f"SMTP {error.code}: {error.message}"
        return Undeliverable(reason) if error.code >= 500 else RetryLater(reason)
    if isinstance(error, aiosmtplib.SMTPException | OSError | TimeoutError):
        return RetryLater(str(error) or type(error).__name__)
    return None


class EmailAdapter:
    name: Channel = "email"

    def __init__(
        self,
        teams: Teams,
        mailer: Mailer,
        signer: LinkSigner,
        *,
        sender: str,
        public_url: str,
        console_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._teams, self._mailer, self._signer = teams, mailer, signer
        self._sender, self._public_url, self._console_url = sender, public_url, console_url
        self._clock = clock
        self._domain = sender_domain(sender)

    async def targets(self, view: RequestView, approvers: Sequence[str]) -> list[Target]:
        return await self._teams.targets("email", view.tenant, approvers)

    def answer_url(
        self, view: RequestView, target: Target, user_id: str | None, option: str
    ) -> str:
        link = AnswerLink(
            request_id=view.request_id,
            address=target.address,
            user_id=user_id,
            option=option,
            expires=epoch(view.expires_at),
        )
        return f"{self._public_url}{ANSWER_PATH}{self._signer.answer_token(link)}"

    async def send(self, target: Target, view: RequestView) -> Sent:
        # A member's own address acts as that member; a bare selector's as no one.
        member = None if target.routed_by else await self._teams.identity("email", target.address)
        user_id = member.user_id if member is not None else None
        links = [
            OptionLink(o.label, self.answer_url(view, target, user_id, o.label))
            for o in view.options
        ]
        envelope = Envelope(self._sender, target.address, make_msgid(domain=self._domain))
        mail = request_mail(view, envelope, links, console_url=self._console_url, at=self._clock())
        await self._mailer.send(mail)
        delivery = Delivery(
            address=target.address, message_id=envelope.message_id, routed_by=target.routed_by
        )
        # The log keeps what the mail said, but never its links: each one answers.
        unsigned = SIGNED_LINK.format(base=self._public_url)
        shown = [OptionLink(link.label, unsigned) for link in links]
        shown_text = request_text(view, shown, target.address, self._console_url)
        return Sent(delivery, shown_text, tuple(o.label for o in view.options))

    async def _reply(self, delivery: Delivery, view: RequestView, note: str) -> None:
        envelope = Envelope(
            self._sender,
            delivery.address,
            make_msgid(domain=self._domain),
            in_reply_to=delivery.message_id,
        )
        await self._mailer.send(follow_up_mail(view, envelope, note, at=self._clock()))

    async def show_state(self, delivery: Delivery, view: RequestView) -> None:
        if not view.final:
            return  # votes so far are on the confirm page; a mail per vote would be noise
        names = {m.user_id: m.username for m in await self._teams.members(view.tenant)}
        await self._reply(delivery, view, decided_note(view, names))

    async def nudge(self, delivery: Delivery, view: RequestView, kind: Nudge) -> None:
        if view.final:
            return
        if kind == "expiry" and view.expires_at is not None:
            note = (
                f"Expires soon, at {when(view.expires_at)}: the links in the first mail still work."
            )
        else:
            note = (
                "Reminder: still waiting for your answer; the links in the first mail still work."
            )
        await self._reply(delivery, view, note)

    def classify(self, error: BaseException) -> RetryLater | Undeliverable | None:
        return classify(error)
