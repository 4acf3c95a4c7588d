"""Shared by the email tests: the app with email on, and the steps an approver takes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from smtp_sink import SmtpSink
from waiting import eventually

from loopgate.channels.email.links import LinkSigner
from loopgate.config import EmailConfig
from loopgate.events import Event, RequestDelivered, Role
from loopgate.store.base import EventStore
from loopgate.teams import Membership, Teams
from loopgate.web.email import EMAIL
from loopgate.web.keys import ACCOUNTS, TEAMS

PUBLIC_URL = "http://loopgate.test"
PASSWORD = "correct horse battery staple"
_LINK = re.compile(r"^  (.+): (http\S+/email/answer/[^\s]+)", re.MULTILINE)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def email_config(smtp: SmtpSink, **overrides: Any) -> EmailConfig:
    """Email through the test's SMTP server, with retries fast enough for tests."""
    settings: dict[str, Any] = {
        "smtp_url": smtp.url,
        "public_url": PUBLIC_URL,
        "delivery_attempts": 3,
        "retry_seconds": 0.05,
    }
    return EmailConfig(**(settings | overrides))


def text_of(mail: EmailMessage) -> str:
    """The mail's plain-text part, with the line ends it was written with (SMTP sends CRLF)."""
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def links_in(mail: EmailMessage) -> dict[str, str]:
    """The answer links of a request's mail, by option: their paths on the server."""
    return {label: urlsplit(url).path for label, url in _LINK.findall(text_of(mail))}


def csrf_in(page: str) -> str:
    found = _CSRF.search(page)
    assert found is not None, "no form with a CSRF token on this page"
    return found.group(1)


@dataclass
class EmailApp:
    client: TestClient[Any, Any]
    smtp: SmtpSink
    store: EventStore
    registered: bool = False

    @property
    def teams(self) -> Teams:
        return self.client.app[TEAMS]

    @property
    def signer(self) -> LinkSigner:
        signer = self.client.app[EMAIL].signer
        assert signer is not None
        return signer

    async def member(self, username: str, role: Role = "approver") -> Membership:
        """A user of the default workspace (the server's first user owns it, whatever ``role``)."""
        user = await self.client.app[ACCOUNTS].register_user(username, PASSWORD, role=role)
        membership = await self.teams.membership(user.user_id)
        assert membership is not None
        return membership

    async def link_address(self, member: Membership, address: str) -> None:
        """Link ``address`` to ``member`` directly (the linking flow has tests of its own)."""
        code, _ = await self.teams.issue_link_code(member.actor(), "email")
        await self.teams.link_identity(code, "email", address, display=address)

    async def ask(self, **body: Any) -> str:
        """Create a request (Approve or Reject, unless told otherwise); its id."""
        if not self.registered:
            session = {"session_id": "s1", "client_id": "agent"}
            registered = await self.client.post("/v1/sessions", json=session)
            assert registered.status == 201, await registered.text()
            self.registered = True
        payload = {"session_id": "s1", "client_id": "agent", "message": "Deploy v2 to prod?"}
        payload |= {"options": ["Approve", "Reject"]}
        response = await self.client.post("/v1/requests", json=payload | body)
        assert response.status == 201, await response.text()
        request_id: str = (await response.json())["request_id"]
        return request_id

    async def events(self, request_id: str) -> list[Event]:
        return [record.event for record in await self.store.read_stream(f"request-{request_id}")]

    async def wait_for(self, request_id: str, kind: type[Event], count: int = 1) -> list[Event]:
        """The request's first ``count`` events of ``kind``, waiting (10 s at most)."""
        async with asyncio.timeout(10):
            while True:
                found = [e for e in await self.events(request_id) if isinstance(e, kind)]
                if len(found) >= count:
                    return found[:count]
                await asyncio.sleep(0.02)

    async def mails_to(self, address: str, count: int = 1) -> list[EmailMessage]:
        await eventually(lambda: len(self.smtp.to(address)) >= count)
        return self.smtp.to(address)

    async def delivered(self, request_id: str) -> RequestDelivered:
        (delivery,) = await self.wait_for(request_id, RequestDelivered)
        assert isinstance(delivery, RequestDelivered)
        return delivery

    async def confirm(self, path: str) -> ClientResponse:
        """Open a link's page and press its button, as a person would."""
        page = await self.client.get(path)
        assert page.status == 200, await page.text()
        return await self.client.post(path, data={"csrf_token": csrf_in(await page.text())})


AppFactory = Callable[..., Awaitable[EmailApp]]
