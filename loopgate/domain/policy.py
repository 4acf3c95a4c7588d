"""Approval policies, pure: which rule matches a request, and what it asks of it.

A workspace keeps an ordered list of :class:`~loopgate.events.Rule` (recorded
as :class:`~loopgate.events.PolicySet`). When a request is made, the first
rule whose conditions all hold applies (:func:`first_match`). Its ``then``
either decides at once or tightens what the agent asked for
(:func:`tighten`): a rule can make a request stricter, never looser. The
command layer records the rule and the policy version on ``RequestCreated``,
so a request reads the same after the policy changes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from loopgate.domain.request import policy_id
from loopgate.domain.teams import parse_approvers
from loopgate.errors import ValidationFailed
from loopgate.events import (
    Condition,
    Decision,
    EscalationStep,
    OnTimeout,
    RequestType,
    Rule,
    RuleThen,
)

FIELDS = ("session_id", "client_id", "request_type", "action.tool")
"""The fields a condition may test, besides ``metadata.<path>``."""

_ORDERED = ("gt", "gte", "lt", "lte")
_STRICTNESS: dict[OnTimeout, int] = {"approve": 0, "none": 1, "reject": 2}
"""How strict a timeout's outcome is: a rule may move it right, never left."""
MISSING = object()
"""What a field that the request does not have reads as (only ``exists`` and ``ne`` hold)."""


class RequestFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What a rule can see of a request being made."""

    session_id: str
    client_id: str
    request_type: RequestType
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    tool: str | None = None
    """The request's ``action.tool``, if it has an action."""

    def get(self, field: str) -> Any:
        """The value of a condition's ``field``, or :data:`MISSING`.

        ``action.tool`` is the request's action's tool; for a request without
        an action, ``metadata.action.tool`` (how agents named it before actions).
        """
        if field in ("session_id", "client_id", "request_type"):
            return getattr(self, field)
        if field == "action.tool" and self.tool is not None:
            return self.tool
        path = field.removeprefix("metadata.") if field.startswith("metadata.") else field
        value: Any = self.metadata
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return MISSING
            value = value[part]
        return value


class CurrentPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """A workspace's rules as last set, and that policy's version (from 1)."""

    version: int
    rules: tuple[Rule, ...]


class Requirements(msgspec.Struct, frozen=True, kw_only=True):
    """What a request needs before it is decided: the agent's ask, or a rule's tightening."""

    approvers: tuple[str, ...]
    quorum: int = 1
    veto: bool = True
    timeout_seconds: int
    """0: never expires."""
    on_timeout: OnTimeout = "reject"
    escalation: tuple[EscalationStep, ...] = ()
    remind_every_seconds: int | None = None
    warn_before_expiry_seconds: int | None = None
    grantable: bool = False


def holds(condition: Condition, facts: RequestFacts) -> bool:
    """Whether ``condition`` holds for the request; a type mismatch is simply False."""
    value = facts.get(condition.field)
    op, expected = condition.op, condition.value
    if op == "exists":
        return value is not MISSING
    if op == "ne":
        return value is MISSING or value != expected
    if value is MISSING:
        return False
    if op == "eq":
        return bool(value == expected)
    if op == "in":
        return isinstance(expected, list | tuple) and value in expected
    if op == "glob":
        return isinstance(value, str) and fnmatch.fnmatchcase(value, str(expected))
    if not _comparable(value, expected):
        return False
    match op:
        case "gt":
            return bool(value > expected)
        case "gte":
            return bool(value >= expected)
        case "lt":
            return bool(value < expected)
        case _:
            return bool(value <= expected)


def _comparable(value: Any, expected: Any) -> bool:
    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    return (number(value) and number(expected)) or (
        isinstance(value, str) and isinstance(expected, str)
    )


def first_match(rules: Iterable[Rule], facts: RequestFacts) -> Rule | None:
    """The first rule whose conditions all hold (a rule without any always does)."""
    for rule in rules:
        if all(holds(c, facts) for c in rule.when):
            return rule
    return None


def tighten(asked: Requirements, then: RuleThen) -> Requirements:
    """The agent's requirements made as strict as the rule says, never looser.

    * ``approvers``: the rule's replace the agent's (an agent cannot pick who
      approves what the policy routes);
    * ``quorum``: the larger; ``veto``: on if either says so;
    * ``timeout_seconds``: the shorter (0, never, is the longest);
    * ``on_timeout``: the stricter (approve < none < reject);
    * ``escalation``: both, by time; ``remind_every_seconds``: the more often;
      ``warn_before_expiry_seconds``: the earlier warning;
    * ``grantable``: the rule's, if it says. The exception, on purpose: whether
      an approver may allow an action for a while is the workspace's call, and
      a grant still takes a human's approval first.
    """
    timeout = asked.timeout_seconds
    if then.timeout_seconds is not None:
        timeout = then.timeout_seconds if timeout == 0 else min(timeout, then.timeout_seconds)
    on_timeout = asked.on_timeout
    if then.on_timeout is not None and _STRICTNESS[then.on_timeout] > _STRICTNESS[on_timeout]:
        on_timeout = then.on_timeout
    return Requirements(
        approvers=then.approvers if then.approvers else asked.approvers,
        quorum=max(asked.quorum, then.quorum or 1),
        veto=asked.veto or bool(then.veto),
        timeout_seconds=timeout,
        on_timeout=on_timeout,
        escalation=tuple(
            sorted((*asked.escalation, *(then.escalation or ())), key=lambda s: s.after_seconds)
        ),
        remind_every_seconds=_least(asked.remind_every_seconds, then.remind_every_seconds),
        warn_before_expiry_seconds=_most(
            asked.warn_before_expiry_seconds, then.warn_before_expiry_seconds
        ),
        grantable=asked.grantable if then.grantable is None else then.grantable,
    )


def _least(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _most(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def validate_rules(rules: Sequence[Rule]) -> None:
    """``ValidationFailed`` (``invalid_policy``) naming the first rule that is wrong."""
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        where = f"rules[{index}] ({rule.name!r})"
        if not rule.name.strip() or len(rule.name) > 100 or "@" in rule.name:
            raise _invalid(f"rules[{index}]: a rule needs a name of 1-100 characters, without @")
        if rule.name in seen:
            raise _invalid(f"{where}: another rule has this name")
        seen.add(rule.name)
        for condition in rule.when:
            _check_condition(where, condition)
        _check_then(where, rule.then)


def _check_condition(where: str, condition: Condition) -> None:
    field = condition.field
    if field not in FIELDS and not (field.startswith("metadata.") and len(field) > 9):
        raise _invalid(
            f"{where}: unknown field {field!r}; use one of {', '.join(FIELDS)} or metadata.<path>"
        )
    op, value = condition.op, condition.value
    if op == "exists":
        if value is not None:
            raise _invalid(f"{where}: exists takes no value")
    elif op == "in":
        if not isinstance(value, list | tuple) or not value:
            raise _invalid(f"{where}: in takes a non-empty list")
    elif op == "glob":
        if not isinstance(value, str):
            raise _invalid(f"{where}: glob takes a string pattern")
    elif op in _ORDERED:
        if not _comparable(value, value) or isinstance(value, bool):
            raise _invalid(f"{where}: {op} takes a number or a string")
    elif value is None:
        raise _invalid(f"{where}: {op} takes a value")


def _check_then(where: str, then: RuleThen) -> None:
    requirements = [
        f.name
        for f in msgspec.structs.fields(RuleThen)
        if f.name not in ("decide", "reason") and getattr(then, f.name) is not None
    ]
    if then.decide is not None and requirements:
        raise _invalid(f"{where}: decide cannot be combined with {', '.join(requirements)}")
    if then.decide is None and not requirements:
        raise _invalid(f"{where}: then must decide or set a requirement")
    if then.reason is not None and then.decide is None:
        raise _invalid(f"{where}: reason goes with decide")
    if then.approvers is not None:
        try:
            parse_approvers(then.approvers)
        except ValidationFailed as exc:
            raise _invalid(f"{where}: {exc.message}") from exc
        if not then.approvers:
            raise _invalid(f"{where}: approvers must name someone")
    for name in ("quorum", "timeout_seconds", "remind_every_seconds", "warn_before_expiry_seconds"):
        number = getattr(then, name)
        if number is not None and number < 1:
            raise _invalid(f"{where}: {name} must be 1 or more")
    for step in then.escalation or ():
        if step.after_seconds < 1 or not step.approvers:
            raise _invalid(f"{where}: an escalation step needs after_seconds >= 1 and approvers")
        try:
            parse_approvers(step.approvers)
        except ValidationFailed as exc:
            raise _invalid(f"{where}: escalation: {exc.message}") from exc


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_policy")


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What a workspace's policy does to a request being made (:func:`explain`).

    ``policy_version`` is the version in force (None: the workspace never set
    one), whether or not a rule matched; ``rule`` the rule that did. With
    ``decision``, the request is decided at creation; otherwise it needs
    ``requirements``.
    """

    policy_version: int | None
    rule: str | None = None
    decision: Decision | None = None
    reason: str | None = None
    requirements: Requirements

    @property
    def decided_by(self) -> str | None:
        """``<rule>@v<version>``, the ``decided_by.id`` of a decision at creation."""
        if self.decision is None or self.rule is None or self.policy_version is None:
            return None
        return policy_id(self.rule, self.policy_version)


def explain(policy: CurrentPolicy | None, facts: RequestFacts, asked: Requirements) -> Verdict:
    """The first matching rule of ``policy`` applied to a request asking ``asked``.

    The server records what this says on ``RequestCreated``; ``loopgate policy
    test`` prints it (:func:`describe_verdict`), so both say the same.
    """
    if policy is None:
        return Verdict(policy_version=None, requirements=asked)
    rule = first_match(policy.rules, facts)
    if rule is None:
        return Verdict(policy_version=policy.version, requirements=asked)
    then = rule.then
    if then.decide is not None:
        return Verdict(
            policy_version=policy.version,
            rule=rule.name,
            decision=then.decide,
            reason=then.reason,
            requirements=asked,
        )
    return Verdict(policy_version=policy.version, rule=rule.name, requirements=tighten(asked, then))


def describe_verdict(verdict: Verdict) -> str:
    """The verdict for people, in two lines: which rule matched, and what it does."""
    version = f"policy v{verdict.policy_version}" if verdict.policy_version else "no policy"
    if verdict.rule is None:
        head = f"no rule matches ({version})"
    else:
        head = f"rule {verdict.rule!r} matches ({version})"
    if verdict.decision is not None:
        decided = _decision(verdict.decision, verdict.reason)
        return f"{head}\n{decided} — decided_by policy {verdict.decided_by}"
    return f"{head}\nrequires {describe_requirements(verdict.requirements)}"


def describe_requirements(needs: Requirements) -> str:
    """``approvers group:finance, quorum 2, veto, timeout 300s, on timeout reject, ...``."""
    # Not grantable is the default, not worth a word; a rule's explicit False is.
    return _requirements(msgspec.structs.asdict(needs) | {"grantable": needs.grantable or None})


def _requirements(fields: dict[str, Any]) -> str:
    # The fields a Requirements and a RuleThen share; a None is a field a rule leaves alone.
    words: dict[str, Callable[[Any], str]] = {
        "approvers": lambda v: f"approvers {' '.join(v) or '(none named)'}",
        "quorum": lambda v: f"quorum {v}",
        "veto": lambda v: "veto" if v else "no veto",
        "timeout_seconds": lambda v: f"timeout {v}s" if v else "no timeout",
        "on_timeout": lambda v: f"on timeout {v}",
        "escalation": lambda v: ", ".join(_step(step) for step in v),
        "remind_every_seconds": lambda v: f"remind every {v}s",
        "warn_before_expiry_seconds": lambda v: f"warn {v}s before expiry",
        "grantable": lambda v: "grantable" if v else "not grantable",
    }
    return ", ".join(
        say(fields[name]) for name, say in words.items() if fields.get(name) not in (None, ())
    )


def describe_condition(condition: Condition) -> str:
    """``metadata.amount gte 10000``; values as JSON, so a string reads quoted."""
    if condition.op == "exists":
        return f"{condition.field} exists"
    value = msgspec.json.encode(condition.value).decode()
    return f"{condition.field} {condition.op} {value}"


def describe_then(then: RuleThen) -> str:
    """What a rule does, for people: ``decide approve (reason '...')`` or what it requires."""
    if then.decide is not None:
        return _decision(then.decide, then.reason)
    # veto false cannot loosen a request (tighten ignores it): not worth saying.
    return _requirements({**msgspec.structs.asdict(then), "veto": then.veto or None})


def _decision(decision: Decision, reason: str | None) -> str:
    return f"decide {decision}" + (f" (reason {reason!r})" if reason else "")


def _step(step: EscalationStep) -> str:
    return f"escalate after {step.after_seconds}s to {' '.join(step.approvers)}"
