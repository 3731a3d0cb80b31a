"""Maple Clinic's front desk, as code: it lists free appointment slots and books one.

    telephony serve --agent clinic:agent          # from this folder

Bookings live in a small SQLite file (CLINIC_DB, default clinic.sqlite3 here), created on
first use. Tools are plain functions: the docstring tells the model when to use them, the
type hints become the schema its arguments are checked against.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
from pathlib import Path

from telephony import Agent, CallContext, ToolError

OPENING_SLOTS = ("09:00", "09:30", "10:00", "11:00", "14:00", "15:30")

agent = Agent(
    "clinic",
    instructions=(
        "You are the friendly front desk of Maple Clinic, on the phone. Help callers book an appointment: "
        "ask for the day, offer the free times, ask for their name, then book. Keep sentences short. "
        "When the caller is done, say goodbye and end the call."
    ),
    voice="Kore",
    greeting="Greet the caller as Maple Clinic's front desk and offer to book an appointment.",
    tool_timeout_s=5,
)


def database() -> sqlite3.Connection:
    connection = sqlite3.connect(Path(os.environ.get("CLINIC_DB", "clinic.sqlite3")))
    connection.execute("CREATE TABLE IF NOT EXISTS appointments (day TEXT, time TEXT, name TEXT, phone TEXT, UNIQUE (day, time))")
    return connection


def _day(value: str) -> str:
    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ToolError(f"{value!r} is not a date; ask the caller for a day and pass it as YYYY-MM-DD") from None


@agent.tool
def free_slots(day: str) -> list[str]:
    """List the appointment times still free on a day.

    Args:
        day: The day, as YYYY-MM-DD.
    """
    with database() as db:
        taken = {row[0] for row in db.execute("SELECT time FROM appointments WHERE day = ?", (_day(day),))}
    return [slot for slot in OPENING_SLOTS if slot not in taken]


@agent.tool
def book(day: str, time: str, name: str, call: CallContext) -> dict[str, str]:
    """Book an appointment for the caller. Only book a time that free_slots offered.

    Args:
        day: The day, as YYYY-MM-DD.
        time: One of the free times, as HH:MM.
        name: The caller's full name.
    """
    return book_for(day, time, name, call.from_number)


def book_for(day: str, time: str, name: str, phone: str) -> dict[str, str]:
    """The booking itself (the HTTP backend of agent.toml uses it too)."""
    if time not in OPENING_SLOTS:
        raise ToolError(f"{time} is not an appointment time; offer one of {', '.join(OPENING_SLOTS)}")
    try:
        with database() as db:
            db.execute("INSERT INTO appointments VALUES (?, ?, ?, ?)", (_day(day), time, name, phone))
    except sqlite3.IntegrityError:
        raise ToolError(f"{time} on {day} was just taken; offer another time") from None
    return {"booked": f"{day} {time}", "name": name}
