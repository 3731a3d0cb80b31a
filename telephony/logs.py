"""Logs: one JSON object per line in production, a short readable line on a terminal; the
call's SIDs on every line of a call either way.

Secrets and audio never reach a log: settings hold secrets as `SecretStr`, and the call
logs sizes and counts, never payloads. Callers' phone numbers are masked (`mask_number`)
unless `TELEPHONY_LOG_PHONE_NUMBERS` says otherwise.
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


_PLAIN_VALUES = (str, int, float, bool, list, tuple, dict, type(None))


def _extras(record: logging.LogRecord, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """A record's own fields (call_sid, turn, ...). A library's objects (websockets puts its
    connection there, as a weak proxy that may be dead by now) are not data: left out."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD
        and key not in skip
        and not key.startswith("_")
        and issubclass(type(value), _PLAIN_VALUES)  # type(): a dead proxy raises on isinstance
    }


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; extra fields (call_sid, stream_sid, ...) included."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_LEVEL_COLOURS = {"DEBUG": "\x1b[2m", "INFO": "", "WARNING": "\x1b[33m", "ERROR": "\x1b[31m", "CRITICAL": "\x1b[31;1m"}
_QUIET_EXTRAS = {"call_sid", "stream_sid", "taskName", "trace_id"}


class DevFormatter(logging.Formatter):
    """`12:04:31.207 INFO  …4f2a1c  message  key=value`: time, level, the call SID's tail,
    the message and the extra fields, one line (tracebacks follow, indented)."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        call_sid = getattr(record, "call_sid", None)
        call = f"…{call_sid[-6:]}" if isinstance(call_sid, str) and call_sid else "-"
        extras = " ".join(f"{key}={value}" for key, value in _extras(record, _QUIET_EXTRAS).items() if value is not None)
        level = f"{record.levelname:<7}"
        if self.colour:
            level = f"{_LEVEL_COLOURS.get(record.levelname, '')}{level}\x1b[0m"
        line = f"{stamp} {level} {call:<7} {record.getMessage()}" + (f"  {extras}" if extras else "")
        if record.exc_info:
            line += "\n" + "\n".join("    " + part for part in self.formatException(record.exc_info).splitlines())
        return line


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    """Log to stderr: `json` lines (production), `plain` lines for a person, or `auto`:
    plain on a terminal, JSON when stderr is a file or a pipe (a log collector)."""
    handler = logging.StreamHandler(sys.stderr)
    terminal = sys.stderr.isatty()
    plain = log_format == "plain" or (log_format == "auto" and terminal)
    handler.setFormatter(DevFormatter(colour=terminal) if plain else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level.upper() != "DEBUG":  # libraries' own chatter: schema upgrades, plugin set-up, connection objects
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, ClosingTlsRace) for f in asyncio_log.filters):
        asyncio_log.addFilter(ClosingTlsRace())


class ClosingTlsRace(logging.Filter):
    """uvloop reports a TLS connection that was written to while we closed it ("Fatal error on
    SSL protocol", RuntimeError "unable to perform operation on <TCPTransport closed=True>") as an
    ERROR with a traceback; it is a socket we were closing anyway (a Gemini session at the end
    of a call), so it is not logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        closing = isinstance(error, RuntimeError) and "closed=True" in str(error)
        return not (closing and str(record.msg).startswith("Fatal error on SSL"))


QUIET_LIBRARIES = ("alembic", "websockets", "httpx", "asyncio", "mcp", "uvicorn.error")
"""Loggers that say at INFO what only a debugging developer wants (alembic's 10 lines on the
first call, websockets' `connection open` with an object repr, httpx's every request, uvicorn's
"WebSocket /media-stream [accepted]" per call: our own lines say when a call starts)."""


def mask_number(number: str | None) -> str | None:
    """+15551234567 -> +1******4567: enough to tell calls apart, not to call anyone back. A
    name (the browser phone's "browser", a SIP user) is not a number and is left as it is."""
    if not number or not any(c.isdigit() for c in number):
        return number
    digits = number.strip()
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:2] + "*" * (len(digits) - 6) + digits[-4:]


class CallLogger(logging.LoggerAdapter):
    """A logger that stamps every line with the call SID and stream SID of its call."""

    def __init__(self, logger: logging.Logger, call_sid: str | None = None, stream_sid: str | None = None) -> None:
        super().__init__(logger, {"call_sid": call_sid, "stream_sid": stream_sid})

    def bind(self, call_sid: str, stream_sid: str) -> None:
        self.extra = {"call_sid": call_sid, "stream_sid": stream_sid}

    def add_trace(self, trace_id: str) -> None:
        """Every later line carries the call's trace id (`telephony.traces`), in JSON logs."""
        self.extra = {**(self.extra or {}), "trace_id": trace_id}

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra: Mapping[str, Any] = kwargs.get("extra") or {}
        kwargs["extra"] = {**(self.extra or {}), **extra}
        return msg, kwargs
