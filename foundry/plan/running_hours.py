"""How many hours a month an instance's service runs under its off-hours schedule (issue 24).

The schedule's `stop` and `start` crons are walked over a reference year in the schedule's local time (daylight
saving shifts are ignored: an hour twice a year), and the running share is scaled to AWS's 730-hour month. Pure;
the result for one schedule is cached, since a fleet shares a handful of them.
"""

from __future__ import annotations

import calendar
import datetime
from functools import lru_cache

from instance_contract.off_hours import CronFields, parse_cron

HOURS_PER_MONTH = 730.0
"""AWS's pricing month (8,760 hours a year / 12)."""
REFERENCE_YEAR = 2026
_NAMES = {
    name: number
    for number, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
} | {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}


def running_hours_per_month(stop: str, start: str) -> float:
    """Hours a month between a `start` and the next `stop`; 730 when the schedule never stops the service."""
    return _running_share(stop, start) * HOURS_PER_MONTH


@lru_cache(maxsize=256)
def _running_share(stop: str, start: str) -> float:
    events = _events(parse_cron(stop), parse_cron(start))
    if not any(not running for _, running in events):
        return 1.0
    if not any(running for _, running in events):
        return 0.0
    # The state at the year's start is the state the last event of the year leaves (the schedule repeats).
    running, since, total = events[-1][1], 0, 0
    for minute, starts in events:
        if running:
            total += minute - since
        running, since = starts, minute
    year_minutes = (366 if calendar.isleap(REFERENCE_YEAR) else 365) * 1440
    if running:
        total += year_minutes - since
    return total / year_minutes


def _events(stop: CronFields, start: CronFields) -> list[tuple[int, bool]]:
    """(minute of the year, True for a start) of every firing in the reference year, in order."""
    events: list[tuple[int, bool]] = []
    day = datetime.date(REFERENCE_YEAR, 1, 1)
    offset = 0
    while day.year == REFERENCE_YEAR:
        for cron, starts in ((stop, False), (start, True)):
            if _day_matches(cron, day):
                for hour in _values(cron.hour, 0, 23):
                    events.extend((offset + hour * 60 + minute, starts) for minute in _values(cron.minute, 0, 59))
        day += datetime.timedelta(days=1)
        offset += 1440
    return sorted(events)


def _day_matches(cron: CronFields, day: datetime.date) -> bool:
    if day.month not in _values(cron.month, 1, 12):
        return False
    last = calendar.monthrange(day.year, day.month)[1]
    if cron.week_day is not None:
        aws_week_day = day.isoweekday() % 7 + 1  # SUN=1 .. SAT=7
        return any(_week_day_piece(piece, day, aws_week_day, last) for piece in cron.week_day.upper().split(","))
    return any(_day_piece(piece, day, last) for piece in (cron.day or "*").upper().split(","))


def _day_piece(piece: str, day: datetime.date, last: int) -> bool:
    if piece == "L":
        return day.day == last
    if piece == "LW":
        return day == _nearest_weekday(day.replace(day=last))
    if piece.endswith("W"):
        return day == _nearest_weekday(day.replace(day=min(int(piece[:-1]), last)))
    return day.day in _values(piece, 1, 31)


def _week_day_piece(piece: str, day: datetime.date, aws_week_day: int, last: int) -> bool:
    if "#" in piece:
        week_day, nth = piece.split("#")
        return aws_week_day == _number(week_day) and (day.day - 1) // 7 + 1 == int(nth)
    if piece.endswith("L") and piece != "L":
        return aws_week_day == _number(piece[:-1]) and day.day + 7 > last
    if piece == "L":
        return aws_week_day == 7
    return aws_week_day in _values(piece, 1, 7)


def _nearest_weekday(day: datetime.date) -> datetime.date:
    """AWS's `W`: the weekday nearest to `day` in the same month."""
    if day.weekday() == 5:
        return day - datetime.timedelta(days=1) if day.day > 1 else day + datetime.timedelta(days=2)
    if day.weekday() == 6:
        last = calendar.monthrange(day.year, day.month)[1]
        return day + datetime.timedelta(days=1) if day.day < last else day - datetime.timedelta(days=2)
    return day


def _values(field: str, low: int, high: int) -> set[int]:
    """The numbers a cron field (already checked by parse_cron) takes: * , a-b, /n, names."""
    values: set[int] = set()
    for piece in field.upper().split(","):
        span, _, step = piece.partition("/")
        if span in ("*", "?"):
            first, last = low, high
        elif "-" in span:
            a, b = span.split("-")
            first, last = _number(a), _number(b)
        else:
            first = _number(span)
            last = high if step else first
        values.update(range(first, last + 1, int(step) if step else 1))
    return values


def _number(token: str) -> int:
    return _NAMES[token] if token in _NAMES else int(token)
