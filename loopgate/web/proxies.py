"""The caller's address behind a reverse proxy: ``server.trusted_proxies``.

Failed logins (and any limit keyed by address) count per client address.
Behind a proxy every connection comes from the proxy, so one client's failures
would hold back everyone. When the connection comes from a trusted proxy, the
client's address is read from ``X-Forwarded-For``: the rightmost entry that is
not itself a trusted proxy. Entries further left were written by the client
and can be forged; the rightmost untrusted one was written by a proxy we trust.
A connection from anywhere else keeps its own address, whatever it sends.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopgate.config import Config, ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(config: Config) -> tuple[Network, ...]:
    """``server.trusted_proxies`` parsed; ``ConfigError`` names an entry that is no address."""
    networks = []
    for entry in (item.strip() for item in config.server.trusted_proxies.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                f"server.trusted_proxies: {entry!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def client_address(
    peer: str | None, forwarded_for: list[str], trusted: tuple[Network, ...]
) -> str | None:
    """The client's address: ``peer``'s own unless ``peer`` is a trusted proxy."""
    hops = [peer, *reversed([h.strip() for line in forwarded_for for h in line.split(",")])]
    for index, hop in enumerate(hops):
        if not _is_trusted(hop, trusted):
            # The peer is never replaced by garbage: an unreadable hop stops the walk.
            return hop if index == 0 or _is_address(hop) else hops[index - 1]
    return hops[-1]


def proxies_middleware(config: Config) -> Middleware | None:
    """The middleware that sets ``request.remote`` from trusted proxies; None without any."""
    trusted = trusted_networks(config)
    if not trusted:
        return None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        remote = client_address(request.remote, forwarded, trusted)
        if remote is not None and remote != request.remote:
            request = request.clone(remote=remote)
        return await handler(request)

    return middleware


def _is_address(hop: str | None) -> bool:
    try:
        ipaddress.ip_address(hop or "")
    except ValueError:
        return False
    return True


def _is_trusted(hop: str | None, trusted: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(hop or "")
    except ValueError:
        return False
    return any(address in network for network in trusted)
