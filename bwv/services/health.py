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
import time
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


class Probe:
    """Readiness for one running service, safe to ask as often as anyone likes (it needs no
    token): a result younger than ``max_age`` seconds is answered again, probes that arrive
    together share one round of checks, and a check still running (a database that does not
    answer) is waited for, never started a second time. However many ask, at most one thread
    per check is busy and the database and store see at most one probe per ``max_age``."""

    def __init__(self, services: Services, *, max_age: float = 1.0) -> None:
        self.services, self.max_age = services, max_age
        self._work: dict[str, asyncio.Future[str]] = {}
        self._round: asyncio.Future[Readiness] | None = None
        self._last: tuple[float, Readiness] | None = None

    async def readiness(self) -> Readiness:
        if self._last is not None and time.monotonic() - self._last[0] < self.max_age:
            return self._last[1]
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._checks())
        return await asyncio.shield(self._round)

    async def _checks(self) -> Readiness:
        timeout = self.services.ctx.settings.readiness_timeout_seconds
        found = Readiness(tuple(await asyncio.gather(*(self._check(n, timeout) for n in CHECKS))))
        self._last = (time.monotonic(), found)
        return found

    def _start(self, name: str) -> asyncio.Future[str]:
        work = self._work.get(name)
        if work is None or work.done():
            work = asyncio.ensure_future(asyncio.to_thread(_RUN[name], self.services))
            work.add_done_callback(_retrieved)
            self._work[name] = work
        return work

    async def _check(self, name: str, timeout: float) -> Check:
        try:
            detail = await asyncio.wait_for(asyncio.shield(self._start(name)), timeout)
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


def _retrieved(work: asyncio.Future[str]) -> None:
    """A check that ended after its probe gave up on it: its error is logged by the next."""
    if not work.cancelled():
        work.exception()


async def readiness(services: Services) -> Readiness:
    """Every check once, now (each in a thread, bounded by ``readiness_timeout_seconds``)."""
    return await Probe(services, max_age=0).readiness()
