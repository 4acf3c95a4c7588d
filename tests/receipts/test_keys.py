"""The signing keys: derived, never stored; rotated in the log; seen by every process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
import pytest
from receipt_helpers import Client, approved, redeem
from server_key import TEST_SECRETS

from loopgate.commands.base import utcnow
from loopgate.config import Config, SecretsConfig, decode_secrets_key
from loopgate.errors import LoopgateError
from loopgate.events import SigningKeyAdded
from loopgate.receipts.keys import STREAM, KeyRing, b64url, derive_seed, in_force, raw_public
from loopgate.receipts.keys import private_key as derived_private_key
from loopgate.store.base import EventStore
from loopgate.web.keys import RECEIPTS, REQUESTS

SERVER_KEY = decode_secrets_key(TEST_SECRETS.key)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def key_at(kid: str, minutes: int) -> SigningKeyAdded:
    return SigningKeyAdded(kid=kid, public_key="x", added_at=T0 + timedelta(minutes=minutes))


def test_the_key_in_force_is_the_newest_added_at_or_before_the_decision() -> None:
    keys = [key_at("a", 0), key_at("b", 10), key_at("c", 20)]
    assert in_force(keys, T0 + timedelta(minutes=15)).kid == "b"
    assert in_force(keys, T0 + timedelta(minutes=10)).kid == "b"
    assert in_force(keys, T0 + timedelta(minutes=99)).kid == "c"
    assert in_force(keys, T0 - timedelta(minutes=1)).kid == "a"  # older than every key


def test_a_seed_is_derived_from_the_server_key_and_the_kid() -> None:
    seed = derive_seed(SERVER_KEY, "k1")
    assert len(seed) == 32
    assert seed == derive_seed(SERVER_KEY, "k1")
    assert seed != derive_seed(SERVER_KEY, "k2")
    assert seed != derive_seed(bytes(32), "k1")


async def test_the_first_mint_makes_a_key_and_the_log_holds_its_public_half(
    client: Client, store: EventStore
) -> None:
    assert await store.read_stream(STREAM) == []
    await approved(client)
    history = await store.read_stream(STREAM)
    assert len(history) == 1
    added = history[0].event
    assert isinstance(added, SigningKeyAdded)
    derived = derived_private_key(SERVER_KEY, added.kid)
    assert added.public_key == b64url(raw_public(derived))


async def test_the_jwks_lists_every_key_newest_first_in_rfc_8037_form(client: Client) -> None:
    assert await (await client.get("/.well-known/jwks.json")).json() == {"keys": []}
    await approved(client)
    first = await client.app[RECEIPTS].rotate()
    second = await client.app[RECEIPTS].rotate()
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]][:2] == [second, first]
    assert len(jwks["keys"]) == 3
    for key in jwks["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
        assert len(jwt.utils.base64url_decode(key["x"])) == 32
    assert len(jwt.PyJWKSet.from_dict(jwks).keys) == 3


async def test_after_a_rotation_new_decisions_use_the_new_key_and_old_receipts_still_verify(
    client: Client,
) -> None:
    before = await approved(client)
    new_kid = await client.app[RECEIPTS].rotate()
    after = await approved(client)
    old_kid = jwt.get_unverified_header(before["receipt"])["kid"]
    assert old_kid != new_kid
    assert jwt.get_unverified_header(after["receipt"])["kid"] == new_kid
    # The old decision is still signed by the key in force when it was made: the same token.
    assert (await client.get(f"/v1/requests/{before['request_id']}")).status == 200
    again = await (await client.get(f"/v1/requests/{before['request_id']}")).json()
    assert again["receipt"] == before["receipt"]
    assert (await redeem(client, before["receipt"]))[0] == 200
    assert (await redeem(client, after["receipt"]))[0] == 200


async def test_two_processes_making_the_first_key_at_once_agree_on_one(
    open_test_store: Any,
) -> None:
    stores = [await open_test_store() for _ in range(4)]
    rings = [KeyRing(s, lambda: SERVER_KEY, utcnow) for s in stores]
    made = await asyncio.gather(*(ring.ensure() for ring in rings))
    assert {tuple(k.kid for k in keys) for keys in made} == {(made[0][0].kid,)}
    assert len(await stores[0].read_stream(STREAM)) == 1


async def test_two_rotations_at_once_both_land_one_after_the_other(
    open_test_store: Any,
) -> None:
    stores = [await open_test_store() for _ in range(2)]
    rings = [KeyRing(s, lambda: SERVER_KEY, utcnow) for s in stores]
    added = await asyncio.gather(*(ring.rotate() for ring in rings))
    history = await stores[0].read_stream(STREAM)
    assert [r.version for r in history] == [1, 2]
    assert {r.event.kid for r in history if isinstance(r.event, SigningKeyAdded)} == {
        k.kid for k in added
    }


async def test_a_rotation_in_another_process_is_seen_by_this_one(
    client: Client, open_test_store: Any, app_on: Any
) -> None:
    await approved(client)  # this process has read (and cached) the first key
    elsewhere = await app_on(await open_test_store())
    new_kid = await elsewhere.app[RECEIPTS].rotate()
    async with asyncio.timeout(10):
        while True:
            jwks = await (await client.get("/.well-known/jwks.json")).json()
            if jwks["keys"][0]["kid"] == new_kid:
                break
            await asyncio.sleep(0.05)
    after = await approved(client)
    assert jwt.get_unverified_header(after["receipt"])["kid"] == new_kid
    # And a receipt minted here redeems there (the other process knows the key too).
    assert (await redeem(elsewhere, after["receipt"]))[0] == 200


async def test_a_changed_server_key_refuses_to_sign_with_a_key_it_does_not_derive(
    client: Client, store: EventStore, config: Config, app_on: Any
) -> None:
    await approved(client)
    other_key = SecretsConfig(key="AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
    changed = await app_on(store, config=msgspec.structs.replace(config, secrets=other_key))
    found = await (await changed.get("/v1/requests?limit=1")).json()
    view = await changed.app[REQUESTS].find_request(found["requests"][0]["request_id"])
    with pytest.raises(LoopgateError) as refused:
        await changed.app[RECEIPTS].mint(view)
    assert refused.value.code == "signing_key_mismatch"
    # A rotation there gives that server a key it can sign later decisions with.
    await changed.app[RECEIPTS].rotate()
    assert (await approved(changed))["receipt"] is not None
