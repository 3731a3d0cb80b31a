"""Playback bookkeeping: marks sent, echoed as played, or returned by a clear."""

from telephony.call.mark_ledger import MarkOutcome, Playback


def test_marks_echo_in_order_and_move_what_was_heard():
    playback = Playback()
    playback.audio_sent(1600)
    first = playback.new_mark()
    playback.audio_sent(800)
    second = playback.new_mark()
    assert playback.playing
    assert playback.mark_echoed(first) == MarkOutcome.PLAYED
    assert playback.heard_ms == 200
    assert playback.mark_echoed(second) == MarkOutcome.PLAYED
    assert playback.heard_ms == 300 and not playback.playing


def test_a_later_mark_at_the_same_position_stays_pending():
    # Regression: a sync mark sent right after a reply mark (no audio between) was dropped
    # when the reply mark came back, so waiting for the sync mark never saw it played.
    playback = Playback()
    playback.audio_sent(160)
    reply = playback.new_mark("reply")
    sync = playback.new_mark("sync")
    assert playback.mark_echoed(reply) == MarkOutcome.PLAYED
    assert playback.is_pending(sync)
    assert playback.mark_echoed(sync) == MarkOutcome.PLAYED


def test_skipped_earlier_marks_count_as_played():
    playback = Playback()
    playback.audio_sent(160)
    early = playback.new_mark()
    playback.audio_sent(160)
    late = playback.new_mark()
    assert playback.mark_echoed(late) == MarkOutcome.PLAYED
    assert not playback.is_pending(early)


def test_clear_returns_pending_marks_as_cleared_and_discards_audio():
    playback = Playback()
    playback.audio_sent(8000)
    name = playback.new_mark()
    playback.cleared()
    assert playback.mark_echoed(name) == MarkOutcome.CLEARED
    assert playback.discarded_ms == 1000 and playback.heard_ms == 0
    assert playback.mark_echoed("never-sent") == MarkOutcome.UNKNOWN
