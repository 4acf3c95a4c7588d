"""The account service on each store: users, logins, lock-out, tokens and API keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from database_scan import database_contents

from loopgate.accounts.tokens import verify_token
from loopgate.accounts.users import AccountService, password_context
from loopgate.commands.requests import Actor
from loopgate.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from loopgate.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    Event,
    LoginFailed,
    MemberAdded,
    Meta,
    UserLoggedIn,
    UserRegistered,
    WorkspaceCreated,
)
from loopgate.store.base import EventStore
from loopgate.store.codec import GENESIS_HASH, Row, decode_row, encode_meta

SECRET = "test-secret-" + "0123456789abcdef" * 4
PASSWORD = "correct horse battery staple"
# Cheap hashes keep the suite fast; one test checks the production parameters.
FAST = password_context(memory_cost=8192, time_cost=1)

Factory = Callable[[], Awaitable[EventStore]]


class FakeClock:
    """A clock moved by hand; starts at the real time so tokens verify without one."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def service(store: EventStore, clock: FakeClock, **options: Any) -> AccountService:
    return AccountService(store, jwt_secret=SECRET, clock=clock, **{"passwords": FAST} | options)


@pytest.fixture
def accounts(store: EventStore, clock: FakeClock) -> AccountService:
    return service(store, clock)


async def events_of(store: EventStore, stream: str) -> list[Event]:
    return [record.event for record in await store.read_stream(stream)]


async def register(accounts: AccountService, username: str = "alice") -> Actor:
    user = await accounts.register_user(username, PASSWORD)
    return await accounts.actor_for_user(user.user_id)


# --- registering --------------------------------------------------------------


async def test_registers_a_user_on_its_own_stream(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    user = await accounts.register_user("alice", PASSWORD, correlation_id="http-1")

    assert (user.username, user.registered_at) == ("alice", clock.now)
    assert await accounts.get_user(user.user_id) == user
    record, created, joined = await store.read_stream(f"user-{user.user_id}")
    assert isinstance(record.event, UserRegistered)
    assert (record.event.user_id, record.event.username) == (user.user_id, "alice")
    # The server's first user owns the default workspace, in the same append.
    assert record.meta == Meta(actor=user.user_id, tenant="local", correlation_id="http-1")
    assert created.event == WorkspaceCreated(
        workspace_id="local", name="default", created_at=clock.now
    )
    assert joined.event == MemberAdded(
        workspace_id="local", user_id=user.user_id, role="owner", added_at=clock.now
    )


async def test_hashes_passwords_with_argon2id_at_owasp_parameters(
    store: EventStore, clock: FakeClock
) -> None:
    accounts = AccountService(store, jwt_secret=SECRET, clock=clock)  # the default context

    user = await accounts.register_user("alice", PASSWORD)

    event, *_ = await events_of(store, f"user-{user.user_id}")
    assert isinstance(event, UserRegistered)
    assert event.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in event.password_hash
    token, _ = await accounts.login("alice", PASSWORD)
    assert verify_token(token, SECRET)[0] == user.user_id


@pytest.mark.parametrize("taken_as", ["alice", "ALICE", "Alice"])
async def test_refuses_a_taken_username_whatever_its_case(
    accounts: AccountService, store: EventStore, taken_as: str
) -> None:
    await accounts.register_user("alice", PASSWORD)

    with pytest.raises(Conflict) as raised:
        await accounts.register_user(taken_as, "another password")

    assert (raised.value.status, raised.value.code) == (409, "username_taken")
    assert await store.head() == 3  # alice's registration, workspace and membership


async def test_lets_exactly_one_of_ten_racing_registrations_win(
    accounts: AccountService, store: EventStore
) -> None:
    # Ten spellings of one name that differ only in case.
    names = [
        "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate("racer"))
        for mask in range(10)
    ]

    outcomes = await asyncio.gather(
        *(accounts.register_user(name, PASSWORD) for name in names), return_exceptions=True
    )

    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, Conflict) and o.code == "username_taken" for o in losers), losers
    assert [r.type for r in await store.read_all()] == [
        "user.registered",
        "workspace.created",
        "workspace.member_added",
    ]
    assert len(await store.fetch("SELECT * FROM users")) == 1


async def test_lets_exactly_one_racing_append_claim_a_username(store: EventStore) -> None:
    # Below the handler's early check: the unique key alone decides.
    def registered(n: int) -> UserRegistered:
        at = datetime(2025, 1, 1, tzinfo=UTC)
        return UserRegistered(user_id=f"u{n}", username="Bob", password_hash="h", registered_at=at)

    outcomes = await asyncio.gather(
        *(store.append(f"user-u{n}", 0, [registered(n)], Meta()) for n in range(10)),
        return_exceptions=True,
    )

    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert await store.head() == 1


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("al", PASSWORD, "username"),
        ("a" * 65, PASSWORD, "username"),
        ("al ice", PASSWORD, "username"),
        ("alice", "short", "password"),
        ("alice", "x" * 1025, "password"),
    ],
)
async def test_refuses_a_bad_username_or_password(
    accounts: AccountService, store: EventStore, username: str, password: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        await accounts.register_user(username, password)

    assert raised.value.status == 400 and field in raised.value.message
    assert await store.head() == 0


async def test_get_user_of_an_unknown_id_is_a_404(accounts: AccountService) -> None:
    with pytest.raises(NotFound) as raised:
        await accounts.get_user("nobody")
    assert raised.value.code == "user_not_found"


# --- logging in -----------------------------------------------------------------


async def test_logs_in_with_the_right_password_whatever_the_username_case(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    user = await accounts.register_user("Alice", PASSWORD)

    token, logged_in = await accounts.login("aLiCe", PASSWORD, correlation_id="http-2")

    assert logged_in == user
    assert verify_token(token, SECRET, now=clock.now) == (user.user_id, "Alice")
    assert await accounts.actor_for_token(token, "http-3") == Actor(
        id=user.user_id,
        tenant="local",  # the first user owns the default workspace
        correlation_id="http-3",
        answers_as=user.user_id,
        user_id=user.user_id,
        role="owner",
        principals=frozenset({"user:Alice", "role:owner", "role:approver"}),
    )
    records = await store.read_stream(f"user-{user.user_id}")
    assert records[-1].event == UserLoggedIn(user_id=user.user_id, logged_in_at=clock.now)
    assert records[-1].meta.correlation_id == "http-2"


async def test_refuses_a_wrong_password_and_records_the_failure(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    user = await accounts.register_user("alice", PASSWORD)

    with pytest.raises(Unauthorized) as raised:
        await accounts.login("alice", PASSWORD + "!")

    assert (raised.value.status, raised.value.code) == (401, "invalid_credentials")
    assert (await events_of(store, f"user-{user.user_id}"))[-1] == LoginFailed(
        user_id=user.user_id, reason="invalid_password", failed_at=clock.now
    )


async def test_refuses_an_unknown_username_recording_nothing_but_spending_a_verification(
    accounts: AccountService, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await accounts.register_user("alice", PASSWORD)
    verified: list[str] = []
    real_verify = accounts.passwords.verify

    def spy(secret: str, hashed: str) -> bool:
        verified.append(hashed)
        result: bool = real_verify(secret, hashed)
        return result

    monkeypatch.setattr(accounts.passwords, "verify", spy)

    with pytest.raises(Unauthorized) as raised:
        await accounts.login("mallory", PASSWORD)

    assert raised.value.code == "invalid_credentials"
    assert await store.head() == 3  # alice's registration alone
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")


@pytest.mark.parametrize(
    "password", ["x" * 5000, "bad\ud800", ""], ids=["huge", "surrogate", "empty"]
)
async def test_refuses_passwords_no_account_could_have_as_wrong(
    accounts: AccountService, store: EventStore, password: str
) -> None:
    user = await accounts.register_user("alice", PASSWORD)

    with pytest.raises(Unauthorized) as raised:
        await accounts.login("alice", password)

    assert raised.value.code == "invalid_credentials"
    assert isinstance((await events_of(store, f"user-{user.user_id}"))[-1], LoginFailed)


async def test_refuses_a_password_that_only_starts_like_the_right_one(
    accounts: AccountService,
) -> None:
    long_password = "p" * 1024
    await accounts.register_user("alice", long_password)

    with pytest.raises(Unauthorized):
        await accounts.login("alice", long_password + "p")
    assert (await accounts.login("alice", long_password))[1].username == "alice"


# --- the login throttle ----------------------------------------------------------


async def fail(
    accounts: AccountService,
    times: int,
    clock: FakeClock,
    every: float = 10,
    *,
    username: str = "alice",
    address: str | None = None,
) -> None:
    for _ in range(times):
        with pytest.raises(Unauthorized):
            await accounts.login(username, "wrong password", address=address)
        clock.advance(every)


async def test_throttles_an_address_after_five_failures_with_doubling_waits(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    await accounts.register_user("alice", PASSWORD)
    await fail(accounts, 5, clock, every=0, address="203.0.113.7")
    head = await store.head()

    with pytest.raises(TooManyRequests) as raised:
        await accounts.login("alice", PASSWORD, address="203.0.113.7")  # even the right one
    assert (raised.value.status, raised.value.code) == (429, "too_many_requests")
    assert raised.value.retry_after == 15
    assert await store.head() == head  # a refused attempt does not prolong the wait

    clock.advance(15)
    await fail(accounts, 1, clock, every=0, address="203.0.113.7")
    with pytest.raises(TooManyRequests) as raised:
        await accounts.login("alice", PASSWORD, address="203.0.113.7")
    assert raised.value.retry_after == 30  # the sixth failure doubles it

    clock.advance(30)
    token, user = await accounts.login("alice", PASSWORD, address="203.0.113.7")
    assert verify_token(token, SECRET, now=clock.now) == (user.user_id, "alice")


async def test_the_right_password_from_another_address_still_signs_in(
    accounts: AccountService, clock: FakeClock
) -> None:
    await accounts.register_user("alice", PASSWORD)
    await fail(accounts, 5, clock, every=0, address="203.0.113.7")
    with pytest.raises(TooManyRequests):
        await accounts.login("alice", PASSWORD, address="203.0.113.7")

    token, user = await accounts.login("alice", PASSWORD, address="198.51.100.2")
    assert verify_token(token, SECRET, now=clock.now) == (user.user_id, "alice")


async def test_a_successful_login_clears_the_failures_from_its_address(
    accounts: AccountService, clock: FakeClock
) -> None:
    await accounts.register_user("alice", PASSWORD)
    await fail(accounts, 4, clock, address="203.0.113.7")
    await accounts.login("alice", PASSWORD, address="203.0.113.7")
    await fail(accounts, 4, clock, address="203.0.113.7")

    assert (await accounts.login("alice", PASSWORD, address="203.0.113.7"))[1].username == "alice"


async def test_an_address_failing_at_twenty_users_is_throttled_at_every_user(
    accounts: AccountService, clock: FakeClock
) -> None:
    names = [f"user{n:02d}" for n in range(21)]
    for name in names:
        await accounts.register_user(name, PASSWORD)
    for name in names[:20]:
        await fail(accounts, 1, clock, every=0, username=name, address="203.0.113.7")

    with pytest.raises(TooManyRequests):
        await accounts.login(names[20], PASSWORD, address="203.0.113.7")
    with pytest.raises(TooManyRequests):  # an unknown username is held back the same way
        await accounts.login("nobody", PASSWORD, address="203.0.113.7")
    assert (await accounts.login(names[20], PASSWORD, address="198.51.100.2"))[1].username


async def test_locks_out_one_username_without_touching_another(
    accounts: AccountService, clock: FakeClock
) -> None:
    await accounts.register_user("alice", PASSWORD)
    await accounts.register_user("bob", PASSWORD)
    await fail(accounts, 5, clock)

    with pytest.raises(TooManyRequests):
        await accounts.login("alice", PASSWORD)
    assert (await accounts.login("bob", PASSWORD))[1].username == "bob"


async def test_counts_failures_across_server_processes(
    open_test_store: Factory, clock: FakeClock
) -> None:
    first, second = service(await open_test_store(), clock), service(await open_test_store(), clock)
    await first.register_user("alice", PASSWORD)
    for accounts in (first, second, first, second, first):
        with pytest.raises(Unauthorized):
            await accounts.login("alice", "wrong password")

    with pytest.raises(TooManyRequests):
        await second.login("alice", PASSWORD)


async def test_records_every_failure_of_concurrent_wrong_guesses(
    accounts: AccountService, store: EventStore
) -> None:
    user = await accounts.register_user("alice", PASSWORD)

    outcomes = await asyncio.gather(
        *(accounts.login("alice", f"wrong {n}") for n in range(4)), return_exceptions=True
    )

    assert all(isinstance(o, Unauthorized) for o in outcomes), outcomes
    events = await events_of(store, f"user-{user.user_id}")
    assert sum(isinstance(e, LoginFailed) for e in events) == 4


# --- rehashing ----------------------------------------------------------------------


async def test_upgrades_the_hash_on_login_when_the_parameters_change(
    store: EventStore, clock: FakeClock
) -> None:
    weak = service(store, clock, passwords=password_context(memory_cost=8192, time_cost=1))
    user = await weak.register_user("alice", PASSWORD)
    strong = service(store, clock, passwords=password_context(memory_cost=16384, time_cost=2))

    await strong.login("alice", PASSWORD)

    upgraded = (await events_of(store, f"user-{user.user_id}"))[-1]
    assert isinstance(upgraded, UserLoggedIn) and upgraded.rehashed_password is not None
    assert upgraded.rehashed_password.startswith("$argon2id$v=19$m=16384,t=2,p=1$")
    (row,) = await store.fetch("SELECT password_hash FROM users")
    assert row["password_hash"] == upgraded.rehashed_password

    await strong.login("alice", PASSWORD)  # already upgraded: nothing to redo
    again = (await events_of(store, f"user-{user.user_id}"))[-1]
    assert isinstance(again, UserLoggedIn) and again.rehashed_password is None


async def test_does_not_rehash_a_hash_made_with_the_current_parameters(
    accounts: AccountService, store: EventStore
) -> None:
    user = await accounts.register_user("alice", PASSWORD)
    await accounts.login("alice", PASSWORD)
    last = (await events_of(store, f"user-{user.user_id}"))[-1]
    assert isinstance(last, UserLoggedIn) and last.rehashed_password is None


# --- login tokens ---------------------------------------------------------------------


async def test_a_login_token_expires_after_its_lifetime(
    store: EventStore, clock: FakeClock
) -> None:
    accounts = service(store, clock, token_ttl_seconds=60)
    await accounts.register_user("alice", PASSWORD)
    token, _ = await accounts.login("alice", PASSWORD)

    clock.advance(59)
    await accounts.actor_for_token(token)
    clock.advance(1)
    with pytest.raises(Unauthorized) as raised:
        await accounts.actor_for_token(token)
    assert raised.value.code == "invalid_token"


def test_refuses_to_start_without_a_jwt_secret() -> None:
    with pytest.raises(ValueError, match="jwt_secret"):
        AccountService(cast(EventStore, None), jwt_secret="")


# --- API keys -------------------------------------------------------------------------


async def test_creates_a_key_stored_only_as_its_sha256(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    alice = await register(accounts)

    raw_key, key = await accounts.create_api_key(alice)

    assert raw_key.startswith("lk_pub_") and len(raw_key) == len("lk_pub_") + 43
    assert (key.user_id, key.label, key.prefix) == (alice.user_id, "default", raw_key[:12])
    assert (key.created_at, key.expires_at, key.revoked_at, key.last_used_at) == (
        clock.now,
        None,
        None,
        None,
    )
    assert key.is_active_at(clock.now)
    (record,) = await store.read_stream(f"apikey-{key.key_id}")
    assert isinstance(record.event, ApiKeyCreated)
    assert record.event.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert record.meta.tenant == alice.tenant
    # An agent key acts in its member's workspace with the member's role, and answers nothing.
    assert await accounts.authenticate_api_key(raw_key, "http-9") == Actor(
        id=f"apikey:{key.key_id}",
        tenant=alice.tenant,
        correlation_id="http-9",
        user_id=alice.user_id,
        role="owner",
    )


async def test_an_operator_key_acts_as_the_key_and_answers_as_its_user(
    accounts: AccountService, store: EventStore
) -> None:
    alice = await register(accounts)

    raw_key, key = await accounts.create_api_key(alice, kind="operator")

    assert key.kind == "operator"
    (record,) = await store.read_stream(f"apikey-{key.key_id}")
    assert isinstance(record.event, ApiKeyCreated) and record.event.kind == "operator"
    assert await accounts.authenticate_api_key(raw_key, "http-9") == Actor(
        id=f"apikey:{key.key_id}",
        tenant=alice.tenant,
        correlation_id="http-9",
        answers_as=alice.user_id,
        user_id=alice.user_id,
        role="owner",
        principals=alice.principals,
    )
    (listed,) = await accounts.list_api_keys(alice)
    assert listed.kind == "operator"


async def test_a_key_created_before_key_kinds_replays_as_an_agent_key(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    alice = await register(accounts)
    raw_key = "lk_pub_" + "k" * 43
    # The event as a server from before kinds stored it: no "kind" field.
    old_data = {
        "type": "apikey.created",
        "key_id": "old-key",
        "user_id": alice.user_id,
        "label": "ci",
        "key_hash": hashlib.sha256(raw_key.encode()).hexdigest(),
        "prefix": raw_key[:12],
        "created_at": clock.now.isoformat(),
        "expires_at": None,
    }
    old_row = Row(
        position=1,
        stream="apikey-old-key",
        version=1,
        type="apikey.created",
        data=json.dumps(old_data),
        meta=encode_meta(alice.meta()),
        recorded_at=clock.now,
        prev_hash=GENESIS_HASH,
        hash="",
    )

    old = decode_row(old_row).event

    assert isinstance(old, ApiKeyCreated) and old.kind == "agent"
    await store.append("apikey-old-key", 0, [old], alice.meta())  # the log, replayed
    assert (await accounts.authenticate_api_key(raw_key)).answers_as is None
    (listed,) = await accounts.list_api_keys(alice)
    assert listed.kind == "agent"


async def test_gives_every_key_a_different_secret(accounts: AccountService) -> None:
    alice = await register(accounts)
    raw_keys = {(await accounts.create_api_key(alice))[0] for _ in range(5)}
    assert len(raw_keys) == 5


async def test_lists_only_the_callers_keys_newest_first(
    accounts: AccountService, clock: FakeClock
) -> None:
    alice, bob = await register(accounts, "alice"), await register(accounts, "bob")
    _, first = await accounts.create_api_key(alice, label="first")
    clock.advance(1)
    await accounts.create_api_key(bob, label="bob's")
    clock.advance(1)
    _, second = await accounts.create_api_key(alice, label="second")

    keys = await accounts.list_api_keys(alice)

    assert [k.key_id for k in keys] == [second.key_id, first.key_id]
    assert [k.label for k in await accounts.list_api_keys(bob)] == ["bob's"]


async def test_a_key_acts_for_its_user_only(accounts: AccountService) -> None:
    alice, bob = await register(accounts, "alice"), await register(accounts, "bob")
    raw_key, _ = await accounts.create_api_key(alice)
    assert (await accounts.authenticate_api_key(raw_key)).tenant == alice.tenant != bob.tenant


async def test_revokes_a_key_once_and_refuses_it_afterwards(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    alice = await register(accounts)
    raw_key, key = await accounts.create_api_key(alice)
    clock.advance(5)

    revoked = await accounts.revoke_api_key(alice, key.key_id)
    again = await accounts.revoke_api_key(alice, key.key_id)

    assert revoked.revoked_at == again.revoked_at == clock.now
    assert not revoked.is_active_at(clock.now)
    events = await events_of(store, f"apikey-{key.key_id}")
    assert [type(e) for e in events] == [ApiKeyCreated, ApiKeyRevoked]
    with pytest.raises(Unauthorized) as raised:
        await accounts.authenticate_api_key(raw_key)
    assert raised.value.code == "api_key_revoked"


@pytest.mark.parametrize("whose", ["bob's", "made-up"])
async def test_revoking_a_key_that_is_not_the_callers_is_a_404(
    accounts: AccountService, whose: str
) -> None:
    alice, bob = await register(accounts, "alice"), await register(accounts, "bob")
    raw_key, key = await accounts.create_api_key(bob)

    with pytest.raises(NotFound) as raised:
        await accounts.revoke_api_key(alice, key.key_id if whose == "bob's" else "no-such-key")

    assert (raised.value.status, raised.value.code) == (404, "api_key_not_found")
    assert (await accounts.authenticate_api_key(raw_key)).tenant == bob.tenant


async def test_refuses_a_key_once_it_expired(accounts: AccountService, clock: FakeClock) -> None:
    alice = await register(accounts)
    raw_key, key = await accounts.create_api_key(
        alice, label="ci", expires_at=clock.now + timedelta(hours=1)
    )
    clock.advance(3599)
    await accounts.authenticate_api_key(raw_key)

    clock.advance(1)
    assert not key.is_active_at(clock.now)
    with pytest.raises(Unauthorized) as raised:
        await accounts.authenticate_api_key(raw_key)
    assert raised.value.code == "api_key_expired"


async def test_refuses_to_create_a_key_that_has_already_expired(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    alice = await register(accounts)
    with pytest.raises(ValidationFailed) as raised:
        await accounts.create_api_key(alice, expires_at=clock.now - timedelta(seconds=1))
    assert "expires_at" in raised.value.message
    assert await store.head() == 3  # alice's registration alone


async def test_refuses_to_create_a_key_for_a_tenant_that_is_no_user(
    accounts: AccountService,
) -> None:
    with pytest.raises(NotFound) as raised:
        await accounts.create_api_key(Actor(id="anonymous", tenant="local"))
    assert raised.value.code == "user_not_found"


@pytest.mark.parametrize(
    "raw_key",
    [
        "lk_pub_" + "A" * 43,
        "lk_pub_",
        "",
        "sk-abc",
        "Bearer lk_pub_x",
        "lk_pub_ünï",
        "lk_pub_" * 40,
    ],
)
async def test_refuses_a_made_up_or_malformed_key(accounts: AccountService, raw_key: str) -> None:
    await accounts.create_api_key(await register(accounts))
    with pytest.raises(Unauthorized) as raised:
        await accounts.authenticate_api_key(raw_key)
    assert (raised.value.status, raised.value.code) == (401, "invalid_api_key")


async def test_notes_when_a_key_was_last_used_at_most_once_a_minute(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    raw_key, key = await accounts.create_api_key(await register(accounts))
    head = await store.head()

    async def last_used() -> datetime | None:
        (listed,) = await accounts.list_api_keys(Actor(user_id=key.user_id))
        return listed.last_used_at

    first_use = clock.now
    await accounts.authenticate_api_key(raw_key)
    assert await last_used() == first_use
    clock.advance(59)
    await accounts.authenticate_api_key(raw_key)
    assert await last_used() == first_use
    clock.advance(1)
    await accounts.authenticate_api_key(raw_key)
    assert await last_used() == clock.now
    assert await store.head() == head  # use is not an action: nothing is logged


# --- what the database holds ------------------------------------------------------------


async def test_the_database_never_holds_a_password_or_a_raw_key(
    accounts: AccountService, store: EventStore, store_url: str
) -> None:
    password = "Zebra-Quartz-7781-unmistakable"
    user = await accounts.register_user("alice", password)
    await accounts.login("alice", password)
    raw_key, _ = await accounts.create_api_key(await accounts.actor_for_user(user.user_id))
    await accounts.authenticate_api_key(raw_key)
    key_hash = hashlib.sha256(raw_key.encode()).hexdigest()

    stored = await database_contents(store_url)

    assert key_hash in stored and "$argon2id$" in stored  # the scan sees the accounts
    for secret in (password, raw_key, raw_key.removeprefix("lk_pub_")):
        assert secret not in stored


async def test_rebuilds_the_account_tables_equal_to_the_live_ones(
    accounts: AccountService, store: EventStore, clock: FakeClock
) -> None:
    alice = await register(accounts, "Alice")
    await register(accounts, "bob")
    await fail(accounts, 3, clock)
    await accounts.login("alice", PASSWORD)
    await fail(accounts, 2, clock)
    upgrade = service(store, clock, passwords=password_context(memory_cost=16384, time_cost=1))
    await upgrade.login("bob", PASSWORD)
    await accounts.create_api_key(alice, expires_at=clock.now + timedelta(days=1))
    await accounts.create_api_key(alice, label="on-call", kind="operator")
    _, dropped = await accounts.create_api_key(alice, label="old")
    await accounts.revoke_api_key(alice, dropped.key_id)
    live = await dump_accounts(store)
    assert [len(rows) for rows in live.values()] == [2, 2, 3]
    assert sorted(row["kind"] for row in live["api_keys"]) == ["agent", "agent", "operator"]

    await store.rebuild_projections()

    assert await dump_accounts(store) == live


async def test_a_rebuild_forgets_when_keys_were_last_used(
    accounts: AccountService, store: EventStore
) -> None:
    alice = await register(accounts)
    raw_key, _ = await accounts.create_api_key(alice)
    await accounts.authenticate_api_key(raw_key)

    await store.rebuild_projections()

    (key,) = await accounts.list_api_keys(alice)
    assert key.last_used_at is None
    assert (await accounts.authenticate_api_key(raw_key)).tenant == alice.tenant


async def dump_accounts(store: EventStore) -> dict[str, list[dict[str, Any]]]:
    return {
        "users": await store.fetch("SELECT * FROM users ORDER BY user_id"),
        "login_failures": await store.fetch(
            "SELECT * FROM login_failures ORDER BY user_id, version"
        ),
        "api_keys": await store.fetch("SELECT * FROM api_keys ORDER BY key_id"),
    }
