"""``loopgate audit``: export the event log, or verify its hash chain (the log's or an export's)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from loopgate.cli.common import Progress, UsageError
from loopgate.config import Config

if TYPE_CHECKING:
    from loopgate.audit.verify import Verification


async def audit_export(config: Config, args: argparse.Namespace) -> int:
    """Stream the selected events to ``args.output`` (or stdout); 0, or 1 on a closed pipe.

    A file is written under a temporary name beside it and renamed into place
    only once the export is complete, so a failed or interrupted export never
    leaves a truncated file (nor replaces an older, complete one).
    """
    from loopgate.audit import export as audit
    from loopgate.store import open_store

    if args.since is not None and args.until is not None and args.since >= args.until:
        raise UsageError("audit export: --since must be before --until")
    output: IO[bytes]
    partial: Path | None = None
    if args.output is None:
        output = sys.stdout.buffer
    else:
        partial = args.output.with_name(f".{args.output.name}.partial")
        try:
            output = partial.open("wb")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
    exported = 0
    complete = False
    try:
        store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
        try:
            streams: frozenset[str] | None = None
            if args.session is not None:
                streams = await audit.session_streams(store, args.session, args.tenant)
            elif args.request is not None:
                streams = frozenset((f"request-{args.request}",))
            only = audit.ExportFilter(
                tenant=args.tenant,
                streams=streams,
                types=args.types,
                since=args.since,
                until=args.until,
            )
            csv = args.format == "csv"
            if csv:
                output.write(audit.csv_header())
            with Progress("exported") as progress:
                async for batch in audit.export_batches(store, only):
                    output.write(
                        audit.csv_rows(batch, header=False) if csv else audit.ndjson(batch)
                    )
                    exported += len(batch)
                    progress(exported)
            output.flush()
            complete = True
        finally:
            await store.close()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep the
        # interpreter from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        if partial is not None:
            output.close()
            if complete:
                partial.replace(args.output)
            else:
                partial.unlink(missing_ok=True)
    if args.output is not None:
        print(f"exported {exported} events to {args.output}", file=sys.stderr)
    return 0


def _report(result: Verification, where: str = "") -> None:
    if result.ok:
        print(f"ok: {result.events} events{where}, head {result.head}")
        if result.unchecked:
            # Rows holding a secret from before secrets were hashed by digest:
            # only `audit verify` on the live log (which has the secret) checks them.
            listed = ", ".join(map(str, result.unchecked))
            print(f"linked but not recomputed (secrets hashed in clear): positions {listed}")
    else:
        print(f"broken at position {result.broken_at}{where}: {result.reason}")


def _counted(lines: Iterable[bytes], progress: Progress, every: int = 2000) -> Iterator[bytes]:
    for number, line in enumerate(lines, start=1):
        yield line
        if number % every == 0:
            progress(number)


async def audit_verify(config: Config, file: Path | None, *, compare: bool) -> int:
    """Check the log's chain and the query tables against it, or an export's chain.

    With ``compare``, the export is also checked against the live log.
    """
    from loopgate.audit import verify as audit
    from loopgate.store import open_store

    if file is None:
        from loopgate.audit.projections import check_projections

        store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
        try:
            with Progress("checked") as progress:
                result = await audit.verify_log(store, progress)
            _report(result)
            if not result.ok:
                return 1
            with Progress("replayed") as progress:
                tables = await check_projections(store, progress)
        finally:
            await store.close()
        if not tables.ok:
            print(f"query tables differ from the log: {tables.difference}")
            return 1
        print(f"ok: {tables.tables} query tables, {tables.rows} rows, match the log")
        return 0

    try:
        lines = file.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from exc
    with lines, Progress("checked") as progress:
        result = audit.verify_export(_counted(lines, progress))
    _report(result, f" in {file}")
    if not result.ok:
        return 1
    if not compare:
        return 0
    if result.events == 0:
        print(f"nothing to compare: {file} has no events")
        return 0
    store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    try:
        live = await audit.live_hash(store, result.last_position)
    finally:
        await store.close()
    if live == result.head:
        print(f"matches the live log at position {result.last_position}")
        return 0
    missing = "" if live is not None else " (the live log has no event there)"
    print(f"differs from the live log at position {result.last_position}{missing}")
    return 1
