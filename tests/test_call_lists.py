"""Call lists: the CSV and quiet hours (pure), then lists dialled through the emulators:
concurrency, retries, outcomes, and a run stopped half-way that resumes without calling anyone
twice."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from telephony import Agent
from telephony.call_lists.list_file import QuietHours, read_call_list
from telephony.call_lists.list_run import ListOptions, ListRun
from telephony.cli import app
from telephony.store import CallStore
from telephony.store.list_calls import ListProgress
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.model_script import ScriptedModel
from telephony.testing.phone_network import Callee, PhoneNetwork, machine, person
from telephony.testing.twilio_rest import FakeTwilioRest
from telephony.twilio.dial import DialRequest

from conftest import ACCOUNT_SID, AUTH_TOKEN, offline_stack

# --- the file ---------------------------------------------------------------------------------


def test_bad_rows_are_reported_with_their_line_and_the_rest_is_called(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(
        "Number,Name,Timezone,voice\n"
        "+15550000001,Maria,Europe/Berlin,Puck\n"
        "555-1234,Bad,,\n"
        "+15550000002,Ann,Mars/Olympus,\n"
        "\n"
        "+15550000001,Maria,Europe/Berlin,Puck\n"
        "+15550000003,,,\n",
        encoding="utf-8",
    )
    rows, problems = read_call_list(path)
    assert [r.number for r in rows] == ["+15550000001", "+15550000003"]
    assert [str(p) for p in problems] == [
        "line 3: the number must be an E.164 number such as +15551234567, not '555-1234'",
        "line 4: timezone 'Mars/Olympus' is not an IANA name such as America/New_York",
        "line 6: the same as line 2: called once",
    ]
    maria = rows[0]
    assert maria.settings == {"voice": "Puck"} and maria.timezone == ZoneInfo("Europe/Berlin")
    assert maria.context() == "About this call: name: Maria"
    assert rows[1].context() is None


def test_a_file_without_a_number_column_is_one_line(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("name,phone number\nMaria,+15550000001\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["dial", "--list", str(path), "--server", "http://127.0.0.1:9", "--from", "+15550000000"])
    assert result.exit_code == 1
    assert result.output.strip() == f"cannot dial the list: {path}: no `number` column in the header (found: name, phone number)"


def test_quiet_hours_cross_midnight_in_the_callees_own_time():
    quiet = QuietHours.parse("21:00-09:00")
    berlin = ZoneInfo("Europe/Berlin")
    at = dt.datetime(2026, 12, 3, 21, 30, tzinfo=dt.UTC)  # 22:30 in Berlin, 16:30 in New York
    assert quiet.next_call_time(at, berlin) == dt.datetime(2026, 12, 4, 9, 0, tzinfo=berlin)
    assert quiet.next_call_time(at, ZoneInfo("America/New_York")) is None
    early = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)  # 07:00 in Berlin: later that morning
    assert quiet.next_call_time(early, berlin) == dt.datetime(2026, 12, 4, 9, 0, tzinfo=berlin)
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        QuietHours.parse("9pm to 9am")


# --- dialled through the emulators ------------------------------------------------------------


@contextlib.asynccontextmanager
async def list_stack(callees: dict[str, Callee], store_url: str, speed: float = 4.0):
    rest = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN)
    network = PhoneNetwork(rest, AUTH_TOKEN, speed=speed, default=person(speak_s=0.6, after_s=1.0, stay_s=1.0))
    network.callees.update(callees)
    agent = Agent("reminders", instructions="You remind patients of appointments.", voicemail="Please call Maple Clinic back.")
    async with rest.running(), GeminiLiveEmulator(lambda: ScriptedModel([]), speed=speed) as gemini:
        async with offline_stack(gemini, agent=agent, twilio_api_base=rest.base_url) as stack:
            settings = stack.settings.model_copy(update={"twilio_api_base": rest.base_url, "database_url": None})
            template = DialRequest(to="+10000000000", from_="+15550000000", server=stack.base_url)
            yield network, settings, template, ListProgress("list-1", CallStore(store_url))


def write_list(path, numbers):
    path.write_text("number,name\n" + "".join(f"{n},Patient {i}\n" for i, n in enumerate(numbers)), encoding="utf-8")
    return path


async def test_a_list_runs_its_calls_at_most_n_at_a_time_retries_the_busy_and_keeps_every_outcome(tmp_path):
    numbers = [f"+1555000{i:04d}" for i in range(8)]
    callees = {numbers[1]: Callee("busy"), numbers[2]: Callee("no-answer", ring_s=2.0), numbers[3]: machine(greeting_s=2.0)}
    rows, _ = read_call_list(write_list(tmp_path / "list.csv", numbers))
    options = ListOptions(concurrency=3, calls_per_second=20, retries=1, retry_delay_s=0.5, poll_s=0.2)
    async with list_stack(callees, f"sqlite:///{tmp_path / 'store.db'}") as (network, settings, template, progress):
        entries = await asyncio.wait_for(ListRun(settings, template, progress, options).run(rows), 120)
        await network.settle()
        kept = await progress.load()
    outcome = {e.number: e.outcome for e in entries.values()}
    assert outcome[numbers[1]] == "busy" and outcome[numbers[2]] == "no-answer"
    assert outcome[numbers[3]] == "voicemail" and entries[rows[3].key].answered_by == "machine_end_beep"
    assert [outcome[n] for n in numbers if n not in numbers[1:4]] == ["answered"] * 5
    dialled = Counter(call.to for call in network.calls.values())
    assert dialled[numbers[1]] == dialled[numbers[2]] == 2, "busy and unanswered numbers are tried once more"
    assert all(dialled[n] == 1 for n in numbers if n not in numbers[1:3])
    assert network.peak_concurrent_calls() <= 3
    assert {k: (e.outcome, e.attempts) for k, e in kept.items()} == {k: (e.outcome, e.attempts) for k, e in entries.items()}


async def test_a_run_stopped_half_way_resumes_and_calls_nobody_twice(tmp_path):
    numbers = [f"+1555100{i:04d}" for i in range(6)]
    rows, _ = read_call_list(write_list(tmp_path / "list.csv", numbers))
    options = ListOptions(concurrency=2, calls_per_second=20, poll_s=0.2)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    async with list_stack({}, store) as (network, settings, template, progress):
        first = asyncio.create_task(ListRun(settings, template, progress, options).run(rows))
        while len(network.calls) < 3:  # stopped (Ctrl-C) with calls in progress
            await asyncio.sleep(0.05)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        placed_before = len(network.calls)
        entries = await asyncio.wait_for(ListRun(settings, template, ListProgress("list-1", CallStore(store)), options).run(rows), 120)
        await network.settle()
    assert Counter(call.to for call in network.calls.values()) == Counter(numbers), "everyone was called exactly once"
    assert placed_before >= 3 and [e.outcome for e in entries.values()] == ["answered"] * 6


async def test_a_row_twilio_never_took_is_tried_again_by_the_next_run(tmp_path):
    rows, _ = read_call_list(write_list(tmp_path / "list.csv", ["+15552000001"]))
    options = ListOptions(poll_s=0.2)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    async with list_stack({}, store) as (network, settings, template, progress):
        offline = settings.model_copy(update={"twilio_api_base": "http://127.0.0.1:9"})  # Twilio unreachable
        (first,) = (await ListRun(offline, template, progress, options).run(rows)).values()
        assert first.outcome == "failed" and first.call_sid is None and not network.calls
        (second,) = (await ListRun(settings, template, ListProgress("list-1", CallStore(store)), options).run(rows)).values()
        await network.settle()
    assert second.outcome == "answered" and second.attempts == 2 and len(network.calls) == 1
