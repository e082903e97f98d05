"""Reading the service's records as a test checks them: clip rows.

A record source is an open ``Engine`` or a ``Context`` (read through its engine), or the
``Settings`` of a data directory or an ``IngestServer`` (whose database is opened for the one
read and closed again, so no test holds a running service's database open)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Union

from sqlalchemy import Engine, select

from bwv.base.settings import Settings
from bwv.records import database as db
from bwv.records.tables import Clip
from bwv.services.context import Context

CLIP = Clip.__table__

if TYPE_CHECKING:
    from tests.support.ingestserver import IngestServer

Source = Union[Engine, Context, Settings, "IngestServer"]


@contextlib.contextmanager
def opened(source: Source) -> Iterator[Engine]:
    """``source`` as an engine, for the ``with`` (see the module's docstring)."""
    if isinstance(source, Engine | Context):
        yield source if isinstance(source, Engine) else source.engine
        return
    settings = source if isinstance(source, Settings) else source.settings
    engine = db.make_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def clip_row(source: Source, evidence_id: str | None = None, *, sha256: str | None = None) -> Any:
    """The one clip row with this evidence id or SHA-256, or None; two rows fail the test."""
    column, value = (CLIP.c.evidence_id, evidence_id) if evidence_id else (CLIP.c.sha256, sha256)
    assert value, "clip_row needs an evidence id or a SHA-256"
    with opened(source) as engine, engine.connect() as conn:
        rows = conn.execute(select(CLIP).where(column == value)).all()
    assert len(rows) <= 1, f"{len(rows)} clip rows for {value}"
    return rows[0] if rows else None


def clip_rows(source: Source) -> list[Any]:
    with opened(source) as engine, engine.connect() as conn:
        return list(conn.execute(select(CLIP)).all())
