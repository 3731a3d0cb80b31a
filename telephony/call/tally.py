"""What the call core counts, as plain numbers: the driver publishes them as metrics.

The core imports no metrics library (nor anything that does I/O): it adds to a `Tally`, and
after each input the driver hands the tally to `telephony.metrics.Metrics.publish`, which
turns each name into the Prometheus counter or histogram of the same name.
"""

from __future__ import annotations

from collections import Counter


class Tally:
    """Counts by (metric name, label values), and observations by metric name, since the
    last `take()`."""

    __slots__ = ("counts", "frames_in", "observations")

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, tuple[str, ...]]] = Counter()
        self.observations: list[tuple[str, float]] = []
        self.frames_in = 0
        """The caller's frames: counted 50 times a second, so a plain number until `take()`."""

    def inc(self, name: str, *labels: str, amount: int = 1) -> None:
        self.counts[(name, labels)] += amount

    def observe(self, name: str, value: float) -> None:
        self.observations.append((name, value))

    def take(self) -> tuple[Counter[tuple[str, tuple[str, ...]]], list[tuple[str, float]]]:
        """What was counted since the last take (and forget it)."""
        if self.frames_in:
            self.counts[("frames_in", ())] += self.frames_in
            self.frames_in = 0
        counts, observations = self.counts, self.observations
        if counts or observations:
            self.counts, self.observations = Counter(), []
        return counts, observations

    def __bool__(self) -> bool:
        return bool(self.frames_in or self.counts or self.observations)
