"""Who am I, and the categories clips can be given."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from bwv.api.deps import Access, authorise
from bwv.api.schemas import PROBLEMS, CategoryOut, Me
from bwv.services.categories import categories

router = APIRouter(prefix="/api/v1", tags=["people"])


@router.get("/me", response_model=Me, responses=PROBLEMS)
def me(access: Annotated[Access, authorise("me")]) -> Me:
    """The caller's name and role, and when their token expires."""
    who = access.who
    return Me(name=who.name, role=str(who.role), token_expires_at=who.token_expires_at)


@router.get("/categories", response_model=list[CategoryOut], responses=PROBLEMS)
def list_categories(
    access: Annotated[Access, authorise("categories.list")],
) -> list[CategoryOut]:
    """Clip categories and how many days clips in each are kept from when they were recorded."""
    return [
        CategoryOut(name=name, retention_days=days)
        for name, days in sorted(categories(access.services.ctx.engine).items())
    ]
