"""The ingest service application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from bwv import __version__
from bwv.config import Settings
from bwv.context import Context
from bwv.ingest.finalise import Services
from bwv.ingest.routes import receipts, tus
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

    app = FastAPI(title="bwv ingest", version=__version__, lifespan=lifespan)
    app.state.services = services
    app.include_router(tus.router)
    app.include_router(receipts.router)
    return app


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
