"""What the command modules share: the usage error and the progress count."""

from __future__ import annotations

import sys
from typing import IO


class UsageError(Exception):
    """The command line or its input is unusable; exit code 2."""


class Progress:
    """A running count on standard error, only when it is a terminal; ends its line on exit."""

    def __init__(self, verb: str, stream: IO[str] | None = None) -> None:
        self.verb = verb
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty()
        self.shown = False

    def __call__(self, count: int) -> None:
        if self.enabled:
            self.stream.write(f"\r {self.verb} {count} events…")
            self.stream.flush()
            self.shown = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
