"""``Receipts``: mint a decision's receipt, redeem it once, publish the public keys.

A receipt proves at the tool that a human (or a rule) approved *this* call:
the tool sends the receipt and the action it is about to run to
``POST /v1/receipts/redeem``, which checks, in order, the signature (422
``invalid_receipt``), the workspace (404 ``receipt_not_found``), the expiry on
the server's clock (410 ``receipt_expired``) and the action's fingerprint (422
``action_mismatch``, the receipt is not used up), then appends
:class:`~loopgate.events.ReceiptRedeemed` at version 0 of ``receipt-<jti>``:
whichever redemption comes second, in any process, gets 409
``receipt_already_redeemed``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from loopgate.commands.base import Actor, utcnow
from loopgate.config import KeySource, ReceiptsConfig
from loopgate.domain.action import fingerprint
from loopgate.errors import ConcurrencyError, Conflict, DomainError, Gone, NotFound
from loopgate.events import Action, ReceiptRedeemed
from loopgate.hub import Hub
from loopgate.receipts.keys import KeyRing, in_force, jwk, unb64url
from loopgate.receipts.tokens import claims_of, invalid, kid_of, sign, verified
from loopgate.store.base import EventStore
from loopgate.views import DecidedBy, RequestView


class Redemption(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/receipts/redeem``: the receipt is used up; the tool may run the action."""

    redeemed: bool
    request_id: str
    jti: str
    fingerprint: str
    redeemed_at: str
    decided_by: DecidedBy | None


class Receipts:
    """Receipts of approved actions, over the log's signing keys."""

    def __init__(
        self,
        store: EventStore,
        server_key: KeySource,
        config: ReceiptsConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        hub: Hub | None = None,
    ) -> None:
        """``clock`` judges expiry and dates redemptions (a test moves it)."""
        self.store, self.config, self.clock = store, config, clock
        # Keys are dated on the wall clock, as decisions are (``Requests`` takes no clock):
        # which key was in force at a decision compares the two.
        self.keys = KeyRing(store, server_key, utcnow, hub)

    def close(self) -> None:
        self.keys.close()

    async def mint(self, view: RequestView) -> str | None:
        """The request's receipt: None unless it was approved with an action.

        Signed with the key in force when it was decided, so the same request
        gives the same token on every read, before and after a rotation.
        """
        if not (
            view.approved
            and view.status == "answered"
            and view.decided_action is not None
            and view.decided_fingerprint is not None
            and view.decided_at is not None
        ):
            return None
        key = in_force(await self.keys.ensure(), view.decided_at)
        claims = claims_of(view, self.config.issuer, self.config.ttl_seconds)
        return sign(claims, key.kid, self.keys.signer(key))

    async def jwks(self) -> dict[str, Any]:
        """The public keys, newest first, as ``/.well-known/jwks.json`` serves them."""
        return {"keys": [jwk(k) for k in reversed(await self.keys.keys())]}

    async def rotate(self) -> str:
        """Add a signing key; returns its kid."""
        return (await self.keys.rotate()).kid

    async def redeem(self, token: str, action: Action, actor: Actor) -> Redemption:
        """Use the receipt up for ``action``; see the module's docstring for the refusals."""
        key = await self.keys.find(kid_of(token))
        if key is None:
            raise invalid("the receipt is signed by a key this server does not know")
        public = Ed25519PublicKey.from_public_bytes(unb64url(key.public_key))
        claims = verified(token, public, self.config.issuer)
        jti, request_id = claims["jti"], claims["sub"]
        if claims["wsp"] != actor.tenant:
            raise NotFound(f"no receipt {jti!r} in this workspace", code="receipt_not_found")
        now = self.clock()
        if now.timestamp() >= claims["exp"]:
            expired = datetime.fromtimestamp(claims["exp"], UTC).isoformat()
            raise Gone(f"receipt {jti!r} expired at {expired}", code="receipt_expired")
        found = fingerprint(action)
        if found != claims["act"]:
            raise DomainError(
                f"the action's fingerprint {found} is not the one receipt {jti!r} approves "
                f"({claims['act']}); the receipt is not used up",
                code="action_mismatch",
            )
        event = ReceiptRedeemed(
            jti=jti, request_id=request_id, fingerprint=found, redeemed_by=actor.id, redeemed_at=now
        )
        try:
            await self.store.append(f"receipt-{jti}", 0, [event], actor.meta())
        except ConcurrencyError:
            raise await self._already(jti) from None
        return Redemption(
            redeemed=True,
            request_id=request_id,
            jti=jti,
            fingerprint=found,
            redeemed_at=now.isoformat(),
            decided_by=msgspec.convert(claims["dec"].get("decided_by"), DecidedBy | None),
        )

    async def _already(self, jti: str) -> Conflict:
        history = await self.store.read_stream(f"receipt-{jti}")
        first = next((r.event for r in history if isinstance(r.event, ReceiptRedeemed)), None)
        when = f" at {first.redeemed_at.isoformat()}" if first is not None else ""
        return Conflict(
            f"receipt {jti!r} was already redeemed{when}; a receipt is good for one call",
            code="receipt_already_redeemed",
        )
