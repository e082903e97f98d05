"""FastAPI dependencies: the shared services and the authenticated dock."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from bwv.custody.leaf import Event, Outcome
from bwv.ingest.docks import authenticate_dock
from bwv.ingest.finalise import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def refuse(
    services: Services, request: Request, actor: str, why: str, target: str | None = None
) -> None:
    """Record a refused request in the ledger (invariant 3: refusals are accesses too)."""
    services.ctx.ledger.append(
        Event(
            actor=actor,
            role="dock",
            action="access.denied",
            target=target,
            outcome=Outcome.REFUSED,
            reason=why,
            details={
                "method": request.method,
                "path": request.url.path,
                "client": request.client.host if request.client else None,
            },
        )
    )


async def current_dock(request: Request, services: ServicesDep) -> str:
    """The name of the dock whose token authorises this request; 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        name, why = None, "no bearer token"
    else:
        name, why = await run_in_threadpool(authenticate_dock, services.ctx.engine, token.strip())
    if why is not None:
        await run_in_threadpool(refuse, services, request, name or "unknown", why)
        raise HTTPException(
            401,
            f"not authorised: {why}",
            headers={"WWW-Authenticate": "Bearer", "Tus-Resumable": "1.0.0"},
        )
    assert name is not None
    return name


DockDep = Annotated[str, Depends(current_dock)]
