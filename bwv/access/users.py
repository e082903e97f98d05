"""Users and their bearer tokens.

A token is 32 random bytes shown once; only its SHA-256 is kept (full entropy makes a slow
password hash pointless). Tokens expire; a user can be revoked, which ends every token they hold.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from bwv.access.roles import USER_ROLES, Principal, Role
from bwv.base.clock import as_utc
from bwv.base.errors import BwvError
from bwv.records.tables import ApiToken, User

USER = User.__table__
TOKEN = ApiToken.__table__
TOKEN_PREFIX = "bwvu_"
DEFAULT_TOKEN_DAYS = 90
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class UserError(BwvError):
    """A user cannot be added, changed or given a token as asked."""


class AuthError(BwvError):
    """A bearer token does not authenticate: malformed, unknown, expired or revoked.

    ``name`` is the user the token belongs to, when it is known (expired or revoked)."""

    def __init__(self, diagnosis: str, name: str | None = None) -> None:
        super().__init__(diagnosis)
        self.name = name


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None
    tokens: int  # tokens neither expired nor revoked


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _role(role: str) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        parsed = None
    if parsed not in USER_ROLES:
        choices = ", ".join(USER_ROLES)
        raise UserError(f"unknown role {role[:40]!r}: choose one of {choices} (docks enrol apart)")
    assert parsed is not None
    return parsed


def add_user(
    engine: Engine, name: str, role: str, now: datetime, days: int = DEFAULT_TOKEN_DAYS
) -> str:
    """Create user ``name`` with ``role``; returns their first token (shown once). The user and
    the token are made together or not at all."""
    if not _NAME.fullmatch(name):
        raise UserError(
            f"user name {name[:40]!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    parsed = _role(role)
    _check_days(days)
    try:
        with engine.begin() as conn:
            conn.execute(insert(USER).values(name=name, role=str(parsed), created_at=now))
            return _new_token(conn, name, now, days)
    except IntegrityError:
        raise UserError(f"a user named {name!r} already exists") from None


def issue_token(engine: Engine, name: str, now: datetime, days: int = DEFAULT_TOKEN_DAYS) -> str:
    """A new token for an existing, active user, valid for ``days``."""
    _check_days(days)
    with engine.begin() as conn:
        user = conn.execute(select(USER).where(USER.c.name == name)).first()
        if user is None:
            raise UserError(f"no user named {name!r}")
        if user.disabled_at is not None:
            raise UserError(f"user {name!r} is revoked; add them again under a new name")
        return _new_token(conn, name, now, days)


def _check_days(days: int) -> None:
    if not 1 <= days <= 3660:
        raise UserError(f"a token lasts 1 to 3660 days, not {days}")


def _new_token(conn: Connection, name: str, now: datetime, days: int) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(TOKEN).values(
            user_name=name,
            token_sha256=token_hash(token),
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
    )
    return token


def revoke_user(engine: Engine, name: str, now: datetime) -> int:
    """Disable ``name`` and revoke every token they hold; returns how many tokens that ended."""
    with engine.begin() as conn:
        done = conn.execute(
            update(USER)
            .where(USER.c.name == name, USER.c.disabled_at.is_(None))
            .values(disabled_at=now)
        )
        if not done.rowcount:
            raise UserError(f"no active user named {name!r}")
        ended = conn.execute(
            update(TOKEN)
            .where(TOKEN.c.user_name == name, TOKEN.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return ended.rowcount


def list_users(engine: Engine, now: datetime) -> list[UserRecord]:
    with engine.connect() as conn:
        users = conn.execute(select(USER).order_by(USER.c.name)).all()
        live = conn.execute(
            select(TOKEN.c.user_name, TOKEN.c.expires_at).where(TOKEN.c.revoked_at.is_(None))
        ).all()
    counts: dict[str, int] = {}
    for row in live:
        if as_utc(row.expires_at) > now:
            counts[row.user_name] = counts.get(row.user_name, 0) + 1
    return [
        UserRecord(u.name, Role(u.role), u.created_at, u.disabled_at, counts.get(u.name, 0))
        for u in users
    ]


def authenticate_user(engine: Engine, token: str, now: datetime) -> tuple[Principal, datetime]:
    """The user a token belongs to and when it expires; :class:`AuthError` if it does not
    authenticate."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AuthError("malformed token")
    with engine.connect() as conn:
        row = conn.execute(
            select(TOKEN.c.expires_at, TOKEN.c.revoked_at, USER.c.name, USER.c.role)
            .join(USER, USER.c.name == TOKEN.c.user_name)
            .where(TOKEN.c.token_sha256 == token_hash(token))
        ).first()
    if row is None:
        raise AuthError("unknown token")
    if row.revoked_at is not None:
        raise AuthError("token revoked", row.name)
    expires = as_utc(row.expires_at)
    if expires <= now:
        raise AuthError(f"token expired at {expires:%Y-%m-%d %H:%M}Z", row.name)
    return Principal(row.name, Role(row.role)), expires
