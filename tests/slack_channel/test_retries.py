"""Slack's rate limits and restarts: every message goes out once, whatever happens in between."""

from __future__ import annotations

import itertools

from loopgate.events import RequestDelivered
from loopgate.web.slack import SLACK
from slack_channel.conftest import AppFactory
from slack_channel.helpers import SlackApp


async def test_three_429s_with_retry_after_then_the_message_goes_out_once(
    slack_app: AppFactory,
) -> None:
    sl = await slack_app(delivery_attempts=5)
    sl.fake.rate_limit(3)
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#ops"])

    (delivery,) = await sl.deliveries(request_id)

    attempts = sl.fake.calls_to("chat.postMessage")
    assert [c.status for c in attempts] == [429, 429, 429, 200]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # Retry-After: 1 beats retry_seconds 0.05
    assert len(sl.fake.succeeded("chat.postMessage")) == 1
    events = await sl.events(request_id)
    assert sum(isinstance(e, RequestDelivered) for e in events) == 1
    assert delivery.address == "#ops"


async def test_a_sender_started_again_from_the_start_posts_nothing_twice(sl: SlackApp) -> None:
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#ops"])
    await sl.deliveries(request_id)
    sender = sl.client.app[SLACK].sender
    assert sender is not None

    await sender.stop()
    # As if it crashed before saving its checkpoint: every event is handled again.
    await sl.store.execute("DELETE FROM reactor_checkpoints WHERE name = ?", (sender.name,))
    await sender.start()
    second = await sl.ask(approvers=["slack:#ops"], message="And this one?")
    await sl.deliveries(second)

    assert len(sl.fake.succeeded("chat.postMessage")) == 2  # one per request
    assert sum(isinstance(e, RequestDelivered) for e in await sl.events(request_id)) == 1


async def test_slack_failing_with_5xx_is_retried_and_posts_once(sl: SlackApp) -> None:
    sl.fake.fail_next(2, status=503)
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#ops"])

    (delivery,) = await sl.deliveries(request_id)

    attempts = sl.fake.calls_to("chat.postMessage")
    assert [c.status for c in attempts] == [503, 503, 200]
    assert delivery.address == "#ops"
