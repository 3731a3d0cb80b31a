"""G.711 mu-law against the ITU-T G.711 definition, written out independently here."""

import numpy as np

from telephony.audio.mulaw import decode_mulaw, encode_mulaw


def g711_mulaw_decode(code: int) -> int:
    """ITU-T G.711 mu-law expansion, 14-bit magnitude scaled to 16 bits."""
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


def test_decode_matches_g711_for_all_256_codes():
    decoded = np.frombuffer(decode_mulaw(bytes(range(256))), dtype="<i2")
    assert [int(v) for v in decoded] == [g711_mulaw_decode(c) for c in range(256)]


def test_round_trip_returns_every_code_except_negative_zero():
    codes = bytes(range(256))
    again = encode_mulaw(decode_mulaw(codes))
    # 0x7F is "negative zero": it decodes to 0, which encodes to the canonical 0xFF.
    for code, back in zip(codes, again, strict=True):
        assert back == (0xFF if code == 0x7F else code), hex(code)


def test_encode_is_monotonic_and_symmetric():
    ramp = np.arange(-32124, 32125, 16, dtype="<i2")  # G.711 mu-law full scale is 32124
    decoded = np.frombuffer(decode_mulaw(encode_mulaw(ramp.tobytes())), dtype="<i2").astype(int)
    assert np.all(np.diff(decoded) >= 0)
    # Quantisation error stays within half a step of the coarsest segment.
    assert np.max(np.abs(decoded - ramp)) <= 512
