"""The Gemini emulator's text model: answers `generateContent` (the judge of conversation
tests, post-call analysis) offline.

A `TextModel` gets the model name and the request as the SDK sent it (camelCase JSON) and
returns the answer's text. The default, `SchemaFiller`, answers a structured-output request
with an instance of its schema (empty strings, zeros, true, one item per list, an enum's first
value) and anything else with a fixed sentence: enough for the wiring to be tested; a test
that needs particular answers passes its own `TextModel`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class TextModel(Protocol):
    def answer(self, model: str, request: dict[str, Any]) -> str: ...


def instruction_text(request: dict[str, Any]) -> str:
    parts = (request.get("systemInstruction") or request.get("system_instruction") or {}).get("parts") or []
    return "\n".join(str(part.get("text", "")) for part in parts)


def prompt_text(request: dict[str, Any]) -> str:
    texts: list[str] = []
    for content in request.get("contents") or []:
        texts.extend(str(part.get("text", "")) for part in content.get("parts") or [])
    return "\n".join(texts)


def response_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    config = request.get("generationConfig") or request.get("generation_config") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    return schema if isinstance(schema, dict) else None


class SchemaFiller:
    """Fills the requested schema with placeholder values; plain text otherwise."""

    def answer(self, model: str, request: dict[str, Any]) -> str:
        schema = response_schema(request)
        if schema is None:
            return "This is the Gemini emulator's text model."
        return json.dumps(fill(schema, schema.get("$defs") or schema.get("definitions") or {}))


def fill(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    if depth > 8:
        return None
    if "$ref" in schema:
        return fill(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return fill(schema[key][0], defs, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        return {name: fill(sub, defs, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [fill(schema.get("items") or {}, defs, depth + 1)]
    return {"string": "", "boolean": True, "integer": 0, "number": 0.0, "null": None}.get(kind, "")


def generate_content(text_model: TextModel, route: str, body: bytes, log: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Status and body of the answer to `POST .../models/{model}:generateContent`."""
    try:
        request = json.loads(body or b"{}")
    except json.JSONDecodeError:
        return 400, {"error": {"code": 400, "message": "invalid JSON", "status": "INVALID_ARGUMENT"}}
    model = route.rsplit("/", 1)[-1].split(":", 1)[0]
    log.append(request)
    text = text_model.answer(model, request)
    return 200, {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 0, "candidatesTokenCount": len(text) // 4, "totalTokenCount": len(text) // 4},
        "modelVersion": model,
    }
