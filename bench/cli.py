"""Command-line plumbing shared by the benchmarks: option types, common options, running."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class BenchError(Exception):
    """The benchmark cannot go on (a server failed to start, a bad response, ...)."""


def progress(message: str) -> None:
    """A progress line on stderr (stdout is kept for the results)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- option types ----------------------------------------------------------------------


def positive_seconds(text: str) -> float:
    """A duration in seconds, > 0 and at most an hour."""
    value = float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("expected a duration in seconds, 0 < S <= 3600")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} <= N <= {high}, got {value}")
        return value

    return parse


# --- common options --------------------------------------------------------------------


def add_store_options(
    parser: argparse.ArgumentParser, seconds: float, seconds_help: str, warmup_help: str
) -> None:
    """``--store``, ``--seconds`` (default ``seconds``) and ``--warmup`` (default 1 s)."""
    parser.add_argument(
        "--store", required=True, choices=("sqlite", "postgres"), help="the backend to measure"
    )
    parser.add_argument(
        "--seconds", type=positive_seconds, default=seconds,
        help=f"{seconds_help} (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=positive_seconds, default=1.0,
        help=f"{warmup_help} (default: %(default)s)",
    )  # fmt: skip


def add_database_url(
    parser: argparse.ArgumentParser, *, postgres_only: bool, note: str = ""
) -> None:
    """``--database-url URL``: the admin URL for the scratch database (see :func:`admin_url`)."""
    parser.add_argument(
        "--database-url", default=None, metavar="URL",
        help=(
            f"{'postgres only: ' if postgres_only else ''}admin URL used to create and drop the"
            f" scratch database loopgate_bench_<random> (default: {DEFAULT_ADMIN_URL}){note}"
        ),
    )  # fmt: skip


def admin_url(args: argparse.Namespace) -> str:
    """The ``--database-url`` given, else :data:`DEFAULT_ADMIN_URL`."""
    return str(args.database_url or DEFAULT_ADMIN_URL)


def check_store_options(args: argparse.Namespace) -> None:
    """Refuse ``--database-url`` with ``--store sqlite``."""
    if args.store == "sqlite" and args.database_url:
        raise SystemExit("--database-url applies to --store postgres only")


# --- running ---------------------------------------------------------------------------


def run_benchmark(
    name: str, coroutine: Coroutine[Any, Any, T], database_error: str = ""
) -> T | None:
    """Run ``coroutine``; None if interrupted, SystemExit on a database or benchmark error."""
    try:
        return asyncio.run(coroutine)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise SystemExit(f"bench {name}: {database_error}{exc}") from exc
    except BenchError as exc:
        raise SystemExit(f"bench {name}: {exc}") from exc
    except (asyncio.CancelledError, KeyboardInterrupt):
        progress("interrupted")
        return None


INTERRUPTED = 130
"""The exit status of an interrupted run."""


def finish(results: str, errors: Sequence[str]) -> int:
    """Print the results to stdout and the first errors to stderr; the exit status."""
    print(results)
    for message in errors[:5]:
        progress(f"error: {message}")
    return 1 if errors else 0
