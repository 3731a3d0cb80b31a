"""Structured logs: one JSON object per line, with the call's SIDs on every line of a call.

Secrets and audio never reach a log: settings hold secrets as `SecretStr`, and the call
logs sizes and counts, never payloads.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

# Record attributes that are not extra fields; uvicorn's `color_message` (the message again,
# with terminal colour codes) is noise in a JSON log.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; extra fields (call_sid, stream_sid, ...) included."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Log to stderr, as JSON lines (production) or plain text (a developer's terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class CallLogger(logging.LoggerAdapter):
    """A logger that stamps every line with the call SID and stream SID of its call."""

    def __init__(self, logger: logging.Logger, call_sid: str | None = None, stream_sid: str | None = None) -> None:
        super().__init__(logger, {"call_sid": call_sid, "stream_sid": stream_sid})

    def bind(self, call_sid: str, stream_sid: str) -> None:
        self.extra = {"call_sid": call_sid, "stream_sid": stream_sid}

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra: Mapping[str, Any] = kwargs.get("extra") or {}
        kwargs["extra"] = {**(self.extra or {}), **extra}
        return msg, kwargs
