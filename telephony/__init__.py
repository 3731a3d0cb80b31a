"""telephony: a Twilio Media Streams <-> Gemini Live voice bridge.

The call path, one direction per line:

    caller -> Twilio -> /media-stream (mu-law 8 kHz) -> audio.CallerToGemini (PCM 16 kHz) -> Gemini Live
    caller <- Twilio <- /media-stream (mu-law 8 kHz) <- audio.GeminiToCaller (PCM 24 kHz) <- Gemini Live
"""

__version__ = "0.1.0"
