"""The service's verifier keys and the chain of rotation statements between them.

Open to any caller with a valid token, users and docks alike, and recording no leaf when
answered: what it serves is public and self-verifying, nothing here is trusted for being
served (a dock, an officer's client or a witness follows the statements from the key it pinned,
checking each link's signatures, C2SP signed notes), and it reveals nothing about evidence. It
is not open to anonymous callers only so that the service keeps one rule (nothing but the health
probe and the API description answers without a token); a refused caller is recorded as ever.
A witness without a token is handed the statements as a file (``--rotations``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from bwv.api.deps import ServicesDep, authenticated
from bwv.api.schemas import Problem
from bwv.services.keys import verifier_keys

router = APIRouter(prefix="/api/v1", tags=["keys"])


class KeysOut(BaseModel):
    origin: str = Field(description="The log's origin, the name every key signs under.")
    current: str = Field(description="The verifier key signing now.")
    keys: list[str] = Field(description="Every verifier key ever used, oldest first.")
    rotations: list[str] = Field(
        description="Rotation statements (C2SP signed notes), oldest first; docs/AUDIT.md."
    )


@router.get(
    "/keys",
    response_model=KeysOut,
    responses={status: {"model": Problem} for status in (401, 503)},
)
def keys(request: Request, services: ServicesDep) -> KeysOut:
    """The key signing now, every key in the keyring, and the rotation statements, oldest first
    (each signed by the key it replaces and by the new key)."""
    authenticated(services, request, "keys")
    keys = verifier_keys(services.ctx)  # unreadable: 503
    return KeysOut(
        origin=keys.origin,
        current=keys.current,
        keys=keys.keys,
        rotations=keys.rotations,
    )
