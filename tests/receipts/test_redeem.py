"""A receipt end to end over HTTP: minted on approval, verified offline, redeemed once.

The issue's must-show is the first test; then each refusal of
``POST /v1/receipts/redeem`` in the order the server checks them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import msgspec
import pytest
from receipt_helpers import (
    WIRE,
    Client,
    FakeClock,
    answer,
    approved,
    ask,
    decision,
    error_code,
    redeem,
)

from loopgate.config import Config, ReceiptsConfig
from loopgate.domain.action import fingerprint
from loopgate.events import Action, ReceiptRedeemed
from loopgate.store.base import EventStore
from loopgate.web.keys import RECEIPTS, REQUESTS


def offline_claims(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """What a tool does with no server at hand: check the signature against the JWKS."""
    keys = jwt.PyJWKSet.from_dict(jwks)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["EdDSA"], issuer="loopgate", options={"verify_iat": False}
    )
    return claims


async def test_the_wire_transfer_receipt_verifies_offline_redeems_once_and_binds_the_amount(
    client: Client,
) -> None:
    request = await approved(client, WIRE)
    token = request["receipt"]
    assert token is not None

    jwks = await (await client.get("/.well-known/jwks.json")).json()
    claims = offline_claims(token, jwks)
    assert claims["sub"] == claims["jti"] == request["request_id"]
    assert claims["act"] == fingerprint(msgspec.convert(WIRE, Action)) == request["fingerprint"]
    assert claims["wsp"] == "local"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["dec"]["decided_by"]["kind"] == "human"
    assert [v["approves"] for v in claims["dec"]["votes"]] == [True]

    tampered = {"tool": "wire_transfer", "args": {"amount": 1500001, "to": "ACME"}}
    status, body = await redeem(client, token, tampered)
    assert (status, error_code(body)) == (422, "action_mismatch")

    status, body = await redeem(client, token, WIRE)
    assert status == 200, body
    assert body["redeemed"] is True
    assert body["request_id"] == body["jti"] == request["request_id"]
    assert body["fingerprint"] == claims["act"]
    assert body["decided_by"]["kind"] == "human"

    status, body = await redeem(client, token, WIRE)
    assert (status, error_code(body)) == (409, "receipt_already_redeemed")
    assert "already redeemed at" in body["error"]["message"]


async def test_a_receipt_is_the_same_on_every_read(client: Client) -> None:
    request = await approved(client)
    again = await decision(client, request["request_id"])
    polled = await (
        await client.get("/hitl/poll", params={"request_id": request["request_id"]})
    ).json()
    assert request["receipt"] == again["receipt"] == polled["receipt"] is not None


async def test_no_receipt_without_an_action_or_without_an_approval(client: Client) -> None:
    rejected_id = await ask(client)
    await answer(client, rejected_id, "Reject")
    assert (await decision(client, rejected_id))["receipt"] is None

    pending_id = await ask(client)
    assert (await decision(client, pending_id))["receipt"] is None

    made = await client.post("/v1/sessions", json={"session_id": "plain", "client_id": "a"})
    assert made.status in (200, 201)
    asked = await client.post(
        "/v1/requests",
        json={"session_id": "plain", "client_id": "a", "message": "Go?", "options": ["Approve"]},
    )
    plain_id = (await asked.json())["request_id"]
    await answer(client, plain_id)
    assert (await decision(client, plain_id))["receipt"] is None


async def test_a_redemption_is_in_the_log_under_the_receipts_stream(
    client: Client, store: EventStore
) -> None:
    request = await approved(client)
    status, _ = await redeem(client, request["receipt"])
    assert status == 200
    history = await store.read_stream(f"receipt-{request['request_id']}")
    assert [type(r.event) for r in history] == [ReceiptRedeemed]
    event = history[0].event
    assert isinstance(event, ReceiptRedeemed)
    assert (event.request_id, event.redeemed_by) == (request["request_id"], "anonymous")
    assert event.fingerprint == request["fingerprint"]


async def test_an_action_mismatch_does_not_use_the_receipt_up(client: Client) -> None:
    request = await approved(client)
    other = {"tool": "wire_transfer", "args": {"to": "ACME", "amount": 1}}
    assert (await redeem(client, request["receipt"], other))[0] == 422
    # Key order is not part of the action: the same call, spelled otherwise, redeems.
    reordered = {"args": {"to": "ACME", "amount": 1500000}, "tool": "wire_transfer"}
    assert (await redeem(client, request["receipt"], reordered))[0] == 200


@pytest.mark.parametrize(
    "receipt",
    ["", "not-a-jws", "a.b.c", "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vbmUifQ.e30.AAAA"],
    ids=["empty", "garbage", "three-parts", "unknown-kid"],
)
async def test_a_malformed_or_unknown_receipt_is_invalid(client: Client, receipt: str) -> None:
    await approved(client)  # so that a key exists
    status, body = await redeem(client, receipt)
    assert (status, error_code(body)) == (422, "invalid_receipt")


async def test_a_receipt_with_a_changed_claim_or_signature_is_invalid(client: Client) -> None:
    token = (await approved(client))["receipt"]
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.utils.base64url_encode(
        msgspec.json.encode({**claims, "exp": claims["exp"] + 86400})
    ).decode()
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{flipped}"):
        status, body = await redeem(client, bad)
        assert (status, error_code(body)) == (422, "invalid_receipt")
    assert (await redeem(client, token))[0] == 200  # the genuine one was never used up


async def test_a_receipt_of_another_issuer_is_invalid(
    client: Client, store: EventStore, config: Config, app_on: Any
) -> None:
    token = (await approved(client))["receipt"]
    other = msgspec.structs.replace(config, receipts=ReceiptsConfig(issuer="elsewhere"))
    elsewhere = await app_on(store, config=other)
    status, body = await redeem(elsewhere, token)
    assert (status, error_code(body)) == (422, "invalid_receipt")


async def test_an_expired_receipt_is_gone_and_not_redeemed(
    client: Client, clock: FakeClock, store: EventStore
) -> None:
    request = await approved(client)
    clock.advance(599)
    request_two = await approved(client)  # decided on the real clock: still fresh
    clock.advance(2)
    status, body = await redeem(client, request["receipt"])
    assert (status, error_code(body)) == (410, "receipt_expired")
    assert await store.read_stream(f"receipt-{request['request_id']}") == []
    assert (await redeem(client, request_two["receipt"]))[0] == 410  # 601 s after both


async def test_a_short_ttl_is_the_receipts_lifetime(
    store: EventStore, config: Config, app_on: Any
) -> None:
    short = msgspec.structs.replace(config, receipts=ReceiptsConfig(ttl_seconds=1))
    client = await app_on(store, config=short)
    request = await approved(client)
    claims = jwt.decode(request["receipt"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1
    await asyncio.sleep(max(0.0, claims["exp"] - time.time()) + 0.05)
    status, body = await redeem(client, request["receipt"])
    assert (status, error_code(body)) == (410, "receipt_expired")


async def test_two_redemptions_at_once_give_exactly_one_200(client: Client) -> None:
    token = (await approved(client))["receipt"]
    results = await asyncio.gather(*(redeem(client, token) for _ in range(8)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * 7


async def test_two_processes_redeeming_at_once_give_exactly_one_200(
    client: Client, open_test_store: Any, app_on: Any
) -> None:
    token = (await approved(client))["receipt"]
    other = await app_on(await open_test_store())
    results = await asyncio.gather(
        *(redeem(c, token) for c in (client, other, client, other, client, other))
    )
    assert sorted(status for status, _ in results) == [200] + [409] * 5


async def test_the_service_mints_what_the_route_shows(client: Client) -> None:
    request = await approved(client)
    found = await client.app[REQUESTS].find_request(request["request_id"])
    assert await client.app[RECEIPTS].mint(found) == request["receipt"]


async def test_an_edited_action_is_the_one_its_receipt_binds(client: Client) -> None:
    made = await client.post("/v1/sessions", json={"session_id": "edits", "client_id": "a"})
    assert made.status in (200, 201)
    body = {
        "session_id": "edits",
        "client_id": "a",
        "message": "Wire?",
        "options": ["Approve", "Reject"],
        "action": WIRE,
        "editable": True,
    }
    request_id = (await (await client.post("/v1/requests", json=body)).json())["request_id"]
    edited = {"tool": "wire_transfer", "args": {"amount": 150000, "to": "ACME"}}
    answered = await client.post(
        f"/v1/requests/{request_id}/response",
        json={"option": "Approve", "args": edited["args"]},
    )
    assert answered.status == 200, await answered.text()
    request = await decision(client, request_id)
    assert request["edited"] is True
    claims = jwt.decode(request["receipt"], options={"verify_signature": False})
    assert claims["act"] == fingerprint(msgspec.convert(edited, Action))
    status, found = await redeem(client, request["receipt"], WIRE)
    assert (status, error_code(found)) == (422, "action_mismatch")
    assert (await redeem(client, request["receipt"], edited))[0] == 200


async def test_a_request_a_grant_approves_at_creation_carries_its_own_receipt(
    client: Client,
) -> None:
    made = await client.post("/v1/sessions", json={"session_id": "grants", "client_id": "a"})
    assert made.status in (200, 201)
    body = {
        "session_id": "grants",
        "client_id": "a",
        "message": "Deploy?",
        "options": ["Approve", "Reject"],
        "action": {"tool": "deploy", "args": {"env": "staging"}},
        "grantable": True,
    }
    first = (await (await client.post("/v1/requests", json=body)).json())["request_id"]
    answered = await client.post(
        f"/v1/requests/{first}/response",
        json={"option": "Approve", "grant": {"seconds": 1800, "scope": "exact"}},
    )
    assert answered.status == 200, await answered.text()
    again = await client.post("/v1/requests", json=body)
    assert again.status == 201
    created = await again.json()
    assert created["decided_by"]["kind"] == "policy"
    assert created["receipt"] is not None
    claims = jwt.decode(created["receipt"], options={"verify_signature": False})
    assert claims["sub"] == created["request_id"] != first
    assert claims["dec"]["decided_by"]["id"].startswith("grant:")
    assert created["receipt"] == (await decision(client, created["request_id"]))["receipt"]
    assert (await redeem(client, created["receipt"], body["action"]))[0] == 200  # type: ignore[arg-type]
