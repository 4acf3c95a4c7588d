"""The server key: one 32-byte secret that every server-side cipher and signer derives from.

It comes from ``secrets.key``, else from the key file (``secrets.key_file``,
made with mode 0600 on first use), else, for an in-memory SQLite log, from
memory for as long as the process lives. Webhook secrets are sealed with it
(``channels/webhooks/secrets.py``); the receipts' Ed25519 keys
(``receipts/keys.py``) and the channels' link signing keys (email, Slack) are
derived from it with :func:`derive_key`. It never enters the log or an export.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from loopgate.config.derived import (
    SECRETS_KEY_BYTES,
    decode_secrets_key,
    secrets_key,
    secrets_key_file,
)
from loopgate.config.structs import Config, ConfigError

KeySource = Callable[[], bytes]
"""Gives the server key; read on first call, so a server that never needs it makes no file."""


def derive_key(server_key: bytes, info: bytes, length: int = 32) -> bytes:
    """A key for one purpose (``info`` names it): HKDF-SHA256 of the server key.

    Keys of different ``info`` are independent: knowing one tells nothing of
    the server key or of another.
    """
    hkdf = HKDF(algorithm=SHA256(), length=length, salt=None, info=info)
    return hkdf.derive(server_key)


def read_or_make_key(path: Path) -> bytes:
    """The key in ``path``, made there (mode 0600, never overwritten) if it does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as file:
            file.write(base64.b64encode(os.urandom(SECRETS_KEY_BYTES)).decode() + "\n")
    try:
        return decode_secrets_key(path.read_text().strip())
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def server_key_source(config: Config) -> KeySource:
    """Where ``config`` says the server key is; the key is read (or made) once, when first asked.

    Share one source between its users: for an in-memory log the key is made
    by the source, and two sources would make two keys.
    """
    key = secrets_key(config)  # a bad secrets.key fails here, before anything starts
    if key is not None:
        return lambda: key
    path = secrets_key_file(config)
    if path is None:
        ephemeral = os.urandom(SECRETS_KEY_BYTES)
        return lambda: ephemeral
    found: list[bytes] = []

    def from_file() -> bytes:
        if not found:
            found.append(read_or_make_key(path))
        return found[0]

    return from_file
