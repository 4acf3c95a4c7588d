"""Each tenant's webhook signing secret, kept as events on the ``tenant-<tenant>`` stream.

The first delivery (or the first ``GET /v1/webhook-secret``) makes one;
``POST /v1/webhook-secret`` replaces it, and deliveries are signed with the
new one from then on.

The server must sign with the secret itself, so a hash would not do; the log
keeps it sealed instead: ``WebhookSecretRotated.sealed`` is AES-256-GCM under
the server key, ``base64(nonce || ciphertext)``, with the tenant as associated
data so a sealed secret copied to another tenant's stream does not open. The
key comes from ``secrets.key`` or a key file (``config/server_key.py``),
made with mode 0600 on first use; it never enters the log or an export.
Events of older logs carry ``secret`` in clear, and are still read.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loopgate.config import Config, KeySource, server_key_source
from loopgate.errors import ConcurrencyError
from loopgate.events import Meta, WebhookSecretRotated
from loopgate.store.base import EventStore

SECRET_PREFIX = "whsec_"
NONCE_BYTES = 12


class SealError(Exception):
    """A sealed secret does not open with this server's key (another key, or tampered)."""


class SecretBox:
    """Seals and opens webhook secrets with the server key, read on first use.

    Reading lazily means a server that never signs a webhook never makes a key file.
    """

    def __init__(self, key: KeySource) -> None:
        self._key_source = key
        self._aead: AESGCM | None = None

    @classmethod
    def from_config(cls, config: Config) -> SecretBox:
        return cls(server_key_source(config))

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(self._key_source())
        return self._aead

    def seal(self, tenant: str, secret: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, secret.encode(), _associated(tenant))
        return base64.b64encode(nonce + sealed).decode()

    def open(self, tenant: str, sealed: str) -> str:
        try:
            raw = base64.b64decode(sealed, validate=True)
            clear = self._cipher().decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(tenant)
            )
        except (binascii.Error, InvalidTag, ValueError) as exc:
            raise SealError(
                f"tenant {tenant!r}'s webhook secret does not open with this server's key "
                "(secrets.key or its key file changed?); rotate it with POST /v1/webhook-secret"
            ) from exc
        return clear.decode()


def _associated(tenant: str) -> bytes:
    return f"loopgate webhook secret\0{tenant}".encode()


class WebhookSecrets:
    """Each tenant's signing secret, kept sealed as events on the ``tenant-<tenant>`` stream."""

    def __init__(self, store: EventStore, clock: Callable[[], datetime], box: SecretBox) -> None:
        self.store, self.clock, self.box = store, clock, box

    async def current(self, tenant: str) -> str:
        """The tenant's secret; the first call makes one."""
        for _ in range(3):
            secret, version = await self._latest(tenant)
            if secret is not None:
                return secret
            try:
                return await self._append(tenant, version, Meta(tenant=tenant))
            except ConcurrencyError:
                continue  # another caller made it first: read theirs
        raise AssertionError("unreachable: a stream of secrets cannot keep conflicting")

    async def rotate(self, tenant: str, meta: Meta) -> str:
        """Replace the tenant's secret; deliveries are signed with the new one from now on."""
        for attempt in range(3):
            _, version = await self._latest(tenant)
            try:
                return await self._append(tenant, version, meta)
            except ConcurrencyError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _latest(self, tenant: str) -> tuple[str | None, int]:
        history = await self.store.read_stream(f"tenant-{tenant}")
        latest = next(
            (r.event for r in reversed(history) if isinstance(r.event, WebhookSecretRotated)),
            None,
        )
        version = history[-1].version if history else 0
        if latest is None:
            return None, version
        if latest.sealed is not None:
            return self.box.open(tenant, latest.sealed), version
        return latest.secret, version

    async def _append(self, tenant: str, version: int, meta: Meta) -> str:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        event = WebhookSecretRotated(
            tenant=tenant, sealed=self.box.seal(tenant, secret), rotated_at=self.clock()
        )
        await self.store.append(f"tenant-{tenant}", version, [event], meta)
        return secret
