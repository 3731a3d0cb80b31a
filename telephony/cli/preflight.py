"""`telephony check`: will a call to your number work? Answers before a caller finds out.

A wrong API key, a Twilio token from another account or a number whose webhook points at
last week's tunnel otherwise shows up only when the phone rings: the caller hears the
apology, or nothing. Each check here talks to the real thing (Gemini Live, Twilio's REST
API, your public URL) the way a call would, and says what to fix.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass

import httpx

from telephony.agents.agent import BUILTIN_TOOLS, Agent
from telephony.agents.call_control import CallControl
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError
from telephony.settings import Settings
from telephony.twilio.rest import TwilioRest, TwilioRestError
from telephony.web.composition import agent_options_from, gemini_client_from


@dataclass(frozen=True)
class Check:
    """One finding: `ok` is None for a check that could not run (a setting is missing)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


async def check_gemini(settings: Settings, agent: Agent | None = None, timeout_s: float = 15.0) -> Check:
    """Open a Live session with exactly the setup a call of `agent` would send (its model,
    voice, instructions, tools with their behaviour), and say in one line why the service
    refuses it, if it does."""
    name = "Gemini Live" if agent is None else f"Gemini Live ({agent.name})"
    try:
        options = agent_options_from(settings)
        client = gemini_client_from(settings)
    except (ValueError, OSError) as exc:
        return Check(name, False, str(exc), "set GEMINI_API_KEY (or GOOGLE_CLOUD_PROJECT for Vertex AI)")
    builtins = CallControl(None, []).tools(agent.builtin_tools if agent is not None else BUILTIN_TOOLS)
    tools = [*builtins, *(agent.tools.values() if agent is not None else ())]
    if agent is not None:
        options = agent.options(options)
    options = options.with_overrides(tools=tuple(tool.declaration for tool in tools))
    session = GeminiLiveSession(client, options)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await session.open()
    except GeminiSessionError as exc:
        return Check(name, False, f"{options.model}: {exc} (code {exc.code})", _gemini_fix(exc.code))
    except TimeoutError:
        return Check(name, False, f"{options.model}: no answer in {timeout_s:.0f} s", "check the network path to the Live API endpoint")
    finally:
        await session.close()
    took_ms = (time.perf_counter() - started) * 1000
    family = options.rules.title
    return Check(name, True, f"{options.model} ({family}), voice {options.voice}, {len(tools)} tools: set up in {took_ms:.0f} ms")


def _gemini_fix(code: int) -> str:
    if code in (401, 403):
        return "the API key was refused: check GEMINI_API_KEY (or the Vertex AI project's permissions)"
    if code in (400, 404, 1007, 1008):
        return "the service refused the setup (its reason is shown): check TELEPHONY_MODEL, the voice, the tools and VAD"
    return "the service could not be reached or failed: retry, or check TELEPHONY_GEMINI_BASE_URL"


async def check_twilio(settings: Settings) -> list[Check]:
    """The credentials, and where the number's voice webhook points."""
    if not settings.twilio_account_sid or settings.twilio_auth_token is None:
        return [Check("Twilio account", None, "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN not set", "set both (Twilio console → Account info)")]
    rest = TwilioRest(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(), api_base=settings.twilio_api_base)
    try:
        status = await rest.account_status()
    except TwilioRestError as exc:
        return [
            Check("Twilio account", False, str(exc), "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: they must be from the same account")
        ]
    checks = [Check("Twilio account", status == "active", f"{settings.twilio_account_sid[:8]}…: {status}")]
    number = settings.from_number
    if not number:
        checks.append(Check("Phone number", None, "TWILIO_PHONE_NUMBER not set", "set it to check the number's voice webhook"))
        return checks
    try:
        webhook = await rest.voice_webhook(number)
    except TwilioRestError as exc:
        checks.append(Check("Phone number", False, str(exc)))
        return checks
    expected = f"{settings.public_url.rstrip('/')}/twiml" if settings.public_url else None
    update = f"twilio phone-numbers:update {number} --voice-url {expected or 'https://YOUR-HOST/twiml'}"
    if webhook is None:
        checks.append(
            Check("Phone number", False, f"{number} is not a number of this account", "set TWILIO_PHONE_NUMBER to one of its numbers")
        )
    elif expected is None or webhook[0] != expected or webhook[1].upper() != "POST":
        checks.append(
            Check(
                "Phone number",
                False,
                f"{number} calls {webhook[1]} {webhook[0] or '(nothing)'}",
                f"point it at POST {expected or '…/twiml'}: {update}",
            )
        )
    else:
        checks.append(Check("Phone number", True, f"{number} calls POST {webhook[0]}"))
    return checks


async def check_public_url(settings: Settings, timeout_s: float = 5.0) -> Check:
    """Twilio must reach us over HTTPS at exactly the URL that signatures are checked against."""
    name = "Public URL"
    url = settings.public_url
    if not url:
        return Check(
            name, False, "TELEPHONY_PUBLIC_URL not set", "set it to the https:// address Twilio reaches (signatures are checked against it)"
        )
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url.rstrip("/") + "/healthz")
    except httpx.HTTPError as exc:
        cause, fix = connection_failure(exc)
        return Check(name, False, f"{url}: {cause}", fix)
    if response.status_code != 200:
        return Check(name, False, f"{url}/healthz answered HTTP {response.status_code}", "another service answers there")
    if not url.startswith("https://"):
        return Check(
            name,
            False,
            f"{url} answers, but Twilio needs https:// (its media stream is wss://)",
            "put it behind HTTPS (a tunnel or a proxy)",
        )
    return Check(name, True, f"{url} answers /healthz")


def connection_failure(exc: httpx.HTTPError) -> tuple[str, str]:
    """What went wrong reaching a URL, by cause (DNS, refused, TLS, timeout), and what to do."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "timed out", "something accepts the connection but does not answer: a firewall, or a stopped tunnel"
    said = " ".join(str(e).lower() for e in chain)
    if "wrong version number" in said or "record layer failure" in said or "http request" in said:
        return "it answers plain http, not https", "Twilio needs https:// there: put the server behind HTTPS (a tunnel or a proxy)"
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in str(exc) or "certificate" in str(exc).lower():
        return f"TLS failed ({exc})", "the certificate is not valid for this host (Twilio refuses it too)"
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in str(exc) or "nodename" in str(exc):
        return "DNS: the host name does not resolve", "check the host name in TELEPHONY_PUBLIC_URL (a tunnel's address changes on restart)"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower():
        return "connection refused", "nothing listens there: is `telephony serve` running, and the tunnel or proxy up?"
    return f"{type(exc).__name__}: {exc}", "is `telephony serve` running, and the tunnel or proxy up?"


def check_serve_settings(settings: Settings) -> Check:
    """What would make `telephony serve` refuse to start with these settings."""
    problems = settings.serve_problems()
    if problems:
        return Check("Server settings", False, "; ".join(problems), "telephony serve refuses to start until this is fixed")
    return Check("Server settings", True, "telephony serve would start")


async def run_checks(settings: Settings, agents: list[Agent] | None = None) -> list[Check]:
    """Every check, concurrently (each is one network round trip or a few); a Gemini session
    per agent (or the settings' own agent)."""
    geminis = [check_gemini(settings, agent) for agent in agents] if agents else [check_gemini(settings)]
    sessions, twilio, public = await asyncio.gather(asyncio.gather(*geminis), check_twilio(settings), check_public_url(settings))
    return [check_serve_settings(settings), *sessions, *twilio, public]
