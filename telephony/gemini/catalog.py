"""What the real Gemini Live service accepts, in one place: models per backend, voices,
language codes.

A wrong value is not refused politely: the service closes the socket at setup (an unknown
or wrongly-cased voice, a Developer API model id on Vertex AI: 1008 "Publisher Model ...
not found"), so a caller hears an apology and a hang-up. We check before that happens: at
startup for the configured agent, and per call for Stream parameters (which fall back to
the agent's default with a warning). New voices or languages can be allowed with
`TELEPHONY_EXTRA_VOICES` / `TELEPHONY_EXTRA_LANGUAGES` before this list catches up.

Sources (2026-12): ai.google.dev Live API models; Vertex AI Live API "Configure language
and voice" (30 voices, 24 languages); livekit-agents' Google plugin README (model ids per
backend).
"""

from __future__ import annotations

from collections.abc import Iterable

DEVELOPER_API_MODELS = (
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-2.5-flash-native-audio-preview-09-2025",
)
VERTEX_MODELS = ("gemini-live-2.5-flash-native-audio",)
DEFAULT_MODEL = {"developer": DEVELOPER_API_MODELS[0], "vertex": VERTEX_MODELS[0]}

VOICES = (
    "Zephyr", "Kore", "Orus", "Autonoe", "Umbriel", "Erinome", "Laomedeia", "Schedar", "Achird", "Sadachbia",
    "Puck", "Fenrir", "Aoede", "Enceladus", "Algieba", "Algenib", "Achernar", "Gacrux", "Zubenelgenubi",
    "Sadaltager", "Charon", "Leda", "Callirrhoe", "Iapetus", "Despina", "Rasalgethi", "Alnilam", "Pulcherrima",
    "Vindemiatrix", "Sulafat",
)  # fmt: skip

LANGUAGES = (
    "ar-EG", "bn-BD", "de-DE", "en-IN", "en-US", "es-US", "fr-FR", "hi-IN", "id-ID", "it-IT", "ja-JP", "ko-KR",
    "mr-IN", "nl-NL", "pl-PL", "pt-BR", "ro-RO", "ru-RU", "ta-IN", "te-IN", "th-TH", "tr-TR", "uk-UA", "vi-VN",
)  # fmt: skip


def backend_name(vertex: bool) -> str:
    return "vertex" if vertex else "developer"


def default_model(vertex: bool) -> str:
    """The native-audio model we default to on each backend (their ids differ)."""
    return DEFAULT_MODEL[backend_name(vertex)]


def model_problem(model: str, vertex: bool) -> str | None:
    """Why `model` will be refused on this backend, or None. Unknown ids pass (new models
    appear before this list knows them); only an id of the *other* backend is an error."""
    if vertex and model in DEVELOPER_API_MODELS:
        return f"{model!r} is a Gemini Developer API model id; on Vertex AI use {default_model(True)!r}"
    if not vertex and model in VERTEX_MODELS:
        return f"{model!r} is a Vertex AI model id; with an API key use {default_model(False)!r}"
    return None


def voice_problem(voice: str, extra: Iterable[str] = ()) -> str | None:
    """Why the service would refuse `voice` (names are case-sensitive), or None."""
    known = (*VOICES, *extra)
    if voice in known:
        return None
    close = next((name for name in known if name.lower() == voice.lower()), None)
    hint = f"did you mean {close!r}?" if close else f"choose one of {', '.join(VOICES[:6])}, ... (30 in all)"
    return f"unknown voice {voice!r}: {hint}"


def language_problem(code: str, extra: Iterable[str] = ()) -> str | None:
    """Why the service would refuse language code `code`, or None."""
    known = (*LANGUAGES, *extra)
    if code in known:
        return None
    close = next((name for name in known if name.lower() == code.lower().replace("_", "-")), None)
    hint = f"did you mean {close!r}?" if close else f"use a BCP-47 code Gemini Live supports, e.g. {', '.join(LANGUAGES[3:6])}"
    return f"unsupported language code {code!r}: {hint}"


def greets_with_client_content(model: str) -> bool:
    """Whether a `clientContent` user turn makes this model answer (the greeting). On the
    2.5 native-audio models it does; on 3.x Live models `clientContent` only seeds history
    (ai.google.dev, Live API capabilities), so the greeting goes as `realtimeInput.text`."""
    return not model.rsplit("/", 1)[-1].startswith("gemini-3")
