"""Entry point: ``python -m bench <subcommand> [options]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import actions, append, audit, hitl, limits, push, telegram


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each benchmark module adds its own subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks for Loopgate. Progress goes to stderr, results to stdout.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    actions.add_subcommand(subcommands)
    append.add_subcommand(subcommands)
    audit.add_subcommand(subcommands)
    hitl.add_subcommand(subcommands)
    limits.add_subcommand(subcommands)
    push.add_subcommand(subcommands)
    telegram.add_subcommand(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen benchmark; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
