"""The SSRF guard on callback URLs, without a network."""

from __future__ import annotations

import ipaddress

import pytest

from loopgate.commands.callback_urls import CallbackUrlRefused, check_callback_url, refused_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not refused_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "https://[::1]/hook", "http://localhost/x"]
)
async def test_a_url_whose_host_resolves_to_loopback_is_refused(url: str) -> None:
    with pytest.raises(CallbackUrlRefused, match=r"webhooks\.allow_private_networks"):
        await check_callback_url(url)


async def test_a_public_ip_literal_passes_without_dns() -> None:
    await check_callback_url("https://93.184.216.34/hook")
