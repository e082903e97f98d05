"""The one clock: wall-clock time as an aware UTC datetime.

A clock is anything called with no arguments that returns the time now, aware, in UTC
(``Callable[[], datetime]``: the ledger takes that, so a test may pass a lambda).
:data:`system_clock` is the real one; :class:`MovableClock` is the test clock, which stands
still until told to move (token expiry, retention). Monotonic timers (timeouts, rate limits)
are not clocks in this sense and keep ``time.monotonic``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The system clock: ``clock()`` is the time now, in UTC."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


system_clock = Clock()
"""The real time, for every caller that is not a test."""


class MovableClock(Clock):
    """A clock that stands still until told to move (for tests of expiry and retention)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or system_clock()

    def __call__(self) -> datetime:
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
