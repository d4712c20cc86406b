"""An instance's off-hours schedule: when Application Auto Scaling stops its service (0 tasks) and starts it again.

Cron expressions are the usual five fields (minute hour day-of-month month day-of-week), checked here field by
field so that a typo fails when the manifests are validated, not when CloudFormation creates the scheduled action.
Depends on pydantic and the standard library only (the runtime reads this model from its bundle).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: str = ""
    extra: str = ""
    """Application Auto Scaling's special characters allowed in this field beyond * , - /."""


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31, extra="LW?"),
    _Field("month", 1, 12, names=_MONTHS),
    _Field("day-of-week", 1, 7, names=_DAYS, extra="L#?"),
)


@dataclass(frozen=True)
class CronFields:
    """A checked cron expression, in the fields `aws_cdk.aws_applicationautoscaling.Schedule.cron` takes."""

    minute: str
    hour: str
    day: str | None
    """Day of month; None when the day of week is given (AWS takes only one of the two)."""
    month: str
    week_day: str | None


def parse_cron(expression: str) -> CronFields:
    """'0 20 * * MON-FRI' -> CronFields; ValueError naming the field and what it allows."""
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise ValueError(
            f"cron {expression!r} has {len(parts)} fields; give five: minute hour day-of-month month day-of-week "
            "(e.g. '0 20 * * MON-FRI')"
        )
    for value, spec in zip(parts, _FIELDS, strict=True):
        _check_field(expression, value, spec)
    minute, hour, day, month, week_day = parts
    day_given, week_day_given = day not in ("*", "?"), week_day not in ("*", "?")
    if day_given and week_day_given:
        raise ValueError(
            f"cron {expression!r} gives both a day of month ({day}) and a day of week ({week_day}); "
            "Application Auto Scaling takes one of the two (put * in the other)"
        )
    if week_day_given:
        return CronFields(minute=minute, hour=hour, day=None, month=month, week_day=week_day)
    return CronFields(minute=minute, hour=hour, day=day if day != "?" else "*", month=month, week_day=None)


def _check_field(expression: str, value: str, spec: _Field) -> None:
    allowed = f"{spec.low}-{spec.high}" + (f" or {spec.names.replace('|', ',')}" if spec.names else "")
    problem = f"cron {expression!r}: {spec.name} {value!r} is not valid; it allows * , - / and {allowed}"
    if spec.extra:
        problem += f" (and {' '.join(spec.extra)})"
    if value in ("*", "?") and (value == "*" or "?" in spec.extra):
        return
    atom = rf"(\d{{1,2}}|{spec.names})" if spec.names else r"(\d{1,2})"
    item = rf"^({atom}(-{atom})?|\*)(/\d{{1,2}})?$"
    special = rf"^(\d{{1,2}}[{re.escape(spec.extra)}]|L|LW|\d#\d)$" if spec.extra else r"^$"
    for piece in value.split(","):
        if re.match(special, piece, re.IGNORECASE) and "?" not in piece:
            continue
        if not re.match(item, piece, re.IGNORECASE):
            raise ValueError(problem)
        for number in re.findall(r"(?<![/\d])\d{1,2}", piece):
            if not spec.low <= int(number) <= spec.high:
                raise ValueError(problem)


class OffHoursSchedule(BaseModel):
    """Stop the service at `stop` and start it again at `start`, both in `time_zone` (an IANA name)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    stop: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    start: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    time_zone: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", max_length=64)
    ] = "UTC"
    """Its shape only: the control plane checks the name against the time zone database (`checked_time_zone`), so
    the runtime, which never uses it, does not depend on that database being in its image."""

    @field_validator("stop", "start")
    @classmethod
    def _cron(cls, expression: str) -> str:
        parse_cron(expression)
        return expression

    @property
    def stop_cron(self) -> CronFields:
        return parse_cron(self.stop)

    @property
    def start_cron(self) -> CronFields:
        return parse_cron(self.start)


def checked_time_zone(name: str) -> str:
    """`name` if the IANA time zone database knows it; ValueError with examples otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"time_zone {name!r} is not an IANA time zone name (e.g. 'Europe/Berlin', 'America/New_York', 'UTC')"
        ) from exc
    return name


class CheckedOffHoursSchedule(OffHoursSchedule):
    """The schedule as people write it (the instance template): its time zone is checked against the database."""

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str) -> str:
        return checked_time_zone(name)
