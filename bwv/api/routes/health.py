"""The health probes: answered without a token, recording nothing (a load balancer calls them
every few seconds). What they say names no path and no credential."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bwv.api.schemas import CheckOut, ReadinessOut
from bwv.services import health as checks

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers. Nothing is touched: a database or store outage is not a reason to
    restart the process (readiness says that)."""
    return {"status": "live"}


@router.get(
    "/health/ready",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "Not ready: `failed` names what."}},
)
async def ready(request: Request) -> JSONResponse:
    """Whether this instance can serve requests now: the database answers a query, the store
    of record takes writes, the upload folder is writable. 200 if all three hold, else 503
    naming what failed; each check has ``readiness_timeout_seconds`` to answer. Asked often, it
    checks at most once a second (``bwv.services.health.Probe``)."""
    probe: checks.Probe = request.app.state.readiness
    found = await probe.readiness()
    body = ReadinessOut(
        status="ready" if found.ok else "not ready",
        checks={c.name: CheckOut(ok=c.ok, detail=c.detail) for c in found.checks},
        failed=found.failed,
    )
    return JSONResponse(
        body.model_dump(),
        status_code=200 if found.ok else 503,
        headers={"Cache-Control": "no-store", **({} if found.ok else {"Retry-After": "5"})},
    )
