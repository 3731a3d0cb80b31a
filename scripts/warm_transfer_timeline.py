"""A warm transfer through the emulators, printed as what each party heard and when.

    .venv/bin/python scripts/warm_transfer_timeline.py

The caller asks for a person; the scripted model calls warm_transfer; the person (Alex) answers
after 1 s of ringing, hears the whole briefing and presses 1 fifteen seconds in; both are joined in one
conference. Times are call time (real time, speed 1) from the caller's stream opening.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from telephony.testing.call_fixture import CallFixtureBuilder, parse_fixture_lines  # noqa: E402
from telephony.testing.caller_speech import speech_like  # noqa: E402
from telephony.testing.gemini_live import GeminiLiveEmulator  # noqa: E402
from telephony.testing.model_script import ModelStep, ScriptedModel  # noqa: E402
from telephony.testing.phone_network import PhoneNetwork, person  # noqa: E402
from telephony.testing.twilio_media import ReplayResult, TwilioMediaEmulator  # noqa: E402
from telephony.testing.twilio_rest import FakeTwilioRest  # noqa: E402

from conftest import ACCOUNT_SID, AUTH_TOKEN, offline_stack  # noqa: E402

ALEX = "+15550001111"


def spans(result: ReplayResult, gap_s: float = 0.3) -> list[tuple[float, float]]:
    """(start, end) of what was played to this party, in its own call seconds."""
    out: list[list[float]] = []
    for at, frame in sorted(result.played):
        end = at + len(frame) / 8000
        if out and at - out[-1][1] <= gap_s:
            out[-1][1] = end
        else:
            out.append([at, end])
    return [(a, b) for a, b in out]


async def main() -> None:
    rest = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN)
    network = PhoneNetwork(rest, AUTH_TOKEN, speed=1.0)
    network.callees[ALEX] = person(keys="1", after_s=15.0)
    summary = "Maria Lopez wants to move her Friday appointment; no free time suits her."
    step = ModelStep(say="", tool="warm_transfer", args={"to": ALEX, "summary": summary})
    models = iter([ScriptedModel([step])])
    async with rest.running(), GeminiLiveEmulator(lambda: next(models, None) or ScriptedModel([]), speed=4.0) as gemini:
        async with offline_stack(gemini, twilio_api_base=rest.base_url, transfer_numbers=[ALEX]) as stack:
            builder = CallFixtureBuilder("caller").silence(500)
            builder.speech(speech_like("can I talk to someone please", 8000)).silence(60_000).stop()
            caller = TwilioMediaEmulator(parse_fixture_lines(builder.lines(), "caller"), auth_token=AUTH_TOKEN, call_sid="CA" + "5" * 32)
            network.attach(caller.call_sid or "", caller)
            result = await caller.call(stack.webhook)
            await network.settle()
            (alex,) = network.calls.values()
            offset = alex.created - result.started_monotonic
            print("caller:")
            print("   0.50-2.30 s  says 'can I talk to someone please'")
            for start, end in spans(result):
                print(f"  {start:5.2f}-{end:5.2f} s  hears the hold tone (our stream)")
            print(f"  {result.duration_s:5.2f} s       stream ends: redirected into the conference")
            print(f"person ({ALEX}), dialled at {offset:.2f} s:")
            for at, what in alex.events:
                print(f"  {offset + at:5.2f} s       {what}")
            assert alex.result is not None
            opened = next(at for at, what in alex.events if what == "stream opened") + offset
            for start, end in spans(alex.result):
                print(f"  {opened + start:5.2f}-{opened + end:5.2f} s  hears the briefing in the agent's voice")
            print(f"  {opened + 15.0:5.2f} s       presses 1")
            print(f"conference: {network.conferences}")
            (record,) = stack.records()
            print(f"caller's record: outcome {record.outcome}, {record.end_reason}")


if __name__ == "__main__":
    asyncio.run(main())
