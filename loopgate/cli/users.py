"""``loopgate user create``: add an account from the command line, even with registration closed."""

from __future__ import annotations

import getpass
import secrets
import sys

import structlog

from loopgate.cli.common import UsageError
from loopgate.config import Config

log = structlog.get_logger("loopgate")


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


async def create_user(config: Config, username: str, password: str) -> str:
    """Register a user directly, whatever ``auth.registration`` says; its id."""
    from loopgate.accounts.users import AccountService
    from loopgate.store import open_store

    store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    try:
        # No token is signed here, so any secret will do when none is configured.
        secret = config.auth.jwt_secret or secrets.token_urlsafe(32)
        accounts = AccountService(store, jwt_secret=secret)
        user = await accounts.register_user(username, password)
    finally:
        await store.close()
    log.info("user created", user_id=user.user_id, username=user.username)
    return user.user_id
