"""Loopgate's Python client: ask a human from any script, agent or pipeline.

::

    from loopgate.client import Loopgate, require_approval

    with Loopgate() as gate:  # LOOPGATE_URL, LOOPGATE_API_KEY
        decision = gate.ask("Deploy v2.1?", options=["Deploy", "Hold"], timeout=600)

    @require_approval(message=lambda env: f"Deploy to {env}?")
    def deploy(env: str) -> None: ...

:class:`Loopgate` blocks; :class:`LoopgateClient` is the same client for
asyncio. Both return :class:`Decision`s and raise the typed errors of
``client/decision.py``.
"""

from loopgate.channels.webhooks.signing import InvalidSignature
from loopgate.client.approval import require_approval, verify_webhook
from loopgate.client.connection import LoopgateClient
from loopgate.client.decision import (
    AuthenticationFailed,
    Decision,
    LoopgateClientError,
    NotApproved,
    RequestConflict,
    RequestNotFound,
    RequestRefused,
    ServerUnreachable,
    WaitTimedOut,
)
from loopgate.client.sync import Loopgate

__all__ = [
    "AuthenticationFailed",
    "Decision",
    "InvalidSignature",
    "Loopgate",
    "LoopgateClient",
    "LoopgateClientError",
    "NotApproved",
    "RequestConflict",
    "RequestNotFound",
    "RequestRefused",
    "ServerUnreachable",
    "WaitTimedOut",
    "require_approval",
    "verify_webhook",
]
