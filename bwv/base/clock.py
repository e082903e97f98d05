"""The time the policy reads: token expiry and retention. Tests move it; nothing else does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The system clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class MovableClock(Clock):
    """A clock that stands still until told to move (for tests of expiry and retention)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


def as_utc(when: datetime) -> datetime:
    """A time as an aware UTC datetime: SQLite hands back naive UTC, PostgreSQL the session's
    zone, a caller any offset."""
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
