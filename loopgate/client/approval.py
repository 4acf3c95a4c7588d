"""``@require_approval`` and ``verify_webhook``: the two helpers agents reach for first."""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast

import msgspec

from loopgate.channels.webhooks.signing import InvalidSignature, verify_signature
from loopgate.client.connection import LoopgateClient, Option
from loopgate.client.decision import Decision, LoopgateClientError, NotApproved, ReceiptRefused
from loopgate.client.sync import Loopgate

P = ParamSpec("P")
R = TypeVar("R")

Message = str | Callable[..., str]


def require_approval(
    message: Message,
    *,
    options: Sequence[Option] = ("Approve", "Reject"),
    timeout: int | None = None,
    session_id: str | None = None,
    client: LoopgateClient | Loopgate | None = None,
    tool: str | None = None,
    editable: bool = False,
    args_schema: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated function only once a human approves *this call*; else raise.

    ``message`` may be a callable, given the call's arguments, to ask about
    this very call (``lambda env: f"Deploy to {env}?"``). Works on plain and
    ``async`` functions; a plain one uses a blocking :class:`Loopgate`, an
    async one a :class:`LoopgateClient` (from ``LOOPGATE_URL`` unless given).

    The request carries the call as its action: ``{tool, args}``, ``tool``
    defaulting to the function's ``__qualname__`` and ``args`` its bound
    arguments (defaults included; a method's ``self`` or ``cls`` left out) as
    JSON, so they must be JSON-encodable (``TypeError`` before anything is
    asked otherwise). With ``editable`` (or an ``args_schema``) an approver may
    change the args: the function then runs with the edited ones.

    Once approved, the decision's receipt is redeemed for the action about to
    run (``POST /v1/receipts/redeem``) before the function is called: a
    receipt already used, expired or for another action raises
    :class:`ReceiptRefused` and the function does not run. A rejection,
    cancellation or expiry raises :class:`NotApproved`.
    """

    def text(*args: Any, **kwargs: Any) -> str:
        return message(*args, **kwargs) if callable(message) else message

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        call = _Call(function, tool)
        fields: dict[str, Any] = {
            "options": options,
            "timeout": timeout,
            "session_id": session_id,
            "editable": editable or args_schema is not None,
            "args_schema": args_schema,
        }

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def gated_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                bound, action = call.bind(args, kwargs)
                gate = client if isinstance(client, LoopgateClient) else LoopgateClient()
                try:
                    decision = await gate.ask(text(*args, **kwargs), action=action, **fields)
                    approved = _approved(decision, action)
                    await _redeem(decision, approved, gate.redeem_receipt)
                finally:
                    if gate is not client:
                        await gate.close()
                run_args, run_kwargs = call.arguments(bound, action, approved, args, kwargs)
                return await cast(Callable[..., Awaitable[Any]], function)(*run_args, **run_kwargs)

            return cast(Callable[P, R], gated_async)

        @functools.wraps(function)
        def gated(*args: P.args, **kwargs: P.kwargs) -> R:
            bound, action = call.bind(args, kwargs)
            gate = client if isinstance(client, Loopgate) else Loopgate()
            try:
                decision = gate.ask(text(*args, **kwargs), action=action, **fields)
                approved = _approved(decision, action)
                if not decision.receipt:
                    raise _no_receipt(decision)
                try:
                    gate.redeem_receipt(decision.receipt, approved)
                except LoopgateClientError as exc:
                    raise ReceiptRefused(decision, exc.status, exc.code, exc.message) from exc
            finally:
                if gate is not client:
                    gate.close()
            run_args, run_kwargs = call.arguments(bound, action, approved, args, kwargs)
            return cast(Callable[..., R], function)(*run_args, **run_kwargs)

        return gated

    return decorate


class _Call:
    """The decorated function's signature: a call to its action, an approved action to a call."""

    def __init__(self, function: Callable[..., Any], tool: str | None) -> None:
        self.signature = inspect.signature(function)
        self.tool = tool or function.__qualname__
        first = next(iter(self.signature.parameters), None)
        # A method's instance or class is who runs the action, not part of it.
        self.hidden = {first} if first in ("self", "cls") else set()

    def bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[inspect.BoundArguments, dict[str, Any]]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        shown = {k: v for k, v in bound.arguments.items() if k not in self.hidden}
        try:
            as_json = msgspec.json.decode(msgspec.json.encode(shown))
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(
                f"@require_approval: the arguments of {self.tool} must be JSON-encodable "
                f"to be approved as its action: {exc}"
            ) from None
        return bound, {"tool": self.tool, "args": as_json}

    def arguments(
        self,
        bound: inspect.BoundArguments,
        asked: dict[str, Any],
        approved: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call to make: as made, unless the approver edited the args."""
        if approved["args"] == asked["args"]:
            return args, kwargs
        edited = approved["args"]
        unknown = sorted(set(edited) - set(self.signature.parameters) | (set(edited) & self.hidden))
        if unknown:
            raise TypeError(f"the approved args of {self.tool} name no parameter: {unknown}")
        arguments = {k: v for k, v in bound.arguments.items() if k in self.hidden} | edited
        rebuilt = inspect.BoundArguments(self.signature, OrderedDict(arguments))
        self.signature.bind(*rebuilt.args, **rebuilt.kwargs)  # TypeError if one is missing
        return rebuilt.args, rebuilt.kwargs


def _approved(decision: Decision, asked: dict[str, Any]) -> dict[str, Any]:
    """The action approved (the asked one, or as an approver edited it); else ``NotApproved``."""
    if not decision.approved:
        raise NotApproved(decision)
    approved = decision.decided_action or asked
    if approved.get("tool") != asked["tool"]:
        # Approvers edit args, never the tool: this approval is not of this function.
        raise ReceiptRefused(
            decision,
            0,
            "action_mismatch",
            f"{decision.request_id} approved {approved.get('tool')!r}, not {asked['tool']!r}",
        )
    return {"tool": asked["tool"], "args": dict(approved.get("args") or {})}


def _no_receipt(decision: Decision) -> ReceiptRefused:
    return ReceiptRefused(
        decision,
        0,
        "no_receipt",
        f"{decision.request_id} was approved without a receipt: the action is not run",
    )


async def _redeem(
    decision: Decision,
    action: dict[str, Any],
    redeem: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]],
) -> None:
    if not decision.receipt:
        raise _no_receipt(decision)
    try:
        await redeem(decision.receipt, action)
    except LoopgateClientError as exc:
        raise ReceiptRefused(decision, exc.status, exc.code, exc.message) from exc


def verify_webhook(body: bytes, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The delivery's JSON, once its ``Loopgate-Signature`` checks out; else ``InvalidSignature``.

    Pass the body exactly as received (bytes, before any JSON parsing) and
    the secret from ``GET /v1/webhook-secret``. Signatures older than five
    minutes are refused, so a captured delivery cannot be replayed later.
    """
    verify_signature(body, headers, secret)
    try:
        event = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidSignature(f"signed body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidSignature("signed body is not a JSON object")
    return event
