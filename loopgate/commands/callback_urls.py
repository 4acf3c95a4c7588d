"""The SSRF guard on ``callback_url``: a caller cannot make the server probe its own network.

Checked when a request (or a session's default) is created and again before
each webhook POST: a host that resolves to a loopback, private, link-local,
reserved, multicast or metadata address is refused (IPv4-mapped IPv6 too),
unless ``webhooks.allow_private_networks`` is set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from loopgate.errors import DomainError

RESOLVE_SECONDS = 5
# The cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS IPv6: fd00:ec2::254).
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackUrlRefused(DomainError):
    code = "callback_url_not_allowed"


def refused_address(address: IPAddress) -> bool:
    """True for any address a callback may not reach (loopback, private, metadata, ...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (
        address in _METADATA
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global  # e.g. 100.64.0.0/10, shared carrier-grade NAT space
    )


async def check_callback_url(url: str) -> None:
    """Raise :class:`CallbackUrlRefused` unless every address of ``url``'s host is public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # Bounded: a resolver that hangs must not hang request creation with it.
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackUrlRefused(f"callback_url: host {host!r} does not resolve: {exc}") from None
    except TimeoutError:
        raise CallbackUrlRefused(
            f"callback_url: host {host!r} did not resolve within {RESOLVE_SECONDS} s"
        ) from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if refused_address(address):
            raise CallbackUrlRefused(
                f"callback_url: {host!r} resolves to {address}, a loopback, private or "
                "reserved address (set webhooks.allow_private_networks to allow it)"
            )
