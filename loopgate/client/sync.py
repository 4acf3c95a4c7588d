"""The blocking client: the async :class:`LoopgateClient`, driven on a private event loop.

Its loop runs in a daemon thread of its own, so the client works the same
from a plain script, a thread pool or code already inside an event loop (a
notebook), where ``asyncio.run`` would refuse. Every call is the async
client's, so the two cannot drift apart::

    with Loopgate("http://127.0.0.1:8080") as gate:
        if gate.ask("Deploy v2.1?", options=["Deploy", "Hold"]).approved: ...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack

from loopgate.client.connection import AskFields, LoopgateClient, SubmitFields
from loopgate.client.decision import Decision

T = TypeVar("T")


class Loopgate:
    """Blocking ``ask`` / ``submit`` / ``wait`` / ``cancel``; see :class:`LoopgateClient`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="loopgate-client", daemon=True
        )
        self._thread.start()
        self.client = LoopgateClient(base_url, api_key)

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. Ctrl-C in the caller: stop the wait on the loop too
            raise

    def __enter__(self) -> Loopgate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def ask(self, message: str, **fields: Unpack[AskFields]) -> Decision:
        return self._run(self.client.ask(message, **fields))

    def submit(self, message: str, **fields: Unpack[SubmitFields]) -> str:
        return self._run(self.client.submit(message, **fields))

    def wait(self, request_id: str, timeout: float | None = None) -> Decision:
        return self._run(self.client.wait(request_id, timeout))

    def cancel(self, request_id: str, reason: str | None = None) -> Decision:
        return self._run(self.client.cancel(request_id, reason))

    def answer(
        self,
        request_id: str,
        *,
        option: str | None = None,
        text: str | None = None,
        args: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Answer as an operator (needs operator credentials); for scripts and tests."""
        return self._run(self.client.answer(request_id, option=option, text=text, args=args))

    def redeem_receipt(self, receipt: str, action: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`LoopgateClient.redeem_receipt`: once per receipt, for its action only."""
        return self._run(self.client.redeem_receipt(receipt, action))

    def jwks(self) -> dict[str, Any]:
        return self._run(self.client.jwks())
