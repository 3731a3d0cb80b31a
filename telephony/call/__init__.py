"""One phone call: a sans-I/O core that decides, and a thin asyncio driver that does.

- `core`: `Call`, every decision (barge-in, playout, tools, how the call ends), no I/O.
- `playout`: paced playout - how much agent audio sits at Twilio, and what we hold.
- `voice_activity`: is the caller talking? (local voice detection for barge-in)
- `driver`: `CallDriver`, the asyncio tasks around one `Call` (one writer per socket).
- `tool_api`: what a tool sees of the call (`CallHandle`, `ToolOutcome`).
"""
