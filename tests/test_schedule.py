"""Authorization schedule: out-of-order bursts, repeats, offline, restarts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.schedule import AuthOp, AuthSchedule, ScheduleError
from gateway.store import open_db


def _sched(path: Path, calls: list[AuthOp] | None = None) -> AuthSchedule:
    def apply(op: AuthOp) -> bool:
        if calls is not None:
            calls.append(op)
        return True

    return AuthSchedule(open_db(path), apply)


def test_future_revoke_does_not_erase_an_earlier_grant(tmp_path: Path) -> None:
    s = _sched(tmp_path / "db.json")
    assert s.receive(AuthOp("r", "p1", "revoke", 200)) == "cached"
    assert s.receive(AuthOp("g", "p1", "grant", 100, 1000)) == "cached"
    assert s.tick(50) == [] and not s.authorized("p1", 50)
    assert [o.op_id for o in s.tick(150)] == ["g"] and s.authorized("p1", 150)
    assert [o.op_id for o in s.tick(250)] == ["r"] and not s.authorized("p1", 250)


def test_repeats_are_idempotent_and_older_ops_superseded(tmp_path: Path) -> None:
    calls: list[AuthOp] = []
    s = _sched(tmp_path / "db.json", calls)
    g = AuthOp("g2", "p1", "grant", 100, 0)
    assert s.receive(g) == "cached"
    s.tick(100)
    assert s.receive(g) == "duplicate"
    assert s.receive(AuthOp("g1", "p1", "revoke", 50)) == "superseded"
    s.tick(500)
    assert len(calls) == 1 and s.authorized("p1", 500)
    with pytest.raises(ScheduleError, match="reused with different content"):
        s.receive(AuthOp("g2", "p1", "revoke", 100))  # same id, other content


def test_expired_grant_is_not_valid_state_and_reference_time_follows(tmp_path: Path) -> None:
    s = _sched(tmp_path / "db.json")
    s.receive(AuthOp("g1", "p1", "grant", 100, 200))
    s.tick(100)
    assert s.authorized("p1", 150) and not s.authorized("p1", 200)
    late = AuthOp("g0", "p1", "grant", 50, 400)  # older than the one in force
    assert s.receive(late) == "superseded"
    nxt = AuthOp("g3", "p1", "grant", 300, 900)
    s.receive(nxt)
    assert s.reference_time(nxt, 250) == 300  # no valid state: its own time
    s.tick(300)
    assert s.authorized("p1", 350)


def test_failed_apply_is_retried_and_survives_restart(tmp_path: Path) -> None:
    outcome = [False]
    calls: list[str] = []

    def apply(op: AuthOp) -> bool:
        calls.append(op.op_id)
        return outcome[0]

    path = tmp_path / "db.json"
    s = AuthSchedule(open_db(path), apply)
    s.receive(AuthOp("g1", "p1", "grant", 100))
    assert s.tick(100) == [] and not s.authorized("p1", 100)
    s2 = AuthSchedule(open_db(path), apply)  # restart while offline
    outcome[0] = True
    assert [o.op_id for o in s2.tick(110)] == ["g1"]
    s3 = AuthSchedule(open_db(path), apply)
    assert s3.tick(120) == [] and s3.authorized("p1", 120)
    assert calls == ["g1", "g1"]


def test_malformed_operations_are_refused() -> None:
    # ScheduleError has no reason code: each case names the rule it breaks.
    for bad, why in (
        ({"op_id": "a", "object_id": "p", "action": "delete", "auth_time": 1}, "action must be one of"),
        ({"op_id": "a", "object_id": "p", "action": "grant", "auth_time": -1}, "times are non-negative"),
        ({"op_id": "a", "object_id": "p", "action": "grant", "auth_time": True}, "times are non-negative"),
        (
            {"op_id": "a", "object_id": "p", "action": "grant", "auth_time": 5, "expires": 3},
            "expires after its authorization",
        ),
        ({"op_id": "", "object_id": "p", "action": "grant", "auth_time": 5}, "1..64 characters"),
        ({"op_id": "a" * 65, "object_id": "p", "action": "grant", "auth_time": 5}, "1..64 characters"),
        ({"object_id": "p", "action": "grant", "auth_time": 5}, "missing a field"),
        (
            {"op_id": "a", "object_id": "p", "action": "revoke", "auth_time": 5, "expires": 9},
            "a revoke has no expiry",
        ),
    ):
        with pytest.raises(ScheduleError, match=why):
            AuthOp.from_dict(bad)


ops_strategy = st.lists(
    st.tuples(st.sampled_from(["p1", "p2", "p3"]), st.sampled_from(["grant", "revoke"]),
              st.integers(0, 1000), st.integers(0, 600)),
    min_size=1, max_size=25,
)  # fmt: skip


@given(ops_strategy, st.randoms(use_true_random=False), st.integers(0, 1700))
@settings(max_examples=150, deadline=None)
def test_model_latest_due_operation_wins_whatever_the_arrival_order(
    raw: list[tuple[str, str, int, int]], rnd: random.Random, now: int
) -> None:
    import tempfile

    ops = [
        AuthOp(f"op{i}", obj, act, t, (t + life + 1) if act == "grant" and life else 0)
        for i, (obj, act, t, life) in enumerate(raw)
    ]
    arrival = ops + rnd.sample(ops, k=min(5, len(ops)))  # with repeats
    rnd.shuffle(arrival)
    with tempfile.TemporaryDirectory() as d:
        s = _sched(Path(d) / "db.json")
        for op in arrival:
            s.receive(op)
        # Ticks at random times up to `now` (the gateway may be down between them).
        for t in [*sorted(rnd.sample(range(0, now + 1), k=min(4, now + 1))), now]:
            s.tick(t)
        for obj in ("p1", "p2", "p3"):
            due = [o for o in ops if o.object_id == obj and o.auth_time <= now]
            if not due:
                assert not s.authorized(obj, now)
                continue
            latest = max(due, key=AuthOp.order)
            expect = latest.action == "grant" and (latest.expires == 0 or latest.expires > now)
            assert s.authorized(obj, now) == expect, (obj, latest)
