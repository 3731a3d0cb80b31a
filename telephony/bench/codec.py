"""`telephony bench codec`: cost and delay of one 20 ms frame through each direction.

Each direction is timed as the call runs it, wire format included:
- caller -> Gemini: parse Twilio's media JSON, base64-decode, mu-law decode, resample
  8 -> 16 kHz, base64-encode for the Live API;
- Gemini -> caller: base64-decode the Live API chunk, resample 24 -> 8 kHz, mu-law encode,
  frame, base64 and build Twilio's media JSON.
Also timed on their own: the local voice detection (webrtcvad) that runs on every caller
frame for barge-in, and one caller frame through the whole call core (all of the above for
the caller's direction, plus voice detection and the core's bookkeeping).
"""

from __future__ import annotations

import base64
import time
from dataclasses import asdict, dataclass

from telephony.audio.agc import CallerLevel
from telephony.audio.compiled import COMPILED
from telephony.audio.measure import measured_delay_ms, tone
from telephony.audio.mulaw import decode_mulaw
from telephony.audio.resample import Decimator3, Interpolator2
from telephony.audio.transcode import CallerToGemini, GeminiToCaller
from telephony.call.core import Call, CallConfig
from telephony.call.voice_activity import CallerVoice
from telephony.testing.call_fixture import CallFixtureBuilder
from telephony.twilio.media_streams import Media, media_message, parse_message


@dataclass(frozen=True)
class CodecFigures:
    caller_to_gemini_us_per_frame: float
    gemini_to_caller_us_per_frame: float
    caller_to_gemini_delay_ms: float
    gemini_to_caller_delay_ms: float
    frames: int
    caller_gain_control: bool
    audio_in_python: bool = False
    """The gain control and the resamplers ran in Python and numpy, not in the C kernels."""
    voice_detection_us_per_frame: float = 0.0
    call_core_caller_frame_us: float = 0.0


def _best_of(runs: int, fn, frames: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / frames * 1e6


def run_codec_bench(seconds: float = 10.0, runs: int = 5, with_agc: bool = True, in_python: bool = False) -> CodecFigures:
    """Time `seconds` of audio through each direction; best of `runs` (least disturbed).
    `in_python`: the Python and numpy code even where the C kernels were built."""
    compiled = False if in_python or not COMPILED else None
    caller = CallFixtureBuilder("bench").speech(tone(440, 8000, seconds, dbfs=-20)).lines()
    caller_frames = [line for line in caller if '"media"' in line]
    agent_pcm = tone(440, 24000, seconds, dbfs=-20).astype("<i2").tobytes()
    agent_chunks = [base64.b64encode(agent_pcm[i : i + 960]).decode() for i in range(0, len(agent_pcm), 960)]  # 20 ms at 24 kHz
    stream_sid = "MZ" + "0" * 32

    def inbound() -> None:
        transcoder = CallerToGemini(CallerLevel(compiled=compiled) if with_agc else None, compiled=compiled)
        for line in caller_frames:
            message = parse_message(line)
            assert isinstance(message, Media)
            base64.b64encode(transcoder.process(message.media.payload))

    def outbound() -> None:
        transcoder = GeminiToCaller(compiled=compiled)
        for chunk in agent_chunks:
            for frame in transcoder.process(base64.b64decode(chunk)):
                media_message(stream_sid, frame)

    pcm_frames = [decode_mulaw(parse_message(line).media.payload) for line in caller_frames]  # type: ignore[union-attr]

    def voice() -> None:
        detector = CallerVoice()
        for pcm in pcm_frames:
            detector.feed(pcm)

    start_line = next(line for line in caller if '"start"' in line)

    def core() -> None:
        call = Call(CallConfig(caller_agc=with_agc, audio_in_python=compiled is False), 0.0)
        call.twilio_frame(start_line, 0.0)
        call.agent_ready(0.0)
        for index, line in enumerate(caller_frames):
            call.twilio_frame(line, index * 0.02)
            call.take_actions()

    return CodecFigures(
        voice_detection_us_per_frame=_best_of(runs, voice, len(pcm_frames)),
        call_core_caller_frame_us=_best_of(runs, core, len(caller_frames)),
        caller_to_gemini_us_per_frame=_best_of(runs, inbound, len(caller_frames)),
        gemini_to_caller_us_per_frame=_best_of(runs, outbound, len(agent_chunks)),
        caller_to_gemini_delay_ms=measured_delay_ms(Interpolator2()),
        gemini_to_caller_delay_ms=measured_delay_ms(Decimator3()),
        frames=len(caller_frames),
        caller_gain_control=with_agc,
        audio_in_python=compiled is False,
    )


def figures_as_dict(figures: CodecFigures) -> dict[str, float]:
    return asdict(figures)


__all__ = ["CodecFigures", "figures_as_dict", "run_codec_bench"]
