"""Cron expressions in a time zone: the slots a job is due at.

Slots are computed in the job's zone (so ``0 3 * * *`` is 03:00 local through daylight
saving changes) and handed around as UTC instants, the store's rule.

Example::

    next_slot("0 3 * * 1", "Europe/Berlin", after=now)   # next Monday 03:00 Berlin, in UTC
    latest_slot("*/15 * * * *", "UTC", at_or_before=now)
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from mlprod._time import as_utc


def next_slot(cron: str, timezone: str, *, after: datetime) -> datetime:
    """The first slot strictly after `after`, in UTC."""
    local = as_utc(after).astimezone(ZoneInfo(timezone))
    found: datetime = croniter(cron, local).get_next(datetime)
    return found.astimezone(UTC)


def latest_slot(cron: str, timezone: str, *, at_or_before: datetime) -> datetime:
    """The newest slot at or before `at_or_before`, in UTC."""
    moment = as_utc(at_or_before)
    local = moment.astimezone(ZoneInfo(timezone))
    if croniter.match(cron, local):
        return moment.replace(second=0, microsecond=0)
    found: datetime = croniter(cron, local).get_prev(datetime)
    return found.astimezone(UTC)
