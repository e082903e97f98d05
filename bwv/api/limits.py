"""What keeps the service up under abuse: authentication before any body is read, a body cap
per route, refusal leaves rate-limited per source (and summarised), deadlines on the request
head and body, and the transport (TLS, descriptors, connection limit) ``bwv serve`` runs on.

Invariant 3 still holds: every refusal is recorded, either as its own ``access.denied`` leaf
(within a source's budget) or counted into a periodic ``access.denied.summary`` leaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import json
import logging
import math
import re
import resource
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bwv.access import AuthError, Principal
from bwv.base.clock import system_clock
from bwv.base.settings import Settings
from bwv.custody.leaf import Event, Outcome, format_time

log = logging.getLogger("bwv.ingest")

# Answered without a token: a health probe for the load balancer, the API's own description.
PUBLIC_PATHS = frozenset(
    {
        "/api/v1/health",
        "/api/v1/health/live",
        "/api/v1/health/ready",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
    }
)
PUBLIC_PREFIXES = ("/docs/static/",)
# tus PATCH (and creation-with-upload) bodies are clips: bounded by Upload-Length, streamed to
# disk as they arrive, never held in memory.
STREAMED_PREFIX = "/files"
_EXPORTS = re.compile(r"^/api/v1/clips/[^/]+/exports$")
# Bodies above this are parsed off the event loop (a plan of several MiB takes ~0.1 s).
OFF_LOOP_JSON_BYTES = 256 * 1024
SUMMARY_ACTION = "access.denied.summary"
SERVICE_ACTOR, SERVICE_ROLE = "bwv", "system"  # as retention's leaves: the service itself
ANONYMOUS = "unauthenticated"  # the role of a caller with no valid token (as bwv.api.deps)
PRINCIPAL_KEY = "bwv.principal"  # the caller the middleware authenticated, in the ASGI scope
METRICS_PATH = "/api/v1/metrics"
# Who presented the metrics scrape credential (bwv.services.metrics), as leaves would name it.
SCRAPE_ACTOR, SCRAPE_ROLE = "metrics", "metrics-scraper"


def body_cap(settings: Settings, method: str, path: str) -> int | None:
    """The most a request body may hold on this route, in bytes; None for the streamed tus
    routes."""
    if path == STREAMED_PREFIX or path.startswith(STREAMED_PREFIX + "/"):
        return None
    if method == "POST" and _EXPORTS.match(path):
        # The plan travels as a JSON string: escaping may double it.
        return 2 * settings.max_plan_bytes + 64 * 1024
    return settings.max_body_bytes


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


# --- refusals: a budget of leaves per source, the rest counted ------------------------------


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    unrecorded: int = 0

    def refill(self, now: float, rate: float, burst: int) -> None:
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now


@dataclass(frozen=True)
class Unrecorded:
    """What one limiter counted in one window instead of recording it leaf by leaf."""

    refused: int
    kinds: dict[str, int]
    top: list[tuple[str, int]]  # the sources (or callers) counted most, most first
    others: int  # counted against sources not in ``top``
    first: datetime
    last: datetime


TOP_SOURCES = 20


def source_key(address: str | None) -> str:
    """The key a client address is limited by: an IPv4 address as it is, an IPv6 address by
    its /64 (one site's prefix, RFC 4291 §2.5.4: a host may use any address in it)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class RefusalLimiter:
    """Token buckets for refusal leaves: one global bucket, checked first, then one per key
    (a client address, see :func:`source_key`, or a caller's name). A refusal with a token
    in both gets its own leaf; beyond, it is counted, and :meth:`drain` hands the window's
    counts to the one summary leaf. At most ``max_sources`` keys are kept, least recently
    seen forgotten first (in O(1)); what a forgotten key had counted stays in the totals."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        global_rate: float | None = None,
        global_burst: int | None = None,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_sources, self.clock = rate, burst, max_sources, clock
        self.global_rate = global_rate if global_rate is not None else float("inf")
        self.global_burst = global_burst if global_burst is not None else 0
        self._global = _Bucket(float(self.global_burst), clock())
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._refused, self._others = 0, 0
        self._kinds: Counter[str] = Counter()
        self._first: datetime | None = None
        self._last: datetime | None = None

    def _source(self, key: str, now: float) -> _Bucket:
        found = self._sources.get(key)
        if found is not None:
            self._sources.move_to_end(key)
            return found
        while len(self._sources) >= self.max_sources:
            _, forgotten = self._sources.popitem(last=False)
            self._others += forgotten.unrecorded
        found = self._sources[key] = _Bucket(float(self.burst), now)
        return found

    def admit(self, key: str, kind: str = "refused") -> bool:
        """True: record this refusal as its own leaf. False: it is counted for the summary."""
        with self._lock:
            now = self.clock()
            s = self._source(key, now)
            s.refill(now, self.rate, self.burst)
            if self.global_burst:
                self._global.refill(now, self.global_rate, self.global_burst)
            if s.tokens >= 1 and (not self.global_burst or self._global.tokens >= 1):
                s.tokens -= 1
                self._global.tokens -= 1
                return True
            self._count(s, kind)
            return False

    def count(self, key: str, kind: str) -> None:
        """A refusal that never has a leaf of its own (e.g. a connection dropped for a slow
        head, or over the per-address connection cap)."""
        with self._lock:
            self._count(self._source(key, self.clock()), kind)

    def _count(self, s: _Bucket, kind: str) -> None:
        at = system_clock()
        s.unrecorded += 1
        self._refused += 1
        self._kinds[kind] += 1
        self._first = self._first or at
        self._last = at

    def retry_after(self, key: str) -> int:
        """Whole seconds until the key may have a refusal recorded again."""
        with self._lock:
            s = self._sources.get(key)
            missing = 1 - (s.tokens if s else 1)
            if self.global_burst:
                missing = max(missing, 1 - self._global.tokens)
        return max(1, int(missing / self.rate + 0.999)) if self.rate > 0 else 60

    def drain(self) -> Unrecorded | None:
        """The window's counts (None if nothing was counted); they start again from zero."""
        with self._lock:
            if not self._refused or self._first is None or self._last is None:
                return None
            counted = [(k, s.unrecorded) for k, s in self._sources.items() if s.unrecorded]
            top = heapq.nlargest(TOP_SOURCES, counted, key=lambda kv: kv[1])
            out = Unrecorded(
                self._refused,
                dict(self._kinds),
                top,
                self._refused - sum(n for _, n in top),
                self._first,
                self._last,
            )
            for s in self._sources.values():
                s.unrecorded = 0
            self._reset()
            return out


def summary_events(anonymous: Unrecorded | None, callers: Unrecorded | None = None) -> list[Event]:
    """At most one ``access.denied.summary`` leaf for the window: the refusals counted rather
    than recorded one by one, by kind, with the 20 client addresses (``sources``) and the 20
    authenticated callers (``callers``) counted most."""
    parts = [u for u in (anonymous, callers) if u is not None]
    if not parts:
        return []
    details: dict[str, Any] = {
        "refused": sum(u.refused for u in parts),
        "from": format_time(min(u.first for u in parts)),
        "to": format_time(max(u.last for u in parts)),
        "kinds": dict(sum((Counter(u.kinds) for u in parts), Counter())),
        "why": "refused past a rate limit, or dropped by the transport; counted here, not "
        "recorded one by one",
    }
    for name, u in (("sources", anonymous), ("callers", callers)):
        if u is not None:
            details[name] = [
                {"client" if name == "sources" else "caller": k, "refused": n} for k, n in u.top
            ]
            details[f"{name}_others"] = u.others
    return [
        Event(
            SERVICE_ACTOR,
            SERVICE_ROLE,
            SUMMARY_ACTION,
            outcome=Outcome.REFUSED,
            details=details,
        )
    ]


# --- the middleware ----------------------------------------------------------------------------


class TransportRefusal(Exception):
    """A refusal the middleware answers itself, before routing: not a
    :class:`~bwv.base.errors.BwvError`, because no route (and so no ``Access``) exists yet to
    record it through the one handler; :class:`RequestLimits` records it instead."""

    def __init__(self, status: int, why: str, **headers: str) -> None:
        super().__init__(why)
        self.status, self.why, self.headers = status, why, headers


class RequestLimits:
    """Pure ASGI middleware, before the app reads anything: a bearer token (user or dock) or
    401; a declared body over the route's cap, 413 at once; a chunked body counted as it
    arrives and cut at the cap. No body byte is read before the caller is known."""

    def __init__(
        self, app: ASGIApp, *, services: Any, limiter: RefusalLimiter, routers: Sequence[Any] = ()
    ) -> None:
        self.app, self.services, self.limiter = app, services, limiter
        self.routes = [r for router in routers for r in router.routes if hasattr(r, "path_regex")]

    def _path_params(self, path: str) -> dict[str, str]:
        """The route's path parameters (e.g. the evidence id a refusal names), before routing."""
        for route in self.routes:
            found = route.path_regex.match(path)
            if found:
                return dict(found.groupdict())
        return {}

    def _scrape(self, request: Request) -> bool:
        """Whether the request presents the metrics scrape credential (in constant time)."""
        metrics = getattr(self.services, "metrics", None)
        if metrics is None or not metrics.served or request.method != "GET":
            return False
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(metrics.is_scraper(token.strip()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        from bwv.api.deps import UNAUTHENTICATED, bearer_principal, client_address

        request = Request(scope)
        has_body = "transfer-encoding" in request.headers or request.headers.get(
            "content-length", "0"
        ) not in ("0", "")
        tus = scope["path"].startswith(STREAMED_PREFIX)
        extra = {"Tus-Resumable": "1.0.0"} if tus else {}
        if scope["path"] == METRICS_PATH and self._scrape(request):
            scope[PRINCIPAL_KEY] = Principal(SCRAPE_ACTOR, SCRAPE_ROLE, client_address(request))
            await self.app(scope, receive, send)  # a GET: the route reads no body
            return
        try:
            if "authorization" in request.headers:
                who = await run_in_threadpool(bearer_principal, self.services, request)
            else:  # refused before any database read: no thread needed
                who = bearer_principal(self.services, request)
        except AuthError as exc:
            anonymous = Principal(exc.name or "unknown", UNAUTHENTICATED, client_address(request))
            await self._refuse(
                scope,
                send,
                anonymous,
                TransportRefusal(401, exc.diagnosis, **extra),
                has_body,
                asked="upload" if tus else None,
            )
            return
        scope[PRINCIPAL_KEY] = who
        if not has_body:
            await self.app(scope, receive, send)
            return
        cap = body_cap(self.services.ctx.settings, scope["method"], scope["path"])
        try:
            declared = _content_length(request.headers.getlist("content-length"))
            if cap is None:
                await self.app(scope, receive, send)
                return
            if declared is not None and declared > cap:
                raise _too_large(cap)
            body = await _read_capped(receive, cap)
        except TransportRefusal as refused:
            refused.headers.update(extra)
            await self._refuse(scope, send, who, refused, True)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        who: Principal,
        refused: TransportRefusal,
        has_body: bool,
        asked: str | None = None,
    ) -> None:
        """Record the refusal (within the source's budget) and answer it; past the budget,
        429 and a count for the summary leaf."""
        from bwv.api.deps import record_denial

        request = Request({**scope, "path_params": self._path_params(scope["path"])})
        status, why, headers = refused.status, refused.why, dict(refused.headers)
        detail = f"not authorised: {why}" if status == 401 else why
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        anonymous = who.role == ANONYMOUS
        source = source_key(who.client)
        # An authenticated caller's refusal keeps its real status; record_denial limits only
        # its recording (per caller). An anonymous flood is answered 429 past its budget.
        if not anonymous or self.limiter.admit(source, str(status)):
            try:
                await run_in_threadpool(
                    record_denial, self.services, request, who, why[:500], asked=asked
                )
            except Exception:  # fail closed: refuse anyway, say the ledger could not record
                log.exception("could not record a refusal")
                status, detail = 503, "the custody ledger is unavailable; try again"
        else:
            wait = self.limiter.retry_after(source)
            status, detail = 429, f"too many refused requests from {who.client}; retry later"
            headers = {**headers, "Retry-After": str(wait)}
            headers.pop("WWW-Authenticate", None)
        if has_body:  # the body is never read: the connection cannot carry another request
            headers["Connection"] = "close"
        response = Response(
            json.dumps({"detail": detail}),
            status_code=status,
            media_type="application/json",
            headers={"Cache-Control": "no-store", **headers},
        )
        await response(scope, _no_body, send)


def _content_length(values: list[str]) -> int | None:
    if not values:
        return None
    if len(values) > 1 or not values[0].strip().isdigit():
        raise TransportRefusal(400, "Content-Length must be one whole number")
    return int(values[0])


def _too_large(cap: int) -> TransportRefusal:
    return TransportRefusal(413, f"request body over this route's limit of {cap} bytes")


async def _read_capped(receive: Receive, cap: int) -> bytes:
    """The whole body, refused with 413 the moment it passes ``cap``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise TransportRefusal(400, "the client went away before the request body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise _too_large(cap)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client to go away

    return replayed


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


# --- JSON bodies parsed off the event loop ---------------------------------------------------


class _OffLoopJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                if len(body) > OFF_LOOP_JSON_BYTES:
                    self._json = await run_in_threadpool(json.loads, body)
                else:
                    self._json = json.loads(body)
            except json.JSONDecodeError:
                raise
            except ValueError:  # not UTF-8: FastAPI would answer 400 with no leaf
                raise json.JSONDecodeError("the body is not UTF-8 JSON", "", 0) from None
        return self._json


class OffLoopJSONRoute(APIRoute):
    """A route whose JSON body is parsed in a worker thread when large (the event loop keeps
    serving docks meanwhile), and whose undecodable body is a recorded 422, not a bare 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def off_loop(request: Request) -> Response:
            return await handler(_OffLoopJSONRequest(request.scope, request.receive))

        return off_loop


def parse_json_off_loop(router: Any) -> None:
    """Make the router's routes :class:`OffLoopJSONRoute` (before it is included)."""
    for route in router.routes:
        if type(route) is APIRoute:
            route.__class__ = OffLoopJSONRoute


# --- the transport -----------------------------------------------------------------------------

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)
_HEAD_TOO_LARGE_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)
_HEAD_END = b"\r\n\r\n"


def deadline_protocol(
    base: type[asyncio.Protocol],
    head_timeout: float,
    body_idle_timeout: float,
    limiter: RefusalLimiter | None = None,
    *,
    per_address: int | None = None,
    max_head_bytes: int | None = None,
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools or h11) with what uvicorn lacks: a request head must
    be complete within ``head_timeout`` seconds of its first byte (or of the connection) and
    within ``max_head_bytes`` (431, RFC 6585 §5), a body may not stall for
    ``body_idle_timeout`` while the app waits for it, and one client address (an IPv6 /64)
    may hold at most ``per_address`` connections at once (the excess is closed at once, so
    one client cannot take every slot of the connection limit). What it drops, and uvicorn's
    own 400 and 503 answers, are counted into ``limiter``'s summary."""
    open_by_source: dict[str, int] = {}  # one event loop: no lock needed

    def counted(key: str, kind: str) -> None:
        if limiter is not None:
            limiter.count(key, kind)

    class Deadlines(base):  # type: ignore[valid-type, misc]
        _bwv_timer: asyncio.TimerHandle | None = None
        _bwv_kind = ""
        _bwv_seen: Any = None
        _bwv_source = "unknown"
        _bwv_refused = False
        _bwv_head = 0  # bytes of the request head so far
        _bwv_tail = b""  # its last bytes: a head end split across two reads is still seen

        def connection_made(self, transport: asyncio.Transport) -> None:
            peer = transport.get_extra_info("peername")
            self._bwv_source = source_key(peer[0] if isinstance(peer, tuple) else None)
            held = open_by_source.get(self._bwv_source, 0)
            if per_address is not None and held >= per_address:
                self._bwv_refused = True  # never seen by uvicorn: takes none of its slots
                counted(self._bwv_source, "connections over the per-address cap")
                transport.abort()
                return
            open_by_source[self._bwv_source] = held + 1
            super().connection_made(transport)
            self._bwv_seen = self.cycle
            self._bwv_arm("head", head_timeout)

        def data_received(self, data: bytes) -> None:
            if self._bwv_refused:
                return
            cycle = self.cycle
            if cycle is None or not cycle.more_body:  # reading a request head
                if self._bwv_timer is None and (cycle is None or cycle.response_complete):
                    self._bwv_arm("head", head_timeout)  # a new request head begins
                if not self._bwv_head_fits(data):
                    self._bwv_refuse_head()
                    return
            super().data_received(data)
            cycle = self.cycle
            if cycle is not self._bwv_seen:  # the head is complete
                self._bwv_seen = cycle
                self._bwv_head, self._bwv_tail = 0, b""
                self._bwv_cancel()
            if cycle is not None and not cycle.response_complete and cycle.more_body:
                self._bwv_arm("body", body_idle_timeout)  # idle: restarts with every byte
            elif self._bwv_kind == "body":
                self._bwv_cancel()

        def _bwv_head_fits(self, data: bytes) -> bool:
            """Whether the head stays within ``max_head_bytes`` (checked before the parser
            sees the bytes: uvicorn joins a head's pieces on the event loop)."""
            if max_head_bytes is None:
                return True
            room = max_head_bytes - self._bwv_head
            fits = len(data) <= room or _HEAD_END in self._bwv_tail + data[: max(0, room)]
            self._bwv_head += len(data)
            self._bwv_tail = (self._bwv_tail + data)[-3:]
            return fits

        def _bwv_refuse_head(self) -> None:
            counted(self._bwv_source, "request heads over the size limit (431)")
            self._bwv_cancel()
            self.transport.write(_HEAD_TOO_LARGE_431)
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            counted(self._bwv_source, "malformed requests (400)")
            super().send_400_response(msg)

        def on_headers_complete(self) -> None:  # httptools only: h11 has no such callback
            limit = self.limit_concurrency
            if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
                counted(self._bwv_source, "over the connection limit (503)")
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._bwv_refused:
                return
            left = open_by_source.get(self._bwv_source, 1) - 1
            if left > 0:
                open_by_source[self._bwv_source] = left
            else:
                open_by_source.pop(self._bwv_source, None)
            self._bwv_cancel()
            super().connection_lost(exc)

        def _bwv_arm(self, kind: str, seconds: float) -> None:
            self._bwv_cancel()
            self._bwv_kind = kind
            self._bwv_timer = self.loop.call_later(seconds, self._bwv_expired)

        def _bwv_cancel(self) -> None:
            if self._bwv_timer is not None:
                self._bwv_timer.cancel()
            self._bwv_timer, self._bwv_kind = None, ""

        def _bwv_expired(self) -> None:
            kind = self._bwv_kind
            self._bwv_timer, self._bwv_kind = None, ""
            if self.transport.is_closing():
                return
            if kind == "body":
                cycle = self.cycle
                if cycle is None or not cycle.more_body or cycle.response_complete:
                    return
                if self.flow.read_paused:  # the app is slow, not the client: wait again
                    self._bwv_arm("body", body_idle_timeout)
                    return
                self.transport.close()  # the app sees the client go away
                return
            counted(self._bwv_source, "request heads too slow (408)")
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_TIMEOUT_408)
            self.transport.close()

    Deadlines.__name__ = Deadlines.__qualname__ = f"Deadline{base.__name__}"
    return Deadlines


def http_protocol() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


# TLS 1.2 with forward secrecy and AEAD only (RFC 9325 §4.2); TLS 1.3's suites are all AEAD.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


def harden_tls(context: ssl.SSLContext) -> ssl.SSLContext:
    """Minimum TLS 1.2, AEAD suites only, no compression or renegotiation (RFC 9325)."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return context


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def raise_descriptor_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# Descriptors kept back from connections: database, store, upload part files, logs.
RESERVED_DESCRIPTORS = 64


def connection_limit(settings: Settings, descriptors: int) -> int:
    """At most ``max_connections``, and never more than the descriptors allow."""
    return max(8, min(settings.max_connections, descriptors - RESERVED_DESCRIPTORS))


def run(
    app: Any,
    settings: Settings,
    *,
    host: str,
    port: int,
    cert: str | None,
    key: str | None,
    log_level: str,
    **options: Any,
) -> None:
    """Serve ``app`` under uvicorn with the limits above (``options``: more uvicorn.Config)."""
    import uvicorn

    descriptors = raise_descriptor_limit()
    limit = connection_limit(settings, descriptors)
    if limit < settings.max_connections:
        log.warning("only %d descriptors: at most %d connections", descriptors, limit)
    limiter = getattr(app.state, "refusals", None)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_context_factory=(lambda _config, default: harden_tls(default())) if cert else None,
        http=deadline_protocol(
            http_protocol(),
            settings.header_timeout_seconds,
            settings.body_idle_timeout_seconds,
            limiter,
            per_address=settings.max_connections_per_address,
            max_head_bytes=settings.max_head_bytes,
        ),
        limit_concurrency=limit,
        backlog=settings.listen_backlog,
        timeout_keep_alive=5,
        # SIGTERM: stop accepting, let requests in flight finish for this long (the drain).
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        **options,
    )
    _server_class()(config, handshake_timeout=settings.header_timeout_seconds).run()


def _server_class() -> type[Any]:
    import uvicorn

    class HandshakeDeadline(uvicorn.Server):
        """uvicorn's server with a TLS handshake deadline (asyncio's default is 60 s: a
        connection that never finishes its handshake would hold a descriptor that long);
        uvicorn.Config has no option for it, so it is added to the loop's create_server."""

        def __init__(self, config: Any, *, handshake_timeout: float) -> None:
            super().__init__(config)
            self.handshake_timeout = handshake_timeout

        async def startup(self, sockets: Any = None) -> None:
            loop = asyncio.get_running_loop()
            create = loop.create_server

            async def create_server(*args: Any, **kwargs: Any) -> Any:
                if kwargs.get("ssl") is not None:
                    kwargs.setdefault("ssl_handshake_timeout", self.handshake_timeout)
                return await create(*args, **kwargs)

            loop.create_server = create_server  # type: ignore[method-assign]
            try:
                await super().startup(sockets)
            finally:
                del loop.create_server

    return HandshakeDeadline
