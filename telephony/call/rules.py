"""The rules of one call as plain values (`CallConfig`): the composition root fills them from
the app's settings; the call core reads nothing else."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from telephony.call.silence import SilenceRules
from telephony.call.stall import StallRules
from telephony.call.voicemail_rules import VoicemailRules


@dataclass(frozen=True)
class CallConfig:
    """Per-call rules, plain values (the composition root fills them from settings)."""

    prompts: Mapping[str, bytes] = field(default_factory=dict)
    """Recorded mu-law 8 kHz prompts by name: `apology_trouble`, `apology_closing`."""
    admit_stream: Callable[[str, str | None], tuple[str, str] | None] | None = None
    """When set, asked at `start` with the CallSid and `customParameters.token`: None admits
    the stream, else (kind, reason) refuses it (1008) before any agent is opened."""
    caller_agc: bool = True
    audio_in_python: bool = False
    """Run the gain control and the resamplers in Python and numpy even where the C kernels
    were built (`telephony.audio.compiled`)."""
    caller_block_bytes: int = 640
    """Caller audio goes to Gemini in blocks of this many bytes of 16 kHz PCM (640 = 20 ms)."""
    caller_quiet_block_bytes: int = 640
    """While no answer is owed to the caller and they are quiet, blocks of up to this many
    bytes: a loud frame goes at once, with what waited (fewer messages, no delay to speech)."""
    manual_activity: bool = False
    """Gemini's VAD is off: we send activityStart/activityEnd from local voice detection."""
    activity_silence_ms: int = 500
    playout_lead_ms: int = 300
    playout_batch_ms: int = 100
    barge_in_min_speech_ms: int = 300
    """Caller speech this long over agent audio cuts the agent off; 0 leaves barge-in to
    Gemini alone (it only interrupts replies it is still generating)."""
    goodbye_grace_s: float = 3.0
    """After end_call, speech may still start this long after the last agent audio."""
    goodbye_max_s: float = 20.0
    start_timeout_s: float = 10.0
    idle_timeout_s: float = 15.0
    max_call_s: float = 3600.0
    max_payload_bytes: int = 8000
    malformed_limit: int = 200
    """Bad messages (unparseable, unknown events or marks, floods) a stream may send in all..."""
    malformed_per_second: int = 20
    """...and in any one second, before it is closed with 1008. Twilio itself sends none."""
    media_rate_limit: float = 1.25
    """Caller audio is accepted at up to this multiple of real time (after a 2 s burst);
    Twilio sends real time, a replay at --speed N needs N (inf: unchecked)."""
    max_dtmf_per_second: int = 10
    media_message_ms: int = 100
    """Agent audio per Twilio media message (frames of one batch joined; 20 = one per frame)."""
    accept_wideband: bool = False
    """Also take 16 kHz linear PCM (the browser phone's wideband switch; never from Twilio)."""
    final_prompt_timeout_s: float = 10.0
    log_phone_numbers: bool = False
    record_audio: bool = False
    """Keep both sides on the call's timeline (`take_recording`), for a stereo recording."""
    recording_notice: bool = False
    """With recording on: play the `recording_notice` prompt before the agent speaks."""
    hold_after_s: float = 1.0
    """A tool still running after this long: the caller hears the hold tone, into silence
    only (0: never)."""
    tools_without_hold: frozenset[str] = frozenset({"end_call", "transfer_call", "send_dtmf"})
    """Tools that play or wait for audio themselves (the built-in call control): no hold tone."""
    stall: StallRules = field(default_factory=StallRules)
    """When the model is silent too long, and how to bring it back (`telephony.call.stall`)."""
    silence: SilenceRules = field(default_factory=SilenceRules)
    """When the caller is silent too long: check in, then goodbye (`telephony.call.silence`)."""
    voicemail: VoicemailRules = field(default_factory=VoicemailRules)
    """What the agent does when an answering machine takes an outbound call (`voicemail`)."""
    time_notice_s: float = 60.0
    """The model is told this long before `max_call_s` that the call will end (0: not told)."""
    """Callers' numbers appear in full in the log; otherwise masked (`logs.mask_number`)."""

    @property
    def compiled_audio(self) -> bool | None:
        """The `compiled` argument of the audio classes: None (C where built) or False."""
        return False if self.audio_in_python else None


@dataclass(frozen=True)
class CallLimits:
    """An agent's own limits, over the server's (None: the server's)."""

    silence_reprompt_s: float | None = None
    silence_hang_up_s: float | None = None
    max_call_s: float | None = None
    voicemail: VoicemailRules | None = None
