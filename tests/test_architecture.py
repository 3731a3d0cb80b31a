"""The shape of the house, checked: what importing the call core really loads.

import-linter checks the import statements; this runs the import, which also counts what
package `__init__` modules bring in (import-linter does not follow those).
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("asyncio", "prometheus_client", "twilio", "google", "sqlalchemy", "websockets", "fastapi", "starlette", "httpx", "aiohttp")


def test_importing_the_call_core_loads_no_io_metrics_sdk_or_web_framework():
    probe = (
        f"import sys, telephony.call.core, telephony.call.stall; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"the call core's import closure brings in {loaded}"


def test_the_public_api_still_imports_from_the_package_root():
    probe = "from telephony import Agent, CallContext, Tool, create_app, router; print(Agent.__module__, router.__module__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["telephony.agents.agent", "telephony.web.app"]


def test_a_server_starts_without_the_mcp_client_or_twilios_rest_client():
    """26 MB of an idle server's 153 MB were those two, loaded by every server: now only by a
    server whose agents have MCP servers, and on the first REST call. PostgreSQL's SQLAlchemy
    dialect (4 MB of an idle server's RSS) only by a server whose call history is there."""
    from helpers.fresh_process import modules_loaded

    code = "import telephony.web.app, telephony.agents.mcp_tools, telephony.twilio.rest, telephony.store.claims, telephony.cli.commands"
    watched = ("mcp", "requests", "twilio.rest", "sqlalchemy.dialects.postgresql", "sqlalchemy.orm", "greenlet", "aiosqlite", "alembic")
    assert modules_loaded(code, (*watched, "jsonschema")) == []
