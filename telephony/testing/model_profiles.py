"""How each Gemini Live model family behaves, for the emulator: chosen by the setup's model id.

The rules of a family (what its setup takes, how its tools and turns work) come from
`telephony.gemini.models`, the same table the bridge follows; this module adds what the
emulator must *do* to behave like that family, and what the service says when it refuses a
setup (no Google page gives close codes; the ones here were reported for real sessions, see
the product notes `gemini-2026.md` section 2):

- 3.8 Live: tools NON_BLOCKING unless declared BLOCKING, the model talks over a running
  NON_BLOCKING call and honours `scheduling` (an INTERRUPT waits while the caller speaks);
  one message may carry audio, transcripts and `turnComplete`; sessions have been seen
  closing at exactly 58:00 with 1011 "Deadline expired", and the resume then refused (1007).
- 3.8 Extended Thinking: a filler, `turnComplete` with `interactionStatus: IN_PROGRESS`, the
  tool call, then the answer and IDLE; BLOCKING declarations and `scheduling` refused; a
  thinking level required (MINIMAL refused).
- 3.1 Flash Live: synchronous tools; affective dialog or proactivity: no `setupComplete`.
- 2.5 native audio: what the emulator always did (BLOCKING by default, one part a message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telephony.gemini.models import Family, FamilyRules, ToolBehavior, family_of, rules_of

DEADLINE_CLOSE_REASON = "Deadline expired before operation could complete."
NO_ANSWER = (0, "")
"""A refusal that is no answer at all: the service never sends `setupComplete`."""


@dataclass(frozen=True)
class ModelProfile:
    """What one family's emulated model does."""

    family: Family
    filler_s: float = 0.8
    """While a NON_BLOCKING call runs the model keeps talking: a filler this long ("One
    moment, let me check that."), unless a reply brings its own."""
    bundles_parts: bool = False
    """3.x: the last audio chunk, its transcript and `turnComplete` in one message."""
    session_deadline_s: float | None = None
    """With realism: the service closes the session at this age (1011) and refuses to
    resume it (1007)."""

    @property
    def rules(self) -> FamilyRules:
        return rules_of(self.family)

    def tool_behavior(self, declared: str | None) -> ToolBehavior:
        """How the model runs a call of a tool declared with `declared` behaviour."""
        rules = self.rules
        if not rules.declares_behavior:
            return ToolBehavior.BLOCKING
        return ToolBehavior(declared) if declared in ("BLOCKING", "NON_BLOCKING") else rules.default_tool_behavior


PROFILES = {
    Family.NATIVE_AUDIO_25: ModelProfile(Family.NATIVE_AUDIO_25),
    Family.FLASH_LIVE_31: ModelProfile(Family.FLASH_LIVE_31, bundles_parts=True),
    Family.LIVE_38: ModelProfile(Family.LIVE_38, bundles_parts=True, session_deadline_s=58 * 60.0),
    Family.LIVE_38_THINKING: ModelProfile(Family.LIVE_38_THINKING, bundles_parts=True, session_deadline_s=58 * 60.0),
}


def profile_for(model: str) -> ModelProfile:
    """The profile of the family `model` belongs to (unknown ids: the newest family's)."""
    return PROFILES[family_of(model)]


def setup_refusal(setup: dict[str, Any], profile: ModelProfile) -> tuple[int, str] | None:
    """(close code, reason) for a setup this family refuses, `NO_ANSWER` for one it never
    answers, or None. `setup` has snake_case keys (`normalize_keys`)."""
    rules = profile.rules
    refused = set(rules.refused_setup_fields)
    generation = setup.get("generation_config") or {}
    speech = generation.get("speech_config") or {}
    if "enable_affective_dialog" in refused and generation.get("enable_affective_dialog") is not None:
        if profile.family is Family.FLASH_LIVE_31:
            return NO_ANSWER
        return 1007, "enable_affective_dialog has been removed from the API for this model."
    if "proactivity" in refused and setup.get("proactivity") is not None:
        if profile.family is Family.FLASH_LIVE_31:
            return NO_ANSWER
        return 1007, "Invalid JSON payload received. Unknown name \"proactivity\" at 'setup': Cannot find field."
    thinking = generation.get("thinking_config")
    if "thinking_config" in refused and thinking is not None:
        return 1007, "Thinking configuration is not supported for this model."
    if rules.thinking_level_required:
        level = str((thinking or {}).get("thinking_level") or "")
        if not level:
            return 1007, "thinking_level is required for this model."
        if level not in ("LOW", "MEDIUM", "HIGH"):
            return 1007, f"thinking_level {level} is not supported for this model."
    if "language_code" in refused and speech.get("language_code"):
        return 1007, f"Unsupported language code '{speech['language_code']}' for model."
    if not rules.accepts_blocking:
        for tool in setup.get("tools") or []:
            for declaration in tool.get("function_declarations") or []:
                if declaration.get("behavior") == "BLOCKING":
                    return 1007, f"Synchronous blocking tools are not supported by this model ({declaration.get('name')})."
    return None


def tool_response_refusal(item: dict[str, Any], profile: ModelProfile) -> str | None:
    """Why the service closes the session (1007) on this `functionResponses[]` item, or None."""
    if not profile.rules.accepts_scheduling and (item.get("scheduling") or (item.get("response") or {}).get("scheduling")):
        return "Function scheduling configurations are not supported for this model."
    return None
