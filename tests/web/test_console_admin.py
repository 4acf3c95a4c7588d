"""The console's history, sessions, API keys and export pages, each for its own tenant only."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
from account_helpers import Client, User, api_key, sign_up
from console_helpers import (
    agent_session,
    ask,
    log_size,
    operator,
    submit,
    text_of,
)
from hitl_helpers import assert_error, event_types

from loopgate.audit.export import CSV_COLUMNS
from loopgate.commands.sessions import session_stream
from loopgate.store.base import EventStore
from loopgate.web.console_admin import HISTORY_PAGE


def linked_requests(page: str) -> list[str]:
    return re.findall(r'<a href="/console/requests/([^"]+)">', page)


def link(page: str, rel_text: str) -> str | None:
    found = re.search(rf'<a class="button quiet" href="([^"]+)"[^>]*>{rel_text}', page)
    return found.group(1).replace("&amp;", "&") if found else None


# --- history ------------------------------------------------------------------------------


async def test_history_filters_by_status_and_session(open_client: Client, user: User) -> None:
    await agent_session(open_client, user, session_id="nightly")
    waiting = await ask(open_client, user, "Still waiting?")
    answered = await ask(open_client, user, "Answered one?")
    await submit(open_client, f"/console/requests/{answered}/answer", option="Approve")
    nightly = await ask(open_client, user, "From the nightly job?", session_id="nightly")

    async def listed(**query: str) -> list[str]:
        response = await open_client.get("/console/history", params=query)
        assert response.status == 200
        return linked_requests(await response.text())

    assert await listed() == [nightly, answered, waiting]  # newest first
    assert await listed(status="answered") == [answered]
    assert await listed(status="open") == [nightly, waiting]
    assert await listed(session_id="nightly") == [nightly]
    assert await listed(status="answered", session_id="nightly") == []
    page = await (await open_client.get("/console/history", params={"status": "answered"})).text()
    assert f"“Approve” by you ({user.username})" in text_of(page)
    assert '<option value="answered" selected>' in page  # the filter stays shown


async def test_history_filters_by_days_in_the_viewers_time_zone(
    open_client: Client, user: User
) -> None:
    request_id = await ask(open_client, user)
    zone = "Pacific/Kiritimati"  # UTC+14: its day is rarely the UTC day
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    day, next_day = today.isoformat(), (today + timedelta(days=1)).isoformat()
    yesterday = (today - timedelta(days=1)).isoformat()

    async def listed(**query: str) -> list[str]:
        response = await open_client.get("/console/history", params={"tz": zone, **query})
        assert response.status == 200, await response.text()
        return linked_requests(await response.text())

    assert await listed(**{"from": day, "to": day}) == [request_id]
    assert await listed(**{"from": next_day}) == []
    assert await listed(to=yesterday) == []
    assert "counted in Pacific/Kiritimati" in text_of(
        await (await open_client.get("/console/history", params={"tz": zone})).text()
    )


async def test_a_bad_history_filter_is_explained(open_client: Client) -> None:
    await operator(open_client)
    response = await open_client.get("/console/history", params={"from": "last tuesday"})
    assert response.status == 400
    assert "from: expected a date like 2026-05-01" in text_of(await response.text())


async def test_history_pages_through_older_requests(open_client: Client, user: User) -> None:
    created = [await ask(open_client, user, f"Question {n}") for n in range(HISTORY_PAGE + 2)]
    newest_first = created[::-1]
    first = await (await open_client.get("/console/history")).text()
    assert linked_requests(first) == newest_first[:HISTORY_PAGE]
    assert link(first, "← Newest") is None
    older = link(first, "Older")
    assert older is not None
    second = await (await open_client.get("/console/history" + older)).text()
    assert linked_requests(second) == newest_first[HISTORY_PAGE:]
    assert link(second, "Older") is None
    assert link(second, "← Newest") is not None


async def test_history_shows_only_the_users_own_requests(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    await agent_session(open_client, alice)
    await ask(open_client, alice, "Alice's question")
    await operator(open_client, "bob")
    page = await (await open_client.get("/console/history")).text()
    assert linked_requests(page) == []
    assert "No request matches" in text_of(page)


# --- sessions -----------------------------------------------------------------------------


async def test_sessions_are_listed_registered_and_deactivated(
    open_client: Client, store: EventStore, user: User
) -> None:
    registered = await submit(
        open_client,
        "/console/sessions",
        session_id="on-call",
        client_id="pager",
        telegram_id="123456789",
    )
    assert registered.headers["Location"] == "/console/sessions?notice=registered"
    plain = await submit(open_client, "/console/sessions", session_id="quiet", client_id="bot")
    assert plain.status == 303
    page = text_of(await (await open_client.get(registered.headers["Location"])).text())
    assert "Session registered." in page
    assert "on-call pager 123456789" in page and "quiet bot —" in page and "deploys ci" in page

    deactivated = await submit(open_client, "/console/sessions/deactivate", session_id="on-call")
    assert deactivated.headers["Location"] == "/console/sessions?notice=deactivated"
    on_call = session_stream(user.user_id, "on-call")
    assert (await event_types(store, on_call))[-1] == "session.deactivated"
    status = await open_client.get(
        "/hitl/status", params={"session_id": "on-call"}, headers=user.bearer
    )
    assert (await status.json())["active"] is False
    again = await submit(open_client, "/console/sessions/deactivate", session_id="on-call")
    assert again.status == 409
    assert "already inactive" in text_of(await again.text())


async def test_registering_a_session_checks_it_like_the_api(
    open_client: Client, store: EventStore, user: User
) -> None:
    before = await log_size(store)
    taken = await submit(
        open_client, "/console/sessions", session_id="deploys", client_id="someone-else"
    )
    assert taken.status == 409
    text = text_of(await taken.text())
    assert "registered to client 'ci'" in text
    assert 'value="someone-else"' in await taken.text()  # what was typed stays
    bad_id = await submit(
        open_client, "/console/sessions", session_id="x", client_id="y", telegram_id="me"
    )
    assert bad_id.status == 400
    assert "telegram_id: expected your Telegram user id" in text_of(await bad_id.text())
    assert await log_size(store) == before


async def test_another_users_sessions_are_out_of_sight_and_out_of_reach(
    open_client: Client, store: EventStore
) -> None:
    alice = await sign_up(open_client, "alice")
    await agent_session(open_client, alice, session_id="alices-agent")
    await operator(open_client, "bob")
    assert "alices-agent" not in await (await open_client.get("/console/sessions")).text()
    before = await log_size(store)
    response = await submit(open_client, "/console/sessions/deactivate", session_id="alices-agent")
    assert response.status == 404
    assert await log_size(store) == before


# --- API keys -----------------------------------------------------------------------------


async def test_a_new_key_is_shown_once_works_and_stops_working_when_revoked(
    open_client: Client,
) -> None:
    user = await operator(open_client)
    created = await submit(open_client, "/console/keys", label="ci")
    assert created.status == 200
    page = await created.text()
    raw_key = re.search(r'id="raw-key" class="raw-key"[^>]*>(lk_pub_[^<]+)</textarea>', page)
    assert raw_key is not None
    assert 'data-copy="raw-key"' in page and "shown this once" in text_of(page)
    assert created.headers["Cache-Control"] == "no-store"
    key = raw_key.group(1)

    listed = await (await open_client.get("/console/keys")).text()
    assert key not in listed  # never again
    assert f"{key[:12]}…" in text_of(listed) and "ci" in text_of(listed)

    works = await open_client.get("/hitl/pending", headers=api_key(key))
    assert works.status == 200
    key_id = re.search(r'name="key_id" value="([^"]+)"', listed)
    assert key_id is not None
    revoked = await submit(open_client, "/console/keys/revoke", key_id=key_id.group(1))
    assert revoked.headers["Location"] == "/console/keys?notice=revoked"
    assert "revoked" in text_of(await (await open_client.get("/console/keys")).text())
    await assert_error(
        await open_client.get("/hitl/pending", headers=api_key(key)), 401, "api_key_revoked"
    )
    assert user.user_id  # the key was the user's: it saw the user's (empty) tenant


async def test_a_key_can_be_valid_through_a_day(open_client: Client) -> None:
    await operator(open_client)
    day = (datetime.now(UTC) + timedelta(days=30)).date()
    created = await submit(
        open_client, "/console/keys", label="temp", expires=day.isoformat(), tz="UTC"
    )
    page = await created.text()
    assert created.status == 200
    expires = re.search(r'<td data-label="Expires"><time datetime="([^"]+)"', page)
    assert expires is not None
    assert datetime.fromisoformat(expires.group(1)) == datetime.combine(
        day + timedelta(days=1), datetime.min.time(), tzinfo=UTC
    )


async def test_another_users_keys_are_out_of_sight_and_out_of_reach(
    open_client: Client, store: EventStore
) -> None:
    await operator(open_client, "alice")
    page = await (await submit(open_client, "/console/keys", label="alices-key")).text()
    key_id = re.search(r'name="key_id" value="([^"]+)"', page)
    assert key_id is not None
    await operator(open_client, "bob")
    assert "alices-key" not in await (await open_client.get("/console/keys")).text()
    before = await log_size(store)
    response = await submit(open_client, "/console/keys/revoke", key_id=key_id.group(1))
    assert response.status == 404
    assert await log_size(store) == before


# --- export -------------------------------------------------------------------------------


async def test_the_export_downloads_the_tenants_events_as_ndjson(
    open_client: Client, user: User
) -> None:
    request_id = await ask(open_client, user, 'Pay "Acme, Inc."?')
    await submit(open_client, f"/console/requests/{request_id}/answer", option="Approve")
    other = await sign_up(open_client, "mallory")
    await agent_session(open_client, other, session_id="mallorys")
    await ask(open_client, other, "Not for Alice", session_id="mallorys")

    form = await (await open_client.get("/console/export")).text()
    assert 'action="/console/export/download"' in form and 'value="csv"' in form
    response = await open_client.get("/console/export/download", params={"format": "ndjson"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    assert "attachment" in response.headers["Content-Disposition"]
    lines = [msgspec.json.decode(line) for line in (await response.read()).splitlines()]
    assert {line["tenant"] for line in lines} == {user.user_id}
    answered = [line for line in lines if line["type"] == "request.response_received"]
    assert [(a["channel"], a["actor"]) for a in answered] == [("console", user.user_id)]
    assert any(line["data"].get("message") == 'Pay "Acme, Inc."?' for line in lines)


async def test_the_export_downloads_csv_narrowed_to_a_session(
    open_client: Client, user: User
) -> None:
    await agent_session(open_client, user, session_id="nightly")
    await ask(open_client, user, "In deploys")
    await ask(open_client, user, "In nightly", session_id="nightly")
    response = await open_client.get(
        "/console/export/download", params={"format": "csv", "session_id": "nightly"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO((await response.read()).decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    streams = {row[CSV_COLUMNS.index("stream")] for row in rows[1:]}
    assert session_stream(user.user_id, "nightly") in streams
    assert session_stream(user.user_id, "deploys") not in streams
    assert [row[CSV_COLUMNS.index("type")] for row in rows[1:]] == [
        "session.registered",
        "request.created",
    ]


async def test_the_export_takes_a_date_range(open_client: Client, user: User) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    response = await open_client.get(
        "/console/export/download", params={"format": "csv", "from": tomorrow, "tz": "UTC"}
    )
    rows = list(csv.reader(io.StringIO((await response.read()).decode())))
    assert rows == [list(CSV_COLUMNS)]  # the header, even when nothing matches
    bad = await open_client.get("/console/export/download", params={"format": "pdf"})
    assert bad.status == 400 and "text/html" in bad.headers["Content-Type"]
