"""The webhook sender: POSTs each decision to its request's ``callback_url``.

It follows the log from its checkpoint and acts on the final events
(``ResponseReceived``, ``RequestCancelled``, ``RequestExpired``) of requests
with a ``callback_url``, or in a session that has one as its default (read
when the request is decided): one task per delivery, so one slow receiver holds up
nobody. Each attempt is signed (``loopgate/channels/webhooks/signing.py``) and recorded on the
request's stream with the version read: ``WebhookDelivered`` for a 2xx,
``WebhookFailed`` otherwise. Failures are retried after
``webhooks.retry_seconds``, doubling up to ``webhooks.max_retry_seconds``,
while the decision is younger than ``webhooks.max_age_seconds``; the last
failure is recorded with ``final=True``.

The request's stream is the delivery's state: before each attempt it is read
again, so after a restart (the checkpoint is saved behind work in flight) a
delivery resumes with the next attempt number, after what is left of its
backoff, under the same delivery id, and one recorded delivered is never sent
again. One process holds the ``webhooks`` lease. The gap left, as with
Telegram: a crash between the receiver's 2xx and the append sends that
attempt again, with the same delivery id, so the receiver can drop it.

Unless ``webhooks.allow_private_networks`` is set, the POST connects only to
addresses :class:`PublicOnlyResolver` vetted as it resolved them: a host whose
DNS answer changes between the check and the connection (DNS rebinding) cannot
steer the sender to a private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import aiohttp
import msgspec
import structlog
from aiohttp.abc import ResolveResult

from loopgate import __version__
from loopgate.channels.webhooks.secrets import SecretBox, WebhookSecrets
from loopgate.channels.webhooks.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    delivery_id,
    payload,
    sign,
)
from loopgate.commands.callback_urls import (
    CallbackUrlRefused,
    check_callback_url,
    refused_address,
)
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.config import WebhooksConfig
from loopgate.errors import ConcurrencyError
from loopgate.events import (
    Event,
    Meta,
    RecordedEvent,
    RequestCancelled,
    RequestExpired,
    ResponseReceived,
    WebhookDelivered,
    WebhookFailed,
)
from loopgate.reactors.follower import LogFollower
from loopgate.reactors.lease import Lease

log = structlog.get_logger(__name__)

NAME = "webhook-sender"
CONCURRENT_POSTS = 32
RECORD_ATTEMPTS = 5


class Failure(msgspec.Struct, frozen=True):
    """Why one attempt failed; ``final`` when retrying cannot help."""

    message: str
    final: bool = False


class WebhookSender(LogFollower):
    name = NAME

    def __init__(
        self,
        requests: Requests,
        sessions: Sessions,
        lease: Lease,
        settings: WebhooksConfig,
        box: SecretBox,
    ) -> None:
        super().__init__(requests.store, requests.clock, lease)
        self._requests, self._sessions = requests, sessions
        self._settings = settings
        self._secrets = WebhookSecrets(requests.store, requests.clock, box)
        self._posting = asyncio.Semaphore(CONCURRENT_POSTS)
        self._http: aiohttp.ClientSession | None = None

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def work_for(self, record: RecordedEvent) -> Coroutine[Any, Any, None] | None:
        match record.event:
            case (
                ResponseReceived(request_id=rid)
                | RequestCancelled(request_id=rid)
                | RequestExpired(request_id=rid)
            ):
                return self._deliver(rid, record)
            case _:
                return None

    def _backoff(self, failures: int) -> float:
        """The wait after ``failures`` failed attempts."""
        wait = self._settings.retry_seconds * 2 ** (failures - 1)
        return float(min(wait, self._settings.max_retry_seconds))

    async def _deliver(self, request_id: str, decided: RecordedEvent) -> None:
        view = await self._requests.find_request(request_id)
        url = view.callback_url or await self._sessions.session_callback_url(
            view.tenant, view.session_id
        )
        if url is None:
            return
        stream = f"request-{request_id}"
        body = msgspec.json.encode(payload(view))
        deadline = decided.recorded_at + timedelta(seconds=self._settings.max_age_seconds)
        tenant = decided.meta.tenant
        while True:
            history = await self._store.read_stream(stream)
            failures = [r.event for r in history if isinstance(r.event, WebhookFailed)]
            if any(
                isinstance(r.event, WebhookDelivered)
                or (isinstance(r.event, WebhookFailed) and r.event.final)
                for r in history
            ):
                return  # done before a restart, or by the previous lease holder
            if failures:
                waited = (self._clock() - failures[-1].failed_at).total_seconds()
                await asyncio.sleep(max(0.0, self._backoff(len(failures)) - waited))
            attempt = len(failures) + 1
            outcome = await self._attempt(url, body, request_id, tenant)
            now = self._clock()
            event: Event
            if isinstance(outcome, int):
                event = WebhookDelivered(
                    request_id=request_id,
                    url=url,
                    status_code=outcome,
                    attempt=attempt,
                    delivered_at=now,
                )
            else:
                retry_at = now + timedelta(seconds=self._backoff(attempt))
                event = WebhookFailed(
                    request_id=request_id,
                    url=url,
                    error=outcome.message,
                    attempt=attempt,
                    final=outcome.final or retry_at > deadline,
                    failed_at=now,
                )
            await self._record(
                stream, event, Meta(tenant=tenant, causation_id=str(decided.position))
            )
            if isinstance(event, WebhookDelivered):
                self._requests.metrics.delivered("webhook")
            else:
                self._requests.metrics.delivery_failed("webhook")
            log.info(
                "webhook delivered" if isinstance(outcome, int) else "webhook attempt failed",
                request_id=request_id,
                attempt=attempt,
                **({"status": outcome} if isinstance(outcome, int) else {"error": outcome.message}),
            )
            if isinstance(event, WebhookDelivered) or event.final:
                return

    async def _attempt(self, url: str, body: bytes, request_id: str, tenant: str) -> int | Failure:
        """One signed POST: the 2xx status it got, or why it failed."""
        if not self._settings.allow_private_networks:
            try:
                # Again at delivery: the host's DNS may have changed since creation.
                await check_callback_url(url)
            except CallbackUrlRefused as refused:
                return Failure(str(refused), final=True)
        secret = await self._secrets.current(tenant)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"loopgate-webhooks/{__version__}",
            DELIVERY_HEADER: delivery_id(request_id),
            SIGNATURE_HEADER: sign(body, secret, int(self._clock().timestamp())),
        }
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=self._connector())
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_seconds)
        try:
            async with (
                self._posting,
                self._http.post(
                    url, data=body, headers=headers, timeout=timeout, allow_redirects=False
                ) as response,
            ):
                status = response.status
        except TimeoutError:
            return Failure(f"no answer within {self._settings.timeout_seconds:g} s")
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, RebindRefused):
                return Failure(str(exc.os_error), final=True)  # as the check before would say
            return Failure(f"{type(exc).__name__}: {exc}")
        except aiohttp.ClientError as exc:
            return Failure(f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return status
        return Failure(f"HTTP {status}")

    def _connector(self) -> aiohttp.TCPConnector:
        if self._settings.allow_private_networks:
            return aiohttp.TCPConnector()
        return aiohttp.TCPConnector(resolver=PublicOnlyResolver())

    async def _record(
        self, stream: str, event: WebhookDelivered | WebhookFailed, meta: Meta
    ) -> None:
        """Append ``event`` after whatever the stream holds now (no new decision can be there)."""
        for attempt in range(RECORD_ATTEMPTS):
            history = await self._store.read_stream(stream)
            if any(
                isinstance(r.event, type(event)) and r.event.attempt == event.attempt
                for r in history
            ):
                return  # recorded by an overlapping lease holder
            try:
                await self._store.append(stream, history[-1].version, [event], meta)
                return
            except ConcurrencyError:
                if attempt == RECORD_ATTEMPTS - 1:
                    raise


class RebindRefused(OSError):
    """The callback host resolved to a refused address as the sender connected."""


class PublicOnlyResolver(aiohttp.ThreadedResolver):
    """Resolves as aiohttp does, and refuses a host with any non-public address.

    The connection then goes to one of exactly the addresses checked here, so
    the check and the connection cannot see two different DNS answers.
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].partition("%")[0])
            if refused_address(address):
                raise RebindRefused(
                    f"callback_url: {host!r} now resolves to {address}, a loopback, private "
                    "or reserved address"
                )
        return results
