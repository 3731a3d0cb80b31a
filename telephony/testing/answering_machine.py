"""An answering machine on the line, for tests of outbound calls: a greeting, a beep, then the
silence of a machine that records; and Twilio's asynchronous detection result (`AnsweredBy`),
POSTed to the server as Twilio signs it.

    call = answering_machine(greeting_s=4.0)           # a recorded call, as Twilio would send it
    await post_answered_by(base, call_sid, "machine_end_beep", auth_token)
"""

from __future__ import annotations

import numpy as np

from telephony.http_client import http_client
from telephony.testing.call_fixture import CallFixtureBuilder, FixtureMessage, parse_fixture_lines
from telephony.testing.caller_speech import speech_like
from telephony.twilio.signatures import TwilioSignatures


def beep(ms: int = 400, freq_hz: float = 1000.0, dbfs: float = -12.0) -> np.ndarray:
    t = np.arange(8 * ms) / 8000
    return np.rint(32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def answering_machine(
    greeting_s: float = 4.0, with_beep: bool = True, recording_s: float = 20.0, name: str = "machine"
) -> list[FixtureMessage]:
    """The machine's side of the call: greeting speech, a beep, then it records (line noise)
    until the caller (our agent) hangs up, or `recording_s` later."""
    builder = CallFixtureBuilder(name).silence(400)
    builder.speech(speech_like("x" * round(greeting_s / 0.065), 8000))  # a greeting of about greeting_s
    builder.silence(300)
    if with_beep:
        builder.speech(beep())
    builder.silence(int(recording_s * 1000)).stop()
    return parse_fixture_lines(builder.lines(), name)


async def post_answered_by(base_url: str, call_sid: str, answered_by: str, auth_token: str) -> int:
    """Twilio's AsyncAmdStatusCallback: returns the server's status code."""
    url = f"{base_url.rstrip('/')}/amd"
    form = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "AnsweredBy": answered_by, "MachineDetectionDuration": "4200"}
    headers = {"X-Twilio-Signature": TwilioSignatures(auth_token).sign(url, form)}
    async with http_client(10) as client:
        return (await client.post(url, data=form, headers=headers)).status_code
