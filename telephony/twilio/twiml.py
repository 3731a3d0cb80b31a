"""The TwiML we answer Twilio's voice webhook with, built with the twilio library."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse


def connect_stream(stream_url: str, parameters: Mapping[str, str], status_callback: str | None = None) -> str:
    """`<Connect><Stream>`: a bidirectional media stream that holds the call until it closes.

    Per-call data travels as `<Parameter>`s (Twilio drops query strings from the stream URL)
    and comes back in the `start` message's `customParameters`.
    """
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url, status_callback=status_callback) if status_callback else connect.stream(url=stream_url)
    for name, value in parameters.items():
        if value is not None:
            stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def busy(message: str = "Sorry, all our lines are busy. Please call again in a few minutes.") -> str:
    """What a caller hears when we cannot take the call (at capacity, or shutting down)."""
    return say_and_hang_up(message)


def say_and_hang_up(message: str) -> str:
    """A call we will not take (an agent selector refused it): say why, then hang up."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def conference(name: str) -> str:
    """`<Dial><Conference>`: where a warm transfer joins caller and person. Either one leaving
    ends it, so nobody waits alone in the room; no beeps, no hold music for the first in."""
    response = VoiceResponse()
    dial = Dial()
    dial.conference(name, start_conference_on_enter=True, end_conference_on_exit=True, beep=False, wait_url="")
    response.append(dial)
    return str(response)
