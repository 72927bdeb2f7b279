"""Cron expressions as a Kubernetes CronJob reads them (pure): five fields, names for months
and days, ranges, steps, lists, ``?`` for any, and the ``@hourly``-style macros.

``parse`` says what is wrong with a bad expression before anything is created;
``next_run`` answers "when does it run next" for `schedule status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, lowest, highest, names)
_NO_NAMES: dict[str, int] = {}
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, _NO_NAMES), ("hour", 0, 23, _NO_NAMES), ("day of month", 1, 31, _NO_NAMES),
          ("month", 1, 12, MONTHS), ("day of week", 0, 7, DAYS))


class CronError(ValueError):
    """A cron expression that a CronJob would refuse."""


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    any_day: bool  # day of month is * or ?
    any_weekday: bool

    def day_matches(self, when: datetime) -> bool:
        dom = when.day in self.days
        dow = (when.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # one restricted: that one decides
            return dom and dow
        return dom or dow  # both restricted: either (as cron does)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise CronError(f'{name} field: "{text}" is not a number'
                        + (f" or a name ({', '.join(list(names)[:3])}, ...)" if names else ""))
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{name} field: {number} is out of range {low}-{high}")
    return number


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f'{name} field: empty item in "{text}"')
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f'{name} field: step "{step_text}" must be a positive number')
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if start > end:
                raise CronError(f"{name} field: range {base} goes backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return out


def parse(text: str) -> Cron:
    """The expression, checked; CronError says what is wrong."""
    expr = " ".join(text.split())
    if expr.lower().startswith(("tz=", "cron_tz=")):
        raise CronError("a time zone inside the schedule is not allowed by Kubernetes; "
                        "CronJobs run on the cluster's time zone (UTC on most clusters)")
    expr = MACROS.get(expr.lower(), expr)
    parts = expr.split(" ")
    if len(parts) != 5:
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), "
                        f"got {len(parts)}")
    sets = [_field(p, *spec) for p, spec in zip(parts, FIELDS, strict=True)]
    weekdays = {d % 7 for d in sets[4]}
    return Cron(text=text, minutes=frozenset(sets[0]), hours=frozenset(sets[1]),
                days=frozenset(sets[2]), months=frozenset(sets[3]),
                weekdays=frozenset(weekdays), any_day=parts[2] in ("*", "?"),
                any_weekday=parts[4] in ("*", "?"))


def next_run(cron: Cron, after: datetime, *, horizon_days: int = 366 * 5) -> datetime | None:
    """The first minute strictly after ``after`` that ``cron`` matches (same time zone as
    ``after``); None when none within the horizon (31 February)."""
    start = (after + timedelta(minutes=1)).replace(second=0, microsecond=0)
    day = start.replace(hour=0, minute=0)
    for _ in range(horizon_days):
        if day.month in cron.months and cron.day_matches(day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    when = day.replace(hour=hour, minute=minute)
                    if when >= start:
                        return when
        day = day + timedelta(days=1)
    return None
