"""Offline test kit, importable by users' own tests.

- `conversation`: conversation tests (`Conversation`, `ModelStep`): the caller's lines, turn
  by turn, to your agent in our server, and what it did (tools, words, hang-up, transfer);
  offline, or on the real model with `TELEPHONY_TEST_REAL_GEMINI=1` (`real_model`, `judge`).
- `evals`: `telephony eval` scenario files, run N times and scored; `simulated_caller` plays
  a scenario's persona on the real model. `console`: `telephony talk`.
- `model_script`: what the emulated model does per caller turn (tests, evals, `--script`).
- `call_fixture`: recorded calls (Twilio's inbound messages, one JSON per line): build and read.
- `gemini_live`: a local Gemini Live (BidiGenerateContent) emulator the real SDK connects to.
- `twilio_media`: a Twilio Media Streams emulator that plays a recorded call into a server.
"""

from typing import Any

__all__ = ["AgentTurn", "Conversation", "ModelStep"]


def __getattr__(name: str) -> Any:
    """`from telephony.testing import Conversation`: imported when first used."""
    if name in __all__:
        from telephony.testing import conversation

        return getattr(conversation, name)
    raise AttributeError(f"module 'telephony.testing' has no attribute {name!r}")
