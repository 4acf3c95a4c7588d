"""``loopgate keys rotate|list``: the receipts' signing keys, straight in the configured store.

``rotate`` appends a new key (its public half; the private one is derived from
the server key, so run it with the server's ``secrets.key`` or key file): it
signs every decision from then on, in every server process, while the old keys
stay in the JWKS so the receipts they signed still verify. ``list`` prints each
key's kid and when it was added, oldest first.
"""

from __future__ import annotations

from loopgate.commands.base import utcnow
from loopgate.config import Config, server_key_source
from loopgate.events import Meta
from loopgate.receipts.keys import KeyRing


async def keys_rotate(config: Config) -> str:
    """Add a signing key; its kid."""
    from loopgate.store import open_store

    server_key = server_key_source(config)
    store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    try:
        key = await KeyRing(store, server_key, utcnow).rotate(Meta(actor="cli"))
    finally:
        await store.close()
    return key.kid


async def keys_list(config: Config) -> str:
    """One line a key: its kid and when it was added, oldest first."""
    from loopgate.store import open_store

    store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    try:
        keys = await KeyRing(store, server_key_source(config), utcnow).keys()
    finally:
        await store.close()
    if not keys:
        return "no signing keys yet (the first receipt makes one)"
    return "\n".join(f"{k.kid}  {k.added_at.isoformat()}" for k in keys)
