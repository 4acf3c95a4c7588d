"""The signed links in Loopgate's mails: an answer link per option, an address-linking link.

A token is ``base64url(payload) + "." + base64url(HMAC-SHA256(key, kind + payload))``:
the payload is readable (the mail's recipient may see what it says) but no one
without the key can make or change one. The key is derived from the server
key with HKDF-SHA256 (info ``b"loopgate email links v1"``), so every process
of one server reads every other's links and nothing else can.

- An answer link (:class:`AnswerLink`) binds the request, the address the mail
  went to, the member it was for (None for a bare selector's address), the
  option, and the request's ``expires_at``. Single use is not in the token: the
  request's history says whether the member answered already (``web/email.py``).
- An address link (:class:`AddressLink`) binds a link code to the address the
  member asked to link, so the address comes from the member's request and
  never from the confirm form.

Checks are in constant time. A token that is malformed or whose mac is wrong
is :class:`~loopgate.errors.NotFound` (``invalid_link``), one past its expiry
:class:`~loopgate.errors.Gone` (``link_expired``). The confirm form's CSRF token
is the HMAC of ``("csrf", token)``: only this server makes it, and only for
the page of that very link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime
from typing import TypeVar

import msgspec

from loopgate.config import derive_key
from loopgate.errors import Gone, NotFound

LINK_INFO = b"loopgate email links v1"
MAX_TOKEN_CHARS = 2048  # far above any real link; anything longer is not ours
ANSWER, ADDRESS, CSRF = "answer", "address", "csrf"


class AnswerLink(msgspec.Struct, frozen=True, kw_only=True):
    """One option's link in a request's mail."""

    request_id: str
    address: str
    user_id: str | None
    option: str
    expires: int | None
    """The request's ``expires_at``, in epoch seconds; None: it never expires."""


class AddressLink(msgspec.Struct, frozen=True, kw_only=True):
    """The link that confirms an email address for a member: their link code and the address."""

    code: str
    address: str
    expires: int


Link = TypeVar("Link", AnswerLink, AddressLink)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def epoch(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


class LinkSigner:
    """Makes and checks this server's email links."""

    def __init__(self, server_key: bytes) -> None:
        self._key = derive_key(server_key, LINK_INFO)

    def _mac(self, kind: str, payload: str) -> str:
        digest = hmac.new(self._key, f"{kind}\x00{payload}".encode(), hashlib.sha256).digest()
        return _b64(digest)

    def _seal(self, kind: str, link: AnswerLink | AddressLink) -> str:
        payload = _b64(msgspec.json.encode(link))
        return f"{payload}.{self._mac(kind, payload)}"

    def _open(self, kind: str, token: str, shape: type[Link], now: datetime) -> Link:
        payload, _, mac = token.partition(".")
        if not payload or not mac or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise NotFound("this link is not valid", code="invalid_link")
        if not hmac.compare_digest(mac.encode(), self._mac(kind, payload).encode()):
            raise NotFound("this link is not valid", code="invalid_link")
        try:
            link = msgspec.json.decode(_unb64(payload), type=shape)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            # A mac we made over a payload we did not: a bug, or a key shared by mistake.
            raise NotFound("this link is not valid", code="invalid_link") from None
        if link.expires is not None and link.expires <= now.timestamp():
            raise Gone("this link has expired", code="link_expired")
        return link

    def answer_token(self, link: AnswerLink) -> str:
        return self._seal(ANSWER, link)

    def read_answer(self, token: str, now: datetime) -> AnswerLink:
        """The answer link ``token`` is; ``NotFound`` if it is none of ours, ``Gone`` if expired."""
        return self._open(ANSWER, token, AnswerLink, now)

    def address_token(self, link: AddressLink) -> str:
        return self._seal(ADDRESS, link)

    def read_address(self, token: str, now: datetime) -> AddressLink:
        """The address link ``token`` is; ``NotFound`` or ``Gone`` as :meth:`read_answer`."""
        return self._open(ADDRESS, token, AddressLink, now)

    def csrf(self, token: str) -> str:
        """The token the confirm form of ``token``'s page carries."""
        return self._mac(CSRF, token)

    def csrf_matches(self, token: str, sent: str | None) -> bool:
        if sent is None or not sent.isascii():
            return False
        return hmac.compare_digest(sent.encode(), self.csrf(token).encode())
