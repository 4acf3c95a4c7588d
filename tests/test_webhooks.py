"""Webhook signatures and the SSRF guard, without a network."""

from __future__ import annotations

import ipaddress

import pytest

from loopgate.channels.webhooks.signing import (
    SIGNATURE_HEADER,
    InvalidSignature,
    delivery_id,
    sign,
    verify_signature,
)
from loopgate.commands.callback_urls import CallbackUrlRefused, _refused_address, check_callback_url

BODY = b'{"request_id":"r1","approved":true}'
SECRET = "whsec_test"
NOW = 1_800_000_000


def test_a_signature_verifies_against_its_body_and_secret() -> None:
    headers = {SIGNATURE_HEADER: sign(BODY, SECRET, NOW)}
    verify_signature(BODY, headers, SECRET, now=NOW + 10)
    # Header names are case-insensitive, as in HTTP.
    verify_signature(BODY, {SIGNATURE_HEADER.lower(): headers[SIGNATURE_HEADER]}, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("body", "header", "secret", "now", "reason"),
    [
        (BODY + b" ", sign(BODY, SECRET, NOW), SECRET, NOW, "does not match"),
        (BODY, sign(BODY, "whsec_other", NOW), SECRET, NOW, "does not match"),
        (BODY, sign(BODY, SECRET, NOW), SECRET, NOW + 301, "outside the tolerance"),
        (BODY, f"t={NOW}", SECRET, NOW, "no valid"),
        (BODY, "v1=abc", SECRET, NOW, "no valid"),
        (BODY, "", SECRET, NOW, "no valid"),
    ],
)
def test_a_bad_signature_is_refused(
    body: bytes, header: str, secret: str, now: int, reason: str
) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify_signature(body, {SIGNATURE_HEADER: header}, secret, now=now)


def test_the_signature_header_has_the_documented_shape() -> None:
    timestamp, mac = sign(BODY, SECRET, NOW).split(",")
    assert timestamp == f"t={NOW}"
    assert mac.startswith("v1=") and len(mac) == 3 + 64


def test_a_delivery_id_is_stable_per_request_and_differs_between_requests() -> None:
    assert delivery_id("r1") == delivery_id("r1") != delivery_id("r2")


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
    assert _refused_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not _refused_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "https://[::1]/hook", "http://localhost/x"]
)
async def test_a_url_whose_host_resolves_to_loopback_is_refused(url: str) -> None:
    with pytest.raises(CallbackUrlRefused, match=r"webhooks\.allow_private_networks"):
        await check_callback_url(url)


async def test_a_public_ip_literal_passes_without_dns() -> None:
    await check_callback_url("https://93.184.216.34/hook")
