"""Accounts: registration, login, login tokens and API keys (DESIGN §8).

The command handlers for the ``user-<id>`` and ``apikey-<id>`` streams, over
the pure deciders of :mod:`loopgate.domain.account`. What the deciders must
not do happens here: hashing passwords (argon2id through passlib, in a worker
thread so the event loop keeps serving), making keys, reading the clock.

Secrets never reach the store. A password is kept only as its argon2id hash;
an API key (``lk_pub_`` + 32 random bytes, url-safe) only as its SHA-256 and
its first 12 characters, for people to tell keys apart. The raw key is
returned once, by :meth:`AccountService.create_api_key`.

Usernames are unique without regard to case and looked up that way at login.
Failed logins slow down further logins from the same client address
(:func:`loopgate.domain.account.login_retry_after`): past five at one user,
or twenty at any users, within an hour, each further try waits longer, from
15 s doubling to 15 minutes. They are counted from the ``login_failures``
projection, so every server process sees the same count, and a successful
login from the address clears its failures at that user. Another address is
never held back, so nobody can lock the owner out. A login for an unknown
username records nothing but still spends one hash verification, so response
times do not tell which usernames exist (though the throttle and
registration's ``username_taken`` tell anyone who tries).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from passlib.context import CryptContext

from loopgate.accounts.tokens import issue_token, verify_token
from loopgate.commands.base import APPEND_ATTEMPTS, Actor, new_id, utcnow
from loopgate.domain.account import (
    DEFAULT_LABEL,
    CreateApiKey,
    RecordLogin,
    RecordLoginFailure,
    RegisterUser,
    RevokeApiKey,
    User,
    check_password,
    check_username,
    decide_api_key,
    decide_user,
    fold_api_key,
    initial_api_key,
    initial_user,
    login_retry_after,
    username_key,
)
from loopgate.domain.teams import DEFAULT_WORKSPACE
from loopgate.errors import (
    ConcurrencyError,
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from loopgate.events import ApiKeyKind, Meta, Role
from loopgate.limits import Limits
from loopgate.store.base import EventStore
from loopgate.teams import Teams

API_KEY_PREFIX = "lk_pub_"
DISPLAY_PREFIX_CHARS = 12
"""How much of a raw key is kept for display: ``lk_pub_`` and five random characters."""
MAX_API_KEY_CHARS = 200
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key: a key in busy use costs no writes."""


def password_context(
    *, memory_cost: int = 19456, time_cost: int = 2, parallelism: int = 1
) -> CryptContext:
    """Argon2id with the given cost; hashes made with other parameters are upgraded at login.

    The defaults are OWASP's first recommended setting (19 MiB, two passes,
    one lane): about 25 ms a hash, which keeps a login cheap for us and a
    guess expensive for an attacker who stole the hashes.
    """
    return CryptContext(
        schemes=["argon2"],
        deprecated="auto",
        argon2__type="ID",
        argon2__memory_cost=memory_cost,
        argon2__rounds=time_cost,
        argon2__parallelism=parallelism,
    )


def hash_api_key(raw_key: str) -> str:
    """The SHA-256 (hex) a key is stored and looked up under.

    A plain hash is enough here, unlike for passwords: the key has 256 random
    bits, so there is nothing to guess, and every request can afford it.
    """
    return hashlib.sha256(raw_key.encode()).hexdigest()


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    """An account as others may see it: never its password hash."""

    user_id: str
    username: str
    registered_at: datetime


class ApiKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as its owner sees it: never the key nor its hash."""

    key_id: str
    user_id: str
    label: str
    kind: ApiKeyKind
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def is_active_at(self, now: datetime) -> bool:
        """Whether the key works at ``now``: not revoked and not expired."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class _UserRow(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    username: str
    password_hash: str
    registered_at: datetime
    last_login_at: datetime | None
    version: int

    def view(self) -> UserView:
        return UserView(
            user_id=self.user_id, username=self.username, registered_at=self.registered_at
        )

    def state(self) -> User:
        # The row is the user's state as of ``version``: login decides on it
        # instead of replaying a stream that grows with every login.
        return User(
            user_id=self.user_id,
            username=self.username,
            password_hash=self.password_hash,
            registered_at=self.registered_at,
            last_login_at=self.last_login_at,
        )


class _Failure(msgspec.Struct, frozen=True):
    user_id: str
    failed_at: datetime


def _convert(row: dict[str, Any], kind: type[Any]) -> Any:
    # SQLite hands back timestamps as ISO text, Postgres as datetimes.
    return msgspec.convert(row, kind, strict=False)


def _throttle(at_user: list[datetime], at_any_user: list[datetime], now: datetime) -> None:
    retry_after = login_retry_after(at_user, at_any_user, now)
    if retry_after is not None:
        raise TooManyRequests(
            f"too many failed logins; try again in {retry_after} seconds", retry_after
        )


def _bad_credentials() -> Unauthorized:
    return Unauthorized("invalid username or password", code="invalid_credentials")


def _bad_key() -> Unauthorized:
    return Unauthorized("invalid API key", code="invalid_api_key")


class AccountService:
    """Users, logins and API keys, over one store."""

    def __init__(
        self,
        store: EventStore,
        *,
        jwt_secret: str,
        token_ttl_seconds: int = 86400,
        clock: Callable[[], datetime] = utcnow,
        ids: Callable[[], str] = new_id,
        passwords: CryptContext | None = None,
        limits: Limits | None = None,
        teams: Teams | None = None,
    ) -> None:
        if not jwt_secret:
            raise ValueError("jwt_secret must not be empty")
        self.store = store
        self.jwt_secret = jwt_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.clock = clock
        self.ids = ids
        self.passwords = passwords if passwords is not None else password_context()
        self.limits = limits or Limits.unlimited()
        self.teams = teams or Teams(store, clock=clock, ids=ids)
        self._dummy_hash: str | None = None

    # --- users ----------------------------------------------------------------

    async def register_user(
        self,
        username: str,
        password: str,
        *,
        role: Role | None = None,
        invitation_token: str | None = None,
        correlation_id: str | None = None,
    ) -> UserView:
        """Create an account and place it in a workspace.

        The server's first user owns the default workspace (``local``). After
        that, ``role`` (the CLI's ``--role``) joins the default workspace as
        that role, an invitation token joins its workspace with its role (once),
        and a plain self-registration gets a workspace of its own, as the
        reference's users each had. ``ValidationFailed``, ``Conflict``
        (``username_taken``, ``invitation_used``), ``NotFound`` or ``Gone`` for
        an invitation that is unknown or expired.
        """
        check_username(username)
        check_password(password)
        invitation = (
            None if invitation_token is None else await self.teams.invitation(invitation_token)
        )
        # Spare the hashing when the name is plainly taken; the unique key
        # still decides between registrations racing for it.
        if await self._find_user(username) is not None:
            raise _taken(username)
        password_hash = await asyncio.to_thread(self.passwords.hash, password)
        user_id = self.ids()
        first = not await self.store.fetch("SELECT 1 FROM users LIMIT 1")
        place = own = RegisterUser(
            user_id=user_id,
            username=username,
            password_hash=password_hash,
            now=self.clock(),
            workspace_id=user_id,
            new_workspace_name=username,
        )
        if invitation is not None:
            await self.teams.accept_invitation(invitation_token or "", user_id, correlation_id)
            place = msgspec.structs.replace(
                place,
                workspace_id=invitation.workspace_id,
                role=invitation.role,
                invitation_id=invitation.invitation_id,
                new_workspace_name=None,
            )
        elif first:
            # A race between two first registrations makes two owners: both
            # came before anyone could have been invited, on a server nobody ran yet.
            place = msgspec.structs.replace(
                place, workspace_id=DEFAULT_WORKSPACE, new_workspace_name="default"
            )
        elif role is not None:
            place = msgspec.structs.replace(
                place, workspace_id=DEFAULT_WORKSPACE, role=role, new_workspace_name=None
            )
        try:
            await self._append_registration(place, correlation_id)
        except ConcurrencyError:
            if not first or await self._find_user(username) is not None:
                raise
            # Another first user created the default workspace a moment
            # before: this one is a later registration, with a workspace of its own.
            await self._append_registration(own, correlation_id)
        return UserView(user_id=user_id, username=username, registered_at=place.now)

    async def _append_registration(self, command: RegisterUser, correlation_id: str | None) -> None:
        meta = Meta(
            actor=command.user_id, tenant=command.workspace_id, correlation_id=correlation_id
        )
        try:
            await self.store.append(
                f"user-{command.user_id}", 0, decide_user(command, initial_user), meta
            )
        except ConcurrencyError as exc:
            if exc.actual is not None:  # the id, not the name, was taken
                raise
            if await self._find_user(command.username) is None:
                raise  # not the name: the default workspace, claimed by a racing first user
            raise _taken(command.username) from exc

    async def login(
        self,
        username: str,
        password: str,
        *,
        address: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[str, UserView]:
        """A login token and the user; ``Unauthorized`` or ``TooManyRequests`` otherwise.

        ``address`` is the client's (the throttle's key; None when unknown).
        The throttle is checked before the password and, for the user, on the
        very version the outcome is appended at: a failure recorded meanwhile
        by another attempt makes the append conflict, and the retry checks
        again. Attempts refused by the throttle record nothing, so they do not
        prolong it. Before all that, the address's ``limits.login_*`` bucket:
        a full one is ``TooManyRequests`` before any password is hashed.
        """
        await self.limits.take("login", f"address:{address}")
        row = await self._find_user(username)
        if row is None:
            _throttle(*await self._failures(None, address), self.clock())
            await self._verify(password, await self._dummy())
            raise _bad_credentials()
        verified: bool | None = None
        rehashed: str | None = None
        membership = await self.teams.membership(row.user_id, answers=False)
        tenant = membership.workspace_id if membership else row.user_id
        for attempt in range(APPEND_ATTEMPTS):
            now = self.clock()
            _throttle(*await self._failures(row.user_id, address), now)
            if verified is None:
                verified = await self._verify(password, row.password_hash)
            command: RecordLogin | RecordLoginFailure
            if not verified:
                command = RecordLoginFailure(user_id=row.user_id, address=address, now=now)
            elif self.passwords.needs_update(row.password_hash):
                # Parameters changed since this hash was made: upgrade it now,
                # the one moment the password is at hand.
                rehashed = rehashed or await asyncio.to_thread(self.passwords.hash, password)
                command = RecordLogin(
                    user_id=row.user_id, rehashed_password=rehashed, address=address, now=now
                )
            else:
                command = RecordLogin(user_id=row.user_id, address=address, now=now)
            meta = Meta(actor=row.user_id, tenant=tenant, correlation_id=correlation_id)
            try:
                events = decide_user(command, row.state())
                await self.store.append(f"user-{row.user_id}", row.version, events, meta)
                break
            except ConcurrencyError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
                row = await self._find_user(username) or row
        if not verified:
            raise _bad_credentials()
        token = issue_token(
            row.user_id, row.username, self.jwt_secret, self.token_ttl_seconds, self.clock()
        )
        return token, row.view()

    async def actor_for_token(self, token: str, correlation_id: str | None = None) -> Actor:
        """The member a login token acts for; ``Unauthorized`` (``invalid_token``) otherwise."""
        user_id, _username = verify_token(token, self.jwt_secret, now=self.clock())
        return await self.actor_for_user(user_id, correlation_id=correlation_id)

    async def actor_for_user(
        self,
        user_id: str,
        *,
        id: str | None = None,
        answers: bool = True,
        correlation_id: str | None = None,
    ) -> Actor:
        """What a credential of ``user_id`` acts as: the member, with their role now.

        A user no longer in any workspace keeps a tenant of their own and no
        role, so every route that needs a role refuses them.
        """
        membership = await self.teams.membership(user_id, answers=answers)
        if membership is None:
            return Actor(
                id=id or user_id,
                tenant=user_id,
                correlation_id=correlation_id,
                answers_as=user_id if answers else None,
                user_id=user_id,
            )
        return membership.actor(id=id, answers=answers, correlation_id=correlation_id)

    async def get_user(self, user_id: str) -> UserView:
        rows = await self.store.fetch(
            "SELECT user_id, username, registered_at FROM users WHERE user_id = ?", (user_id,)
        )
        if not rows:
            raise NotFound(f"user {user_id!r} not found", code="user_not_found")
        view: UserView = _convert(rows[0], UserView)
        return view

    async def _find_user(self, username: str) -> _UserRow | None:
        rows = await self.store.fetch(
            "SELECT * FROM users WHERE username_key = ?", (username_key(username),)
        )
        return _convert(rows[0], _UserRow) if rows else None

    async def _failures(
        self, user_id: str | None, address: str | None
    ) -> tuple[list[datetime], list[datetime]]:
        """The failures from ``address``: at ``user_id``, and at any user."""
        rows = await self.store.fetch(
            "SELECT user_id, failed_at FROM login_failures WHERE address = ?", (address or "",)
        )
        # Filtered in Python, not SQL: SQLite compares timestamps as text.
        failures = msgspec.convert(rows, list[_Failure], strict=False)
        return [f.failed_at for f in failures if f.user_id == user_id], [
            f.failed_at for f in failures
        ]

    async def _verify(self, password: str, password_hash: str) -> bool:
        # A password registration would refuse (too long, not encodable) is
        # never right, but it still costs one verification, like any other.
        try:
            check_password(password)
            candidate = password
        except ValidationFailed:
            candidate = ""
        matches = await asyncio.to_thread(self.passwords.verify, candidate, password_hash)
        return bool(matches) and candidate == password

    async def _dummy(self) -> str:
        """A hash made like real ones, to verify against when the username is unknown."""
        if self._dummy_hash is None:
            made: str = await asyncio.to_thread(self.passwords.hash, secrets.token_urlsafe(16))
            self._dummy_hash = made
            return made
        return self._dummy_hash

    # --- API keys ---------------------------------------------------------------

    async def authenticate_api_key(self, raw_key: str, correlation_id: str | None = None) -> Actor:
        """The user a key acts for, as ``apikey:<id>`` in the user's tenant.

        An operator key answers as that user; an agent key may not answer
        (``Actor.answers_as`` is None). ``Unauthorized`` with ``invalid_api_key``
        (unknown or malformed), ``api_key_revoked`` or ``api_key_expired``.
        """
        if (
            not raw_key.startswith(API_KEY_PREFIX)
            or len(raw_key) > MAX_API_KEY_CHARS
            or not raw_key.isascii()
        ):
            raise _bad_key()
        rows = await self.store.fetch(
            "SELECT * FROM api_keys WHERE key_hash = ?", (hash_api_key(raw_key),)
        )
        if not rows:
            raise _bad_key()
        key: ApiKeyView = _convert(rows[0], ApiKeyView)
        now = self.clock()
        if key.revoked_at is not None:
            raise Unauthorized("API key was revoked", code="api_key_revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthorized("API key has expired", code="api_key_expired")
        stale = now - LAST_USED_RESOLUTION
        if key.last_used_at is None or key.last_used_at <= stale:
            # The condition is repeated in SQL so that processes racing to
            # touch the same key write once between them, not once each.
            await self.store.execute(
                "UPDATE api_keys SET last_used_at = ?"
                " WHERE key_id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
                (now, key.key_id, stale),
            )
        return await self.actor_for_user(
            key.user_id,
            id=f"apikey:{key.key_id}",
            answers=key.kind == "operator",
            correlation_id=correlation_id,
        )

    async def create_api_key(
        self,
        actor: Actor,
        *,
        label: str | None = None,
        expires_at: datetime | None = None,
        kind: ApiKeyKind = "agent",
    ) -> tuple[str, ApiKeyView]:
        """A new key for the actor's user: the raw key (shown once) and its view.

        An ``agent`` key (the default) never answers; an ``operator`` key answers
        as the user.
        """
        user = await self.get_user(actor.user_id or "")  # keys belong to registered users only
        raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = self.ids()
        command = CreateApiKey(
            key_id=key_id,
            user_id=user.user_id,
            label=DEFAULT_LABEL if label is None else label,
            key_hash=hash_api_key(raw_key),
            prefix=raw_key[:DISPLAY_PREFIX_CHARS],
            expires_at=expires_at,
            kind=kind,
            now=self.clock(),
        )
        events = decide_api_key(command, initial_api_key)
        (record,) = await self.store.append(f"apikey-{key_id}", 0, events, actor.meta())
        # From the event itself, no read-back; the view leaves its key_hash out.
        fields = msgspec.structs.asdict(record.event) | {"revoked_at": None, "last_used_at": None}
        view: ApiKeyView = msgspec.convert(fields, ApiKeyView)
        return raw_key, view

    async def list_api_keys(self, actor: Actor) -> list[ApiKeyView]:
        """The actor's user's keys, revoked and expired ones included, newest first."""
        rows = await self.store.fetch(
            "SELECT * FROM api_keys WHERE user_id = ?", (actor.user_id or "",)
        )
        keys = msgspec.convert(rows, list[ApiKeyView], strict=False)
        # Sorted here, not in SQL: SQLite compares timestamps as text.
        return sorted(keys, key=lambda k: (k.created_at, k.key_id), reverse=True)

    async def revoke_api_key(self, actor: Actor, key_id: str) -> ApiKeyView:
        """Revoke one of the actor's keys; again is a no-op, anyone else's is ``NotFound``."""
        stream = f"apikey-{key_id}"
        command = RevokeApiKey(key_id=key_id, user_id=actor.user_id or "", now=self.clock())
        for attempt in range(APPEND_ATTEMPTS):
            history = await self.store.read_stream(stream)
            events = decide_api_key(command, fold_api_key(r.event for r in history))
            if not events:
                break
            try:
                await self.store.append(stream, history[-1].version, events, actor.meta())
                break
            except ConcurrencyError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
        rows = await self.store.fetch("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
        view: ApiKeyView = _convert(rows[0], ApiKeyView)
        return view


def _taken(username: str) -> Conflict:
    return Conflict(f"username {username!r} is taken", code="username_taken")
