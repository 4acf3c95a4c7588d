"""The ``loopgate`` command: serve, migrate, projections, user, policy, keys, audit, receipt,
mcp, ask.

This module is the argparse tree, the config loading and the dispatch; each
command group's work is in its own module: ``server`` (serve, mcp), ``db``
(migrate, projections rebuild), ``users`` (user create), ``policy`` (apply,
show, test), ``keys`` (rotate, list: the receipts' signing keys), ``audit``
(export, verify), ``receipt`` (verify, offline) and ``ask``, which parses its
own arguments.

Exit codes: 0 success, 1 runtime failure (e.g. the database is unreachable),
2 bad usage or bad configuration (the message names the setting).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from loopgate import __version__
from loopgate.cli.audit import audit_export, audit_verify
from loopgate.cli.common import UsageError
from loopgate.cli.db import migrate, rebuild_projections
from loopgate.cli.keys import keys_list, keys_rotate
from loopgate.cli.policy import policy_apply, policy_show, policy_test
from loopgate.cli.receipt import receipt_verify
from loopgate.cli.server import serve, serve_mcp_stdio
from loopgate.cli.users import USER_ROLES, create_user, read_password
from loopgate.config import Config, ConfigError, load_config
from loopgate.domain.teams import DEFAULT_WORKSPACE
from loopgate.errors import BadRequest, LoopgateError
from loopgate.log import configure_logging

log = structlog.get_logger("loopgate")

EPILOG = """\
Configuration is read from --config (or ./loopgate.toml), then environment
variables LOOPGATE_<SECTION>__<KEY> (e.g. LOOPGATE_SERVER__PORT=9000), then the
flags below. See config.example.toml for every setting.
"""


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML config file (default: ./loopgate.toml if present)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="event store URL, e.g. sqlite:///./loopgate.db or postgresql://user@host/db",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopgate",
        description="Loopgate: put a human in the loop of AI agents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"loopgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP server",
        description="Run the server: the HITL API, SSE streams, MCP at /mcp, the web console at "
        "/console, the audit routes, outgoing webhooks, health checks and, with a bot token, "
        "Telegram.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_options(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", help="TCP port (default 8080)")
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply pending migrations at start (run `loopgate migrate` yourself)",
    )

    migrate = commands.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Create or upgrade the schema. Safe to run again: a no-op when up to date.",
    )
    _config_options(migrate)

    projections = commands.add_parser(
        "projections", help="manage the query tables derived from the event log"
    )
    projection_commands = projections.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = projection_commands.add_parser(
        "rebuild",
        help="empty the query tables and replay the whole log into them",
        description="Empty the query tables (sessions, requests) and replay the event log into "
        "them, in one transaction: readers see the old tables until it commits.",
    )
    _config_options(rebuild)

    _audit_commands(commands)

    user = commands.add_parser("user", help="manage user accounts")
    user_commands = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = user_commands.add_parser(
        "create",
        help="add a user (works when registration is closed)",
        description="Add a user account and print its id. The server's first user becomes "
        "owner of the default workspace (local), where requests made without a key land; "
        "with --role, the user joins that workspace with that role; otherwise a later user "
        "gets a workspace of their own. The password is asked for on a "
        "terminal, or read from the first line of standard input otherwise "
        '(e.g. echo "$PASSWORD" | loopgate user create alice).',
    )
    create.add_argument("username")
    create.add_argument(
        "--role",
        choices=USER_ROLES,
        help="join the default workspace (local) with this role: approver answers the "
        "requests routed to them, admin also manages members, groups, keys and settings, "
        "auditor reads and exports and never answers",
    )
    _config_options(create)

    _policy_commands(commands)
    _keys_commands(commands)
    _receipt_commands(commands)

    mcp = commands.add_parser(
        "mcp",
        help="run an MCP server on stdio that forwards to a running Loopgate",
        description="Serve Loopgate's MCP tools (request_human_input, check_request_status, "
        "cancel_request, list_pending_requests, register_session) on standard input and "
        "output, for MCP clients that start a command (Claude Desktop, Claude Code, ...). "
        "Every call is forwarded to a Loopgate server over HTTP.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mcp.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("LOOPGATE_URL") or None,
        help="the Loopgate server, e.g. http://127.0.0.1:8080 (default: $LOOPGATE_URL)",
    )
    mcp.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("LOOPGATE_API_KEY") or None,
        help="an API key (lk_pub_...) for servers that require one (default: $LOOPGATE_API_KEY)",
    )
    mcp.add_argument("--config", type=Path, metavar="PATH", help="TOML config file (mcp.*)")
    # Listed here for --help only: main() hands `ask` to cli/ask.py, whose
    # usage errors exit 3 (2 means "timed out" to the scripts that call it).
    commands.add_parser(
        "ask",
        help="ask a human from a script; exit 0 approved, 1 not, 2 timed out, 3 cancelled/error",
        add_help=False,
    )
    return parser


def _instant(text: str) -> datetime:
    """An ISO 8601 date or time; a date alone is midnight UTC, a time without offset is UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or time: {text!r} (e.g. 2025-01-31 or 2025-01-31T09:30:00Z)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _event_types(text: str) -> frozenset[str]:
    from loopgate.events import EVENT_TYPES

    types = frozenset(t.strip() for t in text.split(",") if t.strip())
    if not types:
        raise argparse.ArgumentTypeError("no event type given (e.g. request.created)")
    unknown = sorted(types - EVENT_TYPES.keys())
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown event type {', '.join(map(repr, unknown))}"
            f" (known: {', '.join(sorted(EVENT_TYPES))})"
        )
    return types


def _audit_commands(commands: Any) -> None:
    audit = commands.add_parser(
        "audit",
        help="export the event log, or verify its hash chain",
        description="Every event is chained to the one before it by a SHA-256 hash. "
        "Export the log for auditors, or check that nothing in it (or in an export) "
        "was edited, removed or reordered.",
    )
    audit_commands = audit.add_subparsers(dest="action", metavar="ACTION", required=True)

    export = audit_commands.add_parser(
        "export",
        help="write the event log (or a filtered part of it) as NDJSON or CSV",
        description="Write the events, in position order, to standard output or --output: "
        "every tenant's unless --tenant is given. Filters combine: an event is exported "
        "when it passes all of them. Each record carries its hash and the previous one, so "
        "an NDJSON export can be checked later with `loopgate audit verify --file`. "
        "The log is read a batch at a time, up to its head when the export starts.",
    )
    export.add_argument(
        "--format",
        choices=("ndjson", "csv"),
        default="ndjson",
        help="ndjson: one JSON record a line (default); csv: RFC 4180, UTF-8, with a header",
    )
    export.add_argument(
        "--since",
        type=_instant,
        metavar="ISO",
        help="only events recorded at or after this time (ISO 8601; a date means midnight "
        "UTC, a time without offset is UTC)",
    )
    export.add_argument(
        "--until", type=_instant, metavar="ISO", help="only events recorded before this time"
    )
    scope = export.add_mutually_exclusive_group()
    scope.add_argument(
        "--session",
        metavar="ID",
        help="only the session's own events and those of its requests",
    )
    scope.add_argument("--request", metavar="ID", help="only the events of this request")
    export.add_argument(
        "--types",
        type=_event_types,
        metavar="T1,T2",
        help="only these event types, comma-separated (e.g. request.created,"
        "request.response_received)",
    )
    export.add_argument("--tenant", metavar="T", help="only this tenant's events")
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    _config_options(export)

    verify = audit_commands.add_parser(
        "verify",
        help="check the hash chain of the log and the query tables, or an NDJSON export",
        description="Recompute every event's hash and check each one links to the one "
        "before. Prints `ok: N events, head HASH`, or `broken at position P: REASON` and "
        "exits 1. Then replays the log into scratch tables and compares them with the query "
        "tables, naming the first row that differs (exit 1). With --file, checks an NDJSON "
        "export's chain instead (a filtered export is checked wherever its positions are "
        "consecutive); --compare then also checks the file's last record against the live log.",
    )
    verify.add_argument(
        "--file", type=Path, metavar="EXPORT", help="an NDJSON file from `loopgate audit export`"
    )
    verify.add_argument(
        "--compare",
        action="store_true",
        help="with --file: check the live log has the same hash at the file's last position",
    )
    _config_options(verify)


def _policy_commands(commands: Any) -> None:
    policy = commands.add_parser(
        "policy",
        help="set, show or try a workspace's approval rules (TOML)",
        description="A workspace's approval policy: an ordered list of rules, each "
        "`[[rules]]` with a name, `[[rules.when]]` conditions {field, op, value} and a "
        "`[rules.then]` that decides at once or makes the request stricter. The first rule "
        "whose conditions all hold applies. See examples/policy.toml and the README's "
        "Policies section.",
    )
    actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    workspace_help = f"the workspace (default: {DEFAULT_WORKSPACE}, the server's first one)"

    apply = actions.add_parser(
        "apply",
        help="replace the workspace's policy with the rules of a TOML file",
        description="Validate FILE and set its rules as the workspace's policy, as its owner "
        "would with PUT /v1/policy: the policy's version goes up by one. Writes straight to "
        "the configured store; a running server reads the new rules at the next request.",
    )
    apply.add_argument("file", type=Path, metavar="FILE", help="a TOML policy file")
    apply.add_argument("--workspace", default=DEFAULT_WORKSPACE, metavar="ID", help=workspace_help)
    _config_options(apply)

    show = actions.add_parser(
        "show",
        help="print the workspace's policy",
        description="Print the policy's version, who set it and when, and its rules in order.",
    )
    show.add_argument("--workspace", default=DEFAULT_WORKSPACE, metavar="ID", help=workspace_help)
    _config_options(show)

    test = actions.add_parser(
        "test",
        help="say which rule of a file matches a request, and what it would do",
        description="Read no store: validate FILE, then print which of its rules matches the "
        "request (or `no rule matches`) and what it does: `decide approve ... decided_by "
        "policy RULE@vN`, or the requirements the request ends up with.",
    )
    test.add_argument("file", type=Path, metavar="FILE", help="a TOML policy file")
    test.add_argument(
        "--request",
        required=True,
        metavar="JSON",
        help='the request, e.g. \'{"session_id": "staging-1", "client_id": "deployer", '
        '"metadata": {"amount": 25000}}\': also request_type (default confirmation) and what '
        "the agent asks: approvers, quorum, veto, timeout_seconds (default 300), on_timeout, "
        "escalation, remind_every_seconds, warn_before_expiry_seconds",
    )
    test.add_argument(
        "--version",
        type=int,
        default=1,
        metavar="N",
        help="the policy version to name in decided_by (default 1)",
    )


def _keys_commands(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help="rotate or list the keys that sign receipts",
        description="The Ed25519 keys that sign receipts (the signed, single-use proof an "
        "approved action carries). Only their public halves are stored, in the event log; "
        "the private ones are derived from the server key (secrets.key or its key file), so "
        "run these with the server's configuration.",
    )
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate",
        help="add a signing key and print its kid",
        description="Add a signing key: it signs every decision from now on, in every server "
        "process on this store. Old keys stay in /.well-known/jwks.json, so the receipts "
        "they signed still verify.",
    )
    _config_options(rotate)
    listed = actions.add_parser(
        "list", help="print each key's kid and when it was added, oldest first"
    )
    _config_options(listed)


def _load(args: argparse.Namespace, **extra: Any) -> Config:
    overrides = {"database.url": getattr(args, "db", None), **extra}
    return load_config(args.config, overrides=overrides)


def _receipt_commands(commands: Any) -> None:
    receipt = commands.add_parser(
        "receipt",
        help="check a receipt of an approved action offline",
        description="A receipt is the signed proof (a compact JWS, EdDSA) that a request's "
        "action was approved; GET /v1/requests/{id} carries it once approved.",
    )
    actions = receipt.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check a receipt's signature, expiry and action, without a server",
        description="Check RECEIPT against the public keys in --jwks (a file, - or the "
        "server's URL /.well-known/jwks.json): the signature of the key its kid names, that "
        "it has not expired (at --at, default now) and that the action in --action is the one "
        "approved. Exit 0 and the claims, or 1 and why not. Does not use the receipt up.",
    )
    verify.add_argument("receipt", metavar="RECEIPT", help="the token, - (stdin) or @FILE")
    verify.add_argument(
        "--action",
        dest="action_file",
        required=True,
        metavar="FILE",
        help='the action about to run, JSON {"tool": ..., "args": {...}}; - reads stdin',
    )
    verify.add_argument(
        "--jwks", required=True, metavar="FILE|URL", help="the server's JWKS: a file, - or a URL"
    )
    verify.add_argument(
        "--at", metavar="ISO-TIME", help="check the expiry at this time instead of now"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["ask"]:
        from loopgate.cli import ask

        return ask.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "receipt" or (args.command == "policy" and args.action == "test"):
            config = Config()  # pure: it reads no configuration and opens no store
        elif args.command == "serve":
            config = _load(
                args,
                **{
                    "server.host": args.host,
                    "server.port": args.port,
                    "database.migrate_on_start": False if args.no_migrate else None,
                },
            )
        else:
            config = _load(args)
    except ConfigError as exc:
        print(f"loopgate: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log.level, config.log.format)
    code = 0
    try:
        match args.command:
            case "serve":
                asyncio.run(serve(config))
            case "migrate":
                asyncio.run(migrate(config))
            case "projections":
                asyncio.run(rebuild_projections(config))
            case "audit" if args.action == "export":
                code = asyncio.run(audit_export(config, args))
            case "audit":
                if args.compare and args.file is None:
                    raise UsageError("audit verify: --compare needs --file EXPORT")
                code = asyncio.run(audit_verify(config, args.file, compare=args.compare))
            case "user":
                password = read_password()
                print(asyncio.run(create_user(config, args.username, password, role=args.role)))
            case "policy" if args.action == "test":
                print(policy_test(args.file, args.request, args.version))
            case "policy" if args.action == "apply":
                print(asyncio.run(policy_apply(config, args.file, args.workspace)))
            case "policy":
                print(asyncio.run(policy_show(config, args.workspace)))
            case "keys" if args.action == "rotate":
                print(asyncio.run(keys_rotate(config)))
            case "keys":
                print(asyncio.run(keys_list(config)))
            case "receipt":
                code = receipt_verify(args.receipt, args.action_file, args.jwks, args.at)
            case "mcp":
                if not args.server:
                    raise UsageError("mcp: give the server with --server URL or LOOPGATE_URL")
                asyncio.run(serve_mcp_stdio(config, args.server, args.api_key))
    except ConfigError as exc:  # a setting that is fine alone but not with the others
        print(f"loopgate: configuration error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"loopgate: {exc}", file=sys.stderr)
        return 2
    except BadRequest as exc:
        print(f"loopgate: {exc.message}", file=sys.stderr)
        return 2
    except (LoopgateError, OSError) as exc:
        log.error("failed", command=args.command, error=str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    return code
