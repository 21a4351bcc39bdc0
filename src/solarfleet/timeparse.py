"""Parsing of the instants clients send: ISO-8601 with or without zone, dates, epoch ms."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

from solarfleet.errors import show_value

# Epoch milliseconds are accepted between 1970 and 9999.
_MAX_EPOCH_MS = 253402300799999


def parse_instant(value: object) -> datetime:
    """``value`` as a naive UTC datetime; ValueError with a reason when it is not an instant."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= _MAX_EPOCH_MS:
            raise ValueError("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
    if not isinstance(value, str):
        raise ValueError("expected an ISO-8601 string, a date or epoch milliseconds")
    text = value.strip()
    if text.isascii() and text.isdigit():  # not other scripts' digits, as int() would
        return parse_instant(int(text[:20]) if len(text) <= 20 else _MAX_EPOCH_MS + 1)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 time: {show_value(value)}") from None
        return datetime(day.year, day.month, day.day)
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise ValueError(f"out of range in UTC: {show_value(value)}") from None
    return parsed


def format_instant(value: datetime) -> str:
    """The wire format: UTC without zone, always with microseconds."""
    return value.isoformat(timespec="microseconds")
