"""`telephony bench reconnect`: what the caller hears when Gemini's connection is replaced.

Each case is one call (the barge-in recording: a question, a short answer, a follow-up)
against its own server process and a Gemini emulator with the realistic profile and one
fault, all cases at once. Measured on the wire at the Twilio emulator: the silence between
the end of the caller's follow-up and the first frame of its answer, against the same call
with no fault (so "extra silence" is what the reconnect cost the caller), and whether the
first answer was heard whole.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from telephony.bench.load import FIXTURE, _Server
from telephony.testing.call_fixture import caller_stays, speech_spans_s
from telephony.testing.gemini_live import REALISTIC, Faults, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.testing.twilio_media import ReplayResult, TwilioMediaEmulator

FIRST_ANSWER_S = 0.6
CASES: dict[str, Faults] = {
    "no fault": Faults(),
    "1000, no reason, between turns": Faults(close_after_s=4.8, close_code=1000, close_reason=""),
    "1008 'not implemented', between turns": Faults(
        close_after_s=4.8, close_code=1008, close_reason="Operation is not implemented, or supported, or enabled."
    ),
    "1011, resumed": Faults(close_after_s=4.8, close_code=1011),
    "1011, resumption refused (fresh session)": Faults(close_after_s=4.8, close_code=1011, refuse_resumption=True),
    "1006 drop while the answer plays": Faults(drop_after_s=4.3),
    "goAway (50 s left)": Faults(go_away_after_s=4.3, go_away_time_left_s=50.0),
    "1011 in the silence after the follow-up": Faults(close_after_s=7.9, close_code=1011),
    "1011 mid follow-up, resumption refused": Faults(close_after_s=6.4, close_code=1011, refuse_resumption=True),
    "1000 at the follow-up's last word": Faults(close_after_s=7.5, close_code=1000, close_reason=""),
}
"""Connection times: the call's stream starts about 0.1-0.3 s before Gemini's connection, so
4.8 s lands around the start of the follow-up (5.4-7.6 s of the recording)."""


@dataclass
class ReconnectFigures:
    case: str
    reconnects: int
    """Connections after the first (a refused resumption counts one more)."""
    answer_gap_s: float | None
    """End of the caller's follow-up -> first frame of its answer heard."""
    extra_silence_s: float | None
    first_answer_heard_s: float
    """Of the first answer (0.6 s): heard whole and once."""
    follow_up_answer_heard_s: float
    """Of the follow-up's answer (1.0 s): heard whole and once, not a replay of the first."""
    errors: str
    server_log: str = ""
    """The server's warnings and errors for this call (why a reconnect took the time it did)."""


def _agent() -> ScriptedAgent:
    replies = [Reply(audio24k=tone24k(FIRST_ANSWER_S), transcript="We open at nine."), Reply(audio24k=tone24k(1.0, 880.0))]
    return ScriptedAgent(replies, respond_to_text=True)  # as the model answers text input


CALLER_WAITS_S = 8.0
"""The caller stays on the line this long after the recording's end: an answer that comes late
(a reconnect on a loaded machine, a stall recovered) is measured as late, not as never."""


async def _one(case: str, faults: Faults, logs: Path) -> tuple[str, ReplayResult | BaseException, int, str]:
    log_file = logs / f"{list(CASES).index(case)}.log"
    async with GeminiLiveEmulator(_agent, faults=faults, realism=REALISTIC) as gemini:
        server = _Server(gemini, 1, "uvloop", log_file=log_file)
        try:
            await server.wait_ready()
            caller = TwilioMediaEmulator(caller_stays(FIXTURE, CALLER_WAITS_S), auth_token=server.auth_token)
            try:
                result: ReplayResult | BaseException = await asyncio.wait_for(caller.call(server.url + "/twiml"), 60)
            except Exception as exc:  # reported in the table
                result = exc
        finally:
            server.stop()
        return case, result, max(0, len(gemini.connections) - 1), log_file.read_text(errors="replace")


async def run_reconnect() -> list[ReconnectFigures]:
    (_, first_end), (_, follow_up_end) = speech_spans_s(FIXTURE)[:2]
    with tempfile.TemporaryDirectory(prefix="bench-reconnect-") as logs:
        outcomes = await asyncio.gather(*(_one(case, faults, Path(logs)) for case, faults in CASES.items()))
    figures: list[ReconnectFigures] = []
    baseline: float | None = None
    for case, result, reconnects, log in outcomes:
        if not isinstance(result, ReplayResult):
            figures.append(ReconnectFigures(case, reconnects, None, None, 0.0, 0.0, f"{type(result).__name__}: {result}", log))
            continue
        after = [at for at, _ in result.played if at > follow_up_end]
        gap = round(after[0] - follow_up_end, 3) if after else None
        first = sum(len(frame) for at, frame in result.played if first_end < at < follow_up_end) / 8000
        second = sum(len(frame) for at, frame in result.played if at > follow_up_end) / 8000
        if case == "no fault":
            baseline = gap
        extra = round(gap - baseline, 3) if gap is not None and baseline is not None else None
        figures.append(ReconnectFigures(case, reconnects, gap, extra, round(first, 2), round(second, 2), "", log))
    return figures


def figures_as_dict(figures: list[ReconnectFigures]) -> list[dict[str, Any]]:
    return [{k: v for k, v in asdict(figure).items() if k != "server_log"} for figure in figures]
