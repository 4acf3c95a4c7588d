"""The audit tells votes, expiry warnings, escalations and policies in words, and exports them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import msgspec
from account_helpers import Client
from votes_helpers import decided_by_policy, finance, four_eyes, vote

from loopgate.audit.verify import verify_export
from loopgate.events import (
    Condition,
    Event,
    ExpiryWarned,
    Meta,
    PolicySet,
    RecordedEvent,
    RequestEscalated,
    ResponseReceived,
    Rule,
    RuleThen,
    Vote,
    VoteCast,
)
from loopgate.web.audit import timeline_entry

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def told(event: Event) -> tuple[str, dict[str, object]]:
    record = RecordedEvent(
        position=1,
        stream="request-r1",
        version=1,
        event=event,
        meta=Meta(actor="u-alice"),
        recorded_at=T0,
        prev_hash="0" * 64,
        hash="0" * 64,
    )
    entry = timeline_entry(record)
    return entry.summary, entry.details


def test_a_vote_short_of_the_quorum_says_who_voted_what_where() -> None:
    cast = VoteCast(
        request_id="r1", member="u-alice", option="Approve", approves=True, channel="telegram",
        routed_by="group:finance", cast_at=T0,
    )  # fmt: skip
    summary, details = told(cast)
    assert summary == "u-alice voted 'Approve' on telegram (for); not decided yet"
    assert details["routed_by"] == "group:finance" and details["approves"] is True
    against = msgspec.structs.replace(cast, option=None, text="not today", approves=False)
    assert told(against)[0] == "u-alice voted 'not today' on telegram (against); not decided yet"


def test_the_deciding_vote_counts_the_votes_and_a_rule_names_itself() -> None:
    votes = tuple(
        Vote(member=m, option="Approve", approves=True, channel="api", at=T0) for m in ("a", "b")
    )
    decided = ResponseReceived(
        request_id="r1", responder="b", option="Approve", approved=True, channel="api",
        responded_at=T0, votes=votes,
    )  # fmt: skip
    summary, details = told(decided)
    assert summary == "b answered 'Approve' on api (the deciding vote of 2): approved"
    assert details["votes"] == [
        {"member": "a", "approves": True, "channel": "api"},
        {"member": "b", "approves": True, "channel": "api"},
    ]
    by_rule = ResponseReceived(
        request_id="r1", responder="policy:small@v3", option="Approve", approved=True,
        channel="system", responded_at=T0, policy="small@v3", reason="under 10 CHF",
    )  # fmt: skip
    assert told(by_rule)[0] == "approved by policy rule small@v3: under 10 CHF"


def test_warnings_escalations_and_policies_are_told_in_a_line() -> None:
    warned = ExpiryWarned(request_id="r1", expires_at=T0, warned_at=T0)
    assert told(warned)[0] == "approvers warned: it expires at 2026-11-25T12:00:00+00:00"
    escalated = RequestEscalated(
        request_id="r1", step=0, approvers=("group:leads", "user:cfo"), escalated_at=T0
    )
    assert told(escalated) == (
        "escalated (step 1) to group:leads, user:cfo",
        {"step": 0, "approvers": ["group:leads", "user:cfo"]},
    )
    rule = Rule(
        name="staging",
        when=(Condition(field="session_id", op="glob", value="staging-*"),),
        then=RuleThen(decide="approve"),
    )
    policy = PolicySet(workspace_id="w", version=4, rules=(rule, rule), set_at=T0)
    assert told(policy) == ("policy v4 set: 2 rules", {"version": 4, "rules": ["staging"] * 2})
    assert told(msgspec.structs.replace(policy, rules=(rule,)))[0] == "policy v4 set: 1 rule"


async def test_the_export_carries_the_votes_and_still_verifies(keyed_client: Client) -> None:
    team = await finance(keyed_client)
    request_id = await four_eyes(keyed_client, team)
    await vote(keyed_client, team.bob, request_id)
    await vote(keyed_client, team.carol, request_id)
    await decided_by_policy(keyed_client, team)
    headers = team.owner.bearer

    response = await keyed_client.get("/v1/audit/export", headers=headers)
    body = await response.read()

    assert verify_export(body.splitlines()).ok
    lines = [msgspec.json.decode(line) for line in body.splitlines()]
    (cast,) = [line for line in lines if line["type"] == "request.vote_cast"]
    assert "digests" not in cast  # nothing in it is redacted: it holds no secret
    assert (cast["data"]["member"], cast["channel"]) == (team.bob.user_id, "api")
    assert cast["data"]["routed_by"] == "group:finance"
    decisions = [line for line in lines if line["type"] == "request.response_received"]
    assert [len(d["data"].get("votes", [])) for d in decisions] == [2, 0]
    assert decisions[1]["data"]["policy"] == "small-refunds@v3"
    csv_export = await keyed_client.get(
        "/v1/audit/export", params={"format": "csv", "types": "request.vote_cast"}, headers=headers
    )
    (row,) = list(csv.DictReader(io.StringIO((await csv_export.read()).decode())))
    assert msgspec.json.decode(row["data"])["member"] == team.bob.user_id
    history = await keyed_client.get(f"/v1/requests/{request_id}/history", headers=headers)
    summaries = [entry["summary"] for entry in (await history.json())["timeline"]]
    assert summaries[1:] == [
        f"{team.bob.user_id} voted 'Approve' on api (for); not decided yet",
        f"{team.carol.user_id} answered 'Approve' on api (the deciding vote of 2): approved",
    ]
