"""Signing in to the console: the cookie, signing out, CSRF, and what the cookie opens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import pytest
from account_helpers import PASSWORD, AppClientFactory, Client, FakeClock, User, sign_up
from aiohttp import web
from console_helpers import (
    ask,
    csrf_in,
    log_size,
    operator,
    sign_in,
    submit,
    text_of,
    token_of,
)
from hitl_helpers import assert_error, event_types

from loopgate.config import Config, ConsoleConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

PAGES = [
    "/console",
    "/console/history?status=answered",
    "/console/sessions",
    "/console/keys",
    "/console/export",
    "/console/export/download?format=csv",
    "/console/requests/some-id",
    "/console/requests/some-id/card",
    "/console/events",
]
FORMS = [
    ("/console/requests/some-id/answer", {"option": "Approve"}),
    ("/console/sessions", {"session_id": "s", "client_id": "c"}),
    ("/console/sessions/deactivate", {"session_id": "deploys"}),
    ("/console/keys", {"label": "ci"}),
    ("/console/keys/revoke", {"key_id": "k"}),
    ("/console/logout", {}),
]


# --- signed out -------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
async def test_signed_out_every_console_page_redirects_to_sign_in(
    open_client: Client, page: str
) -> None:
    response = await open_client.get(page, allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert (
        location == "/console/login"
        if page == "/console"
        else location.startswith("/console/login?next=")
    )
    followed = await open_client.get(location)
    assert followed.status == 200 and "text/html" in followed.headers["Content-Type"]
    assert 'name="password"' in await followed.text()


@pytest.mark.parametrize(("path", "fields"), FORMS, ids=[path for path, _ in FORMS])
async def test_signed_out_a_form_post_redirects_to_sign_in_and_does_nothing(
    open_client: Client, store: EventStore, path: str, fields: dict[str, str]
) -> None:
    before = await log_size(store)
    response = await open_client.post(path, data=fields, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/console/login")
    assert await log_size(store) == before


async def test_the_sign_in_page_labels_its_fields_and_carries_a_csrf_token(
    open_client: Client,
) -> None:
    page = await (await open_client.get("/console/login")).text()
    assert '<label for="username">' in page and 'id="username"' in page
    assert '<label for="password">' in page and 'type="password"' in page
    assert csrf_in(page)


# --- signing in -------------------------------------------------------------------------


async def test_signing_in_sets_a_session_cookie_only_the_console_gets(
    open_client: Client, store: EventStore
) -> None:
    user = await sign_up(open_client, "alice")
    response = await sign_in(open_client, user.username)
    assert (response.status, response.headers["Location"]) == (303, "/console")
    header = next(
        value
        for value in response.headers.getall("Set-Cookie")
        if value.startswith("loopgate_console=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "Path=/console" in header and "SameSite=Lax" in header
    assert "Max-Age=43200" in header
    assert "secure" not in attributes  # plain http here, and console.secure_cookie = auto
    assert "console.signed_in" in await event_types(store)
    queue = await open_client.get("/console")
    assert queue.status == 200
    assert user.username in await queue.text()


async def test_the_cookie_is_secure_when_the_server_sits_behind_tls(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    store: EventStore,
    config: Config,
) -> None:
    behind_tls = msgspec.structs.replace(config, console=ConsoleConfig(secure_cookie="true"))
    client = await aiohttp_client(create_app(behind_tls, store=store))
    user = await sign_up(client, "alice")
    form = await client.get("/console/login")
    nonce = form.cookies["loopgate_login"]
    assert nonce["secure"]
    # Over plain http the test client keeps Secure cookies to itself; send it by hand.
    response = await client.post(
        "/console/login",
        data={
            "csrf_token": csrf_in(await form.text()),
            "username": user.username,
            "password": PASSWORD,
        },
        headers={"Cookie": f"loopgate_login={nonce.value}"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.cookies["loopgate_console"]["secure"]


@pytest.mark.parametrize(
    ("asked", "shown"),
    [
        ("/console/history?status=answered", "/console/history?status=answered"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/api/user/apikeys", "/console"),
        ("/console/login", "/console"),
        ("/console/../api/user/apikeys", "/console"),
        ("/console/history\r\nSet-Cookie: x=1", "/console"),
        ("/console/history?session_id=zürich", "/console/history?session_id=z%C3%BCrich"),
    ],
)
async def test_after_signing_in_the_page_asked_for_is_shown_if_it_is_a_console_page(
    open_client: Client, asked: str, shown: str
) -> None:
    user = await sign_up(open_client, "alice")
    response = await sign_in(open_client, user.username, next_page=asked)
    assert (response.status, response.headers["Location"]) == (303, shown)


async def test_a_wrong_password_shows_the_form_again_with_a_message(
    open_client: Client,
) -> None:
    user = await sign_up(open_client, "alice")
    response = await sign_in(open_client, user.username, password="not the password")
    assert response.status == 401
    assert "Wrong username or password." in text_of(await response.text())
    assert "loopgate_console" not in response.cookies
    assert (await open_client.get("/console", allow_redirects=False)).status == 303


async def test_an_unknown_user_gets_the_same_message(open_client: Client) -> None:
    response = await sign_in(open_client, "nobody-at-all", password="whatever it is")
    assert response.status == 401
    assert "Wrong username or password." in text_of(await response.text())


async def test_repeated_failures_lock_the_user_out_with_a_message(open_client: Client) -> None:
    user = await sign_up(open_client, "alice")
    for _ in range(5):
        assert (await sign_in(open_client, user.username, password="wrong guess")).status == 401
    locked = await sign_in(open_client, user.username)  # even the right password, for now
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in text_of(await locked.text())


async def test_signing_in_without_the_csrf_token_is_refused_and_records_nothing(
    open_client: Client, store: EventStore
) -> None:
    user = await sign_up(open_client, "alice")
    await open_client.get("/console/login")  # the browser has the form's nonce cookie
    before = await log_size(store)
    for token in ({}, {"csrf_token": "forged"}):
        fields = {"username": user.username, "password": "correct horse battery staple"}
        response = await open_client.post("/console/login", data={**fields, **token})
        assert response.status == 403
        assert "text/html" in response.headers["Content-Type"]
    assert await log_size(store) == before


# --- signing out, expiry, tampering -----------------------------------------------------------


async def test_signing_out_ends_the_session_on_the_server(
    open_client: Client, store: EventStore
) -> None:
    await operator(open_client)
    cookie = open_client.session.cookie_jar.filter_cookies(open_client.make_url("/console"))
    stolen = cookie["loopgate_console"].value
    response = await submit(open_client, "/console/logout")
    assert (response.status, response.headers["Location"]) == (303, "/console/login?signed_out")
    assert "console.signed_out" in await event_types(store)
    assert (await open_client.get("/console", allow_redirects=False)).status == 303
    # The copied cookie is worth nothing any more, though its mac and expiry still hold.
    open_client.session.cookie_jar.clear()
    replay = await open_client.get(
        "/console", headers={"Cookie": f"loopgate_console={stolen}"}, allow_redirects=False
    )
    assert replay.status == 303


async def test_a_session_ends_when_it_expires(open_client: Client, clock: FakeClock) -> None:
    await operator(open_client)
    clock.advance(43200 - 1)
    assert (await open_client.get("/console", allow_redirects=False)).status == 200
    clock.advance(1)
    response = await open_client.get("/console", allow_redirects=False)
    assert response.status == 303


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # the mac
        lambda v: "x" + v,  # the session id
        lambda v: v.split(".")[0] + ".9999999999." + v.split(".")[2],  # the expiry
        lambda v: v.split(".")[0],  # no mac at all
    ],
    ids=["mac", "session id", "expiry", "bare session id"],
)
async def test_a_tampered_cookie_opens_nothing(open_client: Client, tamper: object) -> None:
    await operator(open_client)
    jar = open_client.session.cookie_jar
    value = jar.filter_cookies(open_client.make_url("/console"))["loopgate_console"].value
    jar.clear()
    forged = tamper(value)  # type: ignore[operator]
    response = await open_client.get(
        "/console", headers={"Cookie": f"loopgate_console={forged}"}, allow_redirects=False
    )
    assert response.status == 303


@pytest.mark.parametrize(
    "cookie",
    ["x.99999999999999999999999999.mac", "x.²³.mac", "sessión.1.mäc", "." * 3, "a.1"],
)
async def test_a_malformed_cookie_is_a_sign_in_redirect_not_an_error(
    open_client: Client, cookie: str
) -> None:
    response = await open_client.get(
        "/console", headers={"Cookie": f"loopgate_console={cookie}"}, allow_redirects=False
    )
    assert response.status == 303


async def test_a_csrf_token_that_is_not_even_ascii_is_refused(
    open_client: Client, store: EventStore, user: User
) -> None:
    before = await log_size(store)
    response = await open_client.post(
        "/console/sessions",
        data={"csrf_token": "jeton-volé", "session_id": "s", "client_id": "c"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert await log_size(store) == before


# --- what opens what ----------------------------------------------------------------------


async def test_api_credentials_do_not_open_the_console(open_client: Client) -> None:
    user = await sign_up(open_client, "alice")
    response = await open_client.get("/console", headers=user.bearer, allow_redirects=False)
    assert response.status == 303


async def test_the_console_cookie_does_not_open_the_api(app_client: AppClientFactory) -> None:
    client = await app_client(require_api_key="true")
    await operator(client)
    jar = client.session.cookie_jar
    value = jar.filter_cookies(client.make_url("/console"))["loopgate_console"].value
    response = await client.get("/hitl/pending", headers={"Cookie": f"loopgate_console={value}"})
    await assert_error(response, 401, "unauthorized")


# --- CSRF on every form ---------------------------------------------------------------------


@pytest.mark.parametrize(("path", "fields"), FORMS, ids=[path for path, _ in FORMS])
@pytest.mark.parametrize("token", [None, "forged-token"], ids=["no token", "wrong token"])
async def test_a_form_without_the_right_csrf_token_is_refused_and_records_nothing(
    open_client: Client,
    store: EventStore,
    path: str,
    fields: dict[str, str],
    token: str | None,
    user: User,
) -> None:
    before = await log_size(store)
    data = fields if token is None else {**fields, "csrf_token": token}
    response = await open_client.post(path, data=data, allow_redirects=False)
    assert response.status == 403
    assert "text/html" in response.headers["Content-Type"]
    assert "reload the page" in text_of(await response.text())
    assert await log_size(store) == before
    assert (await open_client.get("/console", allow_redirects=False)).status == 200


async def test_a_form_from_another_site_is_refused_even_with_the_token(
    open_client: Client, store: EventStore, user: User
) -> None:
    ours, theirs = await ask(open_client, user), await ask(open_client, user)
    data = {"csrf_token": await token_of(open_client), "option": "Approve"}
    origin = str(open_client.make_url("/").origin())
    accepted = await open_client.post(
        f"/console/requests/{ours}/answer",
        data=data,
        headers={"Origin": origin},
        allow_redirects=False,
    )
    assert accepted.status == 303
    refused = await open_client.post(
        f"/console/requests/{theirs}/answer",
        data=data,
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert refused.status == 403
    assert "another site" in text_of(await refused.text())
    assert await event_types(store, f"request-{theirs}") == ["request.created"]


# --- console errors and headers -------------------------------------------------------------


async def test_console_errors_are_pages_and_api_errors_stay_json(open_client: Client) -> None:
    await operator(open_client)
    missing = await open_client.get("/console/no-such-page")
    assert missing.status == 404 and "text/html" in missing.headers["Content-Type"]
    assert "no such page" in text_of(await missing.text())
    request = await open_client.get("/console/requests/not-a-request")
    assert request.status == 404 and "text/html" in request.headers["Content-Type"]
    await assert_error(await open_client.get("/v1/nope"), 404, "not_found")


async def test_console_pages_refuse_frames_and_caches(open_client: Client) -> None:
    await operator(open_client)
    page = await open_client.get("/console")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Request-ID"]
