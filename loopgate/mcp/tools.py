"""The MCP tools, defined once for both transports.

The reference's tool names, with real work behind them:

* ``request_human_input`` asks a human and, unless ``wait`` is false, waits
  for the answer up to ``wait_seconds`` (``mcp.max_wait_seconds``), sending a
  progress notification every ``mcp.progress_seconds`` so that clients with
  idle timeouts keep the call open. Not answered by then, it returns the
  request as ``pending`` with ``poll_after``: the model calls
  ``check_request_status`` next.
* ``check_request_status`` (a long-poll), ``cancel_request``,
  ``list_pending_requests`` and ``register_session``.

Each returns structured content (the output schema's shape) and a sentence
for the model to read. Errors come back as tool errors whose text starts with
the REST API's error code (``… request_not_found: request … not found``).
"""

# No ``from __future__ import annotations``: the SDK reads the tools' annotations,
# which refer to build_server's arguments, so they are evaluated where defined.
import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from loopgate import __version__
from loopgate.errors import LoopgateError
from loopgate.mcp.gate import Gate

GateFor = Callable[[Context], Gate]

INSTRUCTIONS = (
    "Loopgate puts a human in the loop. Call request_human_input before an action that "
    "needs a person's approval or an answer only a person has; it waits for the answer. "
    "If it returns status 'pending', call check_request_status with the request_id later."
)


class DecidedBy(BaseModel):
    kind: Literal["human", "policy", "agent"]
    id: str | None
    channel: str | None
    routed_by: str | None = None
    reason: str | None = None


class Vote(BaseModel):
    member: str
    option: str | None = None
    text: str | None = None
    approves: bool
    channel: str
    at: str


class Decision(BaseModel):
    """A request as the tools report it."""

    request_id: str
    status: Literal["pending", "answered", "expired", "cancelled"] = Field(
        description="pending until a human answers, the request expires or it is cancelled"
    )
    completed: bool
    approved: bool | None = Field(
        description="the verdict: true approved, false rejected, null for a free-text answer "
        "or no decision"
    )
    response: str | None = Field(description="the option the human chose, or their text")
    outcome: str | None = Field(
        description="approved, rejected, answered, expired or cancelled; null while pending"
    )
    decided_by: DecidedBy | None
    session_id: str
    message: str
    expires_at: str | None
    quorum: int = Field(default=1, description="approving votes the request needs")
    approvals: int = Field(default=0, description="approving votes so far")
    votes: list[Vote] = Field(default_factory=list, description="every vote cast, in order")
    receipt: str | None = Field(
        default=None,
        description="when approved with an action: the signed receipt the tool redeems "
        "(POST /v1/receipts/redeem) before it runs the action",
    )
    poll_after: float | None = Field(
        default=None,
        description="while pending: seconds after which check_request_status is worth calling",
    )


class PendingList(BaseModel):
    requests: list[Decision]


class Session(BaseModel):
    session_id: str
    client_id: str
    telegram_id: int | None
    active: bool


def decision(request: dict[str, Any], poll_after: float | None = None) -> Decision:
    return Decision(
        request_id=request["request_id"],
        status=request["status"] if request["completed"] else "pending",
        completed=request["completed"],
        approved=request["approved"],
        response=request["response"],
        outcome=request["outcome"],
        decided_by=request["decided_by"],
        session_id=request["session_id"],
        message=request["message"],
        expires_at=request["expires_at"],
        quorum=request["quorum"],
        approvals=request["approvals"],
        votes=request["votes"],
        receipt=request.get("receipt"),
        poll_after=None if request["completed"] else poll_after,
    )


def describe(found: Decision) -> str:
    """One sentence for the model."""
    rid = found.request_id
    match found.status:
        case "pending":
            votes = f" It has {found.approvals} of {found.quorum} approvals." if found.votes else ""
            return (
                f"Request {rid} is still waiting for a human.{votes} Call check_request_status"
                f" with request_id {rid!r} in about {found.poll_after or 10:g} seconds."
            )
        case "answered":
            verdict = {True: "approved", False: "rejected", None: "answered"}[found.approved]
            who = found.decided_by.id if found.decided_by else "a human"
            return f"Request {rid} was {verdict} by {who}: {found.response!r}."
        case "expired":
            verdict = {True: "approved", False: "rejected", None: "no decision"}[found.approved]
            return f"Request {rid} expired before anyone answered; its timeout policy: {verdict}."
        case "cancelled":
            return f"Request {rid} was cancelled; do not proceed with it."


def result(structured: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json"),
    )


def _failed(exc: LoopgateError) -> ToolError:
    return ToolError(f"{exc.code}: {exc.message}")


def build_server(
    gate_for: GateFor, *, max_wait_seconds: float, progress_seconds: float
) -> MCPServer:
    """An MCP server whose tools act through the gate ``gate_for(ctx)`` returns."""
    server = MCPServer(
        "loopgate", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    async def wait_for(gate: Gate, ctx: Context, request_id: str, seconds: float) -> Decision:
        """The request once decided or after ``seconds``, with progress as it waits."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + seconds
        while True:
            remaining = deadline - loop.time()
            found = await gate.get_request(request_id, max(0.0, min(remaining, progress_seconds)))
            if found["completed"] or remaining <= progress_seconds:
                return decision(found, poll_after=min(progress_seconds, 10.0))
            waited = loop.time() - started
            await ctx.report_progress(waited, seconds, "waiting for a human to answer")

    @server.tool(
        description=(
            "Ask a human a question and wait for the answer. Give options for buttons "
            "(e.g. ['Approve', 'Reject']); request_type 'confirmation' gets Approve/Reject, "
            "'input' asks for free text. Returns the decision, or status 'pending' with the "
            "request_id if no one answered within wait_seconds."
        )
    )
    async def request_human_input(
        message: Annotated[str, Field(description="the question, as the human will read it")],
        ctx: Context,
        options: Annotated[
            list[str] | None, Field(description="answer buttons, in order", max_length=20)
        ] = None,
        request_type: Literal["confirmation", "input", "choice"] | None = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="context shown to the human")
        ] = None,
        timeout_seconds: Annotated[
            int | None, Field(ge=1, description="seconds before the request expires")
        ] = None,
        session_id: Annotated[
            str | None, Field(description="the session (and so the operator) to ask")
        ] = None,
        client_id: str | None = None,
        wait: Annotated[bool, Field(description="false: return the request_id at once")] = True,
        wait_seconds: Annotated[
            float | None,
            Field(
                ge=0, description=f"how long to wait for the answer (at most {max_wait_seconds:g})"
            ),
        ] = None,
        idempotency_key: Annotated[
            str | None,
            Field(description="retrying with the same key returns the first request"),
        ] = None,
        approvers: Annotated[
            list[str] | None,
            Field(
                description="who may answer: user:<name>, group:<name>, role:<role> or "
                "telegram:<id> (default: the session's Telegram operator, else every approver)",
                max_length=32,
            ),
        ] = None,
        quorum: Annotated[
            int | None, Field(ge=1, le=32, description="how many approvers must approve")
        ] = None,
        veto: Annotated[
            bool | None,
            Field(description="false: one rejection does not reject while the quorum is reachable"),
        ] = None,
    ) -> Annotated[CallToolResult, Decision]:
        gate = gate_for(ctx)
        body: dict[str, Any] = {
            "session_id": session_id or gate.default_session,
            "client_id": client_id or "mcp",
            "message": message,
            "options": options or [],
            "metadata": metadata or {},
        }
        optional = {
            "request_type": request_type,
            "timeout_seconds": timeout_seconds,
            "idempotency_key": idempotency_key,
            "approvers": approvers,
            "quorum": quorum,
            "veto": veto,
        }
        body |= {key: value for key, value in optional.items() if value is not None}
        try:
            if session_id is None:
                await gate.ensure_session(body["session_id"])
            created = await gate.create_request(body)
            if not wait:
                found = decision(created, poll_after=min(progress_seconds, 10.0))
            else:
                seconds = min(
                    max_wait_seconds, max_wait_seconds if wait_seconds is None else wait_seconds
                )
                found = await wait_for(gate, ctx, created["request_id"], seconds)
        except LoopgateError as exc:
            raise _failed(exc) from exc
        return result(found, describe(found))

    @server.tool(
        description=(
            "The state of a request made with request_human_input; with wait_seconds, wait "
            "that long for the answer."
        )
    )
    async def check_request_status(
        request_id: str,
        ctx: Context,
        wait_seconds: Annotated[
            float, Field(ge=0, description=f"wait up to this long (at most {max_wait_seconds:g})")
        ] = 0,
    ) -> Annotated[CallToolResult, Decision]:
        try:
            found = await wait_for(
                gate_for(ctx), ctx, request_id, min(wait_seconds, max_wait_seconds)
            )
        except LoopgateError as exc:
            raise _failed(exc) from exc
        return result(found, describe(found))

    @server.tool(description="Withdraw a request nobody answered yet.")
    async def cancel_request(
        request_id: str, ctx: Context, reason: str | None = None
    ) -> Annotated[CallToolResult, Decision]:
        try:
            found = decision(await gate_for(ctx).cancel_request(request_id, reason))
        except LoopgateError as exc:
            raise _failed(exc) from exc
        return result(found, describe(found))

    @server.tool(description="Requests still waiting for a human, newest first.")
    async def list_pending_requests(
        ctx: Context,
        session_id: Annotated[str | None, Field(description="only this session's")] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 50,
    ) -> Annotated[CallToolResult, PendingList]:
        try:
            found = [decision(r) for r in await gate_for(ctx).list_open(session_id, limit)]
        except LoopgateError as exc:
            raise _failed(exc) from exc
        lines = [f"{len(found)} request(s) waiting for a human."]
        lines += [f"- {d.request_id}: {d.message}" for d in found]
        return result(PendingList(requests=found), "\n".join(lines))

    @server.tool(
        description=(
            "Register (or re-register) a session; with telegram_id, its requests go to that "
            "Telegram user, who alone may answer them."
        )
    )
    async def register_session(
        session_id: str, client_id: str, ctx: Context, telegram_id: int | None = None
    ) -> Annotated[CallToolResult, Session]:
        try:
            found = await gate_for(ctx).register_session(session_id, client_id, telegram_id)
        except LoopgateError as exc:
            raise _failed(exc) from exc
        session = Session.model_validate(found, from_attributes=False)
        operator = f"Telegram user {telegram_id}" if telegram_id else "no Telegram operator"
        return result(session, f"Session {session_id} is registered, with {operator}.")

    return server
