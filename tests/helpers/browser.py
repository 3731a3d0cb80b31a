"""Headless Chromium from Debian's `chromium` package, driven by playwright (its own browser
download is not reachable here): `executable_path` and the flags a closed network needs."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs"


def unavailable() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return "no chromium (Debian package chromium; .ci/run installs it)"
    return None


@contextlib.asynccontextmanager
async def chromium(extra_flags: list[str] | None = None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS + (extra_flags or []))
        try:
            yield browser
        finally:
            await browser.close()


def keep_screenshot(png: bytes, name: str) -> Path:
    """The screenshot goes to out/; into docs/ (the README's picture) with TELEPHONY_UPDATE_SCREENSHOTS=1."""
    target = (SCREENSHOTS if os.environ.get("TELEPHONY_UPDATE_SCREENSHOTS") else SCREENSHOTS.parent / "out") / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    return target
