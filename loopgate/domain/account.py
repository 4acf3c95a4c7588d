"""The account deciders: operator users and their API keys.

Two aggregates live here, each with the usual ``initial``, ``decide``,
``evolve``, ``fold`` and ``is_terminal``, prefixed by the aggregate's name:

* **User**, stream ``user-<id>``: register, record a login, record a failed one.
* **API key**, stream ``apikey-<id>``: create, revoke.

Nothing here hashes a password or makes a key: that is CPU-heavy or random,
so the command handler (:mod:`loopgate.accounts.users`) does it and passes the
hashes in. What is pure stays here: the username and password rules, and the
throttle on failed logins (:func:`login_retry_after`), which the handler
feeds with the failures the ``login_failures`` projection holds.

Rules:

* Usernames are 3 to 64 characters of ``A-Z a-z 0-9 _ . -`` and unique without
  regard to case (``Alice`` and ``alice`` are one account): the uniqueness
  across concurrent registrations is the projection's unique key, and a user
  id registered twice is ``username_taken`` here.
* Passwords are 8 to 1024 characters.
* Recording a login or a failure for an unknown user is ``user_not_found``.
* An API key's label is 1 to 100 characters once stripped (``"default"`` when
  none is given); an expiry must lie in the future.
* A key is an ``agent`` key unless made an ``operator`` key; only an operator
  key may answer requests (the request handler enforces that).
* Only the key's owner may revoke it; anyone else gets ``api_key_not_found``,
  exactly as for a key that does not exist. Revoking twice is a no-op.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce
from typing import TypeAlias, assert_never

import msgspec

from loopgate.errors import Conflict, NotFound, ValidationFailed
from loopgate.events import (
    ApiKeyCreated,
    ApiKeyKind,
    ApiKeyRevoked,
    Event,
    LoginFailed,
    MemberAdded,
    Role,
    UserLoggedIn,
    UserRegistered,
    WorkspaceCreated,
)

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,64}")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_LABEL_CHARS = 100
DEFAULT_LABEL = "default"

LOGIN_FAILURE_WINDOW = timedelta(hours=1)
"""Failed logins older than this no longer count."""
FREE_FAILURES_PER_USER = 5
"""Failures from one address at one user before its logins from there are delayed."""
FREE_FAILURES_PER_ADDRESS = 20
"""Failures from one address, at any users, before all its logins are delayed."""
FIRST_LOGIN_DELAY = timedelta(seconds=15)
"""The wait after the first failure past the free ones; it doubles with each further one."""
MAX_LOGIN_DELAY = timedelta(minutes=15)


# --- rules on plain values ----------------------------------------------------


def username_key(username: str) -> str:
    """What makes two usernames the same account: the name without case."""
    return username.lower()


def check_username(username: str) -> None:
    """Raise ``ValidationFailed`` naming ``username`` unless it follows the rules."""
    if not USERNAME.fullmatch(username):
        raise ValidationFailed(
            "username must be 3 to 64 characters of letters, digits, '_', '.' or '-'"
        )


def check_password(password: str) -> None:
    """Raise ``ValidationFailed`` naming ``password`` unless it can be a password."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ValidationFailed(
            f"password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be hashed
        raise ValidationFailed("password must be valid Unicode text") from None


def login_retry_after(
    at_user: Iterable[datetime], at_any_user: Iterable[datetime], now: datetime
) -> int | None:
    """Seconds until a login from this address is allowed, or None when it is allowed now.

    ``at_user`` are the failed logins from the client's address at this user
    since its last successful login from there; ``at_any_user`` those from the
    address at every user. Past the free ones within :data:`LOGIN_FAILURE_WINDOW`
    (:data:`FREE_FAILURES_PER_USER`, :data:`FREE_FAILURES_PER_ADDRESS`), each
    further failure must be followed by a wait that starts at
    :data:`FIRST_LOGIN_DELAY` and doubles, up to :data:`MAX_LOGIN_DELAY`.
    Another address is never held back by these failures.
    """
    wait = max(
        _wait_after(at_user, FREE_FAILURES_PER_USER, now),
        _wait_after(at_any_user, FREE_FAILURES_PER_ADDRESS, now),
    )
    return max(1, math.ceil(wait)) if wait > 0 else None


def _wait_after(failures: Iterable[datetime], free: int, now: datetime) -> float:
    recent = sorted(at for at in failures if at > now - LOGIN_FAILURE_WINDOW)
    if len(recent) < free:
        return 0.0
    doublings = min(len(recent) - free, 16)  # 2**16 * 15 s is far past the cap already
    delay: timedelta = min(MAX_LOGIN_DELAY, FIRST_LOGIN_DELAY * 2**doublings)
    return (recent[-1] + delay - now).total_seconds()


# --- user: state and commands -------------------------------------------------


class NoUser(msgspec.Struct, frozen=True):
    """No event yet: the user does not exist."""


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A registered user; ``password_hash`` is the latest (possibly upgraded) hash."""

    user_id: str
    username: str
    password_hash: str
    registered_at: datetime
    last_login_at: datetime | None = None


UserState: TypeAlias = NoUser | User

initial_user: UserState = NoUser()


class RegisterUser(msgspec.Struct, frozen=True, kw_only=True):
    """Create an account; ``password_hash`` is already an argon2id hash."""

    user_id: str
    username: str
    password_hash: str
    now: datetime
    workspace_id: str
    role: Role = "owner"
    new_workspace_name: str | None = None
    """Set when the workspace begins with this user (their own, or the default one)."""
    invitation_id: str | None = None


class RecordLogin(msgspec.Struct, frozen=True, kw_only=True):
    """A login succeeded; ``rehashed_password`` when the hash was upgraded on the way."""

    user_id: str
    rehashed_password: str | None = None
    address: str | None = None
    now: datetime


class RecordLoginFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A login named this user but failed."""

    user_id: str
    reason: str = "invalid_password"
    address: str | None = None
    now: datetime


UserCommand: TypeAlias = RegisterUser | RecordLogin | RecordLoginFailure


# --- user: decider ------------------------------------------------------------


def decide_user(command: UserCommand, state: UserState) -> list[Event]:
    """The events ``command`` produces for the user in ``state``; raises if not allowed."""
    if isinstance(command, RegisterUser):
        return _register_user(command, state)
    if isinstance(state, NoUser):
        raise NotFound(f"user {command.user_id!r} not found", code="user_not_found")
    match command:
        case RecordLogin():
            return [
                UserLoggedIn(
                    user_id=command.user_id,
                    logged_in_at=command.now,
                    rehashed_password=command.rehashed_password,
                    address=command.address,
                )
            ]
        case RecordLoginFailure():
            return [
                LoginFailed(
                    user_id=command.user_id,
                    reason=command.reason,
                    failed_at=command.now,
                    address=command.address,
                )
            ]
        case _:
            assert_never(command)


def _register_user(command: RegisterUser, state: UserState) -> list[Event]:
    match state:
        case NoUser():
            check_username(command.username)
            return [
                UserRegistered(
                    user_id=command.user_id,
                    username=command.username,
                    password_hash=command.password_hash,
                    registered_at=command.now,
                    workspace_id=command.workspace_id,
                ),
                *(
                    [
                        WorkspaceCreated(
                            workspace_id=command.workspace_id,
                            name=command.new_workspace_name,
                            created_at=command.now,
                        )
                    ]
                    if command.new_workspace_name is not None
                    else []
                ),
                MemberAdded(
                    workspace_id=command.workspace_id,
                    user_id=command.user_id,
                    role=command.role,
                    invitation_id=command.invitation_id,
                    added_at=command.now,
                ),
            ]
        case User():
            raise Conflict(f"user {command.user_id!r} already exists", code="username_taken")
        case _:
            assert_never(state)


def evolve_user(state: UserState, event: Event) -> UserState:
    """The user after ``event``; events that do not apply leave it unchanged."""
    match state, event:
        case NoUser(), UserRegistered() as registered:
            return User(
                user_id=registered.user_id,
                username=registered.username,
                password_hash=registered.password_hash,
                registered_at=registered.registered_at,
            )
        case User(), UserLoggedIn() as login:
            return msgspec.structs.replace(
                state,
                last_login_at=login.logged_in_at,
                password_hash=login.rehashed_password or state.password_hash,
            )
        case _:
            return state


def fold_user(events: Iterable[Event]) -> UserState:
    """The state of a user stream, replayed from :data:`initial_user`."""
    return reduce(evolve_user, events, initial_user)


def user_is_terminal(state: UserState) -> bool:
    """Always False: accounts are never closed (yet)."""
    return False


# --- API key: state and commands ----------------------------------------------


class NoApiKey(msgspec.Struct, frozen=True):
    """No event yet: the key does not exist."""


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An issued key; ``revoked_at`` is set once it was revoked, for good."""

    key_id: str
    user_id: str
    label: str
    prefix: str
    key_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    kind: ApiKeyKind = "agent"


ApiKeyState: TypeAlias = NoApiKey | ApiKey

initial_api_key: ApiKeyState = NoApiKey()


class CreateApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """Issue a key for ``user_id``; ``key_hash`` is the SHA-256 of the raw key."""

    key_id: str
    user_id: str
    label: str = DEFAULT_LABEL
    key_hash: str
    prefix: str
    expires_at: datetime | None = None
    kind: ApiKeyKind = "agent"
    now: datetime


class RevokeApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """Stop a key from working; ``user_id`` is who asks, who must own it."""

    key_id: str
    user_id: str
    now: datetime


ApiKeyCommand: TypeAlias = CreateApiKey | RevokeApiKey


# --- API key: decider ---------------------------------------------------------


def decide_api_key(command: ApiKeyCommand, state: ApiKeyState) -> list[Event]:
    """The events ``command`` produces for the key in ``state``; raises if not allowed."""
    match command:
        case CreateApiKey():
            return _create_api_key(command, state)
        case RevokeApiKey():
            return _revoke_api_key(command, state)
        case _:
            assert_never(command)


def _create_api_key(command: CreateApiKey, state: ApiKeyState) -> list[Event]:
    if isinstance(state, ApiKey):
        raise Conflict(f"API key {command.key_id!r} already exists", code="api_key_exists")
    label = command.label.strip()
    if not 1 <= len(label) <= MAX_LABEL_CHARS:
        raise ValidationFailed(f"label must be 1 to {MAX_LABEL_CHARS} characters")
    expires_at = command.expires_at
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValidationFailed("expires_at must name its time zone")
        if expires_at <= command.now:
            raise ValidationFailed("expires_at must be in the future")
    return [
        ApiKeyCreated(
            key_id=command.key_id,
            user_id=command.user_id,
            label=label,
            key_hash=command.key_hash,
            prefix=command.prefix,
            created_at=command.now,
            expires_at=expires_at,
            kind=command.kind,
        )
    ]


def _revoke_api_key(command: RevokeApiKey, state: ApiKeyState) -> list[Event]:
    match state:
        case ApiKey(user_id=owner) if owner == command.user_id:
            if state.revoked_at is not None:
                return []
            return [ApiKeyRevoked(key_id=command.key_id, revoked_at=command.now)]
        case NoApiKey() | ApiKey():
            # Another user's key looks exactly like a missing one.
            raise NotFound(f"API key {command.key_id!r} not found", code="api_key_not_found")
        case _:
            assert_never(state)


def evolve_api_key(state: ApiKeyState, event: Event) -> ApiKeyState:
    """The key after ``event``; events that do not apply leave it unchanged."""
    match state, event:
        case NoApiKey(), ApiKeyCreated() as created:
            return ApiKey(
                key_id=created.key_id,
                user_id=created.user_id,
                label=created.label,
                prefix=created.prefix,
                key_hash=created.key_hash,
                created_at=created.created_at,
                expires_at=created.expires_at,
                kind=created.kind,
            )
        case ApiKey(revoked_at=None), ApiKeyRevoked() as revoked:
            return msgspec.structs.replace(state, revoked_at=revoked.revoked_at)
        case _:
            return state


def fold_api_key(events: Iterable[Event]) -> ApiKeyState:
    """The state of an API key stream, replayed from :data:`initial_api_key`."""
    return reduce(evolve_api_key, events, initial_api_key)


def api_key_is_terminal(state: ApiKeyState) -> bool:
    """True once revoked: nothing can happen to a revoked key any more."""
    return isinstance(state, ApiKey) and state.revoked_at is not None
