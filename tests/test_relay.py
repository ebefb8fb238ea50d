"""Command relay logic (no brokers): idempotency, deadlines, ordering, timeouts."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.relay import Answer, CommandRelay, Refused, ToCloud, ToLock
from protocol import envelope, keys

ROOT = bytes(range(32))
NOW = 1_795_000_000


def cmd(lock: str, cmd_id: str, deadline: int, seq: int = 1, rcpt: str | None = None) -> bytes:
    k = keys.derive(ROOT, keys.CMD, lock)
    return envelope.seal(k, "cmd", "cloud", seq, NOW, {1: "unlock", 2: cmd_id, 3: deadline}, rcpt or lock)


def ack(lock: str, cmd_id: str, seq: int = 1) -> bytes:
    k = keys.derive(ROOT, keys.UPLINK, lock)
    return envelope.seal(k, "ack", lock, seq, NOW, {1: cmd_id, 2: "done"})


def test_round_trip_and_per_lock_ordering() -> None:
    r = CommandRelay({"L1"})
    a = r.from_cloud("L1", cmd("L1", "c1", NOW + 30), NOW)
    assert a == [ToLock("L1", cmd("L1", "c1", NOW + 30), NOW + 30)]
    assert r.from_cloud("L1", cmd("L1", "c2", NOW + 30, 2), NOW) == []  # queued behind c1
    out = r.from_lock("L1", ack("L1", "c1"), NOW + 1)
    assert out[0] == ToCloud("L1", ack("L1", "c1")) and isinstance(out[1], ToLock)
    assert r.from_lock("L1", ack("L1", "c2", 2), NOW + 2)[0] == ToCloud("L1", ack("L1", "c2", 2))


def test_duplicates_are_idempotent() -> None:
    r = CommandRelay({"L1"})
    c = cmd("L1", "c1", NOW + 30)
    assert len(r.from_cloud("L1", c, NOW)) == 1
    assert r.from_cloud("L1", c, NOW) == []  # in flight: not sent again
    r.from_lock("L1", ack("L1", "c1"), NOW + 1)
    assert r.from_cloud("L1", c, NOW + 2) == [ToCloud("L1", ack("L1", "c1"))]  # same answer again


def test_expired_commands_are_answered_never_executed_late() -> None:
    r = CommandRelay({"L1"})
    assert r.from_cloud("L1", cmd("L1", "old", NOW - 1), NOW) == [
        Answer("L1", "old", "expired", "deadline passed before relay")
    ]
    r.from_cloud("L1", cmd("L1", "c1", NOW + 100), NOW)
    r.from_cloud("L1", cmd("L1", "c2", NOW + 5, 2), NOW)  # expires while c1 is in flight
    out = r.from_lock("L1", ack("L1", "c1"), NOW + 10)
    assert Answer("L1", "c2", "expired", "deadline passed while queued") in out
    assert not any(isinstance(x, ToLock) for x in out)


def test_timeout_then_late_ack_is_still_relayed() -> None:
    r = CommandRelay({"L1"}, timeout=5)
    r.from_cloud("L1", cmd("L1", "c1", NOW + 100), NOW)
    r.from_cloud("L1", cmd("L1", "c2", NOW + 100, 2), NOW)
    out = r.tick(NOW + 5)
    assert Answer("L1", "c1", "timeout", "no ack within 5s") in out
    assert any(isinstance(x, ToLock) for x in out)  # c2 goes now
    assert r.from_lock("L1", ack("L1", "c1"), NOW + 6) == [ToCloud("L1", ack("L1", "c1"))]


def test_window_bounds_inflight_across_locks() -> None:
    locks = {f"L{i}" for i in range(10)}
    r = CommandRelay(locks, window=3)
    sent = [a for i in range(10) for a in r.from_cloud(f"L{i}", cmd(f"L{i}", "c", NOW + 60), NOW)]
    assert len(sent) == 3 and r.inflight() == 3
    lock0 = sent[0].lock
    out = r.from_lock(lock0, ack(lock0, "c"), NOW + 1)
    assert sum(isinstance(x, ToLock) for x in out) == 1 and r.inflight() == 3


def _refused(actions: Sequence[object]) -> str:
    assert len(actions) == 1 and isinstance(actions[0], Refused), actions
    return actions[0].reason


def test_bad_input_is_refused_with_a_reason() -> None:
    r = CommandRelay({"L1"})
    # Each refusal says which one it is, not only that it is one.
    assert _refused(r.from_cloud("L9", cmd("L9", "c", NOW + 9), NOW)) == "unknown lock"
    assert _refused(r.from_cloud("L1", b"\xff\x00junk", NOW)).startswith("bad command: malformed")
    assert "another lock" in _refused(r.from_cloud("L1", cmd("L2", "c", NOW + 9, rcpt="L2"), NOW))
    no_deadline = envelope.seal(keys.derive(ROOT, keys.CMD, "L1"), "cmd", "cloud", 1, NOW, {2: "c"}, "L1")
    assert "deadline" in r.from_cloud("L1", no_deadline, NOW)[0].reason  # type: ignore[union-attr]
    assert _refused(r.from_lock("L1", ack("L1", "never-sent"), NOW)).startswith("ack for a command")
    assert _refused(r.from_lock("L1", ack("L2", "c"), NOW)).startswith("bad ack")  # not the topic's lock


def test_a_full_lock_queue_is_answered_busy_and_not_remembered() -> None:
    r = CommandRelay({"L1"}, queue_limit=2)
    r.from_cloud("L1", cmd("L1", "c0", NOW + 30), NOW)  # in flight
    assert r.from_cloud("L1", cmd("L1", "c1", NOW + 30, 2), NOW) == []
    assert r.from_cloud("L1", cmd("L1", "c2", NOW + 30, 3), NOW) == []
    [busy] = r.from_cloud("L1", cmd("L1", "c3", NOW + 30, 4), NOW)
    assert isinstance(busy, Answer) and (busy.cmd_id, busy.status) == ("c3", "busy")
    r.from_lock("L1", ack("L1", "c0"), NOW + 1)  # room again: the same id may be retried
    assert r.from_cloud("L1", cmd("L1", "c3", NOW + 30, 5), NOW + 1) == []
