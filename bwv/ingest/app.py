"""The ingest service application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from bwv import __version__
from bwv.access import AuthError, Principal
from bwv.config import Settings
from bwv.context import Context
from bwv.ingest.deps import (
    UNAUTHENTICATED,
    bearer_principal,
    client_address,
    record_denial,
)
from bwv.ingest.finalise import Services
from bwv.ingest.routes import clips, exports, ledger, people, receipts, tus
from bwv.ingest.uploads import Uploads
from bwv.store import open_store

log = logging.getLogger("bwv.ingest")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; fails at once (not at the first request) if the database, keys or
    store are unusable."""
    ctx = Context(settings)
    s = ctx.settings
    ctx.engine  # noqa: B018 - open and check the schema now
    ctx.signer  # noqa: B018
    store = open_store(s.store_url)
    store.check()
    assert s.upload_dir is not None
    services = Services(ctx, store, Uploads(s.upload_dir, s.tus_max_size, s.upload_expiry_seconds))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_housekeeping(services))
        try:
            yield
        finally:
            task.cancel()
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
    )
    app.state.services = services
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for module in (tus, receipts, people, clips, exports, ledger):
        app.include_router(module.router)
    return app


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
