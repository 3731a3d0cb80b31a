"""The browser phone in a real headless Chromium with a fake microphone (a WAV file): press
Call, speak, hear the agent, talk over it, hang up; and the socket refuses what has no token."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import numpy as np
import pytest
import websockets

from telephony.audio.wav import read_wav, resample_whole, write_wav
from telephony.testing.gemini_live import GeminiLiveEmulator

from conftest import FIXTURES, offline_stack
from helpers.browser import chromium, keep_screenshot
from helpers.browser import unavailable as no_browser


def fake_microphone(path) -> str:
    """Speech, a pause, speech again (Chromium loops the file): the echo agent answers the
    first sentence and the second one talks over that answer."""
    speech, rate = read_wav(FIXTURES / "speech" / "us_female.wav")
    speech = resample_whole(speech, rate, 48000)[: int(2.6 * 48000)]
    pause = np.zeros(int(1.6 * 48000), dtype=speech.dtype)
    write_wav(path, np.concatenate([pause, speech, pause, speech, np.zeros(4 * 48000, dtype=speech.dtype)]), 48000)
    return str(path)


@pytest.fixture
def browser_flags(tmp_path):
    if reason := no_browser():
        pytest.skip(reason)
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone(tmp_path / 'mic.wav')}",
        "--autoplay-policy=no-user-gesture-required",
    ]


async def wait_for(page, condition: str, seconds: float) -> object:
    await page.wait_for_function(condition, timeout=seconds * 1000)
    return await page.evaluate("window.telephonyStats")


@pytest.mark.parametrize("wideband", [False, True], ids=["phone-band", "wideband"])
async def test_press_call_speak_hear_the_agent_talk_over_it_and_hang_up(browser_flags, wideband):
    async with GeminiLiveEmulator(speed=1.0) as gemini, offline_stack(gemini) as stack:
        async with chromium(browser_flags) as browser:
            page = await browser.new_page()
            await page.goto(stack.base_url + "/phone")
            if wideband:
                await page.get_by_label("wideband").check()
            await page.get_by_role("button", name="Call").click()
            await wait_for(page, "window.telephonyStats.state === 'in call'", 10)
            heard = await wait_for(page, "window.telephonyStats.played > 48000 && window.telephonyStats.peak > 0.01", 20)
            barged = await wait_for(page, "window.telephonyStats.cleared >= 1", 20)
            await page.wait_for_function("document.querySelectorAll('#transcript li.agent').length >= 1", timeout=10_000)
            transcript = await page.locator("#transcript").inner_text()
            if not wideband:
                keep_screenshot(await page.screenshot(full_page=True), "phone.png")
            await page.get_by_role("button", name="Hang up").click()
            await wait_for(page, "window.telephonyStats.state === 'ended'", 5)
            call_sid = heard["callSid"]
        async with httpx.AsyncClient() as client:
            for _ in range(250):  # the hang-up reaches the server, which writes the record down
                record = (await client.get(f"{stack.base_url}/api/calls/{call_sid}")).json()
                if record.get("finished"):
                    break
                await asyncio.sleep(0.02)
    assert heard["framesSent"] > 50, "the microphone went out as 20 ms frames"
    assert barged["cleared"] >= 1, "talking over the agent cleared the page's playback at once"
    assert "caller:" in transcript and "agent:" in transcript
    assert record["finished"] and record["direction"] == "browser" and record["interruptions"] >= 1
    assert record["end_reason"] == "caller hung up"
    assert gemini.connections and gemini.connections[0].audio_in_bytes > 16000, "Gemini heard the caller"
    print(f"page's own mouth-to-ear delay: {heard['pageDelayMs']} ms")


async def test_the_phone_socket_refuses_a_missing_reused_or_foreign_token_before_any_gemini_session():
    async with GeminiLiveEmulator(speed=4.0) as gemini, offline_stack(gemini) as stack:
        async with httpx.AsyncClient() as client:
            session = (await client.post(stack.base_url + "/phone/session")).json()
            proxied = await client.post(stack.base_url + "/phone/session", headers={"X-Forwarded-For": "203.0.113.9"})
            page = await client.get(stack.base_url + "/phone", headers={"X-Forwarded-For": "203.0.113.9"})
        url = session["socket"]
        refused = []
        for protocols in (["telephony-phone"], ["telephony-phone", "token.forged"]):
            with pytest.raises(websockets.exceptions.InvalidStatus) as no:
                async with websockets.connect(url, subprotocols=protocols):
                    pass
            refused.append(no.value.response.status_code)
        async with websockets.connect(url, subprotocols=["telephony-phone", f"token.{session['token']}"]) as ws:
            await ws.send(json.dumps({"event": "junk" * 10_000}))  # oversized-ish garbage is bad input, not a crash
            await ws.close()
        with pytest.raises(websockets.exceptions.InvalidStatus) as reused:
            async with websockets.connect(url, subprotocols=["telephony-phone", f"token.{session['token']}"]):
                pass
    assert refused == [403, 403] and reused.value.response.status_code == 403, "single-use"
    assert proxied.status_code == 401 and page.status_code == 401, "from elsewhere: the dashboard credentials"
    assert gemini.connections == [], "nothing opened a Gemini session"


async def test_direct_to_gemini_with_an_ephemeral_token_never_sees_the_key(browser_flags, caplog):
    caplog.set_level(logging.DEBUG)  # every line, whatever an earlier test left
    async with GeminiLiveEmulator(speed=1.0, auth_tokens=True, api_key="the-server-key") as gemini:
        async with offline_stack(gemini, gemini_api_key="the-server-key") as stack:
            async with chromium([*browser_flags, "--ignore-certificate-errors"]) as browser:  # the emulator's own CA
                page = await browser.new_page()
                await page.goto(stack.base_url + "/phone")
                await page.get_by_label("Direct to Gemini").check()
                await page.get_by_role("button", name="Call").click()
                heard = await wait_for(page, "window.telephonyStats.played > 48000 && window.telephonyStats.peak > 0.01", 25)
                transcript = await page.locator("#transcript").inner_text()
                page_source = await page.content()
                await page.get_by_role("button", name="Hang up").click()
    (connection,) = gemini.connections
    assert connection.token is not None and "Constrained" in connection.path, "the browser used the constrained endpoint"
    token = gemini.tokens[connection.token]
    assert token.used == 1 and token.uses == 1 and token.setup["model"].endswith(stack.settings.gemini_model)
    assert heard["mode"] == "direct" and "agent:" in transcript
    assert "the-server-key" not in page_source
    # Ours and our libraries' lines; the emulator plays Google's side, which does see the token.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("telephony.testing"))
    assert len(caplog.records) > 10, "lines were captured"
    assert connection.token not in logged and "the-server-key" not in logged, "neither the key nor the token is logged"


async def test_ephemeral_tokens_are_single_use_locked_and_expire():
    import datetime as dt

    from google.genai import types

    from telephony.gemini.config import make_client
    from telephony.gemini.ephemeral import mint_token
    from telephony.gemini.session import GeminiLiveSession, GeminiSessionError
    from telephony.web.composition import agent_options_from, gemini_client_from

    from conftest import emulator_settings

    async with GeminiLiveEmulator(auth_tokens=True, api_key="key") as gemini:
        settings = emulator_settings(gemini, gemini_api_key="key")
        options = agent_options_from(settings)
        client = gemini_client_from(settings)

        def session_with(name: str) -> GeminiLiveSession:
            browser_like = make_client(api_key=name, base_url=gemini.base_url, ca_file=gemini.ca_file)
            browser_like._api_client._http_options.api_version = "v1alpha"
            return GeminiLiveSession(browser_like, options)

        fresh = await mint_token(client, options)
        first = session_with(fresh.name)
        await first.open()
        await first.close()
        outcomes = {}
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
        expired = await mint_token(client, options, now=past)
        unconstrained = await client.aio.auth_tokens.create(
            config=types.CreateAuthTokenConfig(uses=1, http_options={"api_version": "v1alpha"})
        )
        for label, name in (
            ("reused", fresh.name),
            ("expired", expired.name),
            ("unconstrained", unconstrained.name),
            ("forged", "auth_tokens/x"),
        ):
            try:
                await session_with(name).open()
                outcomes[label] = "opened"
            except GeminiSessionError as exc:
                outcomes[label] = exc.code
    assert outcomes == {"reused": 401, "expired": 401, "unconstrained": 403, "forged": 401}
    assert len(gemini.connections) == 1
