"""Accounts and API keys over HTTP: the reference's routes and shapes, and their refusals."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from account_helpers import (
    PASSWORD,
    TEST_JWT_SECRET,
    AppClientFactory,
    Client,
    FakeClock,
    bearer,
    list_keys,
    log_in,
    new_key,
    sign_up,
    unique,
)
from console_helpers import agent_of
from hitl_helpers import assert_error

from loopgate.web.keys import ACCOUNTS

# --- registration -------------------------------------------------------------------------


async def test_register_answers_201_in_the_reference_shape(open_client: Client) -> None:
    username = unique("testuser")
    response = await open_client.post(
        "/api/auth/register", json={"username": username, "password": "SecurePassword123!"}
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert set(body) == {"message", "user_id", "username"}
    assert body["message"] == "User registered successfully"
    assert body["username"] == username
    assert body["user_id"]


async def test_registering_a_taken_username_is_a_409(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    response = await open_client.post(
        "/api/auth/register", json={"username": alice.username, "password": "another password"}
    )
    await assert_error(response, 409, "username_taken")


async def test_a_five_character_password_is_refused(open_client: Client) -> None:
    response = await open_client.post(
        "/api/auth/register", json={"username": unique("shorty"), "password": "abcde"}
    )
    message = await assert_error(response, 400, "validation_failed")
    assert "password" in message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"username": "", "password": PASSWORD}, "validation_failed"),
        ({"username": "has space", "password": PASSWORD}, "validation_failed"),
        ({"password": PASSWORD}, "validation_failed"),
        ({"username": "bob", "password": 12345678}, "validation_failed"),
        ([], "validation_failed"),
    ],
)
async def test_a_bad_registration_body_is_a_400(open_client: Client, body: Any, code: str) -> None:
    await assert_error(await open_client.post("/api/auth/register", json=body), 400, code)


async def test_malformed_json_is_a_400(open_client: Client) -> None:
    response = await open_client.post(
        "/api/auth/register", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    await assert_error(response, 400, "invalid_json")


async def test_closed_registration_answers_403_but_login_still_works(
    app_client: AppClientFactory,
) -> None:
    client = await app_client(registration="closed")
    response = await client.post(
        "/api/auth/register", json={"username": unique("eve"), "password": PASSWORD}
    )
    message = await assert_error(response, 403, "registration_closed")
    assert "loopgate user create" in message
    # An operator adds users without HTTP (as `loopgate user create` does).
    user = await client.app[ACCOUNTS].register_user(unique("carol"), PASSWORD)
    assert await log_in(client, user.username)


# --- login --------------------------------------------------------------------------------


async def test_login_answers_a_token_in_the_reference_shape(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    response = await open_client.post(
        "/api/auth/login", json={"username": alice.username, "password": PASSWORD}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert set(body) == {"token", "user_id", "username"}
    assert (body["user_id"], body["username"]) == (alice.user_id, alice.username)
    assert body["token"].count(".") == 2  # a JWT


async def test_a_wrong_password_and_an_unknown_user_get_the_same_401(
    open_client: Client,
) -> None:
    alice = await sign_up(open_client, "alice")
    wrong = await open_client.post(
        "/api/auth/login", json={"username": alice.username, "password": "not the password"}
    )
    unknown = await open_client.post(
        "/api/auth/login", json={"username": unique("nobody"), "password": PASSWORD}
    )
    # The same answer for both, so logins cannot be used to find usernames.
    assert await assert_error(wrong, 401, "invalid_credentials") == await assert_error(
        unknown, 401, "invalid_credentials"
    )


async def test_repeated_failed_logins_are_rate_limited_with_retry_after(
    open_client: Client,
) -> None:
    alice = await sign_up(open_client, "alice")
    bad = {"username": alice.username, "password": "guess guess"}
    for _ in range(100):
        response = await open_client.post("/api/auth/login", json=bad)
        if response.status != 401:
            break
    await assert_error(response, 429, "too_many_requests")
    assert int(response.headers["Retry-After"]) > 0
    # Even the right password waits until the limit has passed.
    right = await open_client.post(
        "/api/auth/login", json={"username": alice.username, "password": PASSWORD}
    )
    assert right.status == 429


async def test_a_stale_token_does_not_block_logging_in_again(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    response = await open_client.post(
        "/api/auth/login",
        json={"username": alice.username, "password": PASSWORD},
        headers=bearer("not.a.token"),
    )
    assert response.status == 200


# --- creating, listing and revoking keys ----------------------------------------------------


async def test_creating_a_key_answers_201_with_the_raw_key_once(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    response = await open_client.post(
        "/api/user/apikeys", json={"label": "My Test Key"}, headers=alice.bearer
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    assert set(created) == {
        "id",
        "raw_key",
        "label",
        "kind",
        "prefix",
        "expires_at",
        "created_at",
    }
    assert created["kind"] == "agent"  # a key never answers unless made to
    assert created["raw_key"].startswith("lk_pub_")
    assert len(created["raw_key"]) > 40
    assert created["raw_key"].startswith(created["prefix"])
    assert created["label"] == "My Test Key"
    assert created["expires_at"] is None
    datetime.fromisoformat(created["created_at"])


async def test_a_key_needs_no_body_and_takes_an_expiry(
    open_client: Client, clock: FakeClock
) -> None:
    alice = await sign_up(open_client, "alice")
    bare = await open_client.post("/api/user/apikeys", headers=alice.bearer)
    assert bare.status == 201, await bare.text()
    assert (await bare.json())["label"] == "default"
    expires = clock.now + timedelta(days=30)
    created = await new_key(open_client, alice, label="ci", expires_at=expires.isoformat())
    assert datetime.fromisoformat(created["expires_at"]) == expires


@pytest.mark.parametrize(
    "body",
    [
        {"label": "x" * 101},
        {"label": 7},
        {"expires_at": "tomorrow"},
        {"expires_at": "2030-01-01T00:00:00"},  # no time zone
    ],
)
async def test_a_bad_key_body_is_a_400(open_client: Client, body: dict[str, Any]) -> None:
    alice = await sign_up(open_client, "alice")
    response = await open_client.post("/api/user/apikeys", json=body, headers=alice.bearer)
    await assert_error(response, 400, "validation_failed")


async def test_a_key_cannot_expire_in_the_past(open_client: Client, clock: FakeClock) -> None:
    alice = await sign_up(open_client, "alice")
    past = (clock.now - timedelta(minutes=1)).isoformat()
    response = await open_client.post(
        "/api/user/apikeys", json={"expires_at": past}, headers=alice.bearer
    )
    await assert_error(response, 400, "validation_failed")


async def test_the_list_shows_the_users_own_keys_without_secrets(open_client: Client) -> None:
    alice, bob = await sign_up(open_client, "alice"), await sign_up(open_client, "bob")
    first = await new_key(open_client, alice, label="first")
    second = await new_key(open_client, alice, label="second")
    bobs = await new_key(open_client, bob, label="bob's")

    keys = await list_keys(open_client, alice)
    assert sorted(key["id"] for key in keys) == sorted((first["id"], second["id"]))
    for key in keys:
        assert set(key) == {
            "id",
            "label",
            "kind",
            "prefix",
            "is_active",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        }
        assert key["is_active"] is True
    text = json.dumps(keys)
    for raw in (first["raw_key"], second["raw_key"], bobs["raw_key"]):
        assert raw not in text
    assert "hash" not in text
    assert [key["id"] for key in await list_keys(open_client, bob)] == [bobs["id"]]


async def test_the_list_records_when_a_key_was_last_used(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    created = await new_key(open_client, alice)
    (before,) = await list_keys(open_client, alice)
    assert before["last_used_at"] is None
    response = await open_client.get("/hitl/pending", headers={"X-API-Key": created["raw_key"]})
    assert response.status == 200
    (after,) = await list_keys(open_client, alice)
    assert after["last_used_at"] is not None


async def test_revoking_answers_200_and_is_idempotent(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    created = await new_key(open_client, alice)
    for _ in range(2):
        response = await open_client.delete(
            f"/api/user/apikeys/{created['id']}", headers=alice.bearer
        )
        assert response.status == 200, await response.text()
        assert await response.json() == {
            "message": "API key revoked successfully",
            "id": created["id"],
        }
    (listed,) = await list_keys(open_client, alice)
    assert listed["is_active"] is False
    assert listed["revoked_at"] is not None


async def test_revoking_another_users_key_is_a_404(open_client: Client) -> None:
    alice, bob = await sign_up(open_client, "alice"), await sign_up(open_client, "bob")
    created = await new_key(open_client, alice)
    response = await open_client.delete(f"/api/user/apikeys/{created['id']}", headers=bob.bearer)
    await assert_error(response, 404, "api_key_not_found")
    response = await open_client.delete("/api/user/apikeys/no-such-key", headers=bob.bearer)
    await assert_error(response, 404, "api_key_not_found")
    (listed,) = await list_keys(open_client, alice)
    assert listed["is_active"] is True


# --- the key routes need a login token ------------------------------------------------------

KEY_ROUTES = [
    ("POST", "/api/user/apikeys"),
    ("GET", "/api/user/apikeys"),
    ("DELETE", "/api/user/apikeys/some-id"),
]


@pytest.mark.parametrize(("method", "path"), KEY_ROUTES)
async def test_key_routes_without_a_token_answer_401(
    open_client: Client, method: str, path: str
) -> None:
    response = await open_client.request(method, path, json={})
    await assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), KEY_ROUTES)
async def test_key_routes_refuse_an_api_key_in_place_of_a_token(
    open_client: Client, method: str, path: str
) -> None:
    alice = await sign_up(open_client, "alice")
    raw = (await new_key(open_client, alice))["raw_key"]
    for headers in ({"X-API-Key": raw}, bearer(raw)):
        response = await open_client.request(method, path, json={}, headers=headers)
        await assert_error(response, 401, "unauthorized")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _tampered(token: str) -> str:
    """The same signature over a payload naming someone else."""
    header, _, signature = token.split(".")
    claims = {**_claims(token), "sub": "someone-else"}
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _unsigned(token: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(_claims(token)).encode())}."


def _expired(token: str) -> str:
    past = datetime.now(UTC) - timedelta(hours=1)
    claims = {**_claims(token), "iat": int(past.timestamp()) - 60, "exp": int(past.timestamp())}
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


FORGERIES = {
    "tampered": _tampered,
    "unsigned (alg none)": _unsigned,
    "expired": _expired,
    "wrong algorithm (HS512)": lambda t: jwt.encode(_claims(t), TEST_JWT_SECRET, "HS512"),
    "wrong secret": lambda t: jwt.encode(_claims(t), "another-secret-" * 4, algorithm="HS256"),
    "garbage": lambda t: "not-a-jwt",
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_forged_tokens_are_refused_on_the_key_routes(open_client: Client, forge: Any) -> None:
    alice = await sign_up(open_client, "alice")
    # The same claims, signed properly, are accepted: each forgery fails for its own flaw.
    resigned = jwt.encode(_claims(alice.token), TEST_JWT_SECRET, algorithm="HS256")
    assert (await open_client.get("/api/user/apikeys", headers=bearer(resigned))).status == 200
    response = await open_client.get("/api/user/apikeys", headers=bearer(forge(alice.token)))
    await assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_login_token_acts_as_its_user_on_the_v1_routes(
    keyed_client: Client,
) -> None:
    alice = await sign_up(keyed_client, "alice")
    # Her teammate's agent asks; alice decides (who asks never decides).
    raw = (await new_key(keyed_client, await agent_of(keyed_client, alice)))["raw_key"]
    headers = {"X-API-Key": raw}
    session = {"session_id": unique("s"), "client_id": "agent"}
    assert (await keyed_client.post("/v1/sessions", json=session, headers=headers)).status == 201
    created = await keyed_client.post(
        "/v1/requests", json={**session, "message": "Deploy?"}, headers=headers
    )
    assert created.status == 201, await created.text()
    request_id = (await created.json())["request_id"]
    listed = await keyed_client.get("/v1/requests", headers=alice.bearer)
    assert [r["request_id"] for r in (await listed.json())["requests"]] == [request_id]
    answered = await keyed_client.post(
        f"/v1/requests/{request_id}/response", json={"text": "go"}, headers=alice.bearer
    )
    assert answered.status == 200, await answered.text()
    assert (await answered.json())["decided_by"]["kind"] == "human"
