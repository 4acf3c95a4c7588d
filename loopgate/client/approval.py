"""``@require_approval`` and ``verify_webhook``: the two helpers agents reach for first."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast

import msgspec

from loopgate.channels.webhooks.signing import InvalidSignature, verify_signature
from loopgate.client.connection import LoopgateClient, Option
from loopgate.client.decision import NotApproved
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
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated function only once a human approves; else raise ``NotApproved``.

    ``message`` may be a callable, given the call's arguments, to ask about
    this very call (``lambda env: f"Deploy to {env}?"``). Works on plain and
    ``async`` functions; a plain one uses a blocking :class:`Loopgate`, an
    async one a :class:`LoopgateClient` (from ``LOOPGATE_URL`` unless given).
    """

    def text(*args: Any, **kwargs: Any) -> str:
        return message(*args, **kwargs) if callable(message) else message

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def gated_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                gate = client if isinstance(client, LoopgateClient) else LoopgateClient()
                try:
                    decision = await gate.ask(
                        text(*args, **kwargs),
                        options=options,
                        timeout=timeout,
                        session_id=session_id,
                    )
                finally:
                    if gate is not client:
                        await gate.close()
                if not decision.approved:
                    raise NotApproved(decision)
                return await cast(Callable[P, Awaitable[Any]], function)(*args, **kwargs)

            return cast(Callable[P, R], gated_async)

        @functools.wraps(function)
        def gated(*args: P.args, **kwargs: P.kwargs) -> R:
            gate = client if isinstance(client, Loopgate) else Loopgate()
            try:
                decision = gate.ask(
                    text(*args, **kwargs), options=options, timeout=timeout, session_id=session_id
                )
            finally:
                if gate is not client:
                    gate.close()
            if not decision.approved:
                raise NotApproved(decision)
            return function(*args, **kwargs)

        return gated

    return decorate


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
