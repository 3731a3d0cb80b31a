"""Keypad input for a tool (`telephony.Keypad`): the digits a caller types reach the tool and
nothing else. The whole phone path runs (Twilio emulator with in-band tones and dtmf events,
our server, the Gemini emulator), then every place a digit could leak is scanned: what Gemini
was sent (text and audio), the log, the transcript, the stored recording, the dashboard."""

from __future__ import annotations

import logging
import re
from typing import Annotated

import httpx
import numpy as np
import pytest

from telephony import Agent, Keypad
from telephony.audio.dtmf_detect import DtmfToneDetector
from telephony.audio.wav import read_wav, resample_whole
from telephony.testing import Conversation, ModelStep

PIN = "9041"


def bank_agent(seen: list[str]) -> Agent:
    agent = Agent("bank", instructions="You tell callers their balance.")

    @agent.tool
    def balance(account: str, pin: Annotated[str, Keypad(length=4, label="PIN")]) -> dict:
        """The account's balance.

        Args:
            account: The account number.
        """
        seen.append(pin)
        return {"account": account, "balance": "120.50"} if pin == PIN else {"error": "wrong PIN"}

    return agent


def tones_in(pcm: np.ndarray, rate: int) -> int:
    samples = resample_whole(pcm, rate, 8000) if rate != 8000 else pcm
    detector = DtmfToneDetector()
    return sum(detector.has_tone(samples[i : i + 160]) for i in range(0, len(samples) - 159, 160))


def test_the_model_is_told_to_ask_for_the_pin_on_the_keypad_and_never_given_it():
    tool = bank_agent([]).tools["balance"]
    schema = tool.declaration.parameters_json_schema
    assert set(schema["properties"]) == {"account"} and "pin" not in str(schema)
    assert "types the PIN (4 digits) on their phone keypad" in tool.declaration.description


def test_a_keypad_parameter_must_be_a_string():
    agent = Agent("x")
    with pytest.raises(ValueError, match="keypad parameter 'pin' must be a str"):

        @agent.tool
        def f(pin: Annotated[int, Keypad(length=4)]) -> str:
            """F."""
            return ""


async def test_typed_digits_reach_the_tool_and_nothing_else(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="telephony")
    seen: list[str] = []
    model = [
        ModelStep(say="Please type your PIN on the keypad."),
        ModelStep(tool="balance", args={"account": "A-17", "pin": "0000"}, say="Your balance is one hundred twenty dollars."),
    ]
    history = f"sqlite:///{tmp_path / 'calls.db'}"
    async with Conversation(bank_agent(seen), model, database_url=history, record_audio=True, recordings_dir=tmp_path / "rec") as call:
        call.gemini.record_messages = True
        await call.caller("What is my balance? Account A 17.")
        turn = await call.caller("OK.", keypad=PIN)
        record = await call.hang_up()
        assert record is not None and record.call_sid
        base = str(call.server_settings.public_url)
        async with httpx.AsyncClient(base_url=base) as client:  # local: the dashboard needs no login
            page = (await client.get(f"/calls/{record.call_sid}", headers={"accept": "text/html"})).text
            listing = (await client.get(f"/api/calls/{record.call_sid}")).text
    assert "<h1>Call" in page and "•" in page and PIN not in page and PIN not in listing
    assert seen == [PIN], "the tool got the typed digits, not the model's guess"
    assert turn.tool_calls[0].response == {"account": "A-17", "balance": "120.50"}
    assert turn.tool_calls[0].arguments == {"account": "A-17", "pin": "0000"}, "the model's own guess, which is ignored"

    # Gemini: no message carries the digits, and its audio carries no keypad tone.
    connection = call.gemini.connections[0]
    assert PIN not in str(connection.client_messages) and PIN not in str(connection.texts)
    assert tones_in(np.frombuffer(bytes(connection.caller_audio), dtype="<i2"), 16000) == 0
    # The log, the transcript (masked), the recording (silence where the tones were).
    # Our log lines, with every field (the JSON formatter writes them all); the digits as a number of
    # their own (random ids and base64 may hold the same four digits inside them).
    ours = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("telephony"))
    assert ours and not re.search(rf"(?<![0-9A-Za-z]){PIN}(?![0-9A-Za-z])", ours) and "keypad key" not in ours
    keypad_lines = [text for speaker, text in call.transcript if speaker == "keypad"]
    assert keypad_lines == ["•"] * 4, keypad_lines
    assert PIN not in record.transcript_text()
    samples, rate = read_wav(record.recording)
    assert tones_in(samples[:, 0] if samples.ndim == 2 else samples, rate) == 0


async def test_a_caller_who_types_too_few_digits_lets_the_model_ask_again():
    seen: list[str] = []
    model = [ModelStep(tool="balance", args={"account": "A-17"}, say="Sorry, please type it again.")]
    async with Conversation(bank_agent(seen), model) as call:
        turn = await call.caller("My balance, please.", keypad="90#")
    assert seen == []
    error = turn.tool_calls[0].response["error"]
    assert "wrong length: PIN has 4 digits, 2 were typed" in error and "90" not in error


def test_in_the_core_presses_before_the_request_are_held_for_it_and_a_timeout_is_a_clear_error():
    from telephony.call.keypad import KeypadResult, KeypadRules
    from telephony.gemini.messages import RealtimeText

    from test_call_core import Script, to_gemini

    script = Script(idle_timeout_s=60.0)
    script.start()
    script.call.expect_keypad(3.0, script.now)
    for digit in "12":  # typed as the model asked, before its tool call arrived
        assert to_gemini(script.dtmf(digit), RealtimeText) == []
    script.call.collect_keypad(7, KeypadRules(length=4, label="PIN"), script.now)
    actions = script.dtmf("3") + script.dtmf("4")
    assert [a for a in actions if isinstance(a, KeypadResult)] == [KeypadResult(7, "1234")]
    assert [text for speaker, text in ((line.speaker, line.text) for line in script.call.record.transcript) if speaker == "keypad"] == [
        "•",
        "•",
    ], "the two typed during the request are masked; the two held ones were never written down"
    script.dtmf("5")  # not for a tool: after the grace time it goes to the model as before
    assert [m.text for m in to_gemini(script.tick(3.1), RealtimeText)] == ["The caller pressed the keypad key 5."]
    script.call.collect_keypad(8, KeypadRules(length=4, label="PIN", timeout_s=20), script.now)
    script.dtmf("9")
    (timeout,) = [a for a in script.tick(20.1) if isinstance(a, KeypadResult)]
    assert timeout.digits is None and timeout.problem == "timeout: the caller typed 1 digit(s) of PIN in time"


def test_in_the_core_caller_audio_is_silence_toward_gemini_while_digits_are_typed():
    from telephony.audio.dtmf import dtmf_mulaw
    from telephony.call.keypad import KeypadRules
    from telephony.gemini.messages import CallerAudio

    from test_call_core import SILENT_FRAME, Script, to_gemini

    script = Script()
    script.start()
    script.call.expect_keypad(3.0, script.now)
    tone = dtmf_mulaw("7", tone_ms=200, gap_ms=0)
    sent = b"".join(m.pcm16k for f in range(0, 1600, 160) for m in to_gemini(script.media(tone[f : f + 160]), CallerAudio))
    assert not np.frombuffer(sent, dtype="<i2").any(), "a keypad tone is muted even before any request"
    script.call.collect_keypad(1, KeypadRules(length=4), script.now)
    speech = (np.sin(np.arange(160) / 3) * 8000).astype("<i2")
    from telephony.audio.mulaw import encode_mulaw

    frames = [script.media(encode_mulaw(speech.tobytes())) for _ in range(10)] + [script.media(SILENT_FRAME)]
    sent = b"".join(m.pcm16k for actions in frames for m in to_gemini(actions, CallerAudio))
    assert sent and not np.frombuffer(sent, dtype="<i2").any(), "while collecting, all caller audio is silence"
