"""A call list as `telephony dial --list FILE.csv` reads it, and the quiet hours it keeps.

The CSV has a header. `number` (or `phone`, `to`) is the number to call, E.164; `timezone`
(an IANA name such as Europe/Berlin) is the callee's, for quiet hours; `agent`, `voice`,
`greeting`, `vad` and `instructions` are per-call settings as `telephony dial` takes them;
every other column is about the call (name, appointment, amount due) and reaches the agent as
"About this call: name: Maria Lopez; appointment: Friday 10:00".

A bad row (a number that is not E.164, an unknown timezone, a repeat of an earlier row) is
reported with its line and skipped; the rest runs. Each row has a key made of its number and
values, so that a resumed run knows which rows it has called, even if the file was sorted.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telephony.twilio.dial import check_number

NUMBER_COLUMNS = ("number", "phone", "to")
SETTING_COLUMNS = ("agent", "voice", "greeting", "vad", "instructions")
MAX_ROWS = 100_000
MAX_CONTEXT_CHARS = 1500


class CallListError(ValueError):
    """The file as a whole cannot be used (one line says why)."""


@dataclass(frozen=True)
class ListRow:
    line: int
    key: str
    number: str
    timezone: ZoneInfo | None = None
    settings: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    def context(self) -> str | None:
        """The row's own columns, for the agent."""
        if not self.details:
            return None
        return ("About this call: " + "; ".join(f"{k}: {v}" for k, v in self.details.items()))[:MAX_CONTEXT_CHARS]


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def read_call_list(path: Path, default_timezone: ZoneInfo | None = None) -> tuple[list[ListRow], list[RowProblem]]:
    """The rows to call and the rows skipped (with why). Raises CallListError for a file
    that cannot be a call list."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip().lower() for name in reader.fieldnames or []]
            number_column = next((c for c in NUMBER_COLUMNS if c in header), None)
            if number_column is None:
                raise CallListError(f"{path}: no `number` column in the header (found: {', '.join(header) or 'nothing'})")
            reader.fieldnames = header
            raw_rows = [(reader.line_num, row) for row in reader]  # the file's own line numbers (blank lines skipped)
    except OSError as exc:
        raise CallListError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CallListError(f"{path}: not a CSV file in UTF-8 ({exc})") from None
    if len(raw_rows) > MAX_ROWS:
        raise CallListError(f"{path}: {len(raw_rows)} rows; at most {MAX_ROWS} in one list")
    rows: list[ListRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for line, raw in raw_rows:
        values = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(values.values()):
            continue  # a blank line
        try:
            row = _row(line, values, number_column, default_timezone)
        except ValueError as exc:
            problems.append(RowProblem(line, str(exc)))
            continue
        if row.key in seen:
            problems.append(RowProblem(line, f"the same as line {seen[row.key]}: called once"))
            continue
        seen[row.key] = line
        rows.append(row)
    return rows, problems


def _row(line: int, values: dict[str, str], number_column: str, default_timezone: ZoneInfo | None) -> ListRow:
    number = check_number(values.get(number_column, ""), "the number")
    zone = default_timezone
    if name := values.get("timezone"):
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {name!r} is not an IANA name such as America/New_York") from None
    settings = {k: values[k] for k in SETTING_COLUMNS if values.get(k)}
    details = {k: v for k, v in values.items() if v and k not in (*NUMBER_COLUMNS, "timezone", *SETTING_COLUMNS)}
    identity = "\x1f".join([number, *(f"{k}={v}" for k, v in sorted({**settings, **details}.items()))])
    return ListRow(line, hashlib.sha256(identity.encode()).hexdigest()[:20], number, zone, settings, details)


@dataclass(frozen=True)
class QuietHours:
    """No calls from `start` to `end` in the callee's time (the window may cross midnight)."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        try:
            start, end = (dt.time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 21:00-09:00") from None
        if start == end:
            raise ValueError(f"quiet hours {text!r}: the start and the end are the same time")
        return cls(start, end)

    def quiet_at(self, local: dt.time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_call_time(self, now: dt.datetime, zone: ZoneInfo | None) -> dt.datetime | None:
        """None when a call may be made now (an aware `now`), else when it may."""
        local = now.astimezone(zone) if zone is not None else now.astimezone()
        if not self.quiet_at(local.time().replace(tzinfo=None)):
            return None
        allowed = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if allowed <= local:
            allowed += dt.timedelta(days=1)
        return allowed
