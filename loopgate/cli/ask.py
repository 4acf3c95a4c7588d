"""``loopgate ask``: ask a human from a shell script or a CI job, and exit with the answer.

::

    loopgate ask "Deploy v2.1 to production?" -o Deploy -o Hold --timeout 600 \\
        && ./deploy.sh

Exit codes, so a pipeline can branch on them without parsing anything:

* 0 — answered, and the answer approves;
* 1 — answered without approval (a rejecting option, or a text answer that
  the request marks as not approving);
* 2 — nobody answered within ``--timeout`` (the server expired the request);
* 3 — the request was cancelled (by an agent, an operator or Ctrl-C here), or
  something went wrong: the server is unreachable, refused the key or the
  question, or the command line is unusable.

The answer goes to standard output (``--json``: the whole decision as JSON);
on a terminal a spinner on standard error shows the time left. The server and
key come from ``--server`` / ``--api-key`` or ``LOOPGATE_URL`` /
``LOOPGATE_API_KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import Sequence
from typing import IO, NoReturn

import msgspec

from loopgate.client import Decision, LoopgateClient, LoopgateClientError, WaitTimedOut
from loopgate.client.connection import EXPIRY_GRACE_SECONDS

APPROVED, NOT_APPROVED, TIMED_OUT, CANCELLED_OR_ERROR = 0, 1, 2, 3
DEFAULT_TIMEOUT = 600
SPIN_SECONDS = 0.1


class AskParser(argparse.ArgumentParser):
    """Usage errors exit 3: exit 2 means "timed out" to the scripts that call ``ask``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(CANCELLED_OR_ERROR, f"{self.prog}: error: {message}\n")


def build_parser(prog: str = "loopgate ask") -> argparse.ArgumentParser:
    parser = AskParser(
        prog=prog,
        description="Ask a human and wait for the answer. Exit status: 0 approved, "
        "1 answered without approval, 2 timed out, 3 cancelled or error.",
    )
    parser.add_argument("message", help="the question, as the operator will see it")
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="LABEL",
        help="an answer button (repeat for more); without any: Approve / Reject",
    )
    parser.add_argument("--session", metavar="ID", help="the session to ask in")
    parser.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds to wait for an answer (default: {DEFAULT_TIMEOUT})",
    )
    parser.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="context shown with the question (repeat for more)",
    )
    parser.add_argument("--server", metavar="URL", help="default: $LOOPGATE_URL")
    parser.add_argument("--api-key", metavar="KEY", help="default: $LOOPGATE_API_KEY")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    return parser


def exit_code(decision: Decision) -> int:
    match decision.status:
        case "answered":
            return APPROVED if decision.approved else NOT_APPROVED
        case "cancelled":
            return CANCELLED_OR_ERROR
        case _:  # expired, or still open when the wait ran out
            return TIMED_OUT


def _metadata(pairs: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--metadata: expected KEY=VALUE, got {pair!r}")
        metadata[key] = value
    return metadata


class Spinner:
    """A one-line "waiting" indicator with the time left, redrawn in place on a terminal."""

    def __init__(self, stream: IO[str], seconds: float) -> None:
        self.stream = stream
        self.deadline = time.monotonic() + seconds
        self._task: asyncio.Task[None] | None = None

    async def _spin(self) -> None:
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            left = max(0, round(self.deadline - time.monotonic()))
            self.stream.write(
                f"\r{frame} waiting for an answer, {left // 60}:{left % 60:02d} left "
            )
            self.stream.flush()
            await asyncio.sleep(SPIN_SECONDS)

    def __enter__(self) -> Spinner:
        self._task = asyncio.create_task(self._spin())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            self.stream.write("\r\x1b[K")  # erase the spinner's line
            self.stream.flush()


async def ask(args: argparse.Namespace, metadata: dict[str, str]) -> Decision:
    async with LoopgateClient(args.server, args.api_key) as gate:
        request_id = await gate.submit(
            args.message,
            options=args.option or ("Approve", "Reject"),
            metadata=metadata,
            timeout=args.timeout,
            session_id=args.session,
            client_id="loopgate-ask",
        )
        spinning = sys.stderr.isatty() and not args.json
        with Spinner(sys.stderr, args.timeout) if spinning else contextlib.nullcontext():
            try:
                return await gate.wait(request_id, args.timeout + EXPIRY_GRACE_SECONDS)
            except WaitTimedOut as timed_out:
                return timed_out.decision
            except asyncio.CancelledError:  # Ctrl-C: withdraw the question before leaving
                with contextlib.suppress(LoopgateClientError):
                    await gate.cancel(request_id, "interrupted by loopgate ask")
                raise


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error("--timeout: at least 1 second")
    metadata = _metadata(args.metadata, parser)
    try:
        decision = asyncio.run(ask(args, metadata))
    except LoopgateClientError as exc:
        print(f"loopgate ask: {exc.message} ({exc.code})", file=sys.stderr)
        return CANCELLED_OR_ERROR
    except KeyboardInterrupt:
        print("loopgate ask: interrupted; the request was cancelled", file=sys.stderr)
        return CANCELLED_OR_ERROR
    if args.json:
        print(msgspec.json.encode(decision).decode())
    elif decision.status == "answered":
        print(decision.response or "")
    else:
        print(f"loopgate ask: {decision.status} without an answer", file=sys.stderr)
    return exit_code(decision)
