"""The Gemini Live wire as the emulator reads it: keys in either spelling, bytes fields, the
caller's speech found by an energy VAD, and the service's refusal of an unknown model or
voice."""

from __future__ import annotations

import base64
import re
from typing import Any

import numpy as np

from telephony.gemini.catalog import VOICES
from telephony.testing.gemini_faults import KNOWN_MODELS
from telephony.testing.scripted_model import INPUT_RATE

_OPAQUE_KEYS = {"args", "response", "parameters", "parameters_json_schema", "response_json_schema"}
# User data that must keep its keys as written (tool arguments and results, schemas).


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def normalize_keys(value: Any) -> Any:
    """Recursively turn camelCase keys into snake_case (both spellings arrive on the wire)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _snake(key)
            out[name] = item if name in _OPAQUE_KEYS else normalize_keys(item)
        return out
    if isinstance(value, list):
        return [normalize_keys(v) for v in value]
    return value


def decode_bytes_field(data: str) -> bytes:
    """The SDK sends URL-safe base64 without padding; accept standard base64 as well."""
    padded = data + "=" * (-len(data) % 4)
    return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))


class EnergyVad:
    """Caller speech detection on 16 kHz PCM, 20 ms frames: loud enough for long enough."""

    FRAME = INPUT_RATE // 50

    def __init__(self, threshold_dbfs: float = -45.0, start_frames: int = 2, silence_ms: int = 500) -> None:
        self.threshold = 32768 * 10 ** (threshold_dbfs / 20)
        self.start_frames = start_frames
        self.end_frames = max(1, silence_ms // 20)
        self._pending = np.zeros(0, dtype=np.int16)
        self.speaking = False
        self._loud_run = 0
        self._quiet_run = 0
        self._utterance: list[np.ndarray] = []
        self._prefix: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> list[tuple[str, np.ndarray | None]]:
        """Returns events: ("start", None) when speech begins, ("end", utterance) when it ends."""
        events: list[tuple[str, np.ndarray | None]] = []
        data = np.concatenate((self._pending, samples))
        whole = len(data) // self.FRAME * self.FRAME
        self._pending = data[whole:]
        for i in range(0, whole, self.FRAME):
            frame = data[i : i + self.FRAME]
            loud = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) >= self.threshold
            if not self.speaking:
                self._prefix = (self._prefix + [frame])[-self.start_frames :]
                self._loud_run = self._loud_run + 1 if loud else 0
                if self._loud_run >= self.start_frames:
                    self.speaking, self._quiet_run = True, 0
                    self._utterance = list(self._prefix)
                    events.append(("start", None))
                continue
            self._utterance.append(frame)
            self._quiet_run = 0 if loud else self._quiet_run + 1
            if self._quiet_run >= self.end_frames:
                events.append(("end", self.finish()))
        return events

    def finish(self) -> np.ndarray:
        """End the current utterance now (trailing silence trimmed)."""
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, dtype=np.int16)
        if self._quiet_run:
            audio = audio[: max(0, len(audio) - self._quiet_run * self.FRAME)]
        self.speaking, self._loud_run, self._quiet_run = False, 0, 0
        self._utterance, self._prefix = [], []
        return audio


def _setup_refusal(setup: dict[str, Any]) -> str | None:
    """What the real service says when it will not serve this model or voice (1008)."""
    model = str(setup.get("model", "")).rsplit("/", 1)[-1]
    if model not in KNOWN_MODELS:
        return f"models/{model} is not found for API version v1beta, or is not supported for bidiGenerateContent."
    speech = (setup.get("generation_config") or {}).get("speech_config") or {}
    voice = ((speech.get("voice_config") or {}).get("prebuilt_voice_config") or {}).get("voice_name")
    if voice and voice not in VOICES:
        return f"Invalid argument: voice {voice} is not available."
    return None
