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


def test_two_bad_settings_give_two_lines_exit_2_and_no_secret(tmp_path):
    for command in (("serve",), ("check",), ("dial", "+15551234567")):
        done = start(*command, TELEPHONY_INSTRUCTIONS_FILE=str(tmp_path), TELEPHONY_VAD_PRESET="fast", TELEPHONY_VOICE="kore")
        output = done.stdout + done.stderr
        assert done.returncode == 2, output
        assert KEY not in output and TOKEN not in output and "Traceback" not in output
        lines = output.strip().splitlines()
        assert lines == [
            "config: TELEPHONY_VOICE: unknown voice 'kore': did you mean 'Kore'?",
            "config: TELEPHONY_VAD_PRESET: vad_preset must be phone, responsive, patient or custom",
        ], lines  # the instructions file is read once the fields are valid: it comes next


def test_an_unreadable_instructions_file_is_one_line():
    done = start("serve", TELEPHONY_INSTRUCTIONS_FILE="/")
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip() == "config: TELEPHONY_INSTRUCTIONS_FILE: cannot read /: Is a directory"
