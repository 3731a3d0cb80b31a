"""What the real Gemini Live service accepts, in one place: voices and language codes
(models and their families: `telephony.gemini.models`).

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

from telephony.gemini.models import DEFAULT_MODEL_ID, backend_name, default_model, model_problem, rules_for

__all__ = ["DEFAULT_MODEL", "LANGUAGES", "VOICES", "backend_name", "default_model", "language_name", "model_problem"]

DEFAULT_MODEL = {"developer": DEFAULT_MODEL_ID, "vertex": DEFAULT_MODEL_ID}
"""3.8 Live: the same id on both backends (model families: `telephony.gemini.models`)."""

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
    """Whether the greeting goes as a complete `clientContent` user turn (2.5 native audio);
    on 3.x it goes as `realtimeInput.text`, which never interrupts (`models.FamilyRules`)."""
    return rules_for(model).greets_with_client_content


_LANGUAGE_NAMES = {
    "ar": "Arabic", "bn": "Bengali", "de": "German", "en": "English", "es": "Spanish", "fr": "French", "hi": "Hindi",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "ta": "Tamil", "te": "Telugu", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese",
}  # fmt: skip


def language_name(code: str) -> str:
    """`de-DE` -> German (for instructions: native-audio models take no language code)."""
    return _LANGUAGE_NAMES.get(code.split("-", 1)[0].lower(), code)
