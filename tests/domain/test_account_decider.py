"""The account deciders (users and API keys) and their rules, given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import pytest

from loopgate.domain.account import (
    FIRST_LOGIN_DELAY,
    FREE_FAILURES_PER_ADDRESS,
    FREE_FAILURES_PER_USER,
    LOGIN_FAILURE_WINDOW,
    MAX_LOGIN_DELAY,
    ApiKey,
    ApiKeyCommand,
    ApiKeyState,
    CreateApiKey,
    NoApiKey,
    NoUser,
    RecordLogin,
    RecordLoginFailure,
    RegisterUser,
    RevokeApiKey,
    User,
    UserCommand,
    UserState,
    api_key_is_terminal,
    check_password,
    check_username,
    decide_api_key,
    decide_user,
    evolve_api_key,
    evolve_user,
    fold_api_key,
    fold_user,
    initial_api_key,
    initial_user,
    login_retry_after,
    user_is_terminal,
    username_key,
)
from loopgate.errors import Conflict, LoopgateError, NotFound, ValidationFailed
from loopgate.events import (
    AnyEvent,
    ApiKeyCreated,
    ApiKeyRevoked,
    Event,
    LoginFailed,
    MemberAdded,
    RequestCreated,
    SessionRegistered,
    UserLoggedIn,
    UserRegistered,
    WorkspaceCreated,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
T2 = T0 + timedelta(minutes=10)
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
BETTER_HASH = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- user: events and commands ------------------------------------------------


def registered(username: str = "alice", at: datetime = T0) -> Event:
    return UserRegistered(user_id="u1", username=username, password_hash=HASH, registered_at=at)


def logged_in(at: datetime = T1, rehashed: str | None = None) -> Event:
    return UserLoggedIn(user_id="u1", logged_in_at=at, rehashed_password=rehashed)


def failed(at: datetime = T1) -> Event:
    return LoginFailed(user_id="u1", reason="invalid_password", failed_at=at)


def register(username: str = "alice", now: datetime = T2) -> RegisterUser:
    return RegisterUser(
        user_id="u1",
        username=username,
        password_hash=HASH,
        now=now,
        workspace_id="u1",
        new_workspace_name=username,
    )


def given_user(*events: Event) -> UserState:
    return fold_user(events)


class Emits(NamedTuple):
    event_type: type[Event]


class Refuses(NamedTuple):
    error: type[LoopgateError]
    code: str


USER_HISTORIES: dict[str, list[Event]] = {
    "unknown": [],
    "registered": [registered()],
    "logged_in": [registered(), logged_in()],
    "after_failures": [registered(), failed(), failed()],
}
USER_COMMANDS: dict[str, UserCommand] = {
    "register": register(),
    "login": RecordLogin(user_id="u1", now=T2),
    "fail": RecordLoginFailure(user_id="u1", now=T2),
}
USER_MATRIX: list[tuple[str, str, Emits | Refuses]] = [
    ("unknown", "register", Emits(UserRegistered)),
    ("unknown", "login", Refuses(NotFound, "user_not_found")),
    ("unknown", "fail", Refuses(NotFound, "user_not_found")),
    *[
        (history, command, outcome)
        for history in ("registered", "logged_in", "after_failures")
        for command, outcome in [
            ("register", Refuses(Conflict, "username_taken")),
            ("login", Emits(UserLoggedIn)),
            ("fail", Emits(LoginFailed)),
        ]
    ],
]


def test_the_user_matrix_covers_every_state_and_command() -> None:
    assert {(s, c) for s, c, _ in USER_MATRIX} == {
        (s, c) for s in USER_HISTORIES for c in USER_COMMANDS
    }


@pytest.mark.parametrize(("history", "command", "outcome"), USER_MATRIX)
def test_every_user_command_in_every_state(
    history: str, command: str, outcome: Emits | Refuses
) -> None:
    state = given_user(*USER_HISTORIES[history])
    match outcome:
        case Refuses(error, code):
            with pytest.raises(LoopgateError) as raised:
                decide_user(USER_COMMANDS[command], state)
            assert (type(raised.value), raised.value.code) == (error, code)
        case Emits(event_type):
            events = decide_user(USER_COMMANDS[command], state)
            assert type(events[0]) is event_type
            assert event_type is UserRegistered or len(events) == 1
            assert isinstance(fold_user([*USER_HISTORIES[history], *events]), User)


def test_registers_a_user_with_the_hash_it_is_given_in_a_workspace_of_their_own() -> None:
    events = decide_user(register(now=T2), given_user())
    assert events == [
        UserRegistered(
            user_id="u1", username="alice", password_hash=HASH, registered_at=T2, workspace_id="u1"
        ),
        WorkspaceCreated(workspace_id="u1", name="alice", created_at=T2),
        MemberAdded(workspace_id="u1", user_id="u1", role="owner", added_at=T2),
    ]
    assert given_user(*events) == User(
        user_id="u1", username="alice", password_hash=HASH, registered_at=T2
    )


def test_joining_an_existing_workspace_creates_none() -> None:
    command = msgspec.structs.replace(
        register(),
        workspace_id="local",
        role="approver",
        new_workspace_name=None,
        invitation_id="i1",
    )
    assert decide_user(command, given_user())[1:] == [
        MemberAdded(
            workspace_id="local", user_id="u1", role="approver", invitation_id="i1", added_at=T2
        )
    ]


def test_registering_a_taken_user_id_is_a_409() -> None:
    with pytest.raises(Conflict) as raised:
        decide_user(register(), given_user(registered()))
    assert (raised.value.status, raised.value.code) == (409, "username_taken")


@pytest.mark.parametrize("username", ["al", "a" * 65, "alice smith", "älice", "alice!", ""])
def test_refuses_to_register_a_malformed_username(username: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decide_user(register(username), given_user())
    assert "username" in raised.value.message


def test_records_a_login() -> None:
    events = decide_user(RecordLogin(user_id="u1", now=T2), given_user(registered()))
    assert events == [UserLoggedIn(user_id="u1", logged_in_at=T2)]
    state = given_user(registered(), *events)
    assert isinstance(state, User)
    assert (state.last_login_at, state.password_hash) == (T2, HASH)


def test_a_login_with_a_rehashed_password_replaces_the_hash() -> None:
    command = RecordLogin(user_id="u1", rehashed_password=BETTER_HASH, now=T2)
    events = decide_user(command, given_user(registered()))
    assert events == [UserLoggedIn(user_id="u1", logged_in_at=T2, rehashed_password=BETTER_HASH)]
    state = given_user(registered(), *events)
    assert isinstance(state, User) and state.password_hash == BETTER_HASH


def test_records_a_failed_login_without_changing_the_user() -> None:
    events = decide_user(RecordLoginFailure(user_id="u1", now=T2), given_user(registered()))
    assert events == [LoginFailed(user_id="u1", reason="invalid_password", failed_at=T2)]
    assert given_user(registered(), *events) == given_user(registered())


# --- user: evolve, fold, is_terminal --------------------------------------------


def test_folding_no_user_events_gives_the_initial_state() -> None:
    assert fold_user([]) == initial_user == NoUser()


def test_evolve_ignores_a_login_of_an_unknown_user() -> None:
    assert evolve_user(initial_user, logged_in()) == NoUser()


def test_evolve_keeps_the_first_registration() -> None:
    state = given_user(registered("alice"), registered("mallory", at=T2))
    assert isinstance(state, User) and (state.username, state.registered_at) == ("alice", T0)


@pytest.mark.parametrize("history", USER_HISTORIES.values(), ids=USER_HISTORIES.keys())
def test_a_user_is_never_terminal(history: list[Event]) -> None:
    assert user_is_terminal(given_user(*history)) is False


# --- API key: events and commands -----------------------------------------------


def created(user_id: str = "u1", expires_at: datetime | None = None) -> Event:
    return ApiKeyCreated(
        key_id="k1",
        user_id=user_id,
        label="ci",
        key_hash="ab" * 32,
        prefix="lk_pub_AbCdE",
        created_at=T0,
        expires_at=expires_at,
    )


def revoked(at: datetime = T1) -> Event:
    return ApiKeyRevoked(key_id="k1", revoked_at=at)


CREATE = CreateApiKey(
    key_id="k1", user_id="u1", label="ci", key_hash="ab" * 32, prefix="lk_pub_AbCdE", now=T2
)


def create(**changes: Any) -> CreateApiKey:
    return msgspec.structs.replace(CREATE, **changes)


def revoke(user_id: str = "u1", now: datetime = T2) -> RevokeApiKey:
    return RevokeApiKey(key_id="k1", user_id=user_id, now=now)


def given_key(*events: Event) -> ApiKeyState:
    return fold_api_key(events)


KEY_HISTORIES: dict[str, list[Event]] = {
    "unknown": [],
    "active": [created()],
    "revoked": [created(), revoked()],
}
KEY_COMMANDS: dict[str, ApiKeyCommand] = {
    "create": create(),
    "revoke_own": revoke("u1"),
    "revoke_other": revoke("u2"),
}
NOTHING = None
KEY_MATRIX: list[tuple[str, str, Emits | Refuses | None]] = [
    ("unknown", "create", Emits(ApiKeyCreated)),
    ("unknown", "revoke_own", Refuses(NotFound, "api_key_not_found")),
    ("unknown", "revoke_other", Refuses(NotFound, "api_key_not_found")),
    ("active", "create", Refuses(Conflict, "api_key_exists")),
    ("active", "revoke_own", Emits(ApiKeyRevoked)),
    ("active", "revoke_other", Refuses(NotFound, "api_key_not_found")),
    ("revoked", "create", Refuses(Conflict, "api_key_exists")),
    ("revoked", "revoke_own", NOTHING),
    ("revoked", "revoke_other", Refuses(NotFound, "api_key_not_found")),
]


def test_the_api_key_matrix_covers_every_state_and_command() -> None:
    assert {(s, c) for s, c, _ in KEY_MATRIX} == {
        (s, c) for s in KEY_HISTORIES for c in KEY_COMMANDS
    }


@pytest.mark.parametrize(("history", "command", "outcome"), KEY_MATRIX)
def test_every_api_key_command_in_every_state(
    history: str, command: str, outcome: Emits | Refuses | None
) -> None:
    state = given_key(*KEY_HISTORIES[history])
    match outcome:
        case Refuses(error, code):
            with pytest.raises(LoopgateError) as raised:
                decide_api_key(KEY_COMMANDS[command], state)
            assert (type(raised.value), raised.value.code) == (error, code)
        case Emits(event_type):
            events = decide_api_key(KEY_COMMANDS[command], state)
            assert [type(e) for e in events] == [event_type]
            assert isinstance(fold_api_key([*KEY_HISTORIES[history], *events]), ApiKey)
        case None:
            assert decide_api_key(KEY_COMMANDS[command], state) == []


def test_creates_a_key_with_its_hash_prefix_and_expiry() -> None:
    events = decide_api_key(create(expires_at=T2 + timedelta(days=30)), given_key())
    assert events == [
        ApiKeyCreated(
            key_id="k1",
            user_id="u1",
            label="ci",
            key_hash="ab" * 32,
            prefix="lk_pub_AbCdE",
            created_at=T2,
            expires_at=T2 + timedelta(days=30),
        )
    ]
    state = given_key(*events)
    assert isinstance(state, ApiKey) and state.revoked_at is None


def test_strips_the_label_before_recording_it() -> None:
    (event,) = decide_api_key(create(label="  deploy bot "), given_key())
    assert isinstance(event, ApiKeyCreated) and event.label == "deploy bot"


@pytest.mark.parametrize("label", ["", "   ", "x" * 101], ids=["empty", "blank", "too long"])
def test_refuses_a_label_that_is_empty_or_too_long(label: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decide_api_key(create(label=label), given_key())
    assert "label" in raised.value.message


def test_accepts_a_label_of_exactly_100_characters() -> None:
    (event,) = decide_api_key(create(label="x" * 100), given_key())
    assert isinstance(event, ApiKeyCreated) and len(event.label) == 100


@pytest.mark.parametrize("expires_at", [T2, T0], ids=["now", "past"])
def test_refuses_an_expiry_that_is_not_in_the_future(expires_at: datetime) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decide_api_key(create(expires_at=expires_at), given_key())
    assert "expires_at" in raised.value.message


def test_refuses_an_expiry_without_a_time_zone() -> None:
    with pytest.raises(ValidationFailed) as raised:
        decide_api_key(create(expires_at=datetime(2030, 1, 1)), given_key())
    assert "time zone" in raised.value.message


def test_revokes_an_active_key() -> None:
    events = decide_api_key(revoke(now=T2), given_key(created()))
    assert events == [ApiKeyRevoked(key_id="k1", revoked_at=T2)]
    state = given_key(created(), *events)
    assert isinstance(state, ApiKey) and state.revoked_at == T2


def test_revokes_an_expired_key_too() -> None:
    history = [created(expires_at=T1)]
    assert decide_api_key(revoke(now=T2), given_key(*history)) == [
        ApiKeyRevoked(key_id="k1", revoked_at=T2)
    ]


def test_revoking_twice_is_a_no_op() -> None:
    assert decide_api_key(revoke(), given_key(created(), revoked())) == []


def test_another_users_key_looks_like_a_missing_one() -> None:
    with pytest.raises(NotFound) as other:
        decide_api_key(revoke("u2"), given_key(created("u1")))
    with pytest.raises(NotFound) as missing:
        decide_api_key(revoke("u2"), given_key())
    assert (other.value.status, other.value.code) == (missing.value.status, missing.value.code)


# --- API key: evolve, fold, is_terminal ---------------------------------------


def test_folding_no_key_events_gives_the_initial_state() -> None:
    assert fold_api_key([]) == initial_api_key == NoApiKey()


def test_evolve_ignores_a_revocation_of_an_unknown_key() -> None:
    assert evolve_api_key(initial_api_key, revoked()) == NoApiKey()


def test_evolve_keeps_the_first_revocation_time() -> None:
    state = given_key(created(), revoked(at=T1), revoked(at=T2))
    assert isinstance(state, ApiKey) and state.revoked_at == T1


@pytest.mark.parametrize(
    ("history", "terminal"),
    [("unknown", False), ("active", False), ("revoked", True)],
)
def test_a_key_is_terminal_once_revoked(history: str, terminal: bool) -> None:
    assert api_key_is_terminal(given_key(*KEY_HISTORIES[history])) is terminal


# --- both: other events are ignored -----------------------------------------------

OTHER_EVENTS: list[Event] = [
    SessionRegistered(session_id="s1", client_id="agent", registered_at=T0),
    RequestCreated(
        request_id="r1",
        session_id="s1",
        client_id="agent",
        message="?",
        request_type="input",
        timeout_seconds=0,
        created_at=T0,
    ),
]
USER_EVENTS = (UserRegistered, UserLoggedIn, LoginFailed)
KEY_EVENTS = (ApiKeyCreated, ApiKeyRevoked)


def test_the_account_events_are_all_in_the_catalog() -> None:
    catalog: tuple[type[Event], ...] = AnyEvent.__args__
    assert set(USER_EVENTS) | set(KEY_EVENTS) <= set(catalog)


@pytest.mark.parametrize("history", USER_HISTORIES.values(), ids=USER_HISTORIES.keys())
@pytest.mark.parametrize(
    "event", [*OTHER_EVENTS, created(), revoked()], ids=lambda e: type(e).__name__
)
def test_evolve_user_ignores_events_of_other_aggregates(history: list[Event], event: Event) -> None:
    state = given_user(*history)
    assert evolve_user(state, event) == state


@pytest.mark.parametrize("history", KEY_HISTORIES.values(), ids=KEY_HISTORIES.keys())
@pytest.mark.parametrize(
    "event", [*OTHER_EVENTS, registered(), logged_in(), failed()], ids=lambda e: type(e).__name__
)
def test_evolve_api_key_ignores_events_of_other_aggregates(
    history: list[Event], event: Event
) -> None:
    state = given_key(*history)
    assert evolve_api_key(state, event) == state


# --- rules on plain values ----------------------------------------------------------


@pytest.mark.parametrize("username", ["bob", "a" * 64, "Alice.Smith-2_x", "..."])
def test_accepts_usernames_of_3_to_64_allowed_characters(username: str) -> None:
    check_username(username)


def test_usernames_are_the_same_account_without_regard_to_case() -> None:
    assert username_key("Alice") == username_key("ALICE") == username_key("alice")


@pytest.mark.parametrize("password", ["12345678", "p" * 1024, "пароль-ünï 🔑"])
def test_accepts_passwords_of_8_to_1024_characters(password: str) -> None:
    check_password(password)


@pytest.mark.parametrize(
    "password",
    ["1234567", "", "p" * 1025, "bad\ud800surrogate"],
    ids=["7 characters", "empty", "1025 characters", "lone surrogate"],
)
def test_refuses_passwords_too_short_too_long_or_unencodable(password: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_password(password)
    assert "password" in raised.value.message


def test_allows_logins_after_fewer_than_the_free_failures() -> None:
    assert login_retry_after([at(n) for n in range(4)], [at(n) for n in range(19)], at(4)) is None


def test_the_wait_after_the_free_failures_starts_at_fifteen_seconds_and_doubles() -> None:
    first = int(FIRST_LOGIN_DELAY.total_seconds())
    for extra in range(4):
        failures = [at(n) for n in range(FREE_FAILURES_PER_USER + extra)]
        last = failures[-1]
        wait = first * 2**extra
        assert login_retry_after(failures, failures, last) == wait
        assert login_retry_after(failures, failures, last + timedelta(seconds=wait - 0.5)) == 1
        assert login_retry_after(failures, failures, last + timedelta(seconds=wait)) is None


def test_the_wait_never_exceeds_fifteen_minutes_however_many_failures() -> None:
    failures = [at(n) for n in range(1000)]
    assert login_retry_after(failures, failures, at(999)) == MAX_LOGIN_DELAY.total_seconds()


def test_failures_at_other_users_from_the_address_throttle_past_twenty() -> None:
    spread = [at(n) for n in range(FREE_FAILURES_PER_ADDRESS)]  # one each at twenty users
    assert login_retry_after([], spread[:-1], at(20)) is None
    assert login_retry_after([], spread, at(19)) == FIRST_LOGIN_DELAY.total_seconds()


def test_ignores_failures_older_than_the_window() -> None:
    old = [at(-LOGIN_FAILURE_WINDOW.total_seconds() - 1)] * 50
    assert login_retry_after([*old, at(0), at(1)], [*old, at(0), at(1)], at(2)) is None
