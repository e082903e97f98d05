"""The one answer to every :class:`~bwv.base.errors.BwvError` a request raises: its status, its
pathless line as ``{"detail": line}`` (the ``Problem`` of the API's schema), its headers; and,
first, its record in the custody ledger (invariant 3), unless a leaf tells of it already.

A refusal (4xx) is an ``access.denied`` leaf of who asked what, and why not
(:meth:`Access.refused`); a failure (5xx, the server's fault) is the request's own leaf with
outcome ``failed`` (:meth:`Access.failed`). Routes raise; they do not map errors by hand.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from bwv.api.deps import Access, NotAuthorised, record_unauthorised
from bwv.base.errors import BwvError
from bwv.redact.plan import NotApplicable

log = logging.getLogger("bwv.ingest")

ANSWER_HEADERS = "bwv_answer_headers"
"""``request.state`` key: headers every answer of a router carries, errors too (tus's)."""


def record(request: Request, exc: BwvError) -> None:
    """The refusal or failure as a leaf, by whoever the request's :class:`Access` names."""
    if exc.recorded:
        return
    if isinstance(exc, NotAuthorised):
        record_unauthorised(request.app.state.services, request, exc)
        return
    access = getattr(request.state, "access", None)
    if not isinstance(access, Access):  # no policy applies (the keys): nothing about evidence
        log.warning("%s answered %d: %s", request.url.path, exc.status, exc.diagnosis)
        return
    if exc.refusal:
        access.refused(exc)
    else:
        access.failed(exc)


def _detail(exc: BwvError) -> object:
    if isinstance(exc, NotApplicable):
        # What cannot apply to the clip or plan keeps FastAPI's 422 list form, with one entry.
        return [{"loc": ["body", exc.field], "msg": exc.shown, "type": "value_error"}]
    return exc.shown


def _carries_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return request.headers.get("transfer-encoding") is not None or (length or "0") != "0"


async def answer(request: Request, exc: Exception) -> Response:
    """Record, then answer, a :class:`BwvError`."""
    assert isinstance(exc, BwvError)
    await run_in_threadpool(record, request, exc)
    always = getattr(request.state, ANSWER_HEADERS, None)
    headers = {**(always or {}), **exc.headers}
    if always is not None and exc.refusal and _carries_body(request):
        # Maybe answered before the body was read: close rather than wait to drain it.
        headers["Connection"] = "close"
    return JSONResponse({"detail": _detail(exc)}, status_code=exc.status, headers=headers)


async def _disconnected(request: Request, exc: Exception) -> Response:
    return Response(status_code=400)  # nobody is listening any more


def install(app: FastAPI) -> None:
    app.add_exception_handler(BwvError, answer)
    app.add_exception_handler(ClientDisconnect, _disconnected)
