"""Reading and revoking standing grants, over the ``grants`` query table."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from loopgate.commands.base import Actor, require, utcnow
from loopgate.errors import ConcurrencyError, Forbidden, NotFound
from loopgate.events import GrantRevoked, GrantScope
from loopgate.store.base import EventStore


class GrantView(msgspec.Struct, frozen=True, kw_only=True):
    """A grant as ``GET /v1/grants`` shows it; ``active`` is as of the read."""

    grant_id: str
    session_id: str
    scope: GrantScope
    tool: str
    fingerprint: str | None
    request_id: str
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None
    active: bool


class Grants:
    """A workspace's standing grants: list them, read one, revoke one."""

    def __init__(self, store: EventStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store, self.clock = store, clock

    def _view(self, row: dict[str, Any]) -> GrantView:
        view = msgspec.convert({**row, "active": False}, GrantView, strict=False)
        live = view.revoked_at is None and view.expires_at > self.clock()
        return msgspec.structs.replace(view, active=live)

    async def list(
        self, actor: Actor, *, active_only: bool = False, request_id: str | None = None
    ) -> list[GrantView]:
        """The workspace's grants, newest first: only the live ones with ``active_only``,
        only those ``request_id``'s approval issued with it."""
        require(actor, "request.read")
        where, params = "tenant = ?", [actor.tenant]
        if request_id is not None:
            where, params = where + " AND request_id = ?", [*params, request_id]
        rows = await self.store.fetch(
            f"SELECT * FROM grants WHERE {where} ORDER BY issued_at DESC, grant_id", tuple(params)
        )
        views = [self._view(row) for row in rows]
        return [v for v in views if v.active] if active_only else views

    async def get(self, grant_id: str, actor: Actor) -> GrantView:
        require(actor, "request.read")
        rows = await self.store.fetch("SELECT * FROM grants WHERE grant_id = ?", (grant_id,))
        if not rows or rows[0]["tenant"] != actor.tenant:  # another workspace's looks missing
            raise NotFound(f"grant {grant_id!r} not found", code="grant_not_found")
        return self._view(rows[0])

    async def revoke(self, grant_id: str, actor: Actor) -> GrantView:
        """Stop the grant applying, at once and in every process; a repeat changes nothing.

        Only a person (or their operator key) who may answer requests revokes:
        a grant is an approver's decision, so an agent key neither makes nor undoes one.
        """
        if actor.answers_as is None:
            raise Forbidden(
                "an agent API key cannot revoke grants; an approver revokes them",
                code="agent_cannot_revoke",
            )
        require(actor, "request.answer")
        view = await self.get(grant_id, actor)
        if view.revoked_at is not None:
            return view
        revoked = GrantRevoked(
            grant_id=grant_id, revoked_by=actor.answers_as, revoked_at=self.clock()
        )
        # Version 0 of grant-<id>: of two revocations racing, one appends; the
        # other's conflict means the grant is revoked already, which is what it asked.
        with contextlib.suppress(ConcurrencyError):
            await self.store.append(f"grant-{grant_id}", 0, [revoked], actor.meta())
        return await self.get(grant_id, actor)
