#!/usr/bin/env python3
"""Regenerate fixtures/*.jsonl: recorded calls made from espeak-ng speech.

Needs espeak-ng (Debian: `apt-get install espeak-ng`). Output is deterministic for a given
espeak-ng version, so the committed files only change when this script does.

    .venv/bin/python scripts/make_fixtures.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from telephony.audio.mulaw import encode_mulaw
from telephony.audio.wav import read_wav, resample_whole, write_wav
from telephony.testing.call_fixture import CallFixtureBuilder

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
ASSETS = ROOT / "telephony" / "assets"
PROMPTS = {
    # Played when Gemini cannot be reached again mid-call, before the call is ended.
    "apology_trouble": "Sorry, we are having technical trouble. Please call again in a moment. Goodbye.",
    # Played to calls still up when a server shuts down after its drain time.
    "apology_closing": "Sorry, this line has to close now. Please call again. Goodbye.",
    # Played first when recordings are on and TELEPHONY_RECORDING_NOTICE asks for it.
    "recording_notice": "This call may be recorded.",
}
PARAMS = {"caller": "+15550100001", "called": "+15550100002"}


def speak(text: str, voice: str = "en-us", level_dbfs: float = -20.0) -> np.ndarray:
    """Synthesize `text` and return it as int16 at 8 kHz, at a phone-like speech level."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(wav), text], check=True)
        samples, rate = read_wav(wav)
    audio = resample_whole(samples, rate, 8000).astype(np.float64)
    rms = np.sqrt(np.mean(audio**2)) or 1.0
    audio *= 32768 * 10 ** (level_dbfs / 20) / rms
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16)


# Several speakers for `telephony bench quality` (espeak voice, sentence).
SPEAKERS = {
    "us_male": ("en-us", "The appointment is on Tuesday at half past three in the afternoon."),
    "us_female": ("en-us+f3", "Please hold the line while I check your account details."),
    "gb_male": ("en-gb-x-rp", "Your parcel will be delivered to the front door tomorrow morning."),
    "gb_female": ("en-gb+f4", "Could you spell your surname for me, one letter at a time?"),
}


def speak_at(text: str, voice: str, rate: int, level_dbfs: float = -20.0) -> np.ndarray:
    """Synthesize at `rate` (one-shot HQ resampling) at a given speech level."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text], check=True)
        samples, source_rate = read_wav(wav)
    audio = resample_whole(samples, source_rate, rate).astype(np.float64)
    audio *= 32768 * 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(audio**2)) or 1.0)
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16)


def main() -> int:
    FIXTURES.mkdir(exist_ok=True)
    calls = {
        # A caller says one sentence and waits for the answer, then hangs up.
        "one_sentence": CallFixtureBuilder("one_sentence", dict(PARAMS))
        .silence(400)
        .speech(speak("Hello, I would like to book an appointment for Tuesday."))
        .silence(6000)
        .stop(),
        # The caller speaks again while the agent is still answering: barge-in.
        "barge_in": CallFixtureBuilder("barge_in", dict(PARAMS))
        .silence(400)
        .speech(speak("Can you tell me your opening hours on the weekend, please?"))
        .silence(1500)
        .speech(speak("Sorry, actually, I meant Sunday.", voice="en-us"))
        .silence(5000)
        .stop(),
        # The caller keys digits (an account number) after speaking.
        "dtmf": CallFixtureBuilder("dtmf", dict(PARAMS))
        .silence(400)
        .speech(speak("My account number is"))
        .silence(300)
        .dtmf("4")
        .silence(300)
        .dtmf("2")
        .silence(300)
        .dtmf("#")
        .silence(4000)
        .stop(),
        # The caller hangs up in the middle of the agent's answer.
        "hang_up": CallFixtureBuilder("hang_up", dict(PARAMS))
        .silence(400)
        .speech(speak("Thanks, that is all I needed. Goodbye.", voice="en-gb"))
        .silence(1500)
        .stop(),
    }
    speech_dir = FIXTURES / "speech"
    speech_dir.mkdir(exist_ok=True)
    for name, (voice, text) in SPEAKERS.items():
        path = write_wav(speech_dir / f"{name}.wav", speak_at(text, voice, 16000), 16000)
        print(f"{path.relative_to(ROOT)}")
    for name, text in PROMPTS.items():
        path = ASSETS / f"{name}.ulaw"
        path.write_bytes(encode_mulaw(speak(text, voice="en-us", level_dbfs=-18).astype("<i2").tobytes()))
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 8000:.1f} s")
    for name, builder in calls.items():
        path = builder.write(FIXTURES / f"{name}.jsonl")
        print(f"{path.relative_to(ROOT)}: {builder.duration_ms / 1000:.1f} s")
    # `telephony demo` plays this call from a plain install, so the package carries a copy.
    demo = ROOT / "telephony" / "testing" / "calls" / "barge_in.jsonl"
    demo.write_bytes((FIXTURES / "barge_in.jsonl").read_bytes())
    print(f"{demo.relative_to(ROOT)}: the demo's copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
