"""Speech quality through the real chain (PESQ, STOI), the caller gain control, VAD presets."""

from __future__ import annotations

import numpy as np
import pytest

from telephony.audio.agc import CallerLevel, dbfs
from telephony.audio.mulaw import decode_mulaw, encode_mulaw
from telephony.audio.resample import Interpolator2
from telephony.audio.transcode import CallerToGemini
from telephony.audio.wav import read_wav, resample_whole
from telephony.bench.quality import _level, _load_scorers, _scale, score_speaker
from telephony.gemini.config import VAD_PRESETS
from telephony.settings import Settings
from telephony.web.composition import agent_options_from

from conftest import FIXTURES

MARGIN = 0.1  # PESQ the chain may lose against G.711 alone


@pytest.fixture(scope="module")
def scores():
    pesq, stoi = _load_scorers()
    samples, rate = read_wav(FIXTURES / "speech" / "us_female.wav")
    return {(s.direction, s.condition): s for s in score_speaker("us_female", resample_whole(samples, rate, 16000), pesq, stoi)}


@pytest.mark.parametrize("direction", ["caller->Gemini", "Gemini->caller"])
def test_chain_costs_at_most_a_tenth_of_pesq_against_g711_alone(scores, direction):
    baseline, chain = scores[(direction, "G.711 only")], scores[(direction, "chain")]
    assert chain.pesq >= baseline.pesq - MARGIN
    assert chain.stoi >= baseline.stoi - 0.02
    assert baseline.pesq > 3.5, "the baseline itself is sane"


def test_gain_control_keeps_quality_and_fixes_the_level(scores):
    off = scores[("caller->Gemini", "caller -35 dBFS, gain control off")]
    on = scores[("caller->Gemini", "caller -35 dBFS, gain control on")]
    assert on.pesq >= off.pesq - MARGIN and on.stoi >= off.stoi - 0.02
    assert abs(on.level_dbfs - (-20)) <= 3 and abs(off.level_dbfs - (-35)) <= 1


def utterance(dbfs_level: float) -> np.ndarray:
    samples, rate = read_wav(FIXTURES / "speech" / "gb_male.wav")
    return _scale(resample_whole(samples, rate, 8000), dbfs_level)


def run_agc(agc: CallerLevel, samples: np.ndarray) -> np.ndarray:
    return np.concatenate([agc.process(samples[i : i + 160]) for i in range(0, len(samples), 160)])


def test_agc_raises_a_quiet_utterance_to_within_3_db_of_target():
    out = run_agc(CallerLevel(), utterance(-35))
    assert abs(_level(out) - (-20)) <= 3


def test_agc_never_clips_even_when_a_shout_follows_quiet_speech():
    quiet = utterance(-35)
    shout = np.clip(utterance(-6).astype(float) * 1.0, -32768, 32767).astype(np.int16)
    full_scale = np.rint(32767 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    out = run_agc(CallerLevel(), np.concatenate([quiet, shout, full_scale]))
    assert np.abs(out.astype(int)).max() <= 32768 * 10 ** (-1 / 20) + 1  # under -1 dBFS


def test_agc_leaves_digital_silence_silent_and_line_noise_unlifted():
    agc = CallerLevel()
    run_agc(agc, utterance(-35))  # the gain is up now
    silence = run_agc(agc, np.zeros(8000, dtype=np.int16))
    assert not silence.any()
    noise = np.rint(np.random.default_rng(1).normal(0, 32768 * 10 ** (-60 / 20), 16000)).astype(np.int16)
    lifted = run_agc(agc, noise)
    assert dbfs(np.sqrt(np.mean(lifted[4000:].astype(float) ** 2))) <= dbfs(np.sqrt(np.mean(noise[4000:].astype(float) ** 2))) + 0.5


def test_gain_control_inside_the_transcoder_levels_as_the_standalone_one_does():
    # The transcoder takes the float path (`apply`) and rounds once after resampling; it
    # must level exactly as `process` does, to within that one rounding.
    speech = utterance(-35)
    mulaw = encode_mulaw(speech.astype("<i2").tobytes())
    chained = CallerToGemini(CallerLevel())
    pieces = [chained.process(mulaw[i : i + 160]) for i in range(0, len(mulaw), 160)]
    via_transcoder = np.frombuffer(b"".join(pieces) + chained.flush(), "<i2")
    reference_agc, reference_resampler = CallerLevel(), Interpolator2()
    decoded = np.frombuffer(decode_mulaw(mulaw), "<i2")
    blocks = [reference_resampler.process(reference_agc.process(decoded[i : i + 160])) for i in range(0, len(decoded), 160)]
    via_process = np.concatenate([*blocks, reference_resampler.flush()])
    assert len(via_transcoder) == len(via_process) == 2 * len(speech)
    assert np.abs(via_transcoder.astype(int) - via_process.astype(int)).max() <= 2
    assert abs(_level(via_transcoder) - (-20)) <= 3, "the quiet caller reaches Gemini at speech level"


def test_vad_presets_reach_the_live_setup_and_unknown_ones_are_refused():
    settings = Settings(_env_file=None, vad_preset="patient")
    options = agent_options_from(settings)
    assert options.silence_duration_ms == VAD_PRESETS["patient"].silence_duration_ms == 1000
    assert options.with_vad_preset("responsive").silence_duration_ms == 300
    with pytest.raises(ValueError):
        options.with_vad_preset("sleepy")
    with pytest.raises(ValueError):
        Settings(_env_file=None, vad_preset="sleepy")


async def test_per_call_vad_preset_travels_as_a_stream_parameter():
    from telephony.testing.twilio_media import TwilioMediaEmulator

    from conftest import offline_stack

    async with offline_stack() as stack:
        emulator = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=8, auth_token="test-auth-token")
        target = await emulator.answer(stack.webhook.replace("/twiml", "/twiml?vad=patient"))
        assert target.parameters["vad"] == "patient"
        await emulator.play(target)
    activity = stack.gemini.connections[0].setup["realtime_input_config"]["automatic_activity_detection"]
    assert activity["silence_duration_ms"] == 1000 and activity["start_of_speech_sensitivity"] == "START_SENSITIVITY_LOW"
