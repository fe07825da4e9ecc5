"""Time in one place: UTC instants, the duration grammar, ``--since`` and a clock.

Every stored or compared time is timezone-aware UTC; a naive time means UTC. Durations
use one grammar everywhere (the spec's ``gap: 3d``, ``--window 1h``, ``--since 7d``):
a number and a unit, ``w``, ``d``, ``h``, ``min`` (or ``m``) or ``s``.

Example::

    parse_duration("90min")            # timedelta(seconds=5400)
    parse_since("7d")                  # seven days before now, in UTC
    parse_since("2026-11-01T08:00")    # that time, in UTC
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|min|m|s)\s*$", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "min": "minutes", "m": "minutes", "s": "seconds"}
DURATION_HELP = "a duration such as '30s', '15min', '12h', '14d' or '2w'"


def utc_now() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(when: datetime) -> datetime:
    """`when` in UTC; a naive time is UTC already (the store's rule)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@functools.lru_cache(maxsize=65_536)
def parse_utc(text: str) -> datetime:
    """An ISO time as UTC; cached, since logged rows and live windows repeat few times."""
    return as_utc(datetime.fromisoformat(text))


def parse_duration(text: str) -> timedelta:
    """``14d``, ``12h``, ``30min``, ``2w`` or ``45s`` as a timedelta; ValueError otherwise."""
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"expected {DURATION_HELP}, got {text!r}")
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


def duration_text(span: timedelta) -> str:
    """The shortest exact form of `span` in the grammar: ``1h``, ``90min``, ``7d``."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_since(value: str | datetime, now: datetime | None = None) -> datetime:
    """A point in time: a duration ago (``7d``, ``12h``) or an ISO date/time, in UTC.

    Raises ValueError naming both accepted forms; commands turn it into their own message.
    """
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return (now or utc_now()) - parse_duration(value)
    except ValueError:
        pass
    try:
        return as_utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        raise ValueError(
            f"{value!r} is neither {DURATION_HELP} nor an ISO date or time "
            "(2026-11-01 or 2026-11-01T08:00, UTC unless it names a zone)"
        ) from None


class Clock(Protocol):
    """What long-running loops ask for the time, so tests can drive them without sleeping."""

    def now(self) -> datetime:
        """The current instant, aware UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a simulated clock advances instead)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return utc_now()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0))


class ManualClock:
    """A clock that moves only when told: a loop driven over simulated days, in seconds.

    Example::

        clock = ManualClock(utc_now())
        clock.advance(timedelta(minutes=10))
    """

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=seconds))

    def advance(self, span: timedelta) -> None:
        self._now += span
