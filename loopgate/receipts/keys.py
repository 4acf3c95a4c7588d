"""The receipts' signing keys: public halves in the log, private halves derived, never stored.

Each key has a ``kid``. Its private key is an Ed25519 seed derived from the
server key (``config/server_key.py``) with HKDF-SHA256, ``info`` naming the
kid, so every process holding the server key can sign with every key and no
private byte is ever written anywhere. The log holds only
:class:`~loopgate.events.SigningKeyAdded` (kid, public key, when) on the
``signing-keys`` stream, appended at the version read: two processes adding a
key at once cannot both win, the loser reads the winner's.

The key list is read from that stream and cached; with a hub, every event
on the stream (this process's or, through Postgres' NOTIFY, another's) drops
the cache, so a rotation elsewhere is seen. Without a hub (the CLI) each
call reads the stream.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from loopgate.config import KeySource, derive_key
from loopgate.errors import ConcurrencyError, LoopgateError
from loopgate.events import Meta, RecordedEvent, SigningKeyAdded
from loopgate.hub import Hub
from loopgate.store.base import EventStore

STREAM = "signing-keys"
SEED_INFO = b"loopgate receipt signing key "
SEED_BYTES = 32


class KeyMismatch(LoopgateError):
    """The server key no longer derives the public key the log holds for a kid."""

    code = "signing_key_mismatch"


def derive_seed(server_key: bytes, kid: str) -> bytes:
    """The 32-byte Ed25519 seed of ``kid``: HKDF-SHA256 of the server key."""
    return derive_key(server_key, SEED_INFO + kid.encode(), SEED_BYTES)


def private_key(server_key: bytes, kid: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(derive_seed(server_key, kid))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def in_force(keys: list[SigningKeyAdded], moment: datetime) -> SigningKeyAdded:
    """The key that signs a decision made at ``moment``: the newest added at or before it.

    A decision older than every key (made before the first receipt was
    minted) takes the oldest. ``keys`` is in the log's order, oldest first.
    """
    earlier = [k for k in keys if k.added_at <= moment]
    return earlier[-1] if earlier else keys[0]


def jwk(key: SigningKeyAdded) -> dict[str, str]:
    """A public key as RFC 8037 has it in a JWKS."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": key.public_key,
        "kid": key.kid,
        "alg": "EdDSA",
        "use": "sig",
    }


class KeyRing:
    """The signing keys in the log, with their private halves derived on demand."""

    def __init__(
        self,
        store: EventStore,
        server_key: KeySource,
        clock: Callable[[], datetime],
        hub: Hub | None = None,
    ) -> None:
        self.store, self.clock, self._server_key = store, clock, server_key
        self._cached: tuple[list[SigningKeyAdded], int] | None = None
        self._generation = 0
        self._hub = hub
        self._private: dict[str, Ed25519PrivateKey] = {}
        if hub is not None:
            hub.add_listener(self._on_event)

    def close(self) -> None:
        if self._hub is not None:
            self._hub.remove_listener(self._on_event)

    def _on_event(self, record: RecordedEvent) -> None:
        if record.stream == STREAM:
            self._forget()

    def _forget(self) -> None:
        self._generation += 1
        self._cached = None

    async def keys(self, *, fresh: bool = False) -> list[SigningKeyAdded]:
        """Every key, oldest first (``fresh``: read the stream, not the cache)."""
        if fresh:
            self._forget()
        return (await self._read())[0]

    async def _read(self) -> tuple[list[SigningKeyAdded], int]:
        if self._cached is not None:
            return self._cached
        generation = self._generation
        history = await self.store.read_stream(STREAM)
        keys = [r.event for r in history if isinstance(r.event, SigningKeyAdded)]
        read = (keys, history[-1].version if history else 0)
        # Cached only if no event came while reading, and only where the hub says when to drop it.
        if self._hub is not None and generation == self._generation:
            self._cached = read
        return read

    async def ensure(self) -> list[SigningKeyAdded]:
        """Every key, making the first one if there is none."""
        for _ in range(3):
            keys, version = await self._read()
            if keys:
                return keys
            try:
                await self._append(version, Meta())
            except ConcurrencyError:
                self._forget()  # another process made it first: read theirs
        raise AssertionError("unreachable: the first key cannot keep conflicting")

    async def rotate(self, meta: Meta | None = None) -> SigningKeyAdded:
        """Add a key; it signs every decision from now on, the old ones still verify."""
        for attempt in range(3):
            _, version = await self._read()
            try:
                return await self._append(version, meta or Meta())
            except ConcurrencyError:
                self._forget()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _append(self, version: int, meta: Meta) -> SigningKeyAdded:
        now = self.clock()
        kid = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
        public = raw_public(private_key(self._server_key(), kid))
        event = SigningKeyAdded(kid=kid, public_key=b64url(public), added_at=now)
        try:
            await self.store.append(STREAM, version, [event], meta)
        finally:
            self._forget()
        return event

    async def find(self, kid: str) -> SigningKeyAdded | None:
        """The key named ``kid``; the stream is read again once if the cache lacks it."""
        for fresh in (False, True):
            found = next((k for k in await self.keys(fresh=fresh) if k.kid == kid), None)
            if found is not None:
                return found
        return None

    def signer(self, key: SigningKeyAdded) -> Ed25519PrivateKey:
        """The private key of ``key``, derived; refused if the server key derives another."""
        found = self._private.get(key.kid)
        if found is None:
            found = private_key(self._server_key(), key.kid)
            if b64url(raw_public(found)) != key.public_key:
                raise KeyMismatch(
                    f"the server key does not derive signing key {key.kid!r} (secrets.key or its "
                    "key file changed?); receipts decided from now on are signed once a new key "
                    "is added with `loopgate keys rotate`"
                )
            self._private[key.kid] = found
        return found
