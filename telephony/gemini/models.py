"""Every Gemini Live model family, and what each one takes and does on the wire: one place.

The families differ in ways that decide how a phone call behaves, not only in quality:

| family | tools by default | BLOCKING | `scheduling` | thinking | a turn ends at |
|---|---|---|---|---|---|
| 2.5 native audio | BLOCKING | yes | yes | (budget, not sent) | `turnComplete` |
| 3.1 Flash Live (legacy) | blocking only | (not sent) | no | (not sent) | `turnComplete` |
| 3.8 Live (default) | NON_BLOCKING | yes | yes | refused | `turnComplete` |
| 3.8 Extended Thinking | NON_BLOCKING only | refused | refused | level required | `interactionStatus: IDLE` |

No native-audio family takes an explicit `speechConfig.languageCode` (the language is
steered through the instructions); 3.x refuses `enableAffectiveDialog` and `proactivity`; on
3.x a `clientContent` turn with `turnComplete` interrupts the agent, and a fresh session's
history is seeded through `historyConfig`. Sources for every row: the product notes
`gemini-2026.md` (ai.google.dev model pages of 2026-09-15, Vertex AI's 3.8 migration guide,
google-genai 3.6.1).

A model id this table does not know still passes (new models appear before we list them) and
gets the newest family's rules, with a warning at startup; a retired id is a config error
naming its replacement. Pure data and functions: no I/O, no SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ToolBehavior(str, Enum):
    """How the model waits for a function (`FunctionDeclaration.behavior`)."""

    BLOCKING = "BLOCKING"
    """The model says nothing more until the result is back (the caller hears silence or
    our hold tone)."""
    NON_BLOCKING = "NON_BLOCKING"
    """The model may keep talking while the function runs ("let me look that up")."""


class Scheduling(str, Enum):
    """What a NON_BLOCKING function's result makes the model do (`FunctionResponse.scheduling`)."""

    WHEN_IDLE = "WHEN_IDLE"
    """Answer with it once the model has finished what it is saying (the service's default)."""
    SILENT = "SILENT"
    """Add it to the context; say nothing now."""
    INTERRUPT = "INTERRUPT"
    """Stop what the model is saying and answer with it (3.8 waits while the caller speaks)."""


class Family(str, Enum):
    NATIVE_AUDIO_25 = "2.5"
    FLASH_LIVE_31 = "3.1"
    LIVE_38 = "3.8"
    LIVE_38_THINKING = "3.8-extended-thinking"


class ThinkingLevel(str, Enum):
    """Extended Thinking's effort (MINIMAL is refused there)."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


@dataclass(frozen=True)
class FamilyRules:
    """What one family takes in its setup and how it behaves, as the call needs to know."""

    family: Family
    title: str
    default_tool_behavior: ToolBehavior
    declares_behavior: bool
    """Send `behavior` on every declaration (3.1 has synchronous tools only: not sent)."""
    accepts_blocking: bool
    accepts_scheduling: bool
    thinking_level_required: bool
    """Extended Thinking refuses a setup without `thinkingConfig.thinkingLevel`; every other
    family gets no thinking config at all (3.8 refuses one)."""
    split_turns: bool
    """`turnComplete` with `interactionStatus: IN_PROGRESS` is not the end of the agent's
    turn (filler speech, then background work, then the answer); only IDLE is."""
    client_content_interrupts: bool
    """A `clientContent` turn with `turnComplete` cuts the agent off mid-sentence: mid-call
    context goes as realtime text, which never interrupts."""
    greets_with_client_content: bool
    """The greeting goes as a complete `clientContent` user turn (2.5); else as realtime
    text, which every family answers without a placeholder turn."""
    seeds_with_history_config: bool
    """A fresh session's history: `historyConfig.initialHistoryInClientContent` in the setup
    and the seed sent with `turnComplete: true` (3.x); else plain client content without
    `turnComplete` (2.5)."""
    refused_setup_fields: tuple[str, ...]
    """Setup fields (snake_case, as the SDK names them) the service refuses for this family."""
    tool_call_cap: bool
    """The instructions cap back-to-back calls without speaking (3.8 sweeps a tool two to
    five times when a result says nothing useful)."""


_RULES = {
    Family.NATIVE_AUDIO_25: FamilyRules(
        Family.NATIVE_AUDIO_25,
        "2.5 Flash native audio",
        ToolBehavior.BLOCKING,
        declares_behavior=True,
        accepts_blocking=True,
        accepts_scheduling=True,
        thinking_level_required=False,
        split_turns=False,
        client_content_interrupts=False,
        greets_with_client_content=True,
        seeds_with_history_config=False,
        refused_setup_fields=(),
        tool_call_cap=False,
    ),
    Family.FLASH_LIVE_31: FamilyRules(
        Family.FLASH_LIVE_31,
        "3.1 Flash Live (legacy preview)",
        ToolBehavior.BLOCKING,
        declares_behavior=False,
        accepts_blocking=True,
        accepts_scheduling=False,
        thinking_level_required=False,
        split_turns=False,
        client_content_interrupts=True,
        greets_with_client_content=False,
        seeds_with_history_config=True,
        refused_setup_fields=("language_code", "enable_affective_dialog", "proactivity"),
        tool_call_cap=False,
    ),
    Family.LIVE_38: FamilyRules(
        Family.LIVE_38,
        "3.8 Live",
        ToolBehavior.NON_BLOCKING,
        declares_behavior=True,
        accepts_blocking=True,
        accepts_scheduling=True,
        thinking_level_required=False,
        split_turns=False,
        client_content_interrupts=True,
        greets_with_client_content=False,
        seeds_with_history_config=True,
        refused_setup_fields=("language_code", "enable_affective_dialog", "proactivity", "thinking_config"),
        tool_call_cap=True,
    ),
    Family.LIVE_38_THINKING: FamilyRules(
        Family.LIVE_38_THINKING,
        "3.8 Live Extended Thinking",
        ToolBehavior.NON_BLOCKING,
        declares_behavior=True,
        accepts_blocking=False,
        accepts_scheduling=False,
        thinking_level_required=True,
        split_turns=True,
        client_content_interrupts=True,
        greets_with_client_content=False,
        seeds_with_history_config=True,
        refused_setup_fields=("language_code", "enable_affective_dialog", "proactivity"),
        tool_call_cap=True,
    ),
}


@dataclass(frozen=True)
class Model:
    """One model id the service serves (or served)."""

    id: str
    family: Family
    backends: tuple[str, ...]
    """"developer" (an API key) and/or "vertex"."""
    retired: str | None = None
    """The date it was shut down; calls to it fail."""
    note: str = ""


DEFAULT_MODEL_ID = "gemini-3.8-live"
"""Google's stable, recommended Live model since 2026-09-15, with the same id on both backends."""

MODELS = (
    Model("gemini-3.8-live", Family.LIVE_38, ("developer", "vertex")),
    Model("gemini-3.8-live-extended-thinking", Family.LIVE_38_THINKING, ("developer",)),
    Model("gemini-3.1-flash-live-preview", Family.FLASH_LIVE_31, ("developer",), note="a legacy preview (use gemini-3.8-live)"),
    Model("gemini-2.5-flash-native-audio-preview-12-2025", Family.NATIVE_AUDIO_25, ("developer",), note="a 2025 preview"),
    Model("gemini-2.5-flash-native-audio-preview-09-2025", Family.NATIVE_AUDIO_25, ("developer",), note="a 2025 preview"),
    Model("gemini-live-2.5-flash-native-audio", Family.NATIVE_AUDIO_25, ("vertex",)),
    Model("gemini-live-2.5-flash-preview", Family.NATIVE_AUDIO_25, ("developer",), retired="2025-12-09"),
    Model("gemini-2.0-flash-live-001", Family.NATIVE_AUDIO_25, ("developer", "vertex"), retired="2025-12-09"),
)
_BY_ID = {model.id: model for model in MODELS}


def bare_id(model: str) -> str:
    """`models/gemini-3.8-live`, `google/gemini-3.8-live` or a Vertex resource path -> the id."""
    return model.strip().rsplit("/", 1)[-1]


def known(model: str) -> Model | None:
    return _BY_ID.get(bare_id(model))


def family_of(model: str) -> Family:
    """The family whose rules apply to `model`. An unknown id gets the newest family's rules
    (Extended Thinking's when its name says it thinks)."""
    listed = known(model)
    if listed is not None:
        return listed.family
    return Family.LIVE_38_THINKING if "thinking" in bare_id(model) else Family.LIVE_38


def rules_for(model: str) -> FamilyRules:
    return _RULES[family_of(model)]


def rules_of(family: Family) -> FamilyRules:
    return _RULES[family]


def backend_name(vertex: bool) -> str:
    return "vertex" if vertex else "developer"


def default_model(vertex: bool) -> str:
    """The model calls use when none is configured: 3.8 Live on both backends."""
    return DEFAULT_MODEL_ID


def model_problem(model: str, vertex: bool) -> str | None:
    """Why `model` cannot serve calls on this backend (one line naming the right id), or None."""
    listed = known(model)
    if listed is None:
        return None
    if listed.retired:
        return f"{listed.id!r} was shut down on {listed.retired}; use {DEFAULT_MODEL_ID!r}"
    backend = backend_name(vertex)
    if backend not in listed.backends:
        where = "a Vertex AI model id" if backend == "developer" else "not served on Vertex AI"
        return f"{listed.id!r} is {where}; {'with an API key' if backend == 'developer' else 'on Vertex AI'} use {DEFAULT_MODEL_ID!r}"
    return None


def model_warning(model: str) -> str | None:
    """What to say at startup about a model that works but deserves a look, or None."""
    listed = known(model)
    if listed is None:
        family = rules_for(model)
        return f"model {bare_id(model)!r} is not one we know: calls use the rules of {family.title} (the newest family)"
    if listed.note:
        return f"model {listed.id!r} is {listed.note}"
    return None
