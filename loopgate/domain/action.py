"""Actions: the exact call an approval is bound to, and its fingerprint.

The fingerprint is the SHA-256 of the action in RFC 8785 canonical JSON (JCS):
key order, whitespace and number spelling do not change it, so an agent, the
server and a tool verifying a receipt offline all compute the same one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jsonschema
import msgspec
import rfc8785

from loopgate.errors import DomainError
from loopgate.events import Action

MAX_ACTION_BYTES = 16 * 1024


def fingerprint(action: Action) -> str:
    """The lowercase hex SHA-256 of ``{"tool", "args"}`` in canonical JSON."""
    canonical = rfc8785.dumps({"tool": action.tool, "args": action.args})
    return hashlib.sha256(canonical).hexdigest()


def action_size(action: Action) -> int:
    return len(msgspec.json.encode(action))


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse an ``args_schema`` that is not a valid JSON Schema (422 ``invalid_args_schema``)."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise DomainError(
            f"args_schema is not a valid JSON Schema: {exc.message}", code="invalid_args_schema"
        ) from None


def check_args(schema: dict[str, Any] | None, args: dict[str, Any]) -> None:
    """Refuse edited ``args`` the request's schema does not accept (422 ``invalid_args``)."""
    if schema is None:
        return
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(args))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "args"
        raise DomainError(f"{where}: {error.message}", code="invalid_args")


def edited_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The top-level keys an edit added, removed or changed, sorted: what a diff highlights."""
    return sorted(
        k for k in before.keys() | after.keys() if before.get(k, ...) != after.get(k, ...)
    )
