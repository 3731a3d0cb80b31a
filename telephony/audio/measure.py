"""Measurements of the audio path shared by tests and `telephony bench codec`."""

from __future__ import annotations

import numpy as np

from telephony.audio.resample import StreamingResampler


def measured_delay_ms(resampler: StreamingResampler, settle_samples: int = 200) -> float:
    """How long an impulse waits inside `resampler` before its peak comes out.

    The impulse is fed one sample at a time, so nothing but the resampler can hold it back:
    the answer is (input time when the peak was emitted) - (input time of the impulse).
    """
    resampler.reset()
    signal = np.zeros(settle_samples * 2, dtype=np.int16)
    signal[settle_samples] = 16000
    emitted_at: list[int] = []  # for each output sample, the input index that released it
    outputs: list[int] = []
    for index in range(len(signal)):
        out = resampler.process(signal[index : index + 1])
        outputs.extend(int(v) for v in out)
        emitted_at.extend([index] * len(out))
    resampler.reset()
    peak = int(np.argmax(np.abs(outputs)))
    waited_input_samples = emitted_at[peak] - settle_samples
    return 1000.0 * waited_input_samples / resampler.in_rate


def tone(freq_hz: float, rate: int, seconds: float, dbfs: float = -6.0) -> np.ndarray:
    """A sine tone as int16."""
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def level_at(samples: np.ndarray, freq_hz: float, rate: int) -> float:
    """Level in dBFS of the `freq_hz` component (Hann-windowed single-bin DFT)."""
    x = samples.astype(np.float64) / 32768.0
    window = np.hanning(len(x))
    t = np.arange(len(x)) / rate
    amplitude = 2 * abs(np.sum(x * window * np.exp(-2j * np.pi * freq_hz * t))) / window.sum()
    return 20 * np.log10(max(amplitude, 1e-12))
