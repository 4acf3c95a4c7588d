"""``loopgate migrate`` and ``loopgate projections rebuild``: the schema and the query tables."""

from __future__ import annotations

import structlog

from loopgate.cli.common import Progress
from loopgate.config import Config

log = structlog.get_logger("loopgate")


async def migrate(config: Config) -> None:
    from loopgate.store import open_store

    # Migrated as it opens, before the Postgres listener starts: a listener on an
    # empty database would find no events table and warn.
    store = await open_store(config.database.url)
    applied = store.applied_migrations
    await store.close()
    if applied:
        log.info("migrations applied", applied=applied)
    else:
        log.info("schema up to date, nothing to apply")


async def rebuild_projections(config: Config) -> None:
    from loopgate.store import open_store

    store = await open_store(config.database.url)
    try:
        with Progress("replayed") as progress:
            replayed = await store.rebuild_projections(progress)
    finally:
        await store.close()
    log.info("projections rebuilt", events_replayed=replayed)
