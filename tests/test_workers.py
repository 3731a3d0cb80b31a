"""`telephony serve --workers 2`: two processes on one port share the calls, the history and
the metrics, and SIGTERM drains both to a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx

from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.twilio_media import TwilioMediaEmulator

from conftest import AUTH_TOKEN, FIXTURES, free_port, wait_until_healthy


async def test_two_workers_share_one_port_the_history_and_the_metrics_and_drain_on_sigterm(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with GeminiLiveEmulator(speed=4.0) as gemini:
        env = dict(
            os.environ,
            GEMINI_API_KEY="offline",
            TELEPHONY_GEMINI_BASE_URL=gemini.base_url,
            TELEPHONY_GEMINI_CA_FILE=str(gemini.ca_file),
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            TELEPHONY_PUBLIC_URL=base,
            TELEPHONY_PORT=str(port),
            TELEPHONY_DATA_DIR=str(tmp_path),
            TELEPHONY_MEDIA_RATE_LIMIT="5",
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "telephony", "serve", "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            await wait_until_healthy(base)
            async with httpx.AsyncClient() as client:
                # At 2x (not 4x): six calls in two processes on a busy machine still hear their replies.
                callers = [TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=2.0, auth_token=AUTH_TOKEN) for _ in range(6)]
                results = await asyncio.gather(*(caller.call(base + "/twiml") for caller in callers))
                for _ in range(100):  # the store's writers catch up
                    listing = (await client.get(base + "/api/calls")).json()
                    if listing["total"] == 6:
                        break
                    await asyncio.sleep(0.1)
                metrics = (await client.get(base + "/metrics")).text
                pids = set()
                for _ in range(40):  # a new connection each time: the kernel picks the worker
                    async with httpx.AsyncClient() as fresh:
                        pids.add((await fresh.get(base + "/healthz")).json().get("pid"))
            server.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(server.communicate, timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
    assert all(r.close_code == 1000 and r.heard_seconds > 0.5 for r in results)
    assert "2 workers on one port" in output.decode()
    assert len(pids) == 2, f"both workers took requests: {pids}"
    assert listing["total"] == 6, "every worker's calls are in the one history"
    completed = [line for line in metrics.splitlines() if line.startswith('telephony_calls_total{outcome="completed"}')]
    assert completed and float(completed[0].split()[-1]) == 6.0, metrics[:2000]
    assert server.returncode == 0, output.decode()[-2000:]
