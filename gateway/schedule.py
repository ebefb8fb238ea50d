"""Authorization schedule: grant/revoke operations per object, applied at
their reference time, idempotently, offline, across restarts.

Operations (from the cloud, possibly in bursts, out of order and repeated)
carry an id, the object they concern (a person, a credential, a visitor),
an action and an authorization time. The rule, from the product's seed:

- Operations are ordered by (authorization time, operation id); the latest
  one due is the one applied. An operation not newer than the one already
  in force is "superseded"; the same operation again is a "duplicate".
  Future-dated operations wait in a short ordered queue per object, so a
  revoke dated next month cannot erase a grant dated tomorrow.
- An object has a *valid-state* authorization when the operation applied to
  it carries the success flag and has not expired (a grant with an expiry
  in the past is no longer valid-state; a revoke is never valid-state).
- Reference time of a cached operation: if the object has no valid-state
  authorization, the latest operation's authorization time; if it has one,
  the later of that and the valid authorization's time, so an operation can
  never take effect before what is already in force.
- `tick(now)` applies, per object, the latest cached operation whose
  reference time has come. Applying calls `apply(op)`; if it fails
  (say the lock did not confirm), no success flag is set, the object has no
  valid state, and the next tick retries.

Everything lives in TinyDB behind AtomicJSONStorage, so the schedule
survives restarts and keeps working while the gateway is offline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tinydb import Query, TinyDB

ACTIONS = ("grant", "revoke")


class ScheduleError(ValueError):
    """A malformed authorization operation (nothing is changed)."""


@dataclass(frozen=True)
class AuthOp:
    op_id: str
    object_id: str
    action: str
    auth_time: int
    expires: int = 0  # grants only; Unix seconds, 0 = no expiry

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuthOp:
        try:
            op = cls(str(d["op_id"]), str(d["object_id"]), d["action"], d["auth_time"], d.get("expires", 0))
        except (KeyError, TypeError) as e:
            raise ScheduleError(f"authorization operation missing a field ({e})") from None
        op.validate()
        return op

    def validate(self) -> None:
        if not (0 < len(self.op_id) <= 64) or not (0 < len(self.object_id) <= 64):
            raise ScheduleError("operation and object ids are 1..64 characters")
        if self.action not in ACTIONS:
            raise ScheduleError(f"action must be one of {ACTIONS}")
        for v in (self.auth_time, self.expires):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ScheduleError("times are non-negative integers (Unix seconds)")
        if self.action == "revoke" and self.expires:
            raise ScheduleError("a revoke has no expiry")
        if self.expires and self.expires <= self.auth_time:
            raise ScheduleError("a grant expires after its authorization time")

    def order(self) -> tuple[int, str]:
        return (self.auth_time, self.op_id)


class AuthSchedule:
    """Pending operations per object (ordered, at most MAX_PENDING), the
    operation in force per object, and the rule above."""

    MAX_PENDING = 32

    def __init__(self, db: TinyDB, apply: Callable[[AuthOp], bool] | None = None) -> None:
        self.pending_t = db.table("auth_pending")
        self.applied = db.table("auth_applied")
        self.apply_fn = apply or (lambda op: True)

    def _applied(self, object_id: str) -> dict[str, Any] | None:
        doc = self.applied.get(Query().object_id == object_id)
        return dict(doc) if doc is not None else None

    def _pending(self, object_id: str) -> list[AuthOp]:
        doc = self.pending_t.get(Query().object_id == object_id)
        return [AuthOp(**o) for o in doc["ops"]] if doc is not None else []

    def _save_pending(self, object_id: str, ops: list[AuthOp]) -> None:
        if ops:
            self.pending_t.upsert(
                {"object_id": object_id, "ops": [asdict(o) for o in ops]}, Query().object_id == object_id
            )
        else:
            self.pending_t.remove(Query().object_id == object_id)

    def receive(self, op: AuthOp) -> str:
        """Cache an operation: "cached", "duplicate" or "superseded"."""
        op.validate()
        ops = self._pending(op.object_id)
        a = self._applied(op.object_id)
        for known in ops + ([_op_of(a)] if a else []):
            if known.op_id == op.op_id:
                if known != op:
                    raise ScheduleError(f"operation id {op.op_id} reused with different content")
                return "duplicate"
        if a is not None and a["success"] and op.order() <= _op_of(a).order():
            return "superseded"  # older than what is already in force
        ops.append(op)
        ops.sort(key=AuthOp.order)
        if len(ops) > self.MAX_PENDING:
            ops = ops[-self.MAX_PENDING :]  # the oldest pending can never win over the rest
        self._save_pending(op.object_id, ops)
        return "cached"

    def valid_state(self, object_id: str, now: int) -> bool:
        a = self._applied(object_id)
        return bool(
            a is not None
            and a["success"]
            and a["action"] == "grant"
            and (a["expires"] == 0 or a["expires"] > now)
        )

    def reference_time(self, op: AuthOp, now: int) -> int:
        if not self.valid_state(op.object_id, now):
            return op.auth_time
        a = self._applied(op.object_id)
        assert a is not None
        return max(op.auth_time, int(a["auth_time"]))

    def tick(self, now: int) -> list[AuthOp]:
        """Apply what is due; returns the operations applied successfully."""
        done = []
        for doc in self.pending_t.all():
            oid = doc["object_id"]
            ops = self._pending(oid)
            due = [o for o in ops if self.reference_time(o, now) <= now]
            if not due:
                continue
            op = due[-1]  # the latest due operation wins; earlier due ones are moot
            try:
                ok = bool(self.apply_fn(op))
            except Exception:  # one failed delivery must not stop the others
                ok = False
            self.applied.upsert(dict(asdict(op), success=ok, applied_at=now), Query().object_id == oid)
            if ok:
                done.append(op)
                self._save_pending(oid, [o for o in ops if o.order() > op.order()])
        return done

    def authorized(self, object_id: str, now: int) -> bool:
        return self.valid_state(object_id, now)


def _op_of(doc: dict[str, Any]) -> AuthOp:
    return AuthOp(**{k: doc[k] for k in ("op_id", "object_id", "action", "auth_time", "expires")})
