"""Command relay, cloud -> lock -> cloud, without I/O.

The gateway cannot verify a command's MAC (only the cloud and the lock hold
the lock's cmd key) and cannot forge one; what it does enforce:

- idempotency by command id: a repeated command is not sent twice; once
  answered, a repeat gets the same answer again;
- the deadline in the command body: an expired command is answered
  "expired" and never sent, also if it expired while queued;
- per-lock ordering: one command in flight per lock, the rest queued FIFO;
- a bounded in-flight window across locks, and bounded queues;
- a timeout answer when a lock does not ack in time. A lock's late ack is
  still relayed: it is the truth about the door.

Inputs are bytes and times; outputs are actions for the daemon to perform.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from protocol import cbor, envelope
from protocol.errors import ProtocolError


@dataclass(frozen=True)
class ToLock:
    lock: str
    data: bytes
    deadline: int = 0  # the command's own deadline (Unix seconds): its message expiry


@dataclass(frozen=True)
class ToCloud:
    """Relay the lock's own ack envelope unchanged."""

    lock: str
    data: bytes


@dataclass(frozen=True)
class Answer:
    """The gateway answers for the lock: expired, timeout, rejected, busy."""

    lock: str
    cmd_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Refused:
    """Bad input: logged with its reason, nothing else happens."""

    lock: str
    reason: str


Action = ToLock | ToCloud | Answer | Refused


@dataclass
class _Cmd:
    cmd_id: str
    deadline: int
    data: bytes
    sent_at: float = 0.0


@dataclass
class _LockState:
    queue: deque[_Cmd] = field(default_factory=deque)
    inflight: _Cmd | None = None
    # cmd id -> final answer (an Action to replay), bounded LRU
    done: OrderedDict[str, Action] = field(default_factory=OrderedDict)


def _command_fields(data: bytes, lock: str) -> tuple[str, int]:
    env = envelope.parse(data)
    if env.type != "cmd":
        raise ProtocolError("invalid-field", "not a command envelope")
    if env.rcpt != lock:
        raise ProtocolError("invalid-field", "command addressed to another lock")
    # Readable though not verifiable here: the lock checks the MAC.
    body = cbor.decode(env.body_bytes, 4, len(env.body_bytes))
    if not isinstance(body, dict):
        raise ProtocolError("malformed", "command body is not a map")
    cmd_id, deadline = body.get(2), body.get(3)
    if not isinstance(cmd_id, str) or not (0 < len(cmd_id) <= 40):
        raise ProtocolError("invalid-field", "command id missing")
    if not isinstance(deadline, int) or isinstance(deadline, bool) or deadline <= 0:
        raise ProtocolError("invalid-field", "command deadline missing")
    return cmd_id, deadline


def ack_fields(data: bytes, lock: str) -> tuple[str, str]:
    env = envelope.parse(data)
    if env.type != "ack" or env.sender != lock:
        raise ProtocolError("invalid-field", "not an ack from this lock")
    body = cbor.decode(env.body_bytes, 4, len(env.body_bytes))
    if not isinstance(body, dict) or not isinstance(body.get(1), str) or not isinstance(body.get(2), str):
        raise ProtocolError("malformed", "ack body is not {1: command id, 2: status}")
    return body[1], body[2]


class CommandRelay:
    def __init__(
        self,
        known_locks: set[str],
        timeout: float = 10.0,
        window: int = 64,
        queue_limit: int = 32,
        remember: int = 1024,
    ) -> None:
        self.known = known_locks
        self.timeout = timeout
        self.window = window
        self.queue_limit = queue_limit
        self.remember = remember
        self.locks: dict[str, _LockState] = {}
        self.waiting: deque[str] = deque()  # locks with queued work and no slot

    def _state(self, lock: str) -> _LockState:
        st = self.locks.get(lock)
        if st is None:
            st = self.locks[lock] = _LockState()
        return st

    def inflight(self) -> int:
        return sum(1 for s in self.locks.values() if s.inflight is not None)

    def _finish(self, st: _LockState, cmd_id: str, answer: Action) -> None:
        st.done[cmd_id] = answer
        st.done.move_to_end(cmd_id)
        while len(st.done) > self.remember:
            st.done.popitem(last=False)

    def from_cloud(self, lock: str, data: bytes, now: float) -> list[Action]:
        if lock not in self.known:
            return [Refused(lock, "unknown lock")]
        try:
            cmd_id, deadline = _command_fields(data, lock)
        except ProtocolError as e:
            return [Refused(lock, f"bad command: {e}")]
        st = self._state(lock)
        if cmd_id in st.done:
            return [st.done[cmd_id]]  # answer a repeat with the same answer
        if (st.inflight and st.inflight.cmd_id == cmd_id) or any(c.cmd_id == cmd_id for c in st.queue):
            return []  # already on its way
        if now >= deadline:
            ans = Answer(lock, cmd_id, "expired", "deadline passed before relay")
            self._finish(st, cmd_id, ans)
            return [ans]
        if len(st.queue) >= self.queue_limit:
            return [Answer(lock, cmd_id, "busy", "lock queue full")]  # not remembered: may be retried
        st.queue.append(_Cmd(cmd_id, deadline, data))
        return self._pump(now)

    def _pump(self, now: float) -> list[Action]:
        out: list[Action] = []
        candidates = list(self.waiting) + [k for k in self.locks if k not in self.waiting]
        self.waiting.clear()
        for lock in candidates:
            st = self.locks[lock]
            while st.inflight is None and st.queue:
                if self.inflight() >= self.window:
                    self.waiting.append(lock)
                    break
                cmd = st.queue.popleft()
                if now >= cmd.deadline:
                    ans = Answer(lock, cmd.cmd_id, "expired", "deadline passed while queued")
                    self._finish(st, cmd.cmd_id, ans)
                    out.append(ans)
                    continue
                cmd.sent_at = now
                st.inflight = cmd
                out.append(ToLock(lock, cmd.data, cmd.deadline))
        return out

    def from_lock(self, lock: str, data: bytes, now: float) -> list[Action]:
        if lock not in self.known:
            return [Refused(lock, "unknown lock")]
        try:
            cmd_id, _status = ack_fields(data, lock)
        except ProtocolError as e:
            return [Refused(lock, f"bad ack: {e}")]
        st = self._state(lock)
        out: list[Action] = [ToCloud(lock, data)]
        if st.inflight is not None and st.inflight.cmd_id == cmd_id:
            st.inflight = None
            self._finish(st, cmd_id, ToCloud(lock, data))
            out += self._pump(now)
        elif cmd_id in st.done:
            self._finish(st, cmd_id, ToCloud(lock, data))  # a late ack after a timeout: relay the truth
        else:
            return [Refused(lock, "ack for a command this gateway did not relay")]
        return out

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        for lock, st in self.locks.items():
            c = st.inflight
            if c is not None and now - c.sent_at >= self.timeout:
                ans = Answer(lock, c.cmd_id, "timeout", f"no ack within {self.timeout:g}s")
                st.inflight = None
                self._finish(st, c.cmd_id, ans)
                out.append(ans)
        return out + self._pump(now)
