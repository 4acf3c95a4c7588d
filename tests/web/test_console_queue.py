"""The console's queue, a request's page and answering from it; tenants kept apart."""

from __future__ import annotations

import asyncio
import contextlib
import re
from urllib.parse import parse_qs, urlsplit

import aiohttp
from account_helpers import Client, User, sign_up
from console_helpers import (
    agent_session,
    ask,
    log_size,
    next_event,
    operator,
    poll_as,
    submit,
    text_of,
)
from hitl_helpers import event_types

from loopgate.store.base import EventStore


def card_ids(page: str) -> list[str]:
    return re.findall(r'data-request-id="([^"]+)"', page)


async def test_the_queue_lists_waiting_requests_soonest_to_expire_first(
    open_client: Client, user: User
) -> None:
    later = await ask(open_client, user, "Rotate the keys?", timeout_seconds=3600)
    sooner = await ask(open_client, user, "Deploy v2.1 to production?", timeout_seconds=60)
    latest = await ask(open_client, user, "Archive the logs?", timeout_seconds=7200)
    answered = await ask(open_client, user, "Already handled?")
    response = await open_client.post(
        f"/v1/requests/{answered}/response", json={"option": "Approve"}, headers=user.bearer
    )
    assert response.status == 200

    page = await (await open_client.get("/console")).text()
    assert card_ids(page) == [sooner, later, latest]
    text = text_of(page)
    assert "Deploy v2.1 to production?" in text and "deploys" in text  # message and session
    assert "Already handled?" not in text
    assert re.search(r'<time datetime="[^"]+" data-age>', page)  # age, shown by the browser
    assert re.search(r'<time datetime="[^"]+" data-countdown>', page)
    assert "Nothing is waiting" in page and "data-queue-empty hidden" in page


async def test_an_empty_queue_says_so(open_client: Client) -> None:
    await operator(open_client)
    page = await (await open_client.get("/console")).text()
    assert card_ids(page) == []
    assert "Nothing is waiting for you" in text_of(page)
    assert "data-queue-empty hidden" not in page


async def test_the_queue_says_where_anonymous_agents_requests_go_only_where_they_are_taken(
    open_client: Client, keyed_client: Client
) -> None:
    await operator(open_client)
    open_page = await (await open_client.get("/console")).text()
    assert "data-anonymous-hint" in open_page
    assert "the server's default workspace, not in yours" in text_of(open_page)

    await operator(keyed_client, "bob")
    keyed_page = await (await keyed_client.get("/console")).text()
    assert "data-anonymous-hint" not in keyed_page


async def test_the_queue_stream_brings_new_requests_and_decisions_after_the_page_was_read(
    open_client: Client, user: User
) -> None:
    page = await (await open_client.get("/console")).text()
    events_url = re.search(r'data-events="([^"]+)"', page)
    assert events_url is not None
    url = events_url.group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(url).query)["after"]
    # Created after the page was read but before the stream opens: still sent.
    missed = await ask(open_client, user, "Created in between?")
    async with open_client.get(url) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = await next_event(stream)
        assert (first["type"], first["data"]["request_id"]) == ("request.created", missed)
        live = await ask(open_client, user, "Created while watching?")
        second = await next_event(stream, within=2.0)
        assert (second["type"], second["data"]["request_id"]) == ("request.created", live)
        await submit(open_client, f"/console/requests/{live}/answer", option="Reject")
        decided = await next_event(stream, within=2.0)
        assert decided["type"] == "request.response_received"
        assert decided["data"]["request_id"] == live


async def test_a_card_is_served_alone_for_the_live_queue(open_client: Client, user: User) -> None:
    request_id = await ask(open_client, user, "Restart the cluster?")
    card = await open_client.get(f"/console/requests/{request_id}/card")
    assert card.status == 200
    fragment = await card.text()
    assert fragment.lstrip().startswith("<li") and "<html" not in fragment
    assert card_ids(fragment) == [request_id]
    assert "Restart the cluster?" in fragment
    await submit(open_client, f"/console/requests/{request_id}/answer", option="Approve")
    assert (await open_client.get(f"/console/requests/{request_id}/card")).status == 204


async def test_the_request_page_shows_message_metadata_options_and_timeline(
    open_client: Client, user: User
) -> None:
    request_id = await ask(
        open_client,
        user,
        "Deploy v2.1.0?",
        options=["🚀 Deploy", "⏸️ Hold"],
        metadata={"version": "v2.1.0", "tests_passed": 847},
    )
    page = await (await open_client.get(f"/console/requests/{request_id}")).text()
    text = text_of(page)
    assert "Deploy v2.1.0?" in text
    assert re.search(r"<th scope=\"row\">version</th><td>v2.1.0</td>", page)
    assert re.search(r"<th scope=\"row\">tests_passed</th><td><code>847</code></td>", page)
    buttons = re.findall(r'<button type="submit" name="option" value="([^"]+)"', page)
    assert buttons == ["🚀 Deploy", "⏸️ Hold"]
    assert 'name="text"' not in page  # options only: no free text
    assert "asked: 'Deploy v2.1.0?'" in text  # the timeline, from the audit history
    assert "data-countdown" in page


async def test_answering_records_the_user_on_the_console_and_wakes_the_waiting_agent(
    open_client: Client, store: EventStore, user: User
) -> None:
    request_id = await ask(open_client, user, options=["🚀 Deploy", "⏸️ Hold"])
    waiting = asyncio.create_task(poll_as(open_client, user, request_id, wait=10))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    loop = asyncio.get_running_loop()
    answered_at = loop.time()
    response = await submit(open_client, f"/console/requests/{request_id}/answer", option="⏸️ Hold")
    assert response.status == 303
    assert response.headers["Location"] == f"/console/requests/{request_id}?notice=answered"
    result = await asyncio.wait_for(waiting, 5)
    assert loop.time() - answered_at < 2
    assert (result["status"], result["response"], result["approved"]) == (
        "completed",
        "⏸️ Hold",
        False,
    )
    (decision,) = [r for r in await store.read_stream(f"request-{request_id}") if r.version == 2]
    assert decision.type == "request.response_received"
    assert decision.event.channel == "console"  # type: ignore[attr-defined]
    assert decision.event.responder == user.user_id  # type: ignore[attr-defined]
    assert (decision.meta.actor, decision.meta.tenant) == (user.user_id, user.user_id)
    page = text_of(await (await open_client.get(response.headers["Location"])).text())
    assert "Your answer was recorded" in page
    assert f"you ({user.username}) answered “⏸️ Hold” on console" in page


async def test_a_free_text_answer_is_sent_from_the_text_box(
    open_client: Client, user: User
) -> None:
    request_id = await ask(open_client, user, "Which branch?", options=[], request_type="input")
    page = await (await open_client.get(f"/console/requests/{request_id}")).text()
    assert '<label for="answer-text">' in page and 'id="answer-text"' in page
    response = await submit(
        open_client, f"/console/requests/{request_id}/answer", text="release/2.1"
    )
    assert response.status == 303
    status = await poll_as(open_client, user, request_id)
    assert status["response"] == "release/2.1"


async def test_a_stale_page_shows_the_outcome_instead_of_failing(
    open_client: Client, store: EventStore, user: User
) -> None:
    request_id = await ask(open_client, user)
    # Someone answers elsewhere (the API, Telegram) while the page is open.
    elsewhere = await open_client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Reject"}, headers=user.bearer
    )
    assert elsewhere.status == 200
    response = await submit(open_client, f"/console/requests/{request_id}/answer", option="Approve")
    assert response.status == 303
    assert response.headers["Location"].endswith("?notice=already_decided")
    page = await open_client.get(response.headers["Location"])
    assert page.status == 200
    text = text_of(await page.text())
    assert "decided before your answer arrived" in text
    assert "Rejected" in text and "answered “Reject” on api" in text
    assert 'name="option"' not in await page.text()
    assert await event_types(store, f"request-{request_id}") == [
        "request.created",
        "request.response_received",
    ]


async def test_an_expired_request_says_so_when_answered(open_client: Client, user: User) -> None:
    request_id = await ask(open_client, user, timeout_seconds=1)
    await asyncio.sleep(1.2)
    response = await submit(open_client, f"/console/requests/{request_id}/answer", option="Approve")
    assert response.headers["Location"].endswith("?notice=closed")
    text = text_of(await (await open_client.get(response.headers["Location"])).text())
    assert "expired before your answer arrived" in text
    assert "Expired" in text


async def test_an_answer_that_breaks_a_rule_is_explained_on_the_page(
    open_client: Client, store: EventStore, user: User
) -> None:
    request_id = await ask(open_client, user)
    before = await log_size(store)
    unknown = await submit(open_client, f"/console/requests/{request_id}/answer", option="Maybe")
    assert unknown.status == 422
    assert "'Maybe' is not one of the options" in text_of(await unknown.text())
    text = await submit(open_client, f"/console/requests/{request_id}/answer", text="sure")
    assert text.status == 422
    assert "accepts only its options" in text_of(await text.text())
    assert await log_size(store) == before


async def test_another_users_requests_are_out_of_sight_and_out_of_reach(
    open_client: Client, store: EventStore
) -> None:
    alice = await sign_up(open_client, "alice")
    await agent_session(open_client, alice)
    theirs = await ask(open_client, alice, "Alice's secret question?")
    await operator(open_client, "bob")  # the browser now belongs to Bob
    queue = await (await open_client.get("/console")).text()
    assert "Alice's secret question?" not in queue and card_ids(queue) == []
    for path in (f"/console/requests/{theirs}", f"/console/requests/{theirs}/card"):
        page = await open_client.get(path)
        assert page.status == 404, path
        assert "secret question" not in await page.text()
    before = await log_size(store)
    answer = await submit(open_client, f"/console/requests/{theirs}/answer", option="Approve")
    assert answer.status == 404
    assert await log_size(store) == before
    assert (await poll_as(open_client, alice, theirs))["status"] == "pending"


async def test_the_live_queue_streams_only_the_users_own_tenant(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    await agent_session(open_client, alice)
    bob = await operator(open_client, "bob")
    await agent_session(open_client, bob, session_id="bobs-agent")
    async with open_client.get("/console/events?types=request.created") as stream:
        await ask(open_client, alice, "For Alice only")
        mine = await ask(open_client, bob, "For Bob", session_id="bobs-agent")
        first = await next_event(stream, within=2.0)
        assert first["data"]["request_id"] == mine


async def test_signing_out_ends_an_open_queue_stream(open_client: Client, user: User) -> None:
    async with open_client.get("/console/events?types=request.created") as stream:
        await ask(open_client, user, "Seen while signed in")
        assert (await next_event(stream, within=2.0))["data"]["message"] == "Seen while signed in"
        await submit(open_client, "/console/logout")
        # The server hangs up at once (mid-chunk, hence the payload error).
        with contextlib.suppress(aiohttp.ClientPayloadError):
            async with asyncio.timeout(2.0):
                while line := await stream.content.readline():
                    assert b"request.created" not in line
