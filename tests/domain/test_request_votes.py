"""The request decider's votes, policy decisions, reminders, warnings and escalations (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopgate.domain.request import (
    DEFAULT_CONFIRMATION_OPTIONS,
    Answered,
    AnswerRequest,
    CreateRequest,
    EscalateRequest,
    Pending,
    SendReminder,
    WarnExpiry,
    decide,
    fold,
    initial,
)
from loopgate.errors import AlreadyDecided, Conflict, DomainError
from loopgate.events import (
    EscalationStep,
    Event,
    ExpiryWarned,
    ReminderSent,
    RequestCreated,
    RequestEscalated,
    ResponseReceived,
    Vote,
    VoteCast,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
DUE = T0 + timedelta(seconds=300)
SOON = T0 + timedelta(seconds=60)


def created(**changes: Any) -> RequestCreated:
    fields: dict[str, Any] = {
        "request_id": "r1",
        "session_id": "s1",
        "client_id": "agent",
        "message": "Pay $25,000?",
        "request_type": "confirmation",
        "options": DEFAULT_CONFIRMATION_OPTIONS,
        "timeout_seconds": 300,
        "created_at": T0,
        "expires_at": DUE,
        "approvers": ("group:finance",),
        "quorum": 2,
    } | changes
    return RequestCreated(**fields)


def vote(member: str, option: str = "Approve", voters: int | None = None) -> AnswerRequest:
    return AnswerRequest(
        request_id="r1",
        responder=member,
        member=member,
        option=option,
        channel="api",
        now=SOON,
        routed_by="group:finance",
        voters=voters,
    )


def run(*commands: AnswerRequest, **request: Any) -> list[Event]:
    """Every event the votes produce, each decided on the state the earlier ones left."""
    events: list[Event] = [created(**request)]
    for command in commands:
        events += decide(command, fold(events))
    return events[1:]


def test_a_vote_short_of_the_quorum_is_a_vote_cast_and_leaves_it_pending() -> None:
    [cast] = run(vote("carol"))
    assert cast == VoteCast(
        request_id="r1",
        member="carol",
        option="Approve",
        approves=True,
        channel="api",
        routed_by="group:finance",
        cast_at=SOON,
    )
    state = fold([created(), cast])
    assert isinstance(state, Pending) and [v.member for v in state.votes] == ["carol"]


def test_the_quorum_th_approval_decides_and_carries_every_vote() -> None:
    _, decision = run(vote("carol"), vote("bob"))
    assert isinstance(decision, ResponseReceived)
    assert (decision.approved, decision.responder) == (True, "bob")
    assert [(v.member, v.approves) for v in decision.votes] == [("carol", True), ("bob", True)]
    assert isinstance(fold([created(), *run(vote("carol"), vote("bob"))]), Answered)


def test_a_member_votes_once_even_with_the_other_option() -> None:
    state = fold([created(), *run(vote("carol"))])
    with pytest.raises(Conflict) as refused:
        decide(vote("carol", "Reject"), state)
    assert refused.value.code == "already_voted"


def test_a_vote_after_the_decision_is_already_decided_and_a_replay_is_a_no_op() -> None:
    state = fold([created(), *run(vote("carol"), vote("bob"))])
    with pytest.raises(AlreadyDecided):
        decide(vote("dave"), state)
    assert decide(vote("bob"), state) == []


def test_a_rejection_is_a_veto() -> None:
    _, decision = run(vote("carol"), vote("dave", "Reject"))
    assert isinstance(decision, ResponseReceived)
    assert decision.approved is False
    assert [(v.member, v.approves) for v in decision.votes] == [("carol", True), ("dave", False)]


def test_without_veto_a_rejection_decides_only_when_the_quorum_is_out_of_reach() -> None:
    first, second = run(
        vote("carol", "Reject", voters=3), vote("dave", "Reject", voters=3), veto=False
    )
    assert isinstance(first, VoteCast)
    assert isinstance(second, ResponseReceived) and second.approved is False
    # Without knowing how many may vote, it waits for the quorum or the expiry.
    [_, another] = run(vote("carol", "Reject"), vote("dave", "Reject"), veto=False)
    assert isinstance(another, VoteCast)


def test_a_lone_vote_is_the_response_itself() -> None:
    [decision] = run(vote("carol"), quorum=1)
    assert isinstance(decision, ResponseReceived) and decision.votes == ()


def create(**changes: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "request_id": "r1",
        "session_id": "staging-1",
        "client_id": "agent",
        "message": "Deploy to staging?",
        "request_type": "confirmation",
        "timeout_seconds": 300,
        "now": T0,
    } | changes
    return CreateRequest(**fields)


def test_a_policy_decides_at_creation_in_the_same_events() -> None:
    made, decision = decide(
        create(policy_version=3, rule="staging", decision="approve", reason="staging is free"),
        initial,
    )
    assert isinstance(made, RequestCreated) and (made.rule, made.policy_version) == ("staging", 3)
    assert decision == ResponseReceived(
        request_id="r1",
        responder="policy:staging@v3",
        option="Approve",
        approved=True,
        channel="system",
        responded_at=T0,
        policy="staging@v3",
        reason="staging is free",
    )


def test_only_a_rule_decides_at_creation() -> None:
    with pytest.raises(DomainError) as refused:
        decide(create(decision="approve"), initial)
    assert refused.value.code == "invalid_decision"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"quorum": 0}, "invalid_quorum"),
        ({"remind_every_seconds": 0}, "invalid_schedule"),
        (
            {"escalation": (EscalationStep(after_seconds=0, approvers=("group:x",)),)},
            "invalid_escalation",
        ),
    ],
)
def test_creation_refuses_impossible_requirements(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(DomainError) as refused:
        decide(create(**changes), initial)
    assert refused.value.code == code


def test_reminders_are_numbered_due_and_once() -> None:
    history: list[Event] = [created(remind_every_seconds=60)]
    early = SendReminder(
        request_id="r1", channel="system", number=1, now=SOON - timedelta(seconds=1)
    )
    with pytest.raises(DomainError) as refused:
        decide(early, fold(history))
    assert refused.value.code == "not_due"
    first = SendReminder(request_id="r1", channel="system", number=1, now=SOON)
    [sent] = decide(first, fold(history))
    assert isinstance(sent, ReminderSent) and sent.number == 1
    assert decide(first, fold([*history, sent])) == []


def test_the_expiry_warning_comes_once_at_its_time() -> None:
    history: list[Event] = [created(warn_before_expiry_seconds=60)]
    with pytest.raises(DomainError):
        decide(WarnExpiry(request_id="r1", now=DUE - timedelta(seconds=61)), fold(history))
    [warned] = decide(WarnExpiry(request_id="r1", now=DUE - timedelta(seconds=60)), fold(history))
    assert warned == ExpiryWarned(
        request_id="r1", expires_at=DUE, warned_at=DUE - timedelta(seconds=60)
    )
    assert (
        decide(
            WarnExpiry(request_id="r1", now=DUE - timedelta(seconds=30)), fold([*history, warned])
        )
        == []
    )


def test_an_escalation_step_fires_once_after_its_seconds() -> None:
    step = EscalationStep(after_seconds=2, approvers=("group:leads",))
    history: list[Event] = [created(escalation=(step,))]
    with pytest.raises(DomainError):
        decide(
            EscalateRequest(request_id="r1", step=0, now=T0 + timedelta(seconds=1)), fold(history)
        )
    command = EscalateRequest(request_id="r1", step=0, now=T0 + timedelta(seconds=2))
    [escalated] = decide(command, fold(history))
    assert escalated == RequestEscalated(
        request_id="r1", step=0, approvers=("group:leads",), escalated_at=command.now
    )
    assert decide(command, fold([*history, escalated])) == []
    with pytest.raises(DomainError) as unknown:
        decide(EscalateRequest(request_id="r1", step=1, now=command.now), fold(history))
    assert unknown.value.code == "unknown_step"


def test_nothing_fires_on_a_decided_request() -> None:
    step = EscalationStep(after_seconds=2, approvers=("group:leads",))
    history = [
        created(escalation=(step,), remind_every_seconds=1, warn_before_expiry_seconds=1, quorum=1),
        *run(vote("carol"), quorum=1),
    ]
    state = fold(history)
    assert decide(EscalateRequest(request_id="r1", step=0, now=DUE), state) == []
    assert decide(SendReminder(request_id="r1", channel="system", number=1, now=DUE), state) == []
    assert decide(WarnExpiry(request_id="r1", now=DUE), state) == []


def test_evolve_collects_votes_escalations_and_the_warning() -> None:
    history: list[Event] = [
        created(),
        VoteCast(request_id="r1", member="carol", approves=True, channel="api", cast_at=SOON),
        RequestEscalated(request_id="r1", step=0, approvers=("group:leads",), escalated_at=SOON),
        ExpiryWarned(request_id="r1", expires_at=DUE, warned_at=SOON),
    ]
    state = fold(history)
    assert isinstance(state, Pending)
    assert state.votes == (Vote(member="carol", approves=True, channel="api", at=SOON),)
    assert (state.escalated, state.warned) == ((0,), True)
