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
    # The late ack replaces the timeout as the answer the cloud gets for a repeat.
    assert r.from_cloud("L1", cmd("L1", "c1", NOW + 100), NOW + 7) == [ToCloud("L1", ack("L1", "c1"))]


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
    assert r.from_cloud("L1", cmd("L1", "c3", NOW + 30, 4), NOW) == [
        Answer("L1", "c3", "busy", "lock queue full")
    ]
    r.from_lock("L1", ack("L1", "c0"), NOW + 1)  # room again: the same id may be retried
    assert r.from_cloud("L1", cmd("L1", "c3", NOW + 30, 5), NOW + 1) == []


def _raw_cmd(lock: str, body: object, typ: str = "cmd", rcpt: str | None = None) -> bytes:
    return envelope.seal(keys.derive(ROOT, keys.CMD, lock), typ, "cloud", 9, NOW, body, rcpt or lock)


def test_each_malformed_command_is_refused_with_its_exact_reason() -> None:
    """Written from the mutation run: the refusals were checked by type, so a
    changed reason code or an unchecked bound passed."""
    r = CommandRelay({"L1"})
    deep = {1: "unlock", 2: "c", 3: NOW + 9, 4: [[[["x"]]]]}
    cases = [
        (
            _raw_cmd("L1", {1: "unlock", 2: "c", 3: NOW + 9}, typ="bl"),
            "invalid-field: not a command envelope",
        ),
        (
            _raw_cmd("L1", {1: "unlock", 2: "c", 3: NOW + 9}, rcpt="L2"),
            "invalid-field: command addressed to another lock",
        ),
        (_raw_cmd("L1", [1, 2]), "malformed: command body is not a map"),
        (_raw_cmd("L1", {1: "unlock", 3: NOW + 9}), "invalid-field: command id missing"),
        (_raw_cmd("L1", {1: "unlock", 2: "", 3: NOW + 9}), "invalid-field: command id missing"),
        (_raw_cmd("L1", {1: "unlock", 2: "c" * 41, 3: NOW + 9}), "invalid-field: command id missing"),
        (_raw_cmd("L1", {1: "unlock", 2: 7, 3: NOW + 9}), "invalid-field: command id missing"),
        (_raw_cmd("L1", {1: "unlock", 2: "c", 3: 0}), "invalid-field: command deadline missing"),
        (_raw_cmd("L1", {1: "unlock", 2: "c", 3: True}), "invalid-field: command deadline missing"),
        (_raw_cmd("L1", {1: "unlock", 2: "c", 3: "soon"}), "invalid-field: command deadline missing"),
    ]
    for data, why in cases:
        assert r.from_cloud("L1", data, NOW) == [Refused("L1", "bad command: " + why)], why
    got = r.from_cloud("L1", _raw_cmd("L1", deep), NOW)
    assert len(got) == 1 and isinstance(got[0], Refused) and got[0].reason.startswith("bad command: too-deep")
    assert r.from_cloud("L9", cmd("L9", "c", NOW + 9), NOW) == [Refused("L9", "unknown lock")]
    assert r.locks.get("L1") is None or not r.locks["L1"].queue  # nothing was queued


def test_command_bounds_at_their_edges() -> None:
    r = CommandRelay({"L1"})
    one = _raw_cmd("L1", {1: "unlock", 2: "c", 3: NOW + 9})
    forty = _raw_cmd("L1", {1: "unlock", 2: "c" * 40, 3: NOW + 9})
    assert r.from_cloud("L1", one, NOW) == [ToLock("L1", one, NOW + 9)]
    assert r.from_cloud("L1", forty, NOW) == []  # accepted, queued behind the first
    # A deadline of 1 is a deadline (long past): answered expired, not refused.
    past = _raw_cmd("L1", {1: "unlock", 2: "p", 3: 1})
    assert r.from_cloud("L1", past, NOW) == [Answer("L1", "p", "expired", "deadline passed before relay")]
    # At the deadline itself the command is late.
    at = cmd("L1", "at", NOW)
    assert r.from_cloud("L1", at, NOW) == [Answer("L1", "at", "expired", "deadline passed before relay")]
    assert r.from_cloud("L1", at, NOW) == [
        Answer("L1", "at", "expired", "deadline passed before relay")
    ]  # remembered


def test_each_malformed_ack_is_refused_with_its_exact_reason() -> None:
    r = CommandRelay({"L1"})
    r.from_cloud("L1", cmd("L1", "c1", NOW + 30), NOW)
    k = keys.derive(ROOT, keys.UPLINK, "L1")
    cases = [
        (
            envelope.seal(k, "evt", "L1", 1, NOW, {1: "c1", 2: "done"}),
            "invalid-field: not an ack from this lock",
        ),
        (
            envelope.seal(k, "ack", "L2", 1, NOW, {1: "c1", 2: "done"}),
            "invalid-field: not an ack from this lock",
        ),
        (envelope.seal(k, "ack", "L1", 1, NOW, [1]), "malformed: ack body is not {1: command id, 2: status}"),
        (
            envelope.seal(k, "ack", "L1", 1, NOW, {2: "done"}),
            "malformed: ack body is not {1: command id, 2: status}",
        ),
        (
            envelope.seal(k, "ack", "L1", 1, NOW, {1: "c1"}),
            "malformed: ack body is not {1: command id, 2: status}",
        ),
        (
            envelope.seal(k, "ack", "L1", 1, NOW, {1: "c1", 2: 5}),
            "malformed: ack body is not {1: command id, 2: status}",
        ),
    ]
    for data, why in cases:
        assert r.from_lock("L1", data, NOW) == [Refused("L1", "bad ack: " + why)], why
    assert r.from_lock("L9", ack("L9", "c1"), NOW) == [Refused("L9", "unknown lock")]
    assert r.locks["L1"].inflight is not None  # still waiting for the real ack
    assert r.from_lock("L1", ack("L1", "never"), NOW) == [
        Refused("L1", "ack for a command this gateway did not relay")
    ]


def test_answers_are_remembered_up_to_the_limit_oldest_first_out() -> None:
    r = CommandRelay({"L1"}, remember=3)
    for i in range(4):
        r.from_cloud("L1", cmd("L1", f"x{i}", NOW - 1, seq=i + 1), NOW)  # each answered "expired"
    assert list(r.locks["L1"].done) == ["x1", "x2", "x3"]  # the limit held, the oldest went
    again = r.from_cloud("L1", cmd("L1", "x1", NOW - 1, seq=9), NOW)  # a repeat: the same answer
    assert again == [Answer("L1", "x1", "expired", "deadline passed before relay")]
    r.from_cloud("L1", cmd("L1", "x4", NOW - 1, seq=10), NOW)
    assert list(r.locks["L1"].done) == ["x2", "x3", "x4"]  # first in, first out; a repeat does not refresh


def test_a_repeat_of_a_queued_command_is_not_queued_twice() -> None:
    r = CommandRelay({"L1"})
    c1, c2 = cmd("L1", "c1", NOW + 30), cmd("L1", "c2", NOW + 30, 2)
    assert r.from_cloud("L1", c1, NOW) == [ToLock("L1", c1, NOW + 30)]
    assert r.from_cloud("L1", c2, NOW) == []  # queued behind c1
    assert r.from_cloud("L1", c2, NOW) == []  # a repeat while queued: already on its way
    assert r.from_lock("L1", ack("L1", "c1"), NOW + 1) == [
        ToCloud("L1", ack("L1", "c1")),
        ToLock("L1", c2, NOW + 30),
    ]
    assert r.from_lock("L1", ack("L1", "c2", 2), NOW + 2) == [
        ToCloud("L1", ack("L1", "c2", 2))
    ]  # c2 went once


def test_a_body_nested_past_four_levels_is_refused_before_its_fields() -> None:
    r = CommandRelay({"L1"})
    deep = {1: "unlock", 2: "c1", 3: NOW + 30, 4: [[[["x"]]]]}
    [refused] = r.from_cloud("L1", _raw_cmd("L1", deep), NOW)
    assert isinstance(refused, Refused) and refused.reason.startswith("bad command: too-deep: "), refused
    ok = {1: "unlock", 2: "c1", 3: NOW + 30, 4: [["x"]]}
    assert r.from_cloud("L1", _raw_cmd("L1", ok), NOW) == [ToLock("L1", _raw_cmd("L1", ok), NOW + 30)]
    k = keys.derive(ROOT, keys.UPLINK, "L1")
    deep_ack = envelope.seal(k, "ack", "L1", 3, NOW, {1: "c1", 2: "done", 3: [[[["x"]]]]})
    [refused] = r.from_lock("L1", deep_ack, NOW + 1)
    assert isinstance(refused, Refused) and refused.reason.startswith("bad ack: too-deep: "), refused


def test_a_queued_command_expiring_as_it_comes_up_is_answered_once_and_the_next_goes() -> None:
    r = CommandRelay({"L1"}, timeout=100)
    c1, c2, c3 = cmd("L1", "c1", NOW + 100), cmd("L1", "c2", NOW + 5, 2), cmd("L1", "c3", NOW + 100, 3)
    r.from_cloud("L1", c1, NOW)
    r.from_cloud("L1", c2, NOW)
    r.from_cloud("L1", c3, NOW)
    out = r.from_lock("L1", ack("L1", "c1"), NOW + 5)  # c2's deadline is now: it never goes
    assert out == [
        ToCloud("L1", ack("L1", "c1")),
        Answer("L1", "c2", "expired", "deadline passed while queued"),
        ToLock("L1", c3, NOW + 100),
    ]
    # A repeat of c2 gets the same answer, from memory.
    assert r.from_cloud("L1", c2, NOW + 6) == [Answer("L1", "c2", "expired", "deadline passed while queued")]


def test_a_timeout_fires_at_its_time_only_and_is_the_answer_to_a_repeat() -> None:
    r = CommandRelay({"L1", "L2"}, timeout=5)
    c1 = cmd("L1", "c1", NOW + 100)
    r.from_cloud("L1", c1, NOW)
    assert r.tick(NOW + 4.9) == []  # L2 has no command in flight, L1's is not late yet
    assert r.tick(NOW + 5) == [Answer("L1", "c1", "timeout", "no ack within 5s")]
    assert r.tick(NOW + 50) == []
    assert r.from_cloud("L1", c1, NOW + 6) == [Answer("L1", "c1", "timeout", "no ack within 5s")]


def test_the_relay_defaults() -> None:
    r = CommandRelay(set())
    assert (r.timeout, r.window, r.queue_limit, r.remember) == (10.0, 64, 32, 1024)
