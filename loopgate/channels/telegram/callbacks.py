"""Callback data of answer buttons: at most 64 bytes, and not forgeable.

Telegram returns a button's ``callback_data`` verbatim when it is pressed, but
any client can send any data, so it is signed. The data is
``a.<ref>.<index>.<tag>``:

* ``ref``: the request id; a UUID is packed into 22 base64url characters;
* ``index``: the option's position in the request's options, followed by
  ``g`` for "approve and allow for 30 min" (a standing grant, ``GRANT_SECONDS``);
* ``tag``: an HMAC-SHA256 over ``ref.index``, truncated to 12 bytes (the
  ``g`` is signed too, so a plain button cannot be turned into a grant).

The HMAC key is derived from the bot token, the one secret every Telegram
set-up has; changing the token invalidates the buttons already sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from typing import NamedTuple

ANSWER_PREFIX = "a"
MAX_CALLBACK_BYTES = 64
_TAG_BYTES = 12
# fullmatch, not "$" (which also matches before a trailing newline); the index
# must be written canonically, or "05" would pass with the tag of "5".
_PLAIN_REF = re.compile(r"[A-Za-z0-9_-]{1,30}")
_INDEX = re.compile(r"(0|[1-9][0-9]{0,2})(g?)")
MAX_OPTION_INDEX = 999
GRANT_MARK = "g"
GRANT_SECONDS = 30 * 60
"""How long the "Allow 30 min" button allows the same action for."""


class Press(NamedTuple):
    """A pressed answer button: the request, the option, and whether it also grants."""

    request_id: str
    option: int
    grant: bool = False


class ForgedCallback(ValueError):
    """Callback data that this server did not sign (or cannot read)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def request_ref(request_id: str) -> str:
    """A short reference to a request: ``u`` + packed UUID, or ``r`` + a short plain id."""
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        parsed = None
    if parsed is not None and str(parsed) == request_id:
        return "u" + _b64(parsed.bytes)
    if _PLAIN_REF.fullmatch(request_id):
        return "r" + request_id
    raise ValueError(f"request id {request_id!r} is too long or odd for a button")


def request_id_of(ref: str) -> str:
    kind, body = ref[:1], ref[1:]
    try:
        if kind == "u":
            return str(uuid.UUID(bytes=_unb64(body)))
    except ValueError:
        pass
    else:
        if kind == "r" and _PLAIN_REF.fullmatch(body):
            return body
    raise ForgedCallback(f"unreadable request reference {ref!r}")


class CallbackSigner:
    """Makes and checks the callback data of answer buttons."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_bot_token(cls, token: str) -> CallbackSigner:
        return cls(hmac.new(token.encode(), b"loopgate callback data", hashlib.sha256).digest())

    def _tag(self, ref: str, index_text: str) -> str:
        mac = hmac.new(self._key, f"{ref}.{index_text}".encode(), hashlib.sha256).digest()
        return _b64(mac[:_TAG_BYTES])

    def sign(self, request_id: str, option_index: int, *, grant: bool = False) -> str:
        """The data of the button for an option; ``grant``: it also allows the action 30 min."""
        if not 0 <= option_index <= MAX_OPTION_INDEX:
            raise ValueError(f"option index {option_index} is out of range for a button")
        ref = request_ref(request_id)
        index_text = f"{option_index}{GRANT_MARK if grant else ''}"
        data = f"{ANSWER_PREFIX}.{ref}.{index_text}.{self._tag(ref, index_text)}"
        assert len(data.encode()) <= MAX_CALLBACK_BYTES
        return data

    def verify(self, data: str) -> tuple[str, int]:
        """The (request id, option index) a plain option button stands for.

        ``ForgedCallback`` if not ours, or if it is a grant button (:meth:`verify_press`).
        """
        press = self.verify_press(data)
        if press.grant:
            raise ForgedCallback("a grant button, not a plain answer")
        return press.request_id, press.option

    def verify_press(self, data: str) -> Press:
        """What a button stands for, grant buttons included; ``ForgedCallback`` if not ours."""
        parts = data.split(".")
        matched = _INDEX.fullmatch(parts[2]) if len(parts) == 4 else None
        if matched is None or parts[0] != ANSWER_PREFIX:
            raise ForgedCallback("not a Loopgate answer button")
        _, ref, index_text, tag = parts
        if not hmac.compare_digest(tag, self._tag(ref, index_text)):
            raise ForgedCallback("bad signature on the button")
        return Press(request_id_of(ref), int(matched[1]), bool(matched[2]))
