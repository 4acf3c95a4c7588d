"""Each tenant's webhook signing secret, kept as events on the ``tenant-<tenant>`` stream.

The first delivery (or the first ``GET /v1/webhook-secret``) makes one;
``POST /v1/webhook-secret`` replaces it, and deliveries are signed with the
new one from then on.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from loopgate.errors import ConcurrencyError
from loopgate.events import Meta, WebhookSecretRotated
from loopgate.store.base import EventStore

SECRET_PREFIX = "whsec_"


class WebhookSecrets:
    """Each tenant's signing secret, kept as events on the ``tenant-<tenant>`` stream."""

    def __init__(self, store: EventStore, clock: Callable[[], datetime]) -> None:
        self.store, self.clock = store, clock

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
        secret = next(
            (
                r.event.secret
                for r in reversed(history)
                if isinstance(r.event, WebhookSecretRotated)
            ),
            None,
        )
        return secret, history[-1].version if history else 0

    async def _append(self, tenant: str, version: int, meta: Meta) -> str:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        event = WebhookSecretRotated(tenant=tenant, secret=secret, rotated_at=self.clock())
        await self.store.append(f"tenant-{tenant}", version, [event], meta)
        return secret
