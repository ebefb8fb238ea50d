"""A Receiver's documented defaults (docs/protocol.md: a 64-number replay
window per sender; 4,096 senders tracked at most), measured through
open(). CPython only: 4,097 senders' envelopes are slow on MicroPython."""

from __future__ import annotations

from protocol import envelope, keys
from tests.shared.util import raises

ROOT = bytes(range(32))


def test_the_default_window_is_64_behind_the_highest() -> None:
    k = keys.derive(ROOT, keys.UPLINK, "lock-1")
    rx = envelope.Receiver(lambda s, t: k)
    rx.open(envelope.seal(k, "evt", "lock-1", 100, 0, {}))
    rx.open(envelope.seal(k, "evt", "lock-1", 37, 0, {}))  # 63 behind: inside
    raises("stale", rx.open, envelope.seal(k, "evt", "lock-1", 36, 0, {}))  # 64 behind: outside


def test_the_default_tracks_4096_senders_and_refuses_one_more() -> None:
    k = bytes(32)
    rx = envelope.Receiver(lambda s, t: k)
    for i in range(4096):
        rx.open(envelope.seal(k, "evt", "s-%d" % i, 1, 0, {}))
    raises("invalid-field", rx.open, envelope.seal(k, "evt", "s-new", 1, 0, {}))
    assert len(rx.state()) == 4096
