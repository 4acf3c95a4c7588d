"""Who is calling. For now every caller acts in the open ``local`` tenant.

This is the reference server's behaviour on loopback and the quick start's
mode; API keys, JWT and tenants (DESIGN §8) plug in here, so handlers only
ever ask ``actor_of(request)``.
"""

from __future__ import annotations

from aiohttp import web

from loopgate.service import Actor
from loopgate.web.keys import REQUEST_ID


def actor_of(request: web.Request) -> Actor:
    return Actor(id="anonymous", tenant="local", correlation_id=request.get(REQUEST_ID))
