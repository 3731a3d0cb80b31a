"""A bad setting is one line naming it, every problem at once, exit 2, and never a secret:
pydantic's own report repeats the input (API key and auth token included)."""

from __future__ import annotations

import subprocess
import sys

KEY, TOKEN = "AIzaSy-this-is-secret", "auth-token-this-is-secret"


def start(*command: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"GEMINI_API_KEY": KEY, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "PATH": ""}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "telephony", *command], env=environment, capture_output=True, text=True, timeout=60)


def test_three_bad_settings_give_three_lines_exit_2_and_no_secret(tmp_path):
    for command in (("serve",), ("check",), ("dial", "+15551234567")):
        done = start(*command, TELEPHONY_INSTRUCTIONS_FILE=str(tmp_path), TELEPHONY_VAD_PRESET="fast", TELEPHONY_VOICE="kore")
        output = done.stdout + done.stderr
        assert done.returncode == 2, output
        assert KEY not in output and TOKEN not in output and "Traceback" not in output
        lines = output.strip().splitlines()
        assert lines == [
            "config: TELEPHONY_VOICE: unknown voice 'kore': did you mean 'Kore'?",
            f"config: TELEPHONY_INSTRUCTIONS_FILE: {tmp_path} is a directory: give a text file",
            "config: TELEPHONY_VAD_PRESET: vad_preset must be phone, responsive, patient or custom",
        ], lines  # every one at once, the file's included


def test_an_unreadable_instructions_file_is_one_line():
    done = start("serve", TELEPHONY_INSTRUCTIONS_FILE="/")
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip() == "config: TELEPHONY_INSTRUCTIONS_FILE: / is a directory: give a text file"


def test_serve_names_every_reason_it_cannot_start_at_once():
    done = start("serve", GEMINI_API_KEY="", TWILIO_AUTH_TOKEN="", TELEPHONY_PUBLIC_URL="http://voice.example.com/")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    lines = output.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["GEMINI_API_KEY", "TWILIO_AUTH_TOKEN", "TELEPHONY_PUBLIC_URL"], lines
    assert "http://voice.example.com is plain http" in lines[2] and "wss://" in lines[2]  # the trailing slash dropped


def test_bad_public_url_and_log_settings_are_one_line_each():
    done = start("check", TELEPHONY_PUBLIC_URL="voice.example.com", TELEPHONY_LOG_LEVEL="loud", TELEPHONY_LOG_FORMAT="xml")
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2
    assert lines == [
        "config: TELEPHONY_PUBLIC_URL: must be an http(s):// address, e.g. https://voice.example.com",
        "config: TELEPHONY_LOG_LEVEL: must be DEBUG, INFO, WARNING or ERROR",
        "config: TELEPHONY_LOG_FORMAT: must be auto, plain or json",
    ], lines


def test_a_trailing_slash_is_dropped_and_a_missing_public_url_is_warned_about():
    from telephony.settings import load_settings

    settings = load_settings(_env_file=None, public_url="https://voice.example.com/")
    assert settings.public_url == "https://voice.example.com"
    assert load_settings(_env_file=None, public_url="http://127.0.0.1:8080").serve_problems(gemini_emulated=True) == [
        "TWILIO_AUTH_TOKEN: not set, so Twilio's request signatures cannot be checked; set it, "
        "or for local development only set TELEPHONY_VALIDATE_SIGNATURES=false"
    ]
    warnings = load_settings(_env_file=None).startup_warnings()
    assert any(w.startswith("TELEPHONY_PUBLIC_URL is not set") for w in warnings)
    assert not load_settings(_env_file=None, trusted_proxies="10.0.0.1").startup_warnings()


def test_the_worker_count_is_a_setting_like_any_other():
    done = start("serve", TELEPHONY_WORKERS="many", TELEPHONY_VALIDATE_SIGNATURES="false")
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip().splitlines() == [
        "config: TELEPHONY_WORKERS: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_a_call_history_that_cannot_work_is_one_line_naming_the_setting_and_no_password(tmp_path):
    """Both were tracebacks: an unparseable TELEPHONY_DATABASE_URL (SQLAlchemy's ArgumentError)
    and a SQLite file whose directory cannot be made (pathlib's FileNotFoundError)."""
    done = start("serve", TELEPHONY_DATABASE_URL="mysql://telephony:s3cret-pw@db/calls")
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "s3cret-pw" not in output and "Traceback" not in output, output
    assert output.strip() == (
        "config: TELEPHONY_DATABASE_URL: must be off, sqlite:///path/to/calls.db or postgresql://user:password@host/db"
    )
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    for command in (("serve",), ("db", "upgrade"), ("calls",)):
        done = start(*command, TELEPHONY_DATABASE_URL=f"sqlite:///{blocked}/calls.db")
        output = done.stdout + done.stderr
        assert done.returncode == 2 and "Traceback" not in output, output
        assert output.strip().splitlines()[-1] == (
            f"config: TELEPHONY_DATABASE_URL: cannot make the call history's directory {blocked}: give a writable path"
        ), output
