"""``loopgate user create``: add an account from the command line, even with registration closed.

The server's first user owns the default workspace (``local``), so the quick
start's requests, made without a key, are in their console queue at once.
``--role`` adds a later user to that workspace with the role; without it a
later user gets a workspace of their own, as ``POST /api/auth/register`` does.
"""

from __future__ import annotations

import getpass
import secrets
import sys

import structlog

from loopgate.cli.common import UsageError
from loopgate.config import Config
from loopgate.events import Role

log = structlog.get_logger("loopgate")

USER_ROLES: tuple[Role, ...] = ("approver", "admin", "auditor")
"""What ``--role`` offers: an owner is the first user, or made one by another owner."""


def read_password() -> str:
    """Ask twice on a terminal; otherwise read the first line of standard input."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise UsageError("the passwords do not match")
        return password
    line = sys.stdin.readline()
    if not line:
        raise UsageError("no password: give it on standard input (one line)")
    return line.removesuffix("\n").removesuffix("\r")


async def create_user(
    config: Config, username: str, password: str, *, role: Role | None = None
) -> str:
    """Register a user directly, whatever ``auth.registration`` says; its id.

    ``role`` joins the default workspace with it (the first user owns it whatever the role).
    """
    from loopgate.accounts.users import AccountService
    from loopgate.store import open_store

    store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    try:
        # No token is signed here, so any secret will do when none is configured.
        secret = config.auth.jwt_secret or secrets.token_urlsafe(32)
        accounts = AccountService(store, jwt_secret=secret)
        user = await accounts.register_user(username, password, role=role)
        membership = await accounts.teams.membership(user.user_id)
    finally:
        await store.close()
    log.info(
        "user created",
        user_id=user.user_id,
        username=user.username,
        workspace=membership.workspace_id if membership else None,
        role=membership.role if membership else None,
    )
    return user.user_id
