"""The pure policy rules: conditions, the first match, tightening, validation and explain()."""

from __future__ import annotations

from typing import Any

import pytest

from loopgate.domain.policy import (
    CurrentPolicy,
    RequestFacts,
    Requirements,
    describe_condition,
    describe_then,
    describe_verdict,
    explain,
    first_match,
    holds,
    tighten,
    validate_rules,
)
from loopgate.errors import ValidationFailed
from loopgate.events import Condition, EscalationStep, Rule, RuleThen

FACTS = RequestFacts(
    session_id="staging-7",
    client_id="deployer",
    request_type="confirmation",
    metadata={"amount": 25000, "currency": "USD", "action": {"tool": "deploy"}, "ok": True},
)
ASKED = Requirements(approvers=("role:approver",), timeout_seconds=300)


def cond(field: str, op: str, value: Any = None) -> Condition:
    return Condition(field=field, op=op, value=value)  # type: ignore[arg-type]


def rule(name: str, *when: Condition, **then: Any) -> Rule:
    return Rule(name=name, when=when, then=RuleThen(**then))


# --- holds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (cond("session_id", "eq", "staging-7"), True),
        (cond("session_id", "eq", "prod"), False),
        (cond("client_id", "ne", "deployer"), False),
        (cond("client_id", "ne", "other"), True),
        (cond("metadata.amount", "gt", 25000), False),
        (cond("metadata.amount", "gt", 10000), True),
        (cond("metadata.amount", "gte", 25000), True),
        (cond("metadata.amount", "gte", 25000.5), False),
        (cond("metadata.amount", "lt", 25000), False),
        (cond("metadata.amount", "lt", 30000), True),
        (cond("metadata.amount", "lte", 25000), True),
        (cond("metadata.amount", "lte", 24999), False),
        (cond("metadata.currency", "gt", "EUR"), True),  # strings compare as strings
        (cond("metadata.currency", "in", ["USD", "EUR"]), True),
        (cond("metadata.currency", "in", ["GBP"]), False),
        (cond("request_type", "in", ["confirmation", "approval"]), True),
        (cond("session_id", "glob", "staging-*"), True),
        (cond("session_id", "glob", "prod-*"), False),
        (cond("session_id", "glob", "STAGING-*"), False),  # case counts
        (cond("metadata.amount", "exists"), True),
        (cond("metadata.missing", "exists"), False),
        (cond("action.tool", "eq", "deploy"), True),  # metadata.action.tool until actions exist
        (cond("metadata.action.tool", "eq", "deploy"), True),
    ],
)
def test_each_op(condition: Condition, expected: bool) -> None:
    assert holds(condition, FACTS) is expected


@pytest.mark.parametrize(
    "condition",
    [
        cond("metadata.currency", "gte", 10000),  # a string against a number
        cond("metadata.amount", "gt", "10000"),  # a number against a string
        cond("metadata.ok", "gt", 0),  # a bool is no number
        cond("metadata.amount", "glob", "2*"),  # glob needs a string value
        cond("metadata.action", "lt", 3),  # an object compares with nothing
        cond("metadata.amount", "in", 25000),  # in needs a list
    ],
)
def test_a_type_mismatch_is_false_not_an_error(condition: Condition) -> None:
    assert holds(condition, FACTS) is False


@pytest.mark.parametrize("op", ["eq", "gt", "gte", "lt", "lte", "in", "glob"])
def test_a_missing_field_holds_nothing_but_ne(op: str) -> None:
    value = ["x"] if op == "in" else "x"
    assert holds(cond("metadata.nope.deeper", op, value), FACTS) is False
    assert holds(cond("metadata.amount.deeper", op, value), FACTS) is False  # through a number
    assert holds(cond("metadata.nope", "ne", "x"), FACTS) is True


# --- first_match ----------------------------------------------------------------------------


def test_the_first_matching_rule_wins_and_all_conditions_must_hold() -> None:
    both = rule(
        "both",
        cond("session_id", "glob", "staging-*"),
        cond("metadata.amount", "lt", 100),
        decide="approve",
    )
    payments = rule("payments", cond("metadata.amount", "gte", 10000), quorum=2)
    anything = rule("anything", remind_every_seconds=60)
    assert first_match([both, payments, anything], FACTS) is payments
    assert first_match([anything, payments], FACTS) is anything  # no conditions: always
    assert first_match([both], FACTS) is None
    assert first_match([], FACTS) is None


# --- tighten: each line of its docstring -----------------------------------------------------


def test_the_rules_approvers_replace_the_agents() -> None:
    assert tighten(ASKED, RuleThen(approvers=("group:finance",))).approvers == ("group:finance",)
    assert tighten(ASKED, RuleThen(quorum=2)).approvers == ("role:approver",)


def test_quorum_takes_the_larger_and_veto_is_on_if_either_says() -> None:
    assert tighten(ASKED, RuleThen(quorum=2)).quorum == 2
    asked_three = Requirements(approvers=("a:b",), quorum=3, timeout_seconds=300)
    assert tighten(asked_three, RuleThen(quorum=2)).quorum == 3
    no_veto = Requirements(approvers=("a:b",), veto=False, timeout_seconds=300)
    assert tighten(no_veto, RuleThen(veto=True)).veto is True
    assert tighten(no_veto, RuleThen(quorum=1)).veto is False
    assert tighten(ASKED, RuleThen(veto=False)).veto is True  # a rule cannot turn it off


def test_the_shorter_timeout_wins_and_never_is_the_longest() -> None:
    assert tighten(ASKED, RuleThen(timeout_seconds=60)).timeout_seconds == 60
    assert tighten(ASKED, RuleThen(timeout_seconds=900)).timeout_seconds == 300
    never = Requirements(approvers=("a:b",), timeout_seconds=0)
    assert tighten(never, RuleThen(timeout_seconds=900)).timeout_seconds == 900
    assert tighten(never, RuleThen(quorum=2)).timeout_seconds == 0


def test_on_timeout_only_gets_stricter() -> None:
    approving = Requirements(approvers=("a:b",), timeout_seconds=300, on_timeout="approve")
    assert tighten(approving, RuleThen(on_timeout="none")).on_timeout == "none"
    assert tighten(approving, RuleThen(on_timeout="reject")).on_timeout == "reject"
    assert tighten(ASKED, RuleThen(on_timeout="approve")).on_timeout == "reject"
    quiet = Requirements(approvers=("a:b",), timeout_seconds=300, on_timeout="none")
    assert tighten(quiet, RuleThen(on_timeout="approve")).on_timeout == "none"


def test_escalations_combine_by_time_reminders_come_oftener_warnings_earlier() -> None:
    early = EscalationStep(after_seconds=60, approvers=("group:leads",))
    late = EscalationStep(after_seconds=600, approvers=("group:cto",))
    asked = Requirements(
        approvers=("a:b",),
        timeout_seconds=900,
        escalation=(late,),
        remind_every_seconds=120,
        warn_before_expiry_seconds=30,
    )
    tightened = tighten(
        asked,
        RuleThen(escalation=(early,), remind_every_seconds=300, warn_before_expiry_seconds=90),
    )
    assert tightened.escalation == (early, late)
    assert tightened.remind_every_seconds == 120
    assert tightened.warn_before_expiry_seconds == 90
    unset = tighten(ASKED, RuleThen(remind_every_seconds=300, warn_before_expiry_seconds=60))
    assert (unset.remind_every_seconds, unset.warn_before_expiry_seconds) == (300, 60)
    assert tighten(ASKED, RuleThen(quorum=2)).remind_every_seconds is None


# --- validate_rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([rule("", quorum=2)], "rules[0]: a rule needs a name"),
        ([rule("a@b", quorum=2)], "without @"),
        ([rule("x" * 101, quorum=2)], "1-100 characters"),
        ([rule("a", quorum=2), rule("a", quorum=3)], "rules[1] ('a'): another rule"),
        ([rule("a", cond("amount", "eq", 1), quorum=2)], "unknown field 'amount'"),
        ([rule("a", cond("metadata.", "eq", 1), quorum=2)], "unknown field 'metadata.'"),
        ([rule("a", cond("session_id", "exists", "x"), quorum=2)], "exists takes no value"),
        ([rule("a", cond("session_id", "in", []), quorum=2)], "in takes a non-empty list"),
        ([rule("a", cond("session_id", "glob", 3), quorum=2)], "glob takes a string"),
        ([rule("a", cond("metadata.n", "gt", True), quorum=2)], "gt takes a number or a string"),
        ([rule("a", cond("session_id", "eq"), quorum=2)], "eq takes a value"),
        ([rule("a", decide="approve", quorum=2)], "decide cannot be combined with quorum"),
        ([rule("a")], "then must decide or set a requirement"),
        ([rule("a", quorum=2, reason="why")], "reason goes with decide"),
        ([rule("a", approvers=("nobody",))], "rules[0] ('a'):"),
        ([rule("a", approvers=())], "approvers must name someone"),
        ([rule("a", quorum=0)], "quorum must be 1 or more"),
        ([rule("a", timeout_seconds=0)], "timeout_seconds must be 1 or more"),
        (
            [rule("a", escalation=(EscalationStep(after_seconds=0, approvers=("role:admin",)),))],
            "after_seconds >= 1",
        ),
        (
            [rule("a", escalation=(EscalationStep(after_seconds=5, approvers=("bad",)),))],
            "escalation:",
        ),
    ],
)
def test_validation_names_the_rule_that_is_wrong(rules: list[Rule], message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_rules(rules)
    assert refused.value.code == "invalid_policy"
    assert message in refused.value.message


def test_a_good_policy_validates() -> None:
    validate_rules(
        [
            rule("payments", cond("metadata.amount", "gte", 10000), approvers=("group:x",)),
            rule("staging", cond("session_id", "glob", "s-*"), decide="approve", reason="ok"),
            rule("rest", cond("metadata.flag", "exists"), remind_every_seconds=60),
        ]
    )
    validate_rules([])


# --- explain --------------------------------------------------------------------------------

POLICY = CurrentPolicy(
    version=4,
    rules=(
        rule(
            "payments",
            cond("metadata.amount", "gte", 10000),
            approvers=("group:finance",),
            quorum=2,
        ),
        rule("staging", cond("session_id", "glob", "staging-*"), decide="approve", reason="fine"),
    ),
)


def facts(session_id: str, **metadata: Any) -> RequestFacts:
    return RequestFacts(
        session_id=session_id, client_id="c", request_type="confirmation", metadata=metadata
    )


def test_explain_a_decision_names_the_rule_at_its_version() -> None:
    verdict = explain(POLICY, facts("staging-1"), ASKED)
    assert (verdict.rule, verdict.policy_version, verdict.decision) == ("staging", 4, "approve")
    assert (verdict.reason, verdict.decided_by) == ("fine", "staging@v4")
    assert verdict.requirements == ASKED
    assert describe_verdict(verdict) == (
        "rule 'staging' matches (policy v4)\n"
        "decide approve (reason 'fine') — decided_by policy staging@v4"
    )


def test_explain_tightens_what_the_agent_asked() -> None:
    verdict = explain(POLICY, facts("prod", amount=25000), ASKED)
    assert (verdict.rule, verdict.decision, verdict.decided_by) == ("payments", None, None)
    assert verdict.requirements == tighten(ASKED, POLICY.rules[0].then)
    assert describe_verdict(verdict) == (
        "rule 'payments' matches (policy v4)\n"
        "requires approvers group:finance, quorum 2, veto, timeout 300s, on timeout reject"
    )


def test_explain_without_a_match_or_a_policy_keeps_the_ask() -> None:
    unmatched = explain(POLICY, facts("prod", amount=5), ASKED)
    assert (unmatched.rule, unmatched.policy_version, unmatched.requirements) == (None, 4, ASKED)
    assert describe_verdict(unmatched).startswith("no rule matches (policy v4)\n")
    none = explain(None, facts("staging-1"), ASKED)
    assert (none.rule, none.policy_version, none.decision) == (None, None, None)
    assert describe_verdict(none).startswith("no rule matches (no policy)\n")


def test_rules_read_for_people() -> None:
    assert describe_condition(cond("session_id", "glob", "staging-*")) == (
        'session_id glob "staging-*"'
    )
    assert describe_condition(cond("metadata.n", "exists")) == "metadata.n exists"
    step = EscalationStep(after_seconds=1800, approvers=("group:leads",))
    then = RuleThen(veto=False, escalation=(step,), remind_every_seconds=600, on_timeout="none")
    assert describe_then(then) == (
        "on timeout none, escalate after 1800s to group:leads, remind every 600s"
    )
    assert describe_then(RuleThen(decide="reject")) == "decide reject"
