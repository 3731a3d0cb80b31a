"""MarkLedger bookkeeping: marks sent, echoed as played, or returned by a clear."""

from telephony.call.mark_ledger import MarkLedger, MarkOutcome


def test_marks_echo_in_order_and_move_what_was_heard():
    ledger = MarkLedger()
    ledger.audio_sent(1600)
    first = ledger.new_mark()
    ledger.audio_sent(800)
    second = ledger.new_mark()
    assert ledger.playing
    assert ledger.mark_echoed(first) == MarkOutcome.PLAYED
    assert ledger.heard_ms == 200
    assert ledger.mark_echoed(second) == MarkOutcome.PLAYED
    assert ledger.heard_ms == 300 and not ledger.playing


def test_a_later_mark_at_the_same_position_stays_pending():
    # Regression: a sync mark sent right after a reply mark (no audio between) was dropped
    # when the reply mark came back, so waiting for the sync mark never saw it played.
    ledger = MarkLedger()
    ledger.audio_sent(160)
    reply = ledger.new_mark("reply")
    sync = ledger.new_mark("sync")
    assert ledger.mark_echoed(reply) == MarkOutcome.PLAYED
    assert ledger.is_pending(sync)
    assert ledger.mark_echoed(sync) == MarkOutcome.PLAYED


def test_skipped_earlier_marks_count_as_played():
    ledger = MarkLedger()
    ledger.audio_sent(160)
    early = ledger.new_mark()
    ledger.audio_sent(160)
    late = ledger.new_mark()
    assert ledger.mark_echoed(late) == MarkOutcome.PLAYED
    assert not ledger.is_pending(early)


def test_clear_returns_pending_marks_as_cleared_and_discards_audio():
    ledger = MarkLedger()
    ledger.audio_sent(8000)
    name = ledger.new_mark()
    ledger.cleared()
    assert ledger.mark_echoed(name) == MarkOutcome.CLEARED
    assert ledger.discarded_ms == 1000 and ledger.heard_ms == 0
    assert ledger.mark_echoed("never-sent") == MarkOutcome.UNKNOWN
