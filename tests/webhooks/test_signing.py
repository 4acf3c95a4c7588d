"""Webhook signatures and delivery ids, without a network."""

from __future__ import annotations

import pytest

from loopgate.channels.webhooks.signing import (
    SIGNATURE_HEADER,
    InvalidSignature,
    delivery_id,
    sign,
    verify_signature,
)

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
