"""FastAPI dependencies: the shared services, who is calling, and whether the policy lets them.

Every request to the API passes ``authorise`` (or ``current_dock`` for uploads), which leaves
the :class:`Access` on the request; whatever then refuses or fails it is a
:class:`~bwv.base.errors.BwvError`, answered and recorded by ``bwv.api.errors`` through
:meth:`Access.refused` and :meth:`Access.failed`: a refusal is an ``access.denied`` leaf
(:func:`record_denial`), a failure the request's own leaf with outcome ``failed``. Invariant 3
is kept here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Query, Request

from bwv.access import (
    AuthError,
    Principal,
    Role,
    Rule,
    authenticate_user,
    check_reason,
    rule_for,
    shown_reason,
)
from bwv.access.clients import recorded_address
from bwv.access.docks import authenticate_dock
from bwv.access.tokens import TokenKind, kind_of
from bwv.api.limits import ANONYMOUS, PRINCIPAL_KEY, SCRAPE_ROLE
from bwv.base.errors import BwvError, Forbidden
from bwv.custody.leaf import Outcome
from bwv.custody.ledger import AppendedLeaf
from bwv.services import clips
from bwv.services.clips import Clip
from bwv.services.context import Services

UNAUTHENTICATED = ANONYMOUS


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


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
        return cast(Principal, known)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("no bearer token")
    client = client_address(request)
    if kind_of(token) is TokenKind.DOCK:
        name, why = authenticate_dock(services.ctx.engine, token)
        if why is not None:
            raise AuthError(why, name)
        assert name is not None
        return Principal(name, Role.DOCK, client)
    principal, expires = authenticate_user(services.ctx.engine, token, services.ctx.clock())
    return Principal(principal.name, principal.role, client, expires)


class NotAuthorised(BwvError):
    """No valid bearer token (401): recorded as a refusal of an unauthenticated caller,
    named when the token was known (expired, revoked)."""

    status = 401

    def __init__(self, denied: AuthError, asked: str, **headers: str) -> None:
        super().__init__(f"not authorised: {denied.diagnosis}")
        self.denied, self.asked = denied, asked
        self.headers = {"WWW-Authenticate": "Bearer", **headers}

    @property
    def why(self) -> str:
        return self.denied.diagnosis


def authenticated(services: Services, request: Request, asked: str, **headers: str) -> Principal:
    """The caller a bearer token names; :class:`NotAuthorised` (recorded) if none."""
    try:
        return bearer_principal(services, request)
    except AuthError as exc:
        raise NotAuthorised(exc, asked, **headers) from None


def record_unauthorised(services: Services, request: Request, exc: NotAuthorised) -> None:
    who = Principal(exc.denied.name or "unknown", UNAUTHENTICATED, client_address(request))
    record_denial(services, request, who, exc.why, asked=exc.asked)


@dataclass
class Access:
    """A request the policy allows so far: who, under which rule, with what reason. Routes
    finish the decision through :meth:`clip` (the clip exists, is the caller's to ask about)
    and record what they did through :meth:`record`; what they are about (``target``, the
    ``sha256`` of what is handed out) goes into the leaf of a refusal or failure."""

    services: Services
    request: Request
    who: Principal
    action: str
    rule: Rule
    reason: str | None
    target: str | None = None
    sha256: str | None = None

    def clip(self, evidence_id: str, *, live: bool = False) -> Clip:
        """The clip, if the caller may ask about it (404, then 403 for a clip not the caller's
        where the rule says own only, then with ``live`` 410 for footage deleted under
        retention)."""
        self.target = evidence_id
        found = clips.clip_for(
            self.services.ctx, evidence_id, self.who, self.rule.own_clips_only, live=live
        )
        self.sha256 = found.sha256
        return found

    def about(self, evidence_id: str, sha256: str) -> None:
        """What the request hands out, should it fail (a disclosure copy of ``evidence_id``)."""
        self.target, self.sha256 = evidence_id, sha256

    def refused(self, exc: BwvError) -> None:
        """The refusal as an ``access.denied`` leaf (:func:`record_denial`)."""
        record_denial(
            self.services,
            self.request,
            self.who,
            exc.why,
            asked=self.action,
            target=exc.target or self.target,
            reason=self.reason,
        )

    def failed(self, exc: BwvError) -> None:
        """A failure (the server's fault) as the request's own leaf, outcome ``failed``: what
        was asked, about what, and why it was not done."""
        self.services.ctx.ledger.append(
            self.who.event(
                self.rule.leaf or self.action,
                target=exc.target or self.target,
                sha256=self.sha256,
                outcome=Outcome.FAILED,
                reason=self.reason,
                details={"request": self.action, "why": exc.why},
            )
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
    who = authenticated(services, request, action)
    access = Access(services, request, who, action, rule, reason)
    request.state.access = access  # for bwv.api.errors: who is refused, asking what
    if who.role not in rule.roles:
        raise Forbidden(f"role {who.role} is not allowed {action!r}")
    access.reason = check_reason(reason, required=rule.reason)  # ReasonError: 400
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


def scraper(request: Request, services: ServicesDep) -> Access:
    """``metrics.read``: the scrape credential (``bwv.api.limits`` recognised it), or else the
    policy's answer for whoever the token names: 401 for none, 403 (recorded) for a user or
    dock, whatever its role."""
    who = request.scope.get(PRINCIPAL_KEY)
    if isinstance(who, Principal) and who.role == SCRAPE_ROLE:
        access = Access(services, request, who, "metrics.read", rule_for("metrics.read"), None)
        request.state.access = access
        return access
    return _authorise("metrics.read", request, services, None)


ScraperDep = Annotated[Access, Depends(scraper)]


DOCK_RULE = Rule(frozenset({Role.DOCK}), None)
"""Uploads and receipts: for docks only, recording nothing when done (the clip's own leaves
do: ``clip.ingested``, ``receipt.read``)."""


def current_dock(request: Request, services: ServicesDep) -> str:
    """The name of the dock whose token authorises this upload request; 401/403 otherwise."""
    who = authenticated(services, request, "upload", **{"Tus-Resumable": "1.0.0"})
    request.state.access = Access(services, request, who, "upload", DOCK_RULE, None)
    if who.role != Role.DOCK:
        raise Forbidden(f"role {who.role} may not upload")
    return who.name


def dock_access(request: Request) -> Access:
    """The dock's :class:`Access` that :func:`current_dock` left on the request."""
    access = request.state.access
    assert isinstance(access, Access)
    return access


DockDep = Annotated[str, Depends(current_dock)]
