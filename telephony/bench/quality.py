"""`telephony bench quality`: what the transcoding chain does to speech, measured.

Speech from several speakers (fixtures/speech, espeak-ng, made by scripts/make_fixtures.py)
goes through the real streaming transcoders, 20 ms at a time as on a call, and is scored
against the ideal one-shot conversion of the same speech (soxr HQ, no codec) with ITU-T
P.862 PESQ (narrowband at 8 kHz, wideband at 16 kHz; `pesq`) and STOI (`pystoi`). The
G.711-only baseline is the same speech through mu-law alone with ideal resampling: the gap
between it and the chain is what our resamplers and framing cost.

- caller -> Gemini: 8 kHz speech -> mu-law -> CallerToGemini -> 16 kHz; ref: 8 kHz speech
  resampled once to 16 kHz; wideband PESQ.
- Gemini -> caller: 24 kHz speech -> GeminiToCaller -> mu-law -> 8 kHz; ref: 24 kHz speech
  resampled once to 8 kHz; narrowband PESQ.
- Caller level: the caller direction again for a quiet (-35 dBFS) and a normal (-20 dBFS)
  caller, with and without the gain control; the level that reaches Gemini is shown too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from telephony.audio.agc import CallerLevel
from telephony.audio.mulaw import decode_mulaw, encode_mulaw
from telephony.audio.transcode import CallerToGemini, GeminiToCaller
from telephony.audio.wav import read_wav, resample_whole

SPEECH_DIR = Path("fixtures") / "speech"
"""Relative to where the bench runs (a clone of the repository); `--speech` names another."""


@dataclass(frozen=True)
class Score:
    direction: str
    speaker: str
    condition: str
    pesq: float
    stoi: float
    level_dbfs: float


def _load_scorers():
    try:
        from pesq import pesq
        from pystoi import stoi
    except ImportError as exc:  # pragma: no cover - dev extras missing
        raise RuntimeError("the quality bench needs the dev extras: pip install -e '.[dev]' (pesq, pystoi)") from exc
    return pesq, stoi


def _level(samples: np.ndarray) -> float:
    active = samples.astype(np.float64)
    # Level of the speech, not the pauses: blocks within 30 dB of the loudest.
    blocks = active[: len(active) // 80 * 80].reshape(-1, 80)
    power = np.mean(blocks**2, axis=1)
    loud = power[power > power.max() * 1e-3] if power.max() > 0 else power
    return 10 * math.log10(max(float(np.mean(loud)), 1e-12) / 32768**2)


def _scale(samples: np.ndarray, dbfs: float) -> np.ndarray:
    gain = 10 ** ((dbfs - _level(samples)) / 20)
    return np.clip(np.rint(samples.astype(np.float64) * gain), -32768, 32767).astype(np.int16)


def caller_chain(speech8k: np.ndarray, agc: bool) -> np.ndarray:
    """What Gemini gets: mu-law on the line, then our streaming transcoder, 20 ms at a time."""
    mulaw = encode_mulaw(speech8k.astype("<i2").tobytes())
    transcoder = CallerToGemini(CallerLevel() if agc else None)
    out = b"".join(transcoder.process(mulaw[i : i + 160]) for i in range(0, len(mulaw), 160)) + transcoder.flush()
    return np.frombuffer(out, dtype="<i2")


def agent_chain(speech24k: np.ndarray, chunk_ms: int = 40) -> np.ndarray:
    """What the caller hears: Gemini's 24 kHz chunks through our transcoder, then mu-law decoded."""
    pcm = speech24k.astype("<i2").tobytes()
    step = 24000 * 2 * chunk_ms // 1000
    transcoder = GeminiToCaller()
    frames = [f for i in range(0, len(pcm), step) for f in transcoder.process(pcm[i : i + step])]
    frames += transcoder.flush()
    return np.frombuffer(decode_mulaw(b"".join(frames)), dtype="<i2")


def score_speaker(name: str, speech16k: np.ndarray, pesq, stoi) -> list[Score]:
    scores: list[Score] = []

    def add(direction: str, condition: str, rate: int, ref: np.ndarray, deg: np.ndarray) -> None:
        n = min(len(ref), len(deg))
        ref, deg = ref[:n], deg[:n]
        mode = "wb" if rate == 16000 else "nb"
        scores.append(
            Score(
                direction,
                name,
                condition,
                round(float(pesq(rate, ref, deg, mode)), 3),
                round(float(stoi(ref, deg, rate)), 4),
                round(_level(deg), 1),
            )
        )

    speech8k = resample_whole(speech16k, 16000, 8000)
    ideal16 = resample_whole(speech8k, 8000, 16000)
    g711 = resample_whole(np.frombuffer(decode_mulaw(encode_mulaw(speech8k.astype("<i2").tobytes())), "<i2"), 8000, 16000)
    add("caller->Gemini", "G.711 only", 16000, ideal16, g711)
    add("caller->Gemini", "chain", 16000, ideal16, caller_chain(speech8k, agc=False))

    speech24k = resample_whole(speech16k, 16000, 24000)
    ideal8 = resample_whole(speech24k, 24000, 8000)
    g711_8 = np.frombuffer(decode_mulaw(encode_mulaw(ideal8.astype("<i2").tobytes())), "<i2")
    add("Gemini->caller", "G.711 only", 8000, ideal8, g711_8)
    add("Gemini->caller", "chain", 8000, ideal8, agent_chain(speech24k))

    for caller_dbfs in (-35.0, -20.0):
        quiet8k = _scale(speech8k, caller_dbfs)
        reference = resample_whole(quiet8k, 8000, 16000)
        for agc in (False, True):
            condition = f"caller {caller_dbfs:.0f} dBFS, gain control {'on' if agc else 'off'}"
            add("caller->Gemini", condition, 16000, reference, caller_chain(quiet8k, agc=agc))
    return scores


def run_quality_bench(speech_dir: Path = SPEECH_DIR) -> list[Score]:
    pesq, stoi = _load_scorers()
    files = sorted(speech_dir.glob("*.wav"))
    if not files:
        raise RuntimeError(f"no speech in {speech_dir}; run scripts/make_fixtures.py")
    scores: list[Score] = []
    for path in files:
        samples, rate = read_wav(path)
        scores += score_speaker(path.stem, resample_whole(samples, rate, 16000), pesq, stoi)
    return scores


def scores_as_dicts(scores: list[Score]) -> list[dict[str, object]]:
    return [asdict(s) for s in scores]
