"""The streaming resamplers: delay, flatness, alias/image rejection, chunking invariance."""

import shutil
import sysconfig
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from telephony.audio import _kernels
from telephony.audio.agc import CallerLevel
from telephony.audio.compiled import COMPILED
from telephony.audio.measure import level_at, measured_delay_ms, tone
from telephony.audio.resample import Decimator3, Interpolator2, StreamingResampler

needs_c = pytest.mark.skipif(not COMPILED, reason="the C kernels were not built (no C compiler at install)")
# Every resampler test runs on the C filter (where built) and on the numpy one.
RESAMPLERS = [
    pytest.param(partial(cls, compiled=compiled), id=f"{cls.__name__}-{'c' if compiled else 'numpy'}", marks=[needs_c] if compiled else [])
    for cls in (Interpolator2, Decimator3)
    for compiled in (True, False)
]


def run(resampler: StreamingResampler, signal: np.ndarray, chunk: int) -> np.ndarray:
    parts = [resampler.process(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
    parts.append(resampler.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("cls", RESAMPLERS)
def test_delay_measured_with_an_impulse_is_at_most_5_ms(cls):
    resampler = cls()
    delay = measured_delay_ms(resampler)
    assert 0 < delay <= 5.0
    assert delay == pytest.approx(resampler.delay_ms, abs=1000 / resampler.in_rate * resampler.down)


@pytest.mark.parametrize("cls", RESAMPLERS)
@pytest.mark.parametrize("freq", [300, 500, 1000, 2000, 3000, 3400])
def test_level_flat_within_half_a_db_across_the_phone_band(cls, freq):
    resampler = cls()
    x = tone(freq, resampler.in_rate, 1.0, dbfs=-10)
    y = run(resampler, x, resampler.in_rate // 50)
    gain = level_at(y, freq, resampler.out_rate) - level_at(x, freq, resampler.in_rate)
    assert abs(gain) <= 0.5


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_c), False])
@pytest.mark.parametrize("freq", [5000, 6000, 8000, 10000, 11000])
def test_decimator_rejects_aliases_by_50_db(freq, compiled):
    resampler = Decimator3(compiled)
    y = run(resampler, tone(freq, 24000, 1.0, dbfs=-1), 480)
    alias = abs(freq - 8000 * round(freq / 8000))  # where the tone folds to at 8 kHz
    assert level_at(y, alias, 8000) <= -1 - 50


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_c), False])
@pytest.mark.parametrize("freq", [300, 1000, 2500, 3400])
def test_interpolator_rejects_images_by_50_db(freq, compiled):
    resampler = Interpolator2(compiled)
    y = run(resampler, tone(freq, 8000, 1.0, dbfs=-1), 160)
    assert level_at(y, 8000 - freq, 16000) <= -1 - 50


@pytest.mark.parametrize("cls", RESAMPLERS)
def test_20_second_sweep_in_20ms_chunks_equals_one_shot_and_has_exact_length(cls):
    resampler = cls()
    rate = resampler.in_rate
    t = np.arange(20 * rate) / rate
    sweep = np.rint(16000 * np.sin(2 * np.pi * (50 * t + (3800 - 50) / 40 * t**2))).astype(np.int16)
    whole = run(cls(), sweep, len(sweep))
    chunked = run(resampler, sweep, rate // 50)
    expected = -(-len(sweep) * resampler.up // resampler.down)
    assert len(whole) == len(chunked) == expected
    assert np.max(np.abs(whole.astype(int) - chunked.astype(int))) <= 1


@pytest.mark.parametrize("cls", RESAMPLERS)
def test_random_chunk_sizes_give_identical_output(cls):
    rng = np.random.default_rng(7)
    signal = np.rint(rng.normal(0, 4000, 3 * cls().in_rate)).astype(np.int16)
    even = run(cls(), signal, cls().in_rate // 50)
    resampler, parts, i = cls(), [], 0
    while i < len(signal):
        n = int(rng.integers(0, cls().in_rate))  # 0 (empty) up to 1 s
        parts.append(resampler.process(signal[i : i + n]))
        i += n
    parts.append(resampler.flush())
    assert np.max(np.abs(np.concatenate(parts).astype(int) - even.astype(int))) <= 1
    assert len(np.concatenate(parts)) == len(even)


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_c), False])
def test_reset_forgets_the_interrupted_audio(compiled):
    resampler = Decimator3(compiled)
    resampler.process(tone(1000, 24000, 0.1, dbfs=-1))
    resampler.reset()
    after = resampler.process(np.zeros(2400, dtype=np.int16))
    assert not after.any()  # nothing of the tone leaks out after a reset


def test_the_c_kernels_are_built_wherever_a_c_compiler_is():
    # The install builds them optionally: a broken build must not pass unseen as "no compiler".
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine: the numpy code runs, as it should")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no Python headers on this machine (Debian: python3-dev): the numpy code runs, as it should")
    assert COMPILED, "a C compiler is here but telephony/audio/_kernels.c was not built: see the install's output"


def _levelled_speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Silence, line noise, quiet and loud bursts, a full-scale tone: every gain branch."""
    n = int(8000 * seconds / 6)
    t = np.arange(n)
    parts = [
        np.zeros(n),
        rng.normal(0, 30, n),
        600 * np.sin(t * 0.31) * np.abs(np.sin(t * 0.002)),
        rng.normal(0, 9000, n),
        32767 * np.sin(t * 0.1),
        rng.normal(0, 120, n),
    ]
    return np.clip(np.rint(np.concatenate(parts)), -32768, 32767).astype("<i2")


@needs_c
@pytest.mark.parametrize("direction", ["caller", "agent"])
def test_the_c_and_numpy_filters_agree_within_one_lsb_in_any_chunking(direction):
    rng = np.random.default_rng(11)
    if direction == "caller":  # with the gain control's ramps, as the caller's path runs
        make = partial(Interpolator2)
        signal = _levelled_speech_like(6.0, rng)
        levels = {True: CallerLevel(compiled=True), False: CallerLevel(compiled=False)}
    else:
        make = partial(Decimator3)
        signal = np.rint(rng.normal(0, 6000, 24000 * 3)).astype("<i2")
        levels = None
    outputs = {}
    for compiled in (True, False):
        resampler, pieces, i = make(compiled=compiled), [], 0
        chunk_rng = np.random.default_rng(5)  # the same chunking for both
        while i < len(signal):
            n = int(chunk_rng.integers(0, 2000))
            pcm = signal[i : i + n].tobytes()
            ramps = levels[compiled].gain_ramps(pcm) if levels else None
            pieces.append(resampler.process_pcm16(pcm, ramps))
            i += n
        pieces.append(resampler.flush_pcm16())
        outputs[compiled] = np.frombuffer(b"".join(pieces), "<i2").astype(int)
    assert len(outputs[True]) == len(outputs[False]) == -(-len(signal) * make().up // make().down)
    assert np.abs(outputs[True] - outputs[False]).max() <= 1
    assert np.mean(outputs[True] != outputs[False]) < 0.001


@needs_c
def test_the_gain_decisions_are_the_same_in_c_and_python_bit_for_bit():
    signal = _levelled_speech_like(12.0, np.random.default_rng(2)).tobytes()
    in_c, in_python = CallerLevel(compiled=True), CallerLevel(compiled=False)
    for chunk in (160, 80, 1600, 666):  # whole blocks, half blocks, a partial block at the end
        for i in range(0, len(signal), chunk):
            assert in_c.gain_ramps(signal[i : i + chunk]) == in_python.gain_ramps(signal[i : i + chunk])
    assert in_c.gain_db == in_python.gain_db and in_c.speech_level_dbfs == in_python.speech_level_dbfs
    assert in_c.speech_level_dbfs is not None and in_c.gain_db != 0.0, "the signal moved the gain"


@needs_c
def test_the_c_kernels_refuse_buffers_that_do_not_fit():
    resampler = Interpolator2(compiled=True)
    with pytest.raises(ValueError, match="do not match"):
        _kernels.fir_stream(resampler._history, resampler._phase_table[:-1], 2, 1, 0, b"\0\0", None)
    with pytest.raises(ValueError, match="outside the chunk"):
        ramps = np.array([0.0, 5.0, 1.0, 1.0]).tobytes()  # five samples of gain on two
        _kernels.fir_stream(resampler._history, resampler._phase_table, 2, 1, 0, bytes(4), ramps)
    with pytest.raises(ValueError, match="outside the chunk"):
        _kernels.fir_stream(resampler._history, resampler._phase_table, 2, 1, 0, bytes(4), np.array([np.nan, 1, 0, 0]).tobytes())
    with pytest.raises(ValueError, match="half a sample"):
        _kernels.gain_ramps(CallerLevel(compiled=True)._state, b"\0\0\0")
