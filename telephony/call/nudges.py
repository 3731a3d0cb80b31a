"""What the call says to the model on its own: text sent as realtime input, never as client
content (which interrupts on some families), each for a moment the model cannot see."""

from __future__ import annotations

DTMF_TEXT = "The caller pressed the keypad key {digit}."
CONTINUE_NUDGE = (
    "(Our connection dropped while you were speaking{heard}. Continue your answer from where it broke off, "
    "briefly and without starting over.)"
)
"""Sent after a reconnect that cut the agent's reply off: the rest of the sentence is lost
with the old connection, and without a nudge the caller would sit in silence."""
RECONNECT_NUDGE = (
    "(Our connection dropped for a moment just after the caller finished speaking, so their last words may not "
    "have reached you. Answer them if you can; otherwise briefly ask them to repeat.)"
)
"""Sent after a reconnect when the caller spoke last: without it, a turn that ended as the
connection dropped is never answered and the caller waits in silence."""
STALL_NUDGE = "(The caller is waiting for your answer to what they just said. Answer them now, briefly.)"
"""A stalled model is asked for its answer as realtime text: it never interrupts, on any family."""
SILENCE_CHECK_IN = "(The caller has said nothing for a while. Briefly check whether they are still there.)"
"""Sent when the caller has been silent on their turn (`silence`)."""
SILENCE_GOODBYE = "(The caller is still silent. Say a short, polite goodbye now; the call will then end.)"
TIME_NOTICE = "(This call will end in about a minute because it has reached its time limit. Tell the caller briefly and help them wrap up.)"
"""Sent a minute before the call's time limit, so that the caller is not cut off unwarned."""
