"""The examples in examples/ run as users would run them: offline, against the emulators."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from telephony.agents.loading import load_agent
from telephony.testing.gemini_live import EmulatedToolCall, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.testing.twilio_media import TwilioMediaEmulator
from telephony.web.server import running_server

from conftest import FIXTURES, as_the_tool_said, free_port, offline_stack, wait_until_healthy

CLINIC = Path(__file__).resolve().parent.parent / "examples" / "clinic"
SECRET = "example-secret"


@pytest.fixture
def clinic_folder(tmp_path, monkeypatch):
    """As a user runs it: from the example's folder, with its own SQLite file."""
    monkeypatch.chdir(CLINIC)
    monkeypatch.syspath_prepend(str(CLINIC))
    monkeypatch.setenv("CLINIC_DB", str(tmp_path / "clinic.sqlite3"))
    monkeypatch.setenv("TELEPHONY_TOOL_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("TELEPHONY_DATA_DIR", str(tmp_path / "data"))  # eval runs are kept in a history of their own
    yield tmp_path
    for name in ("clinic", "backend"):
        sys.modules.pop(name, None)


def receptionist_model() -> ScriptedAgent:
    """The emulated model asks for the free slots, then books the first one."""
    return ScriptedAgent(
        [
            Reply(
                audio24k=tone24k(0.6),
                transcript="Nine o'clock is free. Booked!",
                tool_calls=(
                    # 3.8 runs both at once (NON_BLOCKING): the slots asked for are another day's.
                    EmulatedToolCall("free_slots", {"day": "2026-12-03"}),
                    EmulatedToolCall("book", {"day": "2026-12-02", "time": "09:00", "name": "Ada Lovelace"}),
                ),
            )
        ]
    )


def booked(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / "clinic.sqlite3") as db:
        return db.execute("SELECT day, time, name, phone FROM appointments").fetchall()


async def test_the_clinic_agent_as_code_lists_slots_and_books_one(clinic_folder):
    agent = load_agent("clinic:agent")
    async with GeminiLiveEmulator(receptionist_model(), speed=4.0) as gemini, offline_stack(gemini, agent=agent) as stack:
        await stack.replay("one_sentence", speed=2.0)  # both tool calls land before the hang-up, even on a busy machine
    # Both run in the background at once: their results come back in either order.
    free, book = sorted(gemini.connections[0].tool_responses, key=lambda response: response["name"] != "free_slots")
    assert as_the_tool_said(free["response"]) == {"result": ["09:00", "09:30", "10:00", "11:00", "14:00", "15:30"]}
    assert as_the_tool_said(book["response"]) == {"booked": "2026-12-02 09:00", "name": "Ada Lovelace"}
    assert booked(clinic_folder) == [("2026-12-02", "09:00", "Ada Lovelace", "+15550100001")]
    assert gemini.connections[0].texts[0].startswith("Greet the caller as Maple Clinic")


async def test_the_same_clinic_agent_in_toml_with_its_http_backend(clinic_folder):
    import backend  # the example's own tool server

    async with running_server(backend.app) as base:
        toml = (CLINIC / "agent.toml").read_text().replace("http://127.0.0.1:8090", base)
        (clinic_folder / "agent.toml").write_text(toml)
        agent = load_agent(str(clinic_folder / "agent.toml"), SECRET.encode())
        async with GeminiLiveEmulator(receptionist_model(), speed=4.0) as gemini, offline_stack(gemini, agent=agent) as stack:
            await stack.replay("one_sentence", speed=2.0)  # both tool calls land before the hang-up, even on a busy machine
    # Both run in the background at once: their results come back in either order.
    free, book = sorted(gemini.connections[0].tool_responses, key=lambda response: response["name"] != "free_slots")
    assert as_the_tool_said(free["response"]) == {"free": ["09:00", "09:30", "10:00", "11:00", "14:00", "15:30"]}
    assert as_the_tool_said(book["response"]) == {"booked": "2026-12-02 09:00", "name": "Ada Lovelace"}
    assert booked(clinic_folder) == [("2026-12-02", "09:00", "Ada Lovelace", "+15550100001")]


def test_make_demo_shows_a_whole_call_with_a_tool_call(tmp_path):
    from typer.testing import CliRunner

    from telephony.cli import app

    done = CliRunner().invoke(app, ["demo", "--speed", "4", "--out", str(tmp_path)])  # 8x could outrun the tool on a busy machine
    assert done.exit_code == 0, done.output
    transcript = (tmp_path / "demo-transcript.txt").read_text()
    assert "tool: opening_hours(day='weekend') -> " in transcript and "closed on Sunday" in transcript
    assert (tmp_path / "demo-caller-heard.wav").stat().st_size > 10_000


def test_the_clinic_eval_file_passes_offline_and_reports(clinic_folder, tmp_path):
    import json

    from typer.testing import CliRunner

    from telephony.cli import app

    report = tmp_path / "report.json"
    args = ["eval", "evals.yaml", "--agent", "clinic.py:agent", "--emulate-gemini", "--runs", "2", "--report", str(report)]
    level_before = logging.getLogger("telephony").level
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    # Run in-process, the command gives logging back as it was (it left `telephony` at ERROR,
    # and a later test in the same worker saw none of the server's INFO lines).
    assert logging.getLogger("telephony").level == level_before
    results = json.loads(report.read_text())["scenarios"]
    assert [s["name"] for s in results] == [
        "offers the free times of a day",
        "books the time the caller chose",
        "says goodbye, then hangs up",
        "a hurried caller gets the earliest time",
    ]
    assert all(s["pass_rate"] == 1.0 and s["tool_accuracy"] == 1.0 for s in results)
    assert all(s["response_ms_p50"] is not None for s in results), "latency measured at the caller's phone"
    print(done.output)
    # Each run is in the call history, as an eval call with its verdict and recording; the dashboard shows it.
    with sqlite3.connect(clinic_folder / "data" / "telephony.db") as db:
        kept = db.execute("SELECT call_sid, direction, recording, summary FROM calls ORDER BY started_at").fetchall()
    assert len(kept) == 8 and {row[1] for row in kept} == {"eval"}
    verdict = json.loads(kept[0][3])["eval"]
    assert verdict | {"file": "evals.yaml"} == verdict and verdict["scenario"] == "offers the free times of a day"
    assert verdict["passed"] is True and verdict["run"] == 1 and verdict["model"] == "emulated"
    assert all(row[2] and Path(row[2]).exists() for row in kept), "every run recorded"
    from telephony.web.dashboard.pages import call_page

    page = call_page({"call_sid": kept[0][0], "eval": verdict | {"passed": False, "failures": ["tool book was never called"]}}, None)
    assert "Eval run" in page and "failed" in page and "tool book was never called" in page


def test_an_eval_that_fails_says_which_expectation_with_the_words_and_exits_1(clinic_folder, tmp_path):
    from typer.testing import CliRunner

    from telephony.cli import app

    scenarios = tmp_path / "wrong.yaml"
    scenarios.write_text(
        "scenarios:\n  - name: never books\n    caller: [Book me in.]\n    model: [{say: Sorry.}]\n"
        "    expect: {tools: [{name: book}], says: [booked], max_response_ms: 1}\n"
    )
    done = CliRunner().invoke(app, ["eval", str(scenarios), "--agent", "clinic.py:agent", "--emulate-gemini"])
    assert done.exit_code == 1, done.output
    assert "FAIL never books (run 1): tool book was never called (calls made: none)" in done.output
    assert "the agent never said 'booked'; it said: 'Sorry.'" in done.output
    assert "over the 1 ms allowed" in done.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scenarios:\n  - name: a\n    caler: [hi]\n", "scenario 'a' `caler`: unknown key"),
        (
            "scenarios:\n  - name: b\n    caller: [hi]\n    expect: {tools: [{args: {}}]}\n",
            "scenario 'b' `expect.tools.0.name`: Field required",
        ),
        ("scenarios: [\n", "not valid YAML"),
        ("scenarios:\n  - name: c\n", "scenario 'c': needs `caller` (the caller's lines) or a `persona`"),
    ],
)
def test_a_mistake_in_an_eval_file_is_one_line_naming_the_scenario_and_key(tmp_path, text, message):
    from typer.testing import CliRunner

    from telephony.cli import app

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    done = CliRunner().invoke(app, ["eval", str(path), "--agent", "x:y", "--emulate-gemini"])
    assert done.exit_code == 2 and message in done.output, done.output
    assert "Traceback" not in done.output and len(done.output.strip().splitlines()) == 1


async def test_serve_with_a_model_script_runs_the_users_own_tools_offline(clinic_folder):
    """`serve --emulate-gemini --script`: the emulated model follows the script (greets, then
    asks the clinic's real tools), so a user sees their tools run from a call or the browser."""
    port = free_port()
    env = dict(os.environ, TELEPHONY_VALIDATE_SIGNATURES="false", TELEPHONY_PORT=str(port), TELEPHONY_DATABASE_URL="off")
    command = [sys.executable, "-m", "telephony", "serve", "--emulate-gemini", "--script", "model_script.yaml"]
    command += ["--agent", "clinic.py:agent", "--call-log", str(clinic_folder)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(base, process=server)
        await TwilioMediaEmulator(FIXTURES / "barge_in.jsonl", speed=2.0).call(base + "/twiml")
    finally:
        server.terminate()
        output = (await asyncio.to_thread(server.communicate, timeout=30))[0].decode()
    assert "following model_script.yaml" in output
    (entry,) = [json.loads(line) for line in (clinic_folder / "calls.jsonl").read_text().splitlines()]
    agent_lines = [line["text"] for line in entry["transcript"] if line["speaker"] == "agent"]
    assert agent_lines[-1].startswith("On the fifth I have nine"), agent_lines  # the step after the caller's second turn
    assert [tool["name"] for tool in entry["tool_calls"]] == ["free_slots"], entry["tool_calls"]
    assert entry["tool_calls"][0]["response"]["result"][:2] == ["09:00", "09:30"], entry["tool_calls"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("steps:\n  - sya: hello\n", "model_script.yaml: step #1 `sya`: unknown key"),
        ("steps: [{say: hello, tool: [1]}]\n", "model_script.yaml: step #1 `tool`: Input should be a valid string"),
        ("opening: {}\nsteps: [\n", "not valid YAML"),
        ("42\n", "expected `steps:`"),
    ],
)
def test_a_mistake_in_a_model_script_is_one_line_and_exit_2(tmp_path, text, message):
    script = tmp_path / "model_script.yaml"
    script.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "telephony", "emulate", "gemini", "--port", "0", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert len(run.stdout.strip().splitlines()) == 1, run.stdout


def test_talk_shows_the_agents_words_and_its_own_tools_as_the_caller_types(clinic_folder):
    """`telephony talk`: typed lines go down the phone line; the clinic's real tools answer."""
    typed = "Hello, can I book?\nThe fifth of January, please.\n/hangup\n"
    command = [sys.executable, "-m", "telephony", "talk", "--agent", "clinic.py:agent", "--emulate-gemini", "--script", "model_script.yaml"]
    done = subprocess.run(command, input=typed, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.index("agent: Maple Clinic, good morning") < out.index("agent: Of course. Which day") < out.index("tool: free_slots(")
    assert 'tool: free_slots(day=\'2027-01-05\') -> {"result": ["09:00", "09:30"' in out
    assert "agent: On the fifth I have nine" in out and "first word after" in out
    assert "call ended: caller hung up" in out and "Traceback" not in done.stderr
