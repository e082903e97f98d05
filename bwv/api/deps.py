"""FastAPI dependencies: the shared services, who is calling, and whether the policy lets them.

Every request to the API passes ``authorise`` (or ``current_dock`` for uploads). Both record a
refusal as an ``access.denied`` leaf before answering 4xx: invariant 3 is kept here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request

from bwv.access import (
    AuthError,
    Principal,
    ReasonError,
    Role,
    Rule,
    authenticate_user,
    check_reason,
    rule_for,
    shown_reason,
)
from bwv.access.clients import recorded_address
from bwv.access.docks import authenticate_dock
from bwv.api.limits import ANONYMOUS, PRINCIPAL_KEY
from bwv.custody.leaf import Outcome
from bwv.custody.ledger import AppendedLeaf
from bwv.ingest.finalise import Services

UNAUTHENTICATED = ANONYMOUS


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request) -> str | None:
    """The caller's IP address as leaves record it (uvicorn believes X-Forwarded-For only from
    BWV_TRUSTED_PROXIES; the value is parsed, never kept as sent)."""
    return recorded_address(request.client.host if request.client else None)


def record_denial(
    services: Services,
    request: Request,
    who: Principal,
    why: str,
    *,
    asked: str | None = None,
    target: str | None = None,
    reason: str | None = None,
) -> None:
    """A refused request as a leaf: who, what they asked, why it was refused, from where.

    An authenticated caller's refusals are recorded one by one within a budget per caller;
    past it they are counted into the window's ``access.denied.summary`` leaf instead (an
    enrolled dock cannot grow the ledger without bound). The caller still gets the real
    answer: only the recording is limited."""
    app = request.scope.get("app")
    callers = getattr(getattr(app, "state", None), "caller_refusals", None)
    if (
        callers is not None
        and who.role != UNAUTHENTICATED
        and not callers.admit(f"{who.role}:{who.name}", asked or request.method)
    ):
        return
    services.ctx.ledger.append(
        who.event(
            "access.denied",
            target=shown_reason(target or request.path_params.get("evidence_id")),
            outcome=Outcome.REFUSED,
            reason=shown_reason(reason),
            details={
                "request": asked,
                "why": why,
                "method": request.method,
                "path": shown_reason(request.url.path),
            },
        )
    )


def bearer_principal(services: Services, request: Request) -> Principal:
    """The caller a bearer token names (a user or a dock); :class:`AuthError` if none."""
    known = request.scope.get(PRINCIPAL_KEY)  # bwv.api.limits authenticated it already
    if known is not None:
        return known
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("no bearer token")
    client = client_address(request)
    if token.startswith("bwvdock_"):
        name, why = authenticate_dock(services.ctx.engine, token)
        if why is not None:
            raise AuthError(why, name)
        assert name is not None
        return Principal(name, Role.DOCK, client)
    principal, expires = authenticate_user(services.ctx.engine, token, services.ctx.clock.now())
    return Principal(principal.name, principal.role, client, expires)


def _unauthorised(
    services: Services, request: Request, exc: AuthError, asked: str, **headers: str
) -> HTTPException:
    who = Principal(exc.name or "unknown", UNAUTHENTICATED, client_address(request))
    record_denial(services, request, who, exc.diagnosis, asked=asked)
    return HTTPException(
        401, f"not authorised: {exc.diagnosis}", headers={"WWW-Authenticate": "Bearer", **headers}
    )


@dataclass
class Access:
    """A request the policy allows so far: who, under which rule, with what reason. Routes
    finish the decision (own clips, the target's state) through :meth:`deny`, and record what
    they did through :meth:`record`."""

    services: Services
    request: Request
    who: Principal
    action: str
    rule: Rule
    reason: str | None

    def deny(
        self, status: int, why: str, *, target: str | None = None, **headers: str
    ) -> HTTPException:
        """Record the refusal; return the exception for the route to raise."""
        record_denial(
            self.services,
            self.request,
            self.who,
            why,
            asked=self.action,
            target=target,
            reason=self.reason,
        )
        return HTTPException(status, why, headers=headers or None)

    def check_clip(self, clip: Any, target: str) -> None:
        """404 for no such clip; 403 for a clip not the caller's where the rule says own only."""
        if clip is None:
            raise self.deny(404, f"no clip with evidence id {target!r}", target=target)
        if self.who.role in self.rule.own_clips_only and clip.officer != self.who.name:
            raise self.deny(
                403, f"{target} was not recorded on a camera issued to you", target=target
            )

    def record(
        self, *, target: str | None = None, sha256: str | None = None, **details: Any
    ) -> AppendedLeaf:
        """The leaf for what was done: the rule's leaf action."""
        name = self.rule.leaf
        assert name is not None, f"{self.action} records nothing"
        return self.services.ctx.ledger.append(
            self.who.event(name, target=target, sha256=sha256, reason=self.reason, details=details)
        )


def _authorise(action: str, request: Request, services: Services, reason: str | None) -> Access:
    rule = rule_for(action)
    try:
        who = bearer_principal(services, request)
    except AuthError as exc:
        raise _unauthorised(services, request, exc, action) from None
    access = Access(services, request, who, action, rule, reason)
    if who.role not in rule.roles:
        raise access.deny(403, f"role {who.role} is not allowed {action!r}")
    try:
        access.reason = check_reason(reason, required=rule.reason)
    except ReasonError as exc:
        raise access.deny(400, exc.diagnosis) from None
    return access


_REASON_HELP = "Why you ask; recorded in the ledger with the request."


def authorise(action: str) -> Any:
    """A dependency that authenticates the caller and applies ``POLICY[action]``."""
    if rule_for(action).reason:

        def required(
            request: Request,
            services: ServicesDep,
            reason: Annotated[str, Query(description=_REASON_HELP + " Required.")],
        ) -> Access:
            return _authorise(action, request, services, reason)

        return Depends(required)

    def optional(
        request: Request,
        services: ServicesDep,
        reason: Annotated[str | None, Query(description=_REASON_HELP)] = None,
    ) -> Access:
        return _authorise(action, request, services, reason)

    return Depends(optional)


def current_dock(request: Request, services: ServicesDep) -> str:
    """The name of the dock whose token authorises this upload request; 401/403 otherwise."""
    tus = {"Tus-Resumable": "1.0.0"}
    try:
        who = bearer_principal(services, request)
    except AuthError as exc:
        raise _unauthorised(services, request, exc, "upload", **tus) from None
    if who.role != Role.DOCK:
        record_denial(services, request, who, f"role {who.role} may not upload", asked="upload")
        raise HTTPException(403, f"role {who.role} may not upload", headers=tus)
    return who.name


def refuse(services: Services, request: Request, dock: str, why: str) -> None:
    """Record a dock's refused upload request (e.g. another dock's upload)."""
    record_denial(
        services, request, Principal(dock, Role.DOCK, client_address(request)), why, asked="upload"
    )


DockDep = Annotated[str, Depends(current_dock)]
