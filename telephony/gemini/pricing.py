"""What a call cost in Gemini tokens: the one place prices live.

Per million tokens, in USD, for the Live API's native-audio models (Gemini Developer API
list prices as published for gemini-2.5-flash native audio; Vertex AI's are the same at the
time of writing). `TELEPHONY_TOKEN_PRICES` (JSON, the same keys) replaces any of them. An
estimate: Twilio's per-minute charges are not included.
"""

from __future__ import annotations

import json

DEFAULT_PRICES_PER_MILLION: dict[str, float] = {
    "prompt_text": 0.50,
    "prompt_audio": 3.00,
    "response_text": 2.00,
    "response_audio": 12.00,
}
"""Modalities Gemini reports per turn; tokens without a modality are priced as audio."""


def prices(override_json: str | None = None) -> dict[str, float]:
    table = dict(DEFAULT_PRICES_PER_MILLION)
    if override_json:
        table.update({str(k): float(v) for k, v in json.loads(override_json).items()})
    return table


def estimated_cost_usd(usage: dict[str, int], table: dict[str, float] | None = None) -> float | None:
    """The cost of a call's token usage (see `CallRecord.usage`), or None with no usage."""
    if not usage:
        return None
    table = table or DEFAULT_PRICES_PER_MILLION
    cost = 0.0
    for side in ("prompt", "response"):
        by_modality = {k.split("_", 1)[1]: v for k, v in usage.items() if k.startswith(f"{side}_") and k != f"{side}_tokens"}
        unattributed = max(0, usage.get(f"{side}_tokens", 0) - sum(by_modality.values()))
        by_modality["audio"] = by_modality.get("audio", 0) + unattributed
        for modality, tokens in by_modality.items():
            cost += tokens * table.get(f"{side}_{modality}", table[f"{side}_audio"]) / 1e6
    return round(cost, 6)
