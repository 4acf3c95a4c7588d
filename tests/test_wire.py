"""Request bodies: what decodes, what is refused, and how the refusal reads."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from loopgate.errors import InvalidJSON, LoopgateError, ValidationFailed
from loopgate.events import Option
from loopgate.web.errors import error_middleware
from loopgate.web.params import read_body
from loopgate.wire import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_CHARS,
    MAX_METADATA_BYTES,
    MAX_OPTION_CHARS,
    MAX_OPTIONS,
    MAX_TIMEOUT_SECONDS,
    AnswerBody,
    CreateRequestBody,
    CreateSessionBody,
    OptionBody,
    RegisterSessionBody,
    RequestRef,
    SessionRef,
    decode_body,
)

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

README_REQUEST = {
    "session_id": "production-deploy-bot",
    "client_id": "ci-cd-pipeline",
    "message": "Deploy v2.1.0 to production? All tests passed ✅",
    "options": ["🚀 Deploy", "⏸️ Hold", "🔍 Review First"],
    "metadata": {
        "version": "v2.1.0",
        "tests_passed": 847,
        "code_coverage": "94.2%",
        "environment": "production",
    },
}
CURL_REQUEST = {"session_id": "test", "client_id": "test", "message": "Test message"}
IDS = {"session_id": "s", "client_id": "c"}


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def ask(**fields: Any) -> bytes:
    """A request body: the curl example with ``fields`` changed."""
    return encode({**CURL_REQUEST, **fields})


# --- what decodes -------------------------------------------------------------


@pytest.mark.parametrize("payload", [README_REQUEST, CURL_REQUEST], ids=["readme", "curl"])
def test_reference_request_payloads_round_trip(payload: dict[str, Any]) -> None:
    body = decode_body(encode(payload), CreateRequestBody)
    assert msgspec.json.decode(encode(body)) == payload


def test_readme_request_resolves_to_a_choice_with_plain_options() -> None:
    body = decode_body(encode(README_REQUEST), CreateRequestBody)
    assert body.resolved_request_type() == "choice"
    assert body.option_list() == (
        Option(label="🚀 Deploy"),
        Option(label="⏸️ Hold"),
        Option(label="🔍 Review First"),
    )
    assert body.on_timeout == "reject"
    assert body.timeout_seconds is None


def test_request_without_options_is_an_input_and_an_explicit_type_wins() -> None:
    assert decode_body(ask(), CreateRequestBody).resolved_request_type() == "input"
    body = decode_body(ask(request_type="confirmation", options=["Yes"]), CreateRequestBody)
    assert body.resolved_request_type() == "confirmation"


def test_options_may_be_objects_whose_approves_is_carried() -> None:
    options = ["Ship it", {"label": "Hold on", "approves": True}, {"label": "Nope"}]
    body = decode_body(ask(options=options), CreateRequestBody)
    assert body.options[1] == OptionBody(label="Hold on", approves=True)
    assert body.option_list() == (
        Option(label="Ship it"),
        Option(label="Hold on", approves=True),
        Option(label="Nope"),
    )


def test_every_request_field_decodes_at_its_limits() -> None:
    body = decode_body(
        ask(
            message="x" * MAX_MESSAGE_CHARS,
            options=[f"option {i}" for i in range(MAX_OPTIONS - 1)] + ["y" * MAX_OPTION_CHARS],
            allow_text=True,
            timeout_seconds=MAX_TIMEOUT_SECONDS,
            on_timeout="approve",
            callback_url="https://hooks.example.com/loopgate?x=1",
            metadata={"note": "z" * (MAX_METADATA_BYTES - len('{"note":""}'))},
            idempotency_key="deploy-2024-06-01",
        ),
        CreateRequestBody,
    )
    assert len(body.options) == MAX_OPTIONS
    assert len(encode(body.metadata)) == MAX_METADATA_BYTES
    assert (body.allow_text, body.on_timeout) == (True, "approve")


def test_unknown_fields_are_ignored_and_the_content_is_kept() -> None:
    body = decode_body(ask(priority="high", user={"id": 1}), CreateRequestBody)
    assert body.message == "Test message"


@pytest.mark.parametrize(
    ("shape", "payload", "expected"),
    [
        (
            RegisterSessionBody,
            {"session_id": "s1", "client_id": "c1", "telegram_id": 123456789},
            RegisterSessionBody(session_id="s1", client_id="c1", telegram_id=123456789),
        ),
        (CreateSessionBody, IDS, CreateSessionBody(session_id="s", client_id="c")),
        (SessionRef, {"session_id": "my session"}, SessionRef(session_id="my session")),
        (RequestRef, {"request_id": "r1"}, RequestRef(request_id="r1")),
        (
            RequestRef,
            {"request_id": "r1", "reason": "superseded"},
            RequestRef(request_id="r1", reason="superseded"),
        ),
        (AnswerBody, {"option": "🚀 Deploy"}, AnswerBody(option="🚀 Deploy")),
        (AnswerBody, {"text": "not today"}, AnswerBody(text="not today")),
    ],
)
def test_other_bodies_decode(shape: type[Any], payload: dict[str, Any], expected: Any) -> None:
    assert decode_body(encode(payload), shape) == expected


def test_a_byte_order_mark_and_surrounding_whitespace_are_tolerated() -> None:
    body = decode_body(b"\xef\xbb\xbf \n" + ask() + b"\n", CreateRequestBody)
    assert body.session_id == "test"


# --- what is refused, and how it reads ------------------------------------------

REGISTER = {"session_id": "s", "client_id": "c", "telegram_id": 1}

REFUSED: list[tuple[str, type[Any], bytes, type[LoopgateError], str]] = [
    # not JSON, or not an object
    ("empty body", CreateRequestBody, b"", InvalidJSON, "request body is empty"),
    ("blank body", CreateRequestBody, b" \n", InvalidJSON, "request body is empty"),
    ("truncated", CreateRequestBody, b'{"session_id": "s"', InvalidJSON, "malformed JSON"),
    (
        "trailing comma",
        CreateRequestBody,
        b'{"session_id": "s",}',
        InvalidJSON,
        "trailing comma in object at line 1, column 20",
    ),
    ("bad char", CreateRequestBody, b"{\n  'a': 1}", InvalidJSON, "at line 2, column 3"),
    ("trailing data", SessionRef, b'{"session_id":"s"} x', InvalidJSON, "line 1, column 20"),
    ("bad utf-8", SessionRef, b'{"session_id":"\xff"}', InvalidJSON, "invalid UTF-8 at line 1"),
    (
        "too deep",
        CreateRequestBody,
        ask(metadata={"a": 0}).replace(b"0", b"[" * 5000 + b"]" * 5000),
        InvalidJSON,
        "malformed JSON: nested too deeply",
    ),
    ("array body", CreateRequestBody, b"[]", ValidationFailed, "expected a JSON object, got an"),
    ("string body", SessionRef, b'"s"', ValidationFailed, "expected a JSON object, got a string"),
    # ids
    ("missing session", RegisterSessionBody, b"{}", ValidationFailed, "session_id: missing"),
    (
        "missing telegram",
        RegisterSessionBody,
        encode(IDS),
        ValidationFailed,
        "telegram_id: missing",
    ),
    (
        "telegram as string",
        RegisterSessionBody,
        encode({**REGISTER, "telegram_id": "123"}),
        ValidationFailed,
        "telegram_id: expected an integer, got a string",
    ),
    (
        "telegram as bool",
        CreateSessionBody,
        encode({**IDS, "telegram_id": True}),
        ValidationFailed,
        "telegram_id: expected an integer or null, got a boolean",
    ),
    ("empty id", SessionRef, encode({"session_id": ""}), ValidationFailed, "session_id: must not"),
    ("blank id", SessionRef, encode({"session_id": "   "}), ValidationFailed, "session_id: must"),
    ("newline id", SessionRef, encode({"session_id": "a\n"}), ValidationFailed, "session_id: m"),
    ("nul id", SessionRef, encode({"session_id": "a\x00b"}), ValidationFailed, "session_id: must"),
    (
        "long id",
        CreateSessionBody,
        encode({**IDS, "client_id": "c" * 201}),
        ValidationFailed,
        "client_id: at most 200 characters",
    ),
    ("missing request id", RequestRef, b"{}", ValidationFailed, "request_id: missing"),
    (
        "nul reason",
        RequestRef,
        encode({"request_id": "r", "reason": "a\x00"}),
        ValidationFailed,
        "reason: must not contain NUL characters",
    ),
    # message
    ("missing message", CreateRequestBody, encode(IDS), ValidationFailed, "message: missing"),
    ("int message", CreateRequestBody, ask(message=5), ValidationFailed, "message: expected a str"),
    ("empty message", CreateRequestBody, ask(message=""), ValidationFailed, "message: must not be"),
    ("blank message", CreateRequestBody, ask(message=" \n"), ValidationFailed, "message: must not"),
    (
        "long message",
        CreateRequestBody,
        ask(message="x" * (MAX_MESSAGE_CHARS + 1)),
        ValidationFailed,
        "message: at most 4000 characters",
    ),
    (
        "nul message",
        CreateRequestBody,
        ask(message="a\x00b"),
        ValidationFailed,
        "message: must not contain NUL characters",
    ),
    # request_type, on_timeout, timeout_seconds
    (
        "unknown type",
        CreateRequestBody,
        ask(request_type="poll"),
        ValidationFailed,
        "request_type: must be one of 'confirmation', 'input', 'choice', got 'poll'",
    ),
    (
        "unknown on_timeout",
        CreateRequestBody,
        ask(on_timeout="ignore"),
        ValidationFailed,
        "on_timeout: must be one of 'reject', 'approve', 'none', got 'ignore'",
    ),
    (
        "zero timeout",
        CreateRequestBody,
        ask(timeout_seconds=0),
        ValidationFailed,
        "timeout_seconds: must be at least 1",
    ),
    (
        "long timeout",
        CreateRequestBody,
        ask(timeout_seconds=MAX_TIMEOUT_SECONDS + 1),
        ValidationFailed,
        "timeout_seconds: must be at most 604800",
    ),
    (
        "float timeout",
        CreateRequestBody,
        ask(timeout_seconds=1.5),
        ValidationFailed,
        "timeout_seconds: expected an integer or null, got a number",
    ),
    (
        "string allow_text",
        CreateRequestBody,
        ask(allow_text="yes"),
        ValidationFailed,
        "allow_text: expected a boolean or null, got a string",
    ),
    # options
    (
        "options not a list",
        CreateRequestBody,
        ask(options="Yes"),
        ValidationFailed,
        "options: expected an array, got a string",
    ),
    (
        "too many options",
        CreateRequestBody,
        ask(options=[str(i) for i in range(MAX_OPTIONS + 1)]),
        ValidationFailed,
        "options: at most 10 options",
    ),
    (
        "int option",
        CreateRequestBody,
        ask(options=["a", 2]),
        ValidationFailed,
        "options[1]: expected a string or an object, got an integer",
    ),
    ("empty option", CreateRequestBody, ask(options=[""]), ValidationFailed, "options[0]: must n"),
    (
        "blank option",
        CreateRequestBody,
        ask(options=["a", "  "]),
        ValidationFailed,
        "options[1]: must not be blank",
    ),
    (
        "long option",
        CreateRequestBody,
        ask(options=["a", "b", "y" * (MAX_OPTION_CHARS + 1)]),
        ValidationFailed,
        "options[2]: at most 100 characters",
    ),
    (
        "long option label",
        CreateRequestBody,
        ask(options=["a", "b", {"label": "y" * (MAX_OPTION_CHARS + 1)}]),
        ValidationFailed,
        "options[2].label: at most 100 characters",
    ),
    (
        "option without label",
        CreateRequestBody,
        ask(options=[{"approves": True}]),
        ValidationFailed,
        "options[0].label: missing",
    ),
    (
        "option approves not bool",
        CreateRequestBody,
        ask(options=[{"label": "a", "approves": "yes"}]),
        ValidationFailed,
        "options[0].approves: expected a boolean or null, got a string",
    ),
    (
        "duplicate option",
        CreateRequestBody,
        ask(options=["Deploy", "Hold", {"label": " deploy "}]),
        ValidationFailed,
        "options: duplicate label 'deploy'",
    ),
    (
        "nul option",
        CreateRequestBody,
        ask(options=[{"label": "a\x00"}]),
        ValidationFailed,
        "options[0].label: must not contain NUL characters",
    ),
    # callback_url
    *[
        (
            f"callback {url!r}",
            CreateRequestBody,
            ask(callback_url=url),
            ValidationFailed,
            "callback_url: must be an http:// or https:// URL",
        )
        for url in ["ftp://x.example", "example.com/hook", "https://", "http://a b", "http://[::1"]
    ],
    (
        "long callback",
        CreateRequestBody,
        ask(callback_url="https://x.example/" + "a" * 2000),
        ValidationFailed,
        "callback_url: at most 2000 characters",
    ),
    # metadata
    (
        "metadata list",
        CreateRequestBody,
        ask(metadata=[1]),
        ValidationFailed,
        "metadata: expected an object, got an array",
    ),
    (
        "big metadata",
        CreateRequestBody,
        ask(metadata={"note": "z" * MAX_METADATA_BYTES}),
        ValidationFailed,
        f"metadata: at most 16384 bytes when encoded, got {MAX_METADATA_BYTES + 11}",
    ),
    (
        "nul in metadata",
        CreateRequestBody,
        ask(metadata={"a": [{"b": "x\x00"}]}),
        ValidationFailed,
        "metadata: must not contain NUL characters",
    ),
    (
        "nul in metadata key",
        CreateRequestBody,
        ask(metadata={"a\x00": 1}),
        ValidationFailed,
        "metadata: must not contain NUL characters",
    ),
    (
        # body 1, metadata 2, then 31 arrays: level 33
        "metadata nested 33 levels",
        CreateRequestBody,
        ask(metadata={"a": functools.reduce(lambda v, _: [v], range(30), [])}),
        ValidationFailed,
        f"metadata: nested deeper than {MAX_JSON_DEPTH} levels",
    ),
    (
        "metadata nested 490 levels",
        CreateRequestBody,
        ask(metadata={"a": functools.reduce(lambda v, _: [v], range(488), [])}),
        ValidationFailed,
        f"metadata: nested deeper than {MAX_JSON_DEPTH} levels",
    ),
    # idempotency_key
    (
        "empty idempotency key",
        CreateRequestBody,
        ask(idempotency_key=""),
        ValidationFailed,
        "idempotency_key: must not be empty",
    ),
    (
        "long idempotency key",
        CreateRequestBody,
        ask(idempotency_key="k" * 201),
        ValidationFailed,
        "idempotency_key: at most 200 characters",
    ),
    # fields only Loopgate sets
    *[
        (
            f"preset {name}",
            CreateRequestBody,
            ask(**{name: value}),
            ValidationFailed,
            f"{name}: set by Loopgate, not by clients",
        )
        for name, value in [
            ("status", "completed"),
            ("response", "🚀 Deploy"),
            ("approved", True),
            ("approved", None),
            ("outcome", "approved"),
            ("decided_by", "me"),
        ]
    ],
    *[
        (
            f"telegram_id past int64 ({shape.__name__})",
            shape,
            encode({"session_id": "s", "client_id": "c", "telegram_id": 2**63}),
            ValidationFailed,
            "telegram_id: must be at most 9223372036854775807",
        )
        for shape in (RegisterSessionBody, CreateSessionBody)
    ],
    # answers
    ("empty answer", AnswerBody, b"{}", ValidationFailed, "give exactly one of option or text"),
    (
        "two answers",
        AnswerBody,
        encode({"option": "a", "text": "b"}),
        ValidationFailed,
        "give exactly one of option or text",
    ),
    ("blank text", AnswerBody, encode({"text": "  "}), ValidationFailed, "text: must not be blank"),
    (
        "long text",
        AnswerBody,
        encode({"text": "t" * (MAX_MESSAGE_CHARS + 1)}),
        ValidationFailed,
        "text: at most 4000 characters",
    ),
    (
        "int option answer",
        AnswerBody,
        encode({"option": 1}),
        ValidationFailed,
        "option: expected a string or null, got an integer",
    ),
    ("nul text", AnswerBody, encode({"text": "\x00"}), ValidationFailed, "text: must not contain"),
]


@pytest.mark.parametrize(
    ("shape", "raw", "error", "fragment"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refuses_bad_bodies_naming_the_field(
    shape: type[Any], raw: bytes, error: type[LoopgateError], fragment: str
) -> None:
    with pytest.raises(error) as caught:
        decode_body(raw, shape)
    assert type(caught.value) is error
    assert caught.value.status == 400
    assert caught.value.code == ("invalid_json" if error is InvalidJSON else "validation_failed")
    assert fragment in caught.value.message
    assert "`" not in caught.value.message  # no msgspec jargon leaks through


# --- read_body, end to end through the error middleware ------------------------


@pytest.fixture
async def client(aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    async def echo(request: web.Request) -> web.Response:
        body = await read_body(request, CreateRequestBody)
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024)
    app.router.add_post("/echo", echo)
    return await aiohttp_client(app)


async def test_read_body_decodes_json_with_a_charset(client: TestClient[Any, Any]) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = await client.post("/echo", data=encode(README_REQUEST), headers=headers)
    assert response.status == 200
    assert await response.json() == README_REQUEST


async def test_read_body_leaves_the_content_type_to_the_guard(
    client: TestClient[Any, Any],
) -> None:
    # read_body decodes whatever it is handed; web/guard.py refuses non-JSON bodies (415)
    # before a handler runs, which tests/web/test_guard.py shows on the whole app.
    headers = {"Content-Type": "application/x-www-form-urlencoded"}  # curl -d's default
    response = await client.post("/echo", data=encode(CURL_REQUEST), headers=headers)
    assert response.status == 200
    assert await response.json() == CURL_REQUEST


@pytest.mark.parametrize(
    ("raw", "code", "fragment"),
    [
        (b'{"session_id": ', "invalid_json", "malformed JSON"),
        (b"", "invalid_json", "request body is empty"),
        (ask(message=5), "validation_failed", "message: expected a string, got an integer"),
        (ask(options=["Yes", "yes"]), "validation_failed", "options: duplicate label 'yes'"),
    ],
)
async def test_read_body_errors_come_out_as_json_400(
    client: TestClient[Any, Any], raw: bytes, code: str, fragment: str
) -> None:
    response = await client.post("/echo", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"]


async def test_read_body_lets_a_body_over_the_limit_become_a_413(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post("/echo", data=ask(message="x" * (64 * 1024)))
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
