"""Liveness and readiness, for a load balancer or an orchestrator.

Live: the process answers (nothing is touched). Ready: the parts a request needs answer now:
the database a query, the store of record a write (:meth:`ObjectStore.check`), the upload
folder a file. Each check has ``readiness_timeout_seconds`` to answer; one that does not is
failed. What a check says is pathless and holds no credential (it is shown to anyone who asks,
as ``/api/v1/health`` is); the full diagnosis goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from bwv.base.errors import BwvError
from bwv.records import database as db
from bwv.services.context import Services

log = logging.getLogger("bwv.health")

CHECKS = ("database", "store", "uploads")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]


class _NotReady(Exception):
    def __init__(self, shown: str, diagnosis: str) -> None:
        super().__init__(diagnosis)
        self.shown, self.diagnosis = shown, diagnosis


def _database(services: Services) -> str:
    try:
        db.ping(services.ctx.engine)
    except SQLAlchemyError as exc:
        # The driver's message may name the host, port, user or database: not shown.
        raise _NotReady(
            f"the database does not answer a query ({type(exc).__name__})", str(exc)
        ) from None
    return "answers a query"


def _store(services: Services) -> str:
    try:
        services.store.check()
    except BwvError as exc:
        raise _NotReady(
            f"the store of record cannot take writes: {exc.shown}", exc.diagnosis
        ) from None
    return "takes writes"


def _uploads(services: Services) -> str:
    folder = services.ctx.settings.upload_dir
    assert folder is not None
    probe = folder / f".ready-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ready")
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise _NotReady(
            f"the upload folder is not writable: {exc.strerror}", f"{folder}: {exc}"
        ) from None
    return "writable"


_RUN: dict[str, Callable[[Services], str]] = {
    "database": _database,
    "store": _store,
    "uploads": _uploads,
}


async def _run(services: Services, name: str, timeout: float) -> Check:
    try:
        detail = await asyncio.wait_for(asyncio.to_thread(_RUN[name], services), timeout)
    except _NotReady as exc:
        log.warning("not ready: %s: %s", name, exc.diagnosis)
        return Check(name, False, exc.shown)
    except TimeoutError:
        log.warning("not ready: %s did not answer within %.1f s", name, timeout)
        return Check(name, False, f"did not answer within {timeout:g} seconds")
    except Exception:  # a probe must answer, whatever broke
        log.exception("readiness check %s failed", name)
        return Check(name, False, "the check failed (see the service's log)")
    return Check(name, True, detail)


async def readiness(services: Services) -> Readiness:
    """Every check, at once (each in a thread, bounded by ``readiness_timeout_seconds``)."""
    timeout = services.ctx.settings.readiness_timeout_seconds
    found = await asyncio.gather(*(_run(services, name, timeout) for name in CHECKS))
    return Readiness(tuple(found))
