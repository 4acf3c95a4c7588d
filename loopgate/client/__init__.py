"""Loopgate's Python client: ask a human from any script, agent or pipeline.

::

    from loopgate.client import Loopgate, require_approval

    with Loopgate() as gate:  # LOOPGATE_URL, LOOPGATE_API_KEY
        decision = gate.ask("Deploy v2.1?", options=["Deploy", "Hold"], timeout=600)

    @require_approval(message=lambda env: f"Deploy to {env}?")
    def deploy(env: str) -> None: ...  # runs once approved and its receipt redeemed

:class:`Loopgate` blocks; :class:`LoopgateClient` is the same client for
asyncio. Both return :class:`Decision`s and raise the typed errors of
``client/decision.py``. :func:`verify_receipt` checks an approval's receipt
offline, against the server's public keys.
"""

from loopgate.channels.webhooks.signing import InvalidSignature
from loopgate.client.approval import require_approval, verify_webhook
from loopgate.client.connection import LoopgateClient
from loopgate.client.decision import (
    AuthenticationFailed,
    Decision,
    LoopgateClientError,
    NotApproved,
    ReceiptRefused,
    RequestConflict,
    RequestNotFound,
    RequestRefused,
    ServerUnreachable,
    WaitTimedOut,
)
from loopgate.client.sync import Loopgate
from loopgate.receipts.verify import ReceiptInvalid, verify_receipt

__all__ = [
    "AuthenticationFailed",
    "Decision",
    "InvalidSignature",
    "Loopgate",
    "LoopgateClient",
    "LoopgateClientError",
    "NotApproved",
    "ReceiptInvalid",
    "ReceiptRefused",
    "RequestConflict",
    "RequestNotFound",
    "RequestRefused",
    "ServerUnreachable",
    "WaitTimedOut",
    "require_approval",
    "verify_receipt",
    "verify_webhook",
]
