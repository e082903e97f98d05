"""Dock enrolment and authentication, and the camera-to-officer register.

A dock token is 32 random bytes, shown once; the service keeps its SHA-256 only (a token has
full entropy, so a slow password hash would add nothing but latency to every request).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from bwv.base.errors import BwvError
from bwv.records.tables import Device, Dock

DOCK = Dock.__table__
DEVICE = Device.__table__
TOKEN_PREFIX = "bwvdock_"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def enroll_dock(engine: Engine, name: str) -> str:
    """Register a dock; returns its token (the only time it exists in clear)."""
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").isalnum():
        raise BwvError(f"dock name {name[:40]!r} must be letters, digits, '-' or '_'")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(DOCK).values(
                    name=name, token_sha256=_token_hash(token), enrolled_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        raise BwvError(f"a dock named {name!r} is already enrolled") from None
    return token


def revoke_dock(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(DOCK)
            .where(DOCK.c.name == name, DOCK.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    if not done.rowcount:
        raise BwvError(f"no enrolled, unrevoked dock named {name!r}")


def authenticate_dock(engine: Engine, token: str) -> tuple[str | None, str | None]:
    """(dock name, None) for a valid token, else (name or None, why it was refused)."""
    if not token.startswith(TOKEN_PREFIX):
        return None, "malformed token"
    with engine.connect() as conn:
        row = conn.execute(
            select(DOCK.c.name, DOCK.c.revoked_at).where(DOCK.c.token_sha256 == _token_hash(token))
        ).first()
    if row is None:
        return None, "unknown token"
    if row.revoked_at is not None:
        return row.name, "dock revoked"
    return row.name, None


def assign_device(engine: Engine, serial: str, officer: str) -> None:
    """Issue camera ``serial`` to ``officer`` (replacing any earlier assignment)."""
    if not serial.strip() or not officer.strip():
        raise BwvError("camera serial and officer must not be empty")
    with engine.begin() as conn:
        conn.execute(DEVICE.delete().where(DEVICE.c.serial == serial))
        conn.execute(
            insert(DEVICE).values(serial=serial, officer=officer, assigned_at=datetime.now(UTC))
        )


def officer_for(engine: Engine, serial: str | None) -> str | None:
    if not serial:
        return None
    with engine.connect() as conn:
        return conn.execute(select(DEVICE.c.officer).where(DEVICE.c.serial == serial)).scalar()
