"""Streaming polyphase FIR resamplers for the two fixed ratios of a phone call.

Why not soxr here: fed 20 ms chunks, `soxr.ResampleStream` holds output back (measured with
soxr 1.1.0: HQ 89 ms for 8->16 kHz and 66 ms for 24->8 kHz; LQ 47 ms and 12 ms; QQ almost
none but cubic interpolation aliases badly on the way down to 8 kHz). A caller hears that
delay twice per turn. The ratios we need are fixed (x2 and /3), so a short linear-phase FIR,
run as a polyphase filter that carries its history across chunks, gives (see
`telephony bench codec` and tests/test_resample.py):

- caller 8 -> 16 kHz (`Interpolator2`): 129 taps, Kaiser beta 7.0, cut-off 3.95 kHz, group
  delay 4.0 ms, images (4.4-8 kHz) down more than 75 dB. A first design with 57 taps (1.75 ms)
  met the band and image targets but let the images of 3.4-4 kHz speech through at -29 dB,
  which cost 0.5 wideband PESQ against G.711 alone (`telephony bench quality`); this one
  costs 0.05;
- agent 24 -> 8 kHz (`Decimator3`): 61 taps, Kaiser beta 6.0, group delay 1.25 ms,
  5-11 kHz aliases down more than 60 dB;
- both flat within 0.05 dB from 300 Hz to 3.4 kHz.

Each resampler emits every output sample as soon as its last input arrives: the only delay is
the filter's group delay, and the leading group delay is trimmed so that output sample n lines
up with input time n. `flush()` pushes out the tail, so a whole signal fed in any chunking
comes out with exactly `ceil(len * up / down)` samples. soxr stays in use for one-shot
conversions of whole files (`telephony.audio.wav`).

The filter runs in C (`_kernels.c`: the gain ramps, every phase and the rounding in one call a
chunk) where the package was built with a C compiler, and on numpy otherwise (`compiled.py`):
at 160 samples a frame numpy's per-call overhead costs more than the arithmetic. Both give the
same output within one least significant bit (where a sum lands on a rounding boundary).
"""

from __future__ import annotations

import math

import numpy as np

from telephony.audio.agc import apply_gain_ramps
from telephony.audio.compiled import _kernels, use_compiled


def kaiser_lowpass(num_taps: int, cutoff_hz: float, sample_rate: int, beta: float) -> np.ndarray:
    """A linear-phase windowed-sinc low-pass with unit DC gain."""
    n = np.arange(num_taps) - (num_taps - 1) / 2
    fc = cutoff_hz / sample_rate
    taps = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(num_taps, beta)
    return taps / taps.sum()


class StreamingResampler:
    """Rational resampler (up/down) that keeps its FIR history between chunks.

    Input and output are int16 numpy arrays. One instance per call and per direction: the
    history is the audio just heard, so sharing or recreating one would click.
    """

    def __init__(self, up: int, down: int, taps: np.ndarray, in_rate: int, compiled: bool | None = None) -> None:
        """`compiled`: None runs the C filter where it was built, False always numpy (tests
        compare the two), True insists on C."""
        self.compiled = use_compiled(compiled)
        if len(taps) % 2 == 0:
            raise ValueError("an odd tap count keeps the group delay a whole number of samples")
        self.up, self.down, self.in_rate = up, down, in_rate
        self.out_rate = in_rate * up // down
        group_delay = (len(taps) - 1) // 2  # in samples at the filter rate (in_rate * up)
        if group_delay % down:
            raise ValueError("group delay must be a whole number of output samples")
        self.delay_samples = group_delay // down
        # Polyphase split: phase r of the interpolator uses taps[r::up]; gain `up` restores
        # the level lost to zero-stuffing. Stored reversed for np.correlate (cheaper than
        # np.convolve, which reverses on every call).
        per_phase = math.ceil(len(taps) / up)
        padded = np.zeros(per_phase * up)
        padded[: len(taps)] = taps * up
        self._phases = [padded[r::up][::-1].copy() for r in range(up)]
        self._phase_table = np.concatenate(self._phases)  # the C filter's layout: phase after phase
        self._history_len = per_phase - 1
        self.reset()

    @property
    def delay_ms(self) -> float:
        """Milliseconds this resampler holds audio back (its filter group delay)."""
        return 1000.0 * self.delay_samples / self.out_rate

    def reset(self) -> None:
        """Forget everything (used at barge-in: the interrupted audio must not leak out)."""
        self._history = np.zeros(self._history_len)
        self._next_phase = 0  # decimation: index in the next chunk of the next output sample
        self._to_trim = self.delay_samples
        self._samples_in = 0
        self._samples_out = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample a chunk; returns every output sample that the chunk completes."""
        if self.compiled and samples.dtype.kind == "i":
            return np.frombuffer(self.process_pcm16(samples.astype("<i2", copy=False).tobytes()), dtype="<i2")
        self._samples_in += len(samples)
        return self._emit(self._filter(samples))

    def process_pcm16(self, pcm16: bytes, gain_ramps: bytes | None = None) -> bytes:
        """The same on PCM16 LE bytes, in one C call where built: what the transcoders use.

        `gain_ramps` (from `agc.CallerLevel.gain_ramps`) levels the chunk on the way in.
        """
        if not self.compiled:
            samples: np.ndarray = np.frombuffer(pcm16, dtype="<i2")
            if gain_ramps is not None:
                samples = apply_gain_ramps(samples, gain_ramps)
            return self.process(samples).astype("<i2", copy=False).tobytes()
        self._samples_in += len(pcm16) // 2
        return self._emit_pcm16(self._filter_pcm16(pcm16, gain_ramps))

    def flush(self) -> np.ndarray:
        """Push out the filter tail, then start afresh (end of a turn or of the call)."""
        if self.compiled:
            return np.frombuffer(self.flush_pcm16(), dtype="<i2")
        expected = math.ceil(self._samples_in * self.up / self.down)
        tail = self._filter(np.zeros(self._tail_inputs, dtype=np.int16))
        out = self._emit(tail, limit=expected - self._samples_out)
        self.reset()
        return out

    def flush_pcm16(self) -> bytes:
        """`flush` as PCM16 LE bytes."""
        if not self.compiled:
            return self.flush().astype("<i2", copy=False).tobytes()
        expected = math.ceil(self._samples_in * self.up / self.down)
        tail = self._filter_pcm16(bytes(2 * self._tail_inputs), None)
        out = self._emit_pcm16(tail, limit=expected - self._samples_out)
        self.reset()
        return out

    @property
    def _tail_inputs(self) -> int:
        """Zero inputs that push the last real sample out of the filter."""
        return (self.delay_samples + 1) * self.down // self.up + self.down

    def _take_phase(self, count: int) -> int:
        """Decimation: the index in this chunk of `count` inputs of the next output's window;
        moves it on to the next chunk."""
        first = self._next_phase
        self._next_phase = (first - count) % self.down
        return first

    def _filter_pcm16(self, pcm16: bytes, gain_ramps: bytes | None) -> bytes:
        first = self._take_phase(len(pcm16) // 2)
        return _kernels.fir_stream(self._history, self._phase_table, self.up, self.down, first, pcm16, gain_ramps)

    def _emit_pcm16(self, out: bytes, limit: int | None = None) -> bytes:
        if self._to_trim:
            trimmed = min(self._to_trim, len(out) // 2)
            out = out[2 * trimmed :]
            self._to_trim -= trimmed
        if limit is not None:
            out = out[: 2 * max(0, limit)]
        self._samples_out += len(out) // 2
        return out

    def _filter(self, samples: np.ndarray) -> np.ndarray:
        count = len(samples)
        if count == 0:
            return np.zeros(0)
        # History and chunk in one float buffer; the tail becomes the next chunk's history.
        x = np.empty(self._history_len + count)
        x[: self._history_len] = self._history
        x[self._history_len :] = samples
        self._history = x[count:]
        if self.up > 1:  # interpolate: each phase gives one output per input sample
            out = np.empty(count * self.up)
            for r, phase_taps in enumerate(self._phases):
                out[r :: self.up] = np.correlate(x, phase_taps)
            return out
        # Decimate: only every `down`-th window is needed; correlate the strided windows.
        first = self._take_phase(count)
        if first >= count:
            return np.zeros(0)
        return np.correlate(x[first:], self._phases[0])[:: self.down]

    def _emit(self, out: np.ndarray, limit: int | None = None) -> np.ndarray:
        if self._to_trim:
            trimmed = min(self._to_trim, len(out))
            out = out[trimmed:]
            self._to_trim -= trimmed
        if limit is not None:
            out = out[: max(0, limit)]
        self._samples_out += len(out)
        # In place: np.clip's Python wrapper costs more than the arithmetic at these sizes.
        np.rint(out, out=out)
        np.maximum(out, -32768.0, out=out)
        np.minimum(out, 32767.0, out=out)
        return out.astype(np.int16)


class Interpolator2(StreamingResampler):
    """Caller audio 8 kHz -> 16 kHz for Gemini Live (x2)."""

    def __init__(self, compiled: bool | None = None) -> None:
        super().__init__(2, 1, kaiser_lowpass(129, 3950, 16000, 7.0), in_rate=8000, compiled=compiled)


class Decimator3(StreamingResampler):
    """Agent audio 24 kHz -> 8 kHz for the phone line (/3)."""

    def __init__(self, compiled: bool | None = None) -> None:
        super().__init__(1, 3, kaiser_lowpass(61, 4200, 24000, 6.0), in_rate=24000, compiled=compiled)
