"""The streaming resamplers: delay, flatness, alias/image rejection, chunking invariance."""

import numpy as np
import pytest

from telephony.audio.measure import level_at, measured_delay_ms, tone
from telephony.audio.resample import Decimator3, Interpolator2, StreamingResampler


def run(resampler: StreamingResampler, signal: np.ndarray, chunk: int) -> np.ndarray:
    parts = [resampler.process(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
    parts.append(resampler.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("cls", [Interpolator2, Decimator3])
def test_delay_measured_with_an_impulse_is_at_most_5_ms(cls):
    resampler = cls()
    delay = measured_delay_ms(resampler)
    assert 0 < delay <= 5.0
    assert delay == pytest.approx(resampler.delay_ms, abs=1000 / resampler.in_rate * resampler.down)


@pytest.mark.parametrize("cls", [Interpolator2, Decimator3])
@pytest.mark.parametrize("freq", [300, 500, 1000, 2000, 3000, 3400])
def test_level_flat_within_half_a_db_across_the_phone_band(cls, freq):
    resampler = cls()
    x = tone(freq, resampler.in_rate, 1.0, dbfs=-10)
    y = run(resampler, x, resampler.in_rate // 50)
    gain = level_at(y, freq, resampler.out_rate) - level_at(x, freq, resampler.in_rate)
    assert abs(gain) <= 0.5


@pytest.mark.parametrize("freq", [5000, 6000, 8000, 10000, 11000])
def test_decimator_rejects_aliases_by_50_db(freq):
    resampler = Decimator3()
    y = run(resampler, tone(freq, 24000, 1.0, dbfs=-1), 480)
    alias = abs(freq - 8000 * round(freq / 8000))  # where the tone folds to at 8 kHz
    assert level_at(y, alias, 8000) <= -1 - 50


@pytest.mark.parametrize("freq", [300, 1000, 2500, 3400])
def test_interpolator_rejects_images_by_50_db(freq):
    resampler = Interpolator2()
    y = run(resampler, tone(freq, 8000, 1.0, dbfs=-1), 160)
    assert level_at(y, 8000 - freq, 16000) <= -1 - 50


@pytest.mark.parametrize("cls", [Interpolator2, Decimator3])
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


@pytest.mark.parametrize("cls", [Interpolator2, Decimator3])
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


def test_reset_forgets_the_interrupted_audio():
    resampler = Decimator3()
    resampler.process(tone(1000, 24000, 0.1, dbfs=-1))
    resampler.reset()
    after = resampler.process(np.zeros(2400, dtype=np.int16))
    assert not after.any()  # nothing of the tone leaks out after a reset
