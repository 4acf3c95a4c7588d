"""The request bodies of the API (REST and MCP alike), and :func:`decode_body`, which decodes them.

Each body is a frozen ``msgspec.Struct``. Limits are declared on the types
(``msgspec.Meta``); rules that span fields, or that msgspec cannot express, live
in ``__post_init__`` and raise ``ValueError("<field>: <reason>")``, which
msgspec turns into a validation error like any other.

Unknown fields are ignored, so the reference's clients that send extras keep
working. Fields that only Loopgate may set (``status``, ``response``,
``approved``, ...) are declared anyway, so that a client setting them is told
so rather than silently ignored.

Errors are made for people: ``InvalidJSON`` says where the JSON breaks
("malformed JSON: invalid character at line 1, column 12"), ``ValidationFailed``
names the field ("options[2].label: at most 100 characters").
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import msgspec

from loopgate.domain.action import MAX_ACTION_BYTES
from loopgate.domain.request import GrantAsk
from loopgate.errors import InvalidJSON, ValidationFailed
from loopgate.events import Action, EscalationStep, GrantScope, OnTimeout, Option, RequestType

MAX_MESSAGE_CHARS = 4000
MAX_OPTIONS = 10
MAX_OPTION_CHARS = 100
MAX_METADATA_BYTES = 16384
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_ID_CHARS = 200
# The body object is level 1. Free-form JSON (metadata) may nest up to here; deeper
# is refused before it reaches code that recurses (the hash chain's canonical form).
MAX_JSON_DEPTH = 32
MAX_URL_CHARS = 2000

# An id (session, client, request, idempotency key) is 1..200 characters, does
# not start with whitespace (so it cannot be blank) and holds no control
# characters: ids are logged, shown in Telegram and stored in JSONB, which
# refuses NUL. ``\Z``, not ``$``: ``$`` would also match before a final newline.
NonEmptyId = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\s\x00-\x1f][^\x00-\x1f]*\Z"),
]
OptionLabel = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_OPTION_CHARS)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MESSAGE_CHARS)]
TimeoutSeconds = Annotated[int, msgspec.Meta(ge=1, le=MAX_TIMEOUT_SECONDS)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_CHARS)]
# A Telegram chat id: the reference's int64, and what both stores keep (SQLite INTEGER,
# Postgres BIGINT); a larger number would fail in the store, not here.
TelegramId = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]

# A field only Loopgate sets: declared so that sending it is a 400; the schema says "never".
ServerSet = Annotated[
    Any,
    msgspec.Meta(
        description="Set by Loopgate; a client sending it gets a 400.",
        extra_json_schema={"not": {}},
    ),
]

T = TypeVar("T", bound=msgspec.Struct)


class Body(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False, omit_defaults=True
):
    """Base of every request body (configuration only)."""


class RegisterSessionBody(Body, frozen=True, kw_only=True):
    """``POST /hitl/register`` (and ``/sessions/register``): all three fields required."""

    session_id: NonEmptyId
    client_id: NonEmptyId
    telegram_id: TelegramId


class CreateSessionBody(Body, frozen=True, kw_only=True):
    """``POST /v1/sessions``: the Telegram operator and the default webhook are optional."""

    session_id: NonEmptyId
    client_id: NonEmptyId
    telegram_id: TelegramId | None = None
    callback_url: Url | None = None

    def __post_init__(self) -> None:
        if self.callback_url is not None:
            _check_url("callback_url", self.callback_url)


class SessionRef(Body, frozen=True, kw_only=True):
    """A body naming one session (``POST /hitl/deactivate``)."""

    session_id: NonEmptyId


class RequestRef(Body, frozen=True, kw_only=True):
    """A body naming one request (``POST /hitl/cancel``), with an optional reason."""

    request_id: NonEmptyId
    reason: Annotated[str, msgspec.Meta(max_length=MAX_MESSAGE_CHARS)] | None = None


class OptionBody(Body, frozen=True, kw_only=True):
    """An option given as an object; an explicit ``approves`` beats the label's wording."""

    label: OptionLabel
    approves: bool | None = None


Options = Annotated[tuple[OptionLabel | OptionBody, ...], msgspec.Meta(max_length=MAX_OPTIONS)]


ApproverSelector = Annotated[
    str, msgspec.Meta(pattern=r"^(user|group|role|telegram|slack):\S{1,128}$", max_length=137)
]
Approvers = Annotated[tuple[ApproverSelector, ...], msgspec.Meta(min_length=1, max_length=32)]
Quorum = Annotated[int, msgspec.Meta(ge=1, le=32)]
ScheduleSeconds = Annotated[int, msgspec.Meta(ge=1, le=MAX_TIMEOUT_SECONDS)]


class EscalationBody(Body, frozen=True, kw_only=True):
    """One escalation step: ``after_seconds`` from creation, ``approvers`` are added and told."""

    after_seconds: ScheduleSeconds
    approvers: Approvers


Escalation = Annotated[tuple[EscalationBody, ...], msgspec.Meta(max_length=8)]
# Up to a week: a grant outlives no request that could have asked instead.
GrantSeconds = Annotated[int, msgspec.Meta(ge=60, le=MAX_TIMEOUT_SECONDS)]


class ActionBody(Body, frozen=True, kw_only=True):
    """The exact call a request asks to make; approvals and receipts are bound to it."""

    tool: NonEmptyId
    args: dict[str, Any] = {}

    def to_action(self) -> Action:
        return Action(tool=self.tool, args=self.args)


class GrantBody(Body, frozen=True, kw_only=True):
    """An approver's "approve and allow for ``seconds``": the exact action, or its whole tool."""

    seconds: GrantSeconds
    scope: GrantScope = "exact"

    def to_ask(self) -> GrantAsk:
        return GrantAsk(seconds=self.seconds, scope=self.scope)


def _check_size(name: str, value: object, limit: int) -> None:
    size = len(msgspec.json.encode(value))
    if size > limit:
        raise ValueError(f"{name}: at most {limit} bytes when encoded, got {size}")


class CreateRequestBody(Body, frozen=True, kw_only=True):
    """``POST /hitl/request`` and ``POST /v1/requests``: an agent asks a human."""

    session_id: NonEmptyId
    client_id: NonEmptyId
    message: Text
    request_type: RequestType | None = None
    options: Options = ()
    allow_text: bool | None = None
    timeout_seconds: TimeoutSeconds | None = None
    on_timeout: OnTimeout = "reject"
    callback_url: Url | None = None
    metadata: dict[str, Any] = {}
    idempotency_key: NonEmptyId | None = None
    approvers: Approvers | None = None
    """Who may answer: ``user:<name>``, ``group:<name>``, ``role:<role>``, ``telegram:<id>``."""
    quorum: Quorum = 1
    """How many distinct approvers must approve."""
    veto: bool = True
    """Whether the first rejection rejects (else: once the quorum is out of reach)."""
    remind_every_seconds: ScheduleSeconds | None = None
    warn_before_expiry_seconds: ScheduleSeconds | None = None
    escalation: Escalation = ()
    action: ActionBody | None = None
    """The exact call to approve (``{tool, args}``, at most 16 KiB); the receipt binds it."""
    editable: bool = False
    """An approver may edit ``action.args`` before approving."""
    args_schema: dict[str, Any] | None = None
    """A JSON Schema the edited args must satisfy (implies ``editable``)."""
    grantable: bool = False
    """An approver may approve and allow matching actions of this session for a while."""
    # Set by Loopgate only; declared so that a client presetting them is refused.
    status: ServerSet = msgspec.UNSET
    response: ServerSet = msgspec.UNSET
    approved: ServerSet = msgspec.UNSET
    outcome: ServerSet = msgspec.UNSET
    decided_by: ServerSet = msgspec.UNSET

    def __post_init__(self) -> None:
        for name in ("status", "response", "approved", "outcome", "decided_by"):
            if getattr(self, name) is not msgspec.UNSET:
                raise ValueError(f"{name}: set by Loopgate, not by clients")
        if not self.message.strip():
            raise ValueError("message: must not be blank")
        self._check_options()
        if self.callback_url is not None:
            _check_url("callback_url", self.callback_url)
        _check_size("metadata", self.metadata, MAX_METADATA_BYTES)
        if self.action is not None:
            _check_size("action", self.action, MAX_ACTION_BYTES)
        elif self.editable or self.grantable or self.args_schema is not None:
            raise ValueError("action: editable, args_schema and grantable need an action")

    def _check_options(self) -> None:
        seen: set[str] = set()
        for i, option in enumerate(self.options):
            label = option if isinstance(option, str) else option.label
            where = f"options[{i}]" if isinstance(option, str) else f"options[{i}].label"
            key = label.strip().casefold()
            if not key:
                raise ValueError(f"{where}: must not be blank")
            if key in seen:
                raise ValueError(f"options: duplicate label {label.strip()!r}")
            seen.add(key)

    def escalation_steps(self) -> tuple[EscalationStep, ...]:
        """The escalation steps as the events carry them."""
        return tuple(
            EscalationStep(after_seconds=s.after_seconds, approvers=s.approvers)
            for s in self.escalation
        )

    def option_list(self) -> tuple[Option, ...]:
        """The options as the events carry them."""
        return tuple(
            Option(label=o) if isinstance(o, str) else Option(label=o.label, approves=o.approves)
            for o in self.options
        )

    def resolved_request_type(self) -> RequestType:
        """The given type, else ``choice`` with options and ``input`` without (DESIGN §7)."""
        if self.request_type is not None:
            return self.request_type
        return "choice" if self.options else "input"


class AnswerBody(Body, frozen=True, kw_only=True):
    """``POST /v1/requests/{id}/response``: an operator picks an option or writes text."""

    option: OptionLabel | None = None
    text: Text | None = None
    args: dict[str, Any] | None = None
    """The action's args as the approver edited them (an editable request, approving)."""
    grant: GrantBody | None = None
    """Approve, and approve matching actions of the session for ``grant.seconds`` too."""

    def __post_init__(self) -> None:
        if (self.option is None) == (self.text is None):
            raise ValueError("give exactly one of option or text")
        if self.text is not None and not self.text.strip():
            raise ValueError("text: must not be blank")
        if self.args is not None:
            _check_size("args", self.args, MAX_ACTION_BYTES)


def decode_body(raw: bytes, shape: type[T]) -> T:
    """Decode ``raw`` JSON into ``shape``, translating msgspec's errors for people."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # RFC 8259 lets parsers ignore a BOM
    if not raw.strip():
        raise InvalidJSON("request body is empty; expected a JSON object")
    try:
        body = msgspec.json.decode(raw, type=shape)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(_explain(str(exc), shape)) from None
    except msgspec.DecodeError as exc:
        raise InvalidJSON(_malformed(str(exc), raw)) from None
    except UnicodeDecodeError:  # msgspec checks UTF-8 only when it builds a str
        raise InvalidJSON(_bad_utf8(raw)) from None
    except RecursionError:
        raise InvalidJSON("malformed JSON: nested too deeply") from None
    _check_strings_and_depth(body)
    return body


# --- rules msgspec cannot express ---------------------------------------------


def _check_strings_and_depth(body: msgspec.Struct) -> None:
    """Refuse a NUL in any string of ``body`` (dict keys too), and nesting over ``MAX_JSON_DEPTH``.

    One rule for every field of every body: Postgres refuses NUL in text and
    JSONB, so such a string could never be stored, and SQLite must refuse it
    alike. Iterative, for the same reason the depth limit exists. The error
    names the field; inside free-form JSON (a dict), the field that holds it.
    """
    # (where, depth of the value, the value, whether ``where`` still follows the path)
    stack: list[tuple[str, int, Any, bool]] = [
        (n, 2, getattr(body, n), True) for n in _fields(body)
    ]
    while stack:
        where, depth, value, precise = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise ValidationFailed(f"{where}: must not contain NUL characters")
            continue
        if isinstance(value, msgspec.Struct):
            children = [(f"{where}.{n}", getattr(value, n), precise) for n in _fields(value)]
        elif isinstance(value, list | tuple):
            children = [
                (f"{where}[{i}]" if precise else where, v, precise) for i, v in enumerate(value)
            ]
        elif isinstance(value, dict):
            children = [(where, item, False) for pair in value.items() for item in pair]
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValidationFailed(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((w, depth + 1, v, p) for w, v, p in children)


def _fields(struct: msgspec.Struct) -> tuple[str, ...]:
    return struct.__struct_fields__


def _check_url(field: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    plain = not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url)
    if not (plain and host and parts.scheme in ("http", "https")):
        raise ValueError(f"{field}: must be an http:// or https:// URL with a host")


# --- translating msgspec's messages -------------------------------------------

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_WRONG_TYPE = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_LENGTH = re.compile(r"^Expected `(?P<kind>\w+)` of length (?P<op>[<>]=) (?P<n>\d+)$")
_BOUND = re.compile(r"^Expected `(?:int|float)` (?P<op>[<>]=?) (?P<n>\S+)$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_MALFORMED = re.compile(r"^JSON is malformed: (?P<what>.*) \(byte (?P<at>\d+)\)$")
_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}
_WORDS |= {"null": "null", "object": "an object", "array": "an array"}
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}


def _explain(message: str, shape: type[msgspec.Struct]) -> str:
    """Turn msgspec's ``Expected `str`, got `int` - at `$.message``` into
    ``message: expected a string, got an integer``."""
    at = _AT.match(message)
    assert at is not None  # the pattern matches any string
    what, path = at["what"], (at["path"] or "").removeprefix(".")
    if m := _MISSING.match(what):
        return f"{path}.{m['field']}: missing" if path else f"{m['field']}: missing"
    if not path:
        if m := _WRONG_TYPE.match(what):
            return f"expected a JSON object, got {_words(m['got'])}"
        return what  # already "<field>: <reason>", from a __post_init__
    if m := _WRONG_TYPE.match(what):
        reason = f"expected {_words(m['want'])}, got {_words(m['got'])}"
    elif m := _LENGTH.match(what):
        n, bound = int(m["n"]), _BOUND_WORDS[m["op"]]
        if m["kind"] == "str":
            reason = "must not be empty" if (n, m["op"]) == (1, ">=") else f"{bound} {n} characters"
        else:
            noun = path if path.isidentifier() else "items"
            reason = f"{bound} {n} {noun}"
    elif m := _BOUND.match(what):
        reason = f"must be {_BOUND_WORDS[m['op']]} {m['n']}"
    elif what.startswith("Expected `str` matching regex"):
        reason = "must not be blank, start with whitespace or contain control characters"
    elif m := _ENUM.match(what):
        reason = f"must be one of {_choices(shape, path)}, got {m['value']}"
    else:
        reason = what
    return f"{path}: {reason}"


def _words(types: str) -> str:
    return " or ".join(_WORDS.get(name, f"`{name}`") for name in types.split(" | "))


def _choices(shape: type[msgspec.Struct], field: str) -> str:
    hint = get_type_hints(shape).get(field)
    kinds = get_args(hint) if get_origin(hint) is not Literal else (hint,)
    values = [v for kind in kinds if get_origin(kind) is Literal for v in get_args(kind)]
    return ", ".join(repr(v) for v in values) or "the allowed values"


def _malformed(message: str, raw: bytes) -> str:
    if message.startswith("Invalid UTF-8"):  # msgspec >= 0.23; older ones raise UnicodeDecodeError
        return _bad_utf8(raw)
    if message == "Input data was truncated":
        return "malformed JSON: the body ends before the JSON value is complete"
    if m := _MALFORMED.match(message):
        # msgspec points one byte past the first trailing character; elsewhere at the culprit.
        at = int(m["at"]) - (m["what"] == "trailing characters")
        return f"malformed JSON: {m['what']} at {_position(raw, at)}"
    return f"malformed JSON: {message}"


def _bad_utf8(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"malformed JSON: invalid UTF-8 at {_position(raw, exc.start)}"
    return "malformed JSON: invalid UTF-8"  # unreachable: msgspec found some


def _position(raw: bytes, offset: int) -> str:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", "replace")) + 1
    return f"line {line}, column {column}"
