"""Offline test kit, importable by users' own tests.

- `call_fixture`: recorded calls (Twilio's inbound messages, one JSON per line): build and read.
- `gemini_live`: a local Gemini Live (BidiGenerateContent) emulator the real SDK connects to.
- `twilio_media`: a Twilio Media Streams emulator that plays a recorded call into a server.
"""
