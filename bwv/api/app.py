"""The ingest service application."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bwv import __version__
from bwv.access import AuthError, Principal
from bwv.api import errors, limits
from bwv.api.deps import (
    UNAUTHENTICATED,
    bearer_principal,
    client_address,
    record_denial,
)
from bwv.api.routes import clips, exports, health, keys, ledger, metrics, people, receipts, tus
from bwv.base.clock import system_clock
from bwv.base.settings import Settings
from bwv.ingest.uploads import Uploads
from bwv.services import fixity
from bwv.services import health as health_checks
from bwv.services.context import Context, Services
from bwv.services.disclosure import sweep_work
from bwv.store import StoreError

log = logging.getLogger("bwv.ingest")
ROUTES = (tus, health, receipts, keys, people, clips, exports, ledger)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; fails at once (not at the first request) if the database, keys or
    store are unusable."""
    ctx = Context(settings)
    s = ctx.settings
    ctx.engine  # noqa: B018 - open and check the schema now
    ctx.signer  # noqa: B018
    store = ctx.store  # the one the disclosure service uses too
    store.check()
    assert s.upload_dir is not None
    services = Services(ctx, store, Uploads(s.upload_dir, s.tus_max_size, s.upload_expiry_seconds))
    # Only once this process holds the upload folder's lock: a second serve must not touch the
    # running one's scratch copies.
    sweep_work(s.data_dir)  # scratch copies a killed service left (it ran no cleanup)
    refusals = limits.RefusalLimiter(
        s.refusal_rate,
        s.refusal_burst,
        global_rate=s.refusal_global_rate,
        global_burst=s.refusal_global_burst,
    )
    # Authenticated callers' refusals: the recording is limited per caller, never the answer.
    callers = limits.RefusalLimiter(
        s.refusal_rate,
        s.refusal_burst,
        global_rate=s.refusal_global_rate,
        global_burst=s.refusal_global_burst,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_housekeeping(services))
        stop = threading.Event()  # a scrub in its thread stops at the next chunk on shutdown
        # Its own thread: a scrub of hours never holds one of the default executor's threads
        # that requests and housekeeping share.
        scrubber = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bwv-fixity")
        scrub = asyncio.create_task(_fixity_scrub(services, stop, scrubber))
        summaries = asyncio.create_task(_refusal_summaries(services, refusals, callers))
        try:
            yield
        finally:
            stop.set()
            task.cancel()
            scrub.cancel()
            summaries.cancel()
            scrubber.shutdown(wait=False, cancel_futures=True)
            _record_summaries(services, refusals, callers)  # counted is not lost on a stop
            ctx.close()

    app = FastAPI(
        title="bwv",
        summary="Body-worn video evidence: ingest, search, disclosure, custody.",
        description=(
            "Every request that reads or changes evidence, and every refusal, is a leaf in the "
            "custody ledger. Roles and what each may do: docs/API.md."
        ),
        version=__version__,
        lifespan=lifespan,
        # FastAPI's pages load Swagger UI and ReDoc from a CDN: blank on a closed network.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.state.readiness = health_checks.Probe(services)
    app.state.refusals = refusals
    app.state.caller_refusals = callers
    # The metrics endpoint exists only with a scrape credential configured.
    mounted = (*ROUTES, metrics) if services.metrics.served else ROUTES
    routers = [m.router for m in mounted]
    app.add_middleware(limits.RequestLimits, services=services, limiter=refusals, routers=routers)
    app.add_middleware(CountRefusals, services=services)  # outermost: sees every answer
    _local_docs(app)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    errors.install(app)
    for module in mounted:
        limits.parse_json_off_loop(module.router)
        app.include_router(module.router)
    return app


class CountRefusals:
    """Pure ASGI middleware: every answer with an error status (the middleware's own refusals,
    the handler's, FastAPI's) counted by status in the instance's metrics. What the transport
    drops before the app (408, 431, the connection caps) is in the refusal summaries instead."""

    def __init__(self, app: ASGIApp, *, services: Services) -> None:
        self.app, self.metrics = app, services.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.metrics.refused(message["status"])
            await send(message)

        await self.app(scope, receive, counted)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A request the schema rejects is a refusal too (invariant 3): record it, then answer
    FastAPI's usual 422."""
    assert isinstance(exc, RequestValidationError)
    services = request.app.state.services

    def record() -> None:
        try:
            who = bearer_principal(services, request)
        except AuthError as denied:
            who = Principal(denied.name or "unknown", UNAUTHENTICATED, client_address(request))
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        record_denial(services, request, who, f"invalid request: {problems}"[:500])

    await run_in_threadpool(record)
    return await request_validation_exception_handler(request, exc)


async def _fixity_scrub(
    services: Services, stop: threading.Event, executor: ThreadPoolExecutor
) -> None:
    """Re-hash the store when the last ``store.verified`` leaf (of any instance, or of
    ``bwv audit fixity``) is older than ``fixity_every_seconds``; in a thread, so requests are
    served meanwhile (in ``executor``, its own). Recorded as ``store.verified`` and
    ``store.damaged`` leaves."""
    every = services.ctx.settings.fixity_every_seconds
    if every <= 0:
        return
    while True:
        try:
            now = system_clock()
            last = await asyncio.to_thread(fixity.last_verified, services.ctx) or now
            if (now - last).total_seconds() >= every:
                report = await asyncio.get_running_loop().run_in_executor(
                    executor,
                    functools.partial(
                        fixity.run_fixity,
                        services.ctx,
                        services.store,
                        actor=fixity.SCRUB_ACTOR,
                        role=fixity.SCRUB_ROLE,
                        stop=stop,
                    ),
                )
                if not report.ok:
                    log.error("fixity: %s", report.summary())
                last = now
            wait = every - (system_clock() - last).total_seconds()
        except fixity.FixityStopped:
            return
        except StoreError as exc:  # unreachable now: say so, try again in a while
            log.warning("fixity scrub could not read the store: %s", exc.diagnosis)
            wait = min(every, 300.0)
        except Exception:  # the scrub must never take the service down
            log.exception("fixity scrub failed")
            wait = min(every, 300.0)
        await asyncio.sleep(max(1.0, min(wait, 3600.0)))


def _local_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from assets served here (the fastapi-offline package bundles
    them); without that package, no /docs page: /openapi.json is the API's description."""
    try:
        import fastapi_offline
    except ImportError:
        return
    from pathlib import Path

    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs/static", StaticFiles(directory=static), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="bwv API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
        )


def _record_summaries(
    services: Services, refusals: limits.RefusalLimiter, callers: limits.RefusalLimiter
) -> None:
    events = limits.summary_events(refusals.drain(), callers.drain())
    if events:
        services.ctx.ledger.append_many(events)


async def _refusal_summaries(
    services: Services, refusals: limits.RefusalLimiter, callers: limits.RefusalLimiter
) -> None:
    """Every ``refusal_summary_seconds``: one ``access.denied.summary`` leaf for the refusals
    counted (past a rate limit, or dropped by the transport) rather than recorded one by one."""
    every = max(0.5, services.ctx.settings.refusal_summary_seconds)
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(_record_summaries, services, refusals, callers)
        except Exception:  # housekeeping must never take the service down
            log.exception("could not record refusal summaries")


async def _housekeeping(services: Services) -> None:
    """Expire stale uploads; issue a checkpoint when one is due on an idle log."""
    interval = min(60.0, max(1.0, services.uploads.expiry_seconds / 4))
    while True:
        try:
            removed = await asyncio.to_thread(services.uploads.sweep)
            if removed:
                log.info("expired %d stale uploads", removed)
            await asyncio.to_thread(services.ctx.ledger.checkpoint_if_due)
        except Exception:  # housekeeping must never take the service down
            log.exception("housekeeping failed")
        await asyncio.sleep(interval)
