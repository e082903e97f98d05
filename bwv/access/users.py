"""Users and their bearer tokens.

A token is a :class:`~bwv.access.tokens.TokenKind` ``USER`` token (:mod:`bwv.access.tokens`):
shown once, kept only as its SHA-256. Tokens expire; a user can be revoked, which ends every
token they hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bwv.access.roles import USER_ROLES, Principal, Role
from bwv.access.tokens import TokenKind, kind_of, matches, mint, token_hash
from bwv.base.clock import as_utc
from bwv.base.errors import BwvError
from bwv.records.tables import ApiToken, User, table_of

USER = table_of(User)
TOKEN = table_of(ApiToken)
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
        user = conn.execute(select(col(User.disabled_at)).where(col(User.name) == name)).first()
        if user is None:
            raise UserError(f"no user named {name!r}")
        (disabled_at,) = user
        if disabled_at is not None:
            raise UserError(f"user {name!r} is revoked; add them again under a new name")
        return _new_token(conn, name, now, days)


def _check_days(days: int) -> None:
    if not 1 <= days <= 3660:
        raise UserError(f"a token lasts 1 to 3660 days, not {days}")


def _new_token(conn: Connection, name: str, now: datetime, days: int) -> str:
    token = mint(TokenKind.USER)
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
        users = conn.execute(
            select(
                col(User.name), col(User.role), col(User.created_at), col(User.disabled_at)
            ).order_by(col(User.name))
        ).all()
        live = conn.execute(
            select(col(ApiToken.user_name), col(ApiToken.expires_at)).where(
                col(ApiToken.revoked_at).is_(None)
            )
        ).all()
    counts: dict[str, int] = {}
    for user_name, expires_at in live:
        if as_utc(expires_at) > now:
            counts[user_name] = counts.get(user_name, 0) + 1
    return [
        UserRecord(name, Role(role), created_at, disabled_at, counts.get(name, 0))
        for name, role, created_at, disabled_at in users
    ]


def authenticate_user(engine: Engine, token: str, now: datetime) -> tuple[Principal, datetime]:
    """The user a token belongs to and when it expires; :class:`AuthError` if it does not
    authenticate."""
    if kind_of(token) is not TokenKind.USER or len(token) > 200:
        raise AuthError("malformed token")
    with engine.connect() as conn:
        row = conn.execute(
            select(
                col(ApiToken.token_sha256),
                col(ApiToken.expires_at),
                col(ApiToken.revoked_at),
                col(User.name),
                col(User.role),
            )
            .join(USER, USER.c.name == TOKEN.c.user_name)
            .where(col(ApiToken.token_sha256) == token_hash(token))
        ).first()
    if row is None or not matches(token, row[0]):
        raise AuthError("unknown token")
    _, expires_at, revoked_at, name, role = row
    if revoked_at is not None:
        raise AuthError("token revoked", name)
    expires = as_utc(expires_at)
    if expires <= now:
        raise AuthError(f"token expired at {expires:%Y-%m-%d %H:%M}Z", name)
    return Principal(name, Role(role)), expires
