"""One time grammar for every command: durations, --since, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlprod._time import duration_text, parse_duration, parse_since


def test_since_reads_durations_and_dates() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("90min", timedelta(minutes=90)),
        (" 1.5 h ", timedelta(hours=1.5)),
        ("2w", timedelta(weeks=2)),
        ("7D", timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d7", "7 days", "-1h", "1y"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="a duration such as '30s', '15min', '12h', '14d' or '2w'"):
        parse_duration(text)


def test_since_keeps_zones_and_refuses_words() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since("90min", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-01T08:00+01:00", now) == datetime(2026, 11, 1, 7, tzinfo=UTC)
    assert parse_since("2026-11-01T08:00Z", now) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration") as info:
        parse_since("yesterday", now)
    assert "ISO date" in str(info.value)


@pytest.mark.parametrize("span", [timedelta(hours=1), timedelta(minutes=90), timedelta(days=7)])
def test_duration_text_round_trips(span: timedelta) -> None:
    assert parse_duration(duration_text(span)) == span
