"""Prometheus metrics (``bwv.services.metrics``), for the scrape credential only. Mounted only
when ``BWV_METRICS_TOKEN_FILE`` is set: without it the path is unknown (404)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from bwv.api.deps import ScraperDep
from bwv.api.schemas import PROBLEMS
from bwv.services.metrics import CONTENT_TYPE

router = APIRouter(prefix="/api/v1", tags=["metrics"])


@router.get(
    "/metrics",
    responses={
        **PROBLEMS,
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The Prometheus text exposition format.",
        },
    },
)
def metrics(access: ScraperDep) -> Response:
    """Every metric of this instance; the ledger's size is read now. Needs
    ``Authorization: Bearer <the content of BWV_METRICS_TOKEN_FILE>``; any user's or dock's
    token is refused (403) and recorded, a request without one is 401."""
    body = access.services.metrics.render()
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
