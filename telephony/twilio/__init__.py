"""The phone side: Twilio's Media Streams wire format, TwiML, request signatures and stream
tokens, the REST API (dial out, hang up, transfer). Leaves: no call logic here.

(Inside this package `import twilio` is still the twilio library: imports are absolute.)
"""
