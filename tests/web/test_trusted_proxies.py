"""``server.trusted_proxies``: behind a proxy, failed logins count per client, not per proxy."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from account_helpers import TEST_JWT_SECRET, Client, FakeClock, sign_up
from aiohttp import web
from hitl_helpers import assert_error

from loopgate.config import AuthConfig, Config, ConfigError, ServerConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.proxies import client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # Not from a proxy: the header is the client's own word, ignored.
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # One proxy: the entry it appended.
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        # A forged entry on the left is skipped: the rightmost untrusted one counts.
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        # Two proxies in a chain, one header line each.
        ("10.0.0.2", ["198.51.100.1", "10.0.0.3"], "198.51.100.1"),
        # A proxy with nothing to say, or garbage: the proxy's own address.
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["not-an-address"], "10.0.0.2"),
        # Only proxies all the way: the leftmost.
        ("127.0.0.1", ["10.0.0.7"], "10.0.0.7"),
        ("2001:db8::1", ["198.51.100.1"], "2001:db8::1"),
    ],
)
def test_the_client_is_the_rightmost_address_no_trusted_proxy_wrote(
    peer: str, forwarded: list[str], expected: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_an_entry_that_is_no_address_is_refused_at_start(config: Config) -> None:
    server = ServerConfig(trusted_proxies="10.0.0.0/8, proxy.internal")
    with pytest.raises(ConfigError, match=re.escape("server.trusted_proxies: 'proxy.internal'")):
        create_app(msgspec.structs.replace(config, server=server))


async def locked_out_then_other(client: Client, first: str, second: str) -> int:
    """Fail Alice's logins from ``first`` until held back; what her next try from ``second`` gets.

    Failed logins are counted per address (and user), so another client is not held back.
    """
    alice = await sign_up(client, "alice")
    bad = {"username": alice.username, "password": "guess guess"}
    for _ in range(100):
        response = await client.post(
            "/api/auth/login", json=bad, headers={"X-Forwarded-For": first}
        )
        if response.status != 401:
            break
    await assert_error(response, 429, "too_many_requests")
    other = await client.post("/api/auth/login", json=bad, headers={"X-Forwarded-For": second})
    return other.status


@pytest.fixture
def with_proxies(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    store: EventStore,
    config: Config,
    clock: FakeClock,
) -> Callable[[str], Awaitable[Client]]:
    """The app with ``server.trusted_proxies`` set; the test client connects from 127.0.0.1."""

    async def factory(proxies: str) -> Client:
        server = msgspec.structs.replace(config.server, trusted_proxies=proxies)
        auth = AuthConfig(jwt_secret=TEST_JWT_SECRET)
        changed = msgspec.structs.replace(config, server=server, auth=auth)
        return await aiohttp_client(create_app(changed, store=store, clock=clock))

    return factory


async def test_behind_a_trusted_proxy_one_client_is_held_back_alone(
    with_proxies: Callable[[str], Awaitable[Client]],
) -> None:
    client = await with_proxies("127.0.0.1")
    assert await locked_out_then_other(client, "198.51.100.1", "198.51.100.2") == 401


async def test_without_trusted_proxies_x_forwarded_for_changes_nothing(
    with_proxies: Callable[[str], Awaitable[Client]],
) -> None:
    client = await with_proxies("")
    assert await locked_out_then_other(client, "198.51.100.1", "198.51.100.2") == 429
