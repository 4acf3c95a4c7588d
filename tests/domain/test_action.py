"""Actions: the fingerprint is canonical, edits are checked against the request's schema."""

from __future__ import annotations

import hashlib

import pytest

from loopgate.domain.action import check_args, check_schema, edited_keys, fingerprint
from loopgate.errors import DomainError
from loopgate.events import Action


def test_the_fingerprint_is_sha256_of_rfc8785_json() -> None:
    action = Action(tool="wire_transfer", args={"to": "ACME", "amount": 1500000})
    canonical = b'{"args":{"amount":1500000,"to":"ACME"},"tool":"wire_transfer"}'
    assert fingerprint(action) == hashlib.sha256(canonical).hexdigest()


def test_number_spelling_and_key_order_do_not_matter_but_values_do() -> None:
    a = Action(tool="t", args={"x": 1.0, "y": [1, {"b": 2, "a": 1}]})
    b = Action(tool="t", args={"y": [1, {"a": 1, "b": 2}], "x": 1})
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(Action(tool="t", args={"x": 2, "y": [1]}))
    assert fingerprint(a) != fingerprint(Action(tool="u", args=a.args))


def test_args_are_checked_against_the_schema() -> None:
    schema = {"type": "object", "properties": {"amount": {"type": "integer", "maximum": 10}}}
    check_args(schema, {"amount": 10})
    check_args(None, {"anything": True})
    with pytest.raises(DomainError) as refused:
        check_args(schema, {"amount": 11})
    assert refused.value.code == "invalid_args" and "amount" in str(refused.value)


def test_a_schema_that_is_no_schema_is_refused() -> None:
    with pytest.raises(DomainError) as refused:
        check_schema({"type": "nonsense"})
    assert refused.value.code == "invalid_args_schema"


def test_edited_keys_name_what_changed() -> None:
    before = {"amount": 1500000, "to": "ACME", "memo": "x"}
    after = {"amount": 150000, "to": "ACME", "note": "y"}
    assert edited_keys(before, after) == ["amount", "memo", "note"]
