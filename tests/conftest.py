"""Shared helpers: real emulators on 127.0.0.1, settings that point the real SDK at them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telephony.audio.transcode import CallerToGemini
from telephony.config import Settings
from telephony.gemini import AgentOptions, GeminiLiveSession, make_client
from telephony.testing.call_fixture import caller_audio
from telephony.testing.gemini_live import GeminiLiveEmulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def emulator_settings(emulator: GeminiLiveEmulator, **overrides) -> Settings:
    """Settings for a server whose Gemini is the emulator (no keys, no network)."""
    values = dict(
        gemini_api_key="offline-test-key",
        gemini_base_url=emulator.base_url,
        gemini_ca_file=emulator.ca_file,
        validate_signatures=False,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def open_session(
    emulator: GeminiLiveEmulator, resume_handle: str | None = None, **options
) -> GeminiLiveSession:
    """A real google-genai Live session on the emulator, as the bridge opens one."""
    settings = emulator_settings(emulator)
    session = GeminiLiveSession(make_client(settings), AgentOptions.from_settings(settings).with_overrides(**options))
    await session.open(resume_handle=resume_handle)
    return session


async def speak_fixture(session: GeminiLiveSession, name: str, speed: float = 4.0) -> None:
    """Send a recorded call's caller audio, transcoded as the bridge does, `speed`x real time."""
    mulaw = caller_audio(FIXTURES / f"{name}.jsonl")
    transcoder = CallerToGemini()
    for i in range(0, len(mulaw), 160):
        await session.send_audio(transcoder.process(mulaw[i : i + 160]))
        await asyncio.sleep(0.02 / speed)


@pytest.fixture
async def gemini_emulator():
    async with GeminiLiveEmulator() as emulator:
        yield emulator
