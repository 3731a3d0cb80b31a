"""One phone call: a sans-I/O core that decides, and a thin asyncio driver that does.

- `core`: `Call`, every decision (barge-in, playout, tools, how the call ends), no I/O, in
  small pure parts: `actions` (what it decides), `state` (the call's life as a table),
  `rules` (`CallConfig`), `inbound` (limits on what a stream may send), `turn` (the agent's
  reply being spoken), `goodbye` (when a goodbye was heard), `stall` (a silent model and how
  to bring it back), `tally` (counts the driver publishes).
- `playout`: paced playout - how much agent audio sits at Twilio, and what we hold.
- `voice_activity`: is the caller talking? (local voice detection for barge-in)
- `driver`: `CallDriver`, the asyncio tasks around one `Call` (one writer per socket).
- `tool_api`: what a tool sees of the call (`CallHandle`, `ToolOutcome`).
"""
