"""The first hour of a new user: one offline command that works alone, every mistake at once in
one line each, shapes checked up front, commands that say why, quiet logs and clean help."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import time
import weakref

import httpx
import pytest
from typer.testing import CliRunner

from telephony.agents.loading import AgentLoadError, load_agent
from telephony.cli import app
from telephony.cli.preflight import check_public_url
from telephony.logs import ClosingTlsRace, DevFormatter, JsonFormatter, configure_logging, mask_number
from telephony.settings import Settings
from telephony.testing.ports import free_port


def bare_env(tmp_path, **extra: str) -> dict[str, str]:
    """A fresh machine: nothing set but a home and a data directory."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TELEPHONY_DATA_DIR": str(tmp_path / "data"), **extra}


def serve_until_ready(tmp_path, **env: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "telephony", "serve", "--emulate-gemini", "--port", str(port)],
        env=bare_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("Gemini: local emulator"):
            break
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return process, port, lines


def test_serve_with_the_emulator_alone_starts_locally_without_signatures_and_says_where_to_go(tmp_path):
    process, port, lines = serve_until_ready(tmp_path)
    try:
        assert process.poll() is None, lines
        assert f"Talk to your agent: http://127.0.0.1:{port}/phone   calls: http://127.0.0.1:{port}/calls" in lines
        assert any(line.startswith("Twilio signatures: off (only this machine reaches it") for line in lines), lines
        grant = httpx.post(f"http://127.0.0.1:{port}/api/gemini-token?agent=default", timeout=10).json()
        # "Direct to Gemini": the browser gets a token and a plain loopback address (it does not trust the emulator's CA).
        assert grant["token"].startswith("auth_tokens/") and re.fullmatch(r"http://127\.0\.0\.1:\d+", grant["baseUrl"])
    finally:
        process.terminate()
        process.wait(30)


def test_real_twilio_settings_keep_signatures_on(tmp_path):
    process, _, lines = serve_until_ready(tmp_path, TWILIO_AUTH_TOKEN="0" * 32)
    try:
        assert process.poll() is None, lines
        assert not any("signatures: off" in line for line in lines), lines
    finally:
        process.terminate()
        process.wait(30)


def test_every_start_up_mistake_is_one_line_at_once_without_a_secret(tmp_path):
    bad_agent = tmp_path / "agent.toml"
    bad_agent.write_text("name = 'x'\nvoice = 3\nbogus = 1\n[[tools]]\nname = 'a'\nurl = 'http://x'\n")
    env = bare_env(
        tmp_path,
        TELEPHONY_GEMINI_CA_FILE="/nonexistent/ca.pem",
        TWILIO_ACCOUNT_SID="XYZsecret789",
        TELEPHONY_PUBLIC_URL="https://example.com/twiml",
        TELEPHONY_VAD_PRESET="bogus",
    )
    done = subprocess.run([sys.executable, "-m", "telephony", "serve", "--emulate-gemini", "--agent", str(bad_agent)], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2
    assert lines == [
        "config: TELEPHONY_GEMINI_CA_FILE: /nonexistent/ca.pem is not there: give a PEM file of CA certificates",
        "config: TELEPHONY_VAD_PRESET: vad_preset must be phone, responsive, patient or custom",
        "config: TWILIO_ACCOUNT_SID: must be AC and 32 hex digits (the Account SID on the Twilio console's dashboard)",
        "config: TELEPHONY_PUBLIC_URL: ends with /twiml: give the server's address (https://example.com); the routes are added to it",
    ], lines
    assert "XYZsecret789" not in done.stdout + done.stderr


def test_a_toml_agent_lists_every_mistake_and_the_agent_comes_with_the_settings(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("name = 'x'\nvoice = 3\nbogus = 1\n[[tools]]\nname = 'a'\nurl = 'http://x'\n")
    with pytest.raises(AgentLoadError) as error:
        load_agent(str(path), b"secret")
    assert error.value.problems == [
        f"{path}: voice: Input should be a valid string",
        f"{path}: tools.0.description: Field required",
        f"{path}: bogus: Extra inputs are not permitted",
    ]
    done = subprocess.run([sys.executable, "-m", "telephony", "serve", "--agent", str(path)], env=bare_env(tmp_path),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2, lines
    assert [line.split(":")[1].strip() for line in lines[:2]] == ["GEMINI_API_KEY", "TWILIO_AUTH_TOKEN"], lines
    assert lines[2:] == [f"agent: {problem}" for problem in error.value.problems], "the agent's mistakes in the same report"


def test_a_tool_parameter_the_model_cannot_be_told_about_is_one_line(tmp_path):
    (tmp_path / "slots.py").write_text(
        "from telephony import Agent\nclass Slot:\n    pass\nagent = Agent('x')\n"
        "@agent.tool\ndef book(slot: Slot) -> str:\n    '''Book.'''\n    return 'ok'\n"
    )
    done = subprocess.run([sys.executable, "-m", "telephony", "serve", "--emulate-gemini", "--agent", "slots:agent"],
                          cwd=tmp_path, env=bare_env(tmp_path), capture_output=True, text=True, timeout=60)  # fmt: skip
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2 and len(output.splitlines()) == 1, output
    assert "parameter 'slot' is a Slot, which cannot be described to the model; use str, int" in output


def test_an_auth_token_of_the_wrong_shape_is_said_at_start():
    warnings = Settings(_env_file=None, twilio_auth_token="my-api-key-secret").startup_warnings()
    assert any(w.startswith("TWILIO_AUTH_TOKEN: is 17 characters; Twilio's are 32 hex digits") for w in warnings)
    assert not any("my-api-key-secret" in w for w in warnings)
    assert not [w for w in Settings(_env_file=None, twilio_auth_token="a" * 32).startup_warnings() if "TWILIO_AUTH_TOKEN" in w]


def test_replay_refuses_what_cannot_work_up_front():
    runner = CliRunner()
    fixture = "fixtures/one_sentence.jsonl"
    bad_url = runner.invoke(app, ["replay", fixture, "--url", "127.0.0.1:8080"])
    assert bad_url.exit_code == 2 and "--url must be http(s)://HOST/twiml" in bad_url.output
    fast = runner.invoke(app, ["replay", fixture, "--url", "http://127.0.0.1:9/twiml", "--auth-token", "t", "--speed", "2"])
    assert fast.exit_code == 2 and "--speed 2 is faster than a server that checks signatures takes caller audio" in fast.output


async def test_check_says_plain_http_where_https_was_promised():
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await check_public_url(Settings(_env_file=None, public_url=f"https://127.0.0.1:{port}"))
    assert not result.ok and result.detail.endswith("it answers plain http, not https")


def test_help_shows_no_placeholder_for_flags():
    shown = CliRunner().invoke(app, ["dial", "--help"], env={"COLUMNS": "200"}).output
    assert "<bool>" not in shown and "--help " in shown
    assert "<float range>" in shown, "an option that takes a value keeps its type"


def test_logs_keep_library_chatter_and_the_closing_tls_race_out_and_names_unmasked():
    configure_logging("INFO", "plain")
    assert not logging.getLogger("alembic").isEnabledFor(logging.INFO)
    assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
    assert logging.getLogger("telephony.web.app").isEnabledFor(logging.INFO)
    race = logging.LogRecord("asyncio", logging.ERROR, "", 0, "Fatal error on SSL protocol", None, None)
    race.exc_info = (RuntimeError, RuntimeError("unable to perform operation on <TCPTransport closed=True>"), None)
    assert not ClosingTlsRace().filter(race)
    other = logging.LogRecord("asyncio", logging.ERROR, "", 0, "Task exception was never retrieved", None, None)
    assert ClosingTlsRace().filter(other)
    assert mask_number("browser") == "browser" and mask_number("+15551234567") == "+1******4567"
    from fastapi import FastAPI

    from telephony.web.server import uvicorn_config

    quiet = uvicorn_config(FastAPI(), "127.0.0.1", 0, log_level="info")
    assert quiet.log_level == "warning" and not quiet.access_log, "uvicorn's per-request and per-socket lines only when debugging"
    assert uvicorn_config(FastAPI(), "127.0.0.1", 0, log_level="debug").access_log


def test_a_librarys_object_in_a_log_record_is_left_out_even_when_it_is_gone():
    class Connection:
        pass

    gone = Connection()
    record = logging.LogRecord("websockets.server", logging.INFO, "", 0, "connection open", None, None)
    record.websocket = weakref.proxy(gone)  # what websockets puts there
    record.call_sid = "CA1"
    del gone
    for formatter in (JsonFormatter(), DevFormatter()):
        shown = formatter.format(record)  # a dead proxy once made this raise: the line was lost
        assert "connection open" in shown and "websocket=" not in shown and '"websocket"' not in shown and "object at 0x" not in shown
