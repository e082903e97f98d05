"""Dock enrolment and authentication, and the camera-to-officer register.

A dock token is a :class:`~bwv.access.tokens.TokenKind` ``DOCK`` token
(:mod:`bwv.access.tokens`): shown once at enrolment, kept only as its SHA-256.
"""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bwv.access.tokens import TokenKind, kind_of, matches, mint, token_hash
from bwv.base.clock import system_clock
from bwv.base.errors import BwvError
from bwv.records.tables import Device, Dock, table_of

DOCK = table_of(Dock)
DEVICE = table_of(Device)


def enroll_dock(engine: Engine, name: str) -> str:
    """Register a dock; returns its token (the only time it exists in clear)."""
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").isalnum():
        raise BwvError(f"dock name {name[:40]!r} must be letters, digits, '-' or '_'")
    token = mint(TokenKind.DOCK)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(DOCK).values(
                    name=name, token_sha256=token_hash(token), enrolled_at=system_clock()
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
            .values(revoked_at=system_clock())
        )
    if not done.rowcount:
        raise BwvError(f"no enrolled, unrevoked dock named {name!r}")


def authenticate_dock(engine: Engine, token: str) -> tuple[str | None, str | None]:
    """(dock name, None) for a valid token, else (name or None, why it was refused)."""
    if kind_of(token) is not TokenKind.DOCK:
        return None, "malformed token"
    with engine.connect() as conn:
        row = conn.execute(
            select(col(Dock.name), col(Dock.revoked_at), col(Dock.token_sha256)).where(
                col(Dock.token_sha256) == token_hash(token)
            )
        ).first()
    if row is None or not matches(token, row[2]):
        return None, "unknown token"
    name, revoked_at, _ = row
    if revoked_at is not None:
        return name, "dock revoked"
    return name, None


def assign_device(engine: Engine, serial: str, officer: str) -> None:
    """Issue camera ``serial`` to ``officer`` (replacing any earlier assignment)."""
    if not serial.strip() or not officer.strip():
        raise BwvError("camera serial and officer must not be empty")
    with engine.begin() as conn:
        conn.execute(DEVICE.delete().where(DEVICE.c.serial == serial))
        conn.execute(
            insert(DEVICE).values(serial=serial, officer=officer, assigned_at=system_clock())
        )


def officer_for(engine: Engine, serial: str | None) -> str | None:
    if not serial:
        return None
    with engine.connect() as conn:
        return conn.execute(
            select(col(Device.officer)).where(col(Device.serial) == serial)
        ).scalar()
