"""What a fresh interpreter loads: the memory tests' probe (a module imported by a server is
memory it keeps for its whole life)."""

from __future__ import annotations

import subprocess
import sys


def modules_loaded(code: str, watched: tuple[str, ...]) -> list[str]:
    """Run `code` in a new interpreter; which of `watched` it imported (sorted)."""
    probe = f"{code}\nimport sys\nprint(','.join(sorted(m for m in {watched!r} if m in sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return [name for name in done.stdout.strip().split(",") if name]
