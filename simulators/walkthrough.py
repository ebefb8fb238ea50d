"""A narrated walk through the protocol core: the cloud, a gateway and a lock
exchanging real envelopes, including the attacks the core must refuse.

This is what `make demo` runs until the site simulator lands (issue 8). It
uses only protocol/, exactly as the lock and the gateway do.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from protocol import envelope, keys, record
from protocol.errors import ProtocolError

LOCK = "lock-0001"
CLOUD = "cloud"


def _refused(what: str, fn: Callable[[], object], say: Callable[[str], None]) -> str:
    try:
        fn()
    except ProtocolError as e:
        say(f"  refused  {what:<46} reason={e.reason}")
        return e.reason
    raise AssertionError(f"{what} was accepted")


def run(say: Callable[[str], None] = print) -> dict[str, int]:
    # Provisioning: one root key per lock, shared by the lock and the cloud.
    # The gateway gets only the lock's LOCAL key, never CMD or UPLINK.
    root = os.urandom(32)
    k_cmd = keys.derive(root, keys.CMD, LOCK)
    k_up = keys.derive(root, keys.UPLINK, LOCK)
    k_local = keys.derive(root, keys.LOCAL, LOCK)
    counts = {"accepted": 0, "refused": 0}

    say("lockedge protocol walk-through")
    say(f"  keys for {LOCK}: {len(keys.PURPOSES)} purposes derived with HKDF-SHA256 (never printed)")

    # 1. The cloud sends an end-to-end authenticated remote unlock.
    now = 1795000000
    cmd_body = {1: "unlock", 2: "c-0001", 3: now + 30}
    wire = envelope.seal(k_cmd, "cmd", CLOUD, 1, now, cmd_body, rcpt=LOCK)
    say(f"\n1. cloud -> {LOCK}: remote unlock, {len(wire)} bytes on the wire")
    lock_rx = envelope.Receiver(lambda s, t: k_cmd if (s, t) == (CLOUD, "cmd") else None)
    env = lock_rx.open(wire)
    counts["accepted"] += 1
    say(f"  accepted {env!r}, body={env.body}")

    # 2. What the lock refuses.
    say("\n2. attacks on the command path")
    forged = envelope.seal(k_local, "cmd", CLOUD, 2, now, cmd_body, rcpt=LOCK)
    tampered = bytearray(envelope.seal(k_cmd, "cmd", CLOUD, 3, now, cmd_body, rcpt=LOCK))
    tampered[-40] ^= 0x01
    for what, fn in (
        ("replay of the same command", lambda: lock_rx.open(wire)),
        ("gateway forging a command with its LOCAL key", lambda: lock_rx.open(forged)),
        ("one bit flipped in transit", lambda: lock_rx.open(bytes(tampered))),
        ("truncated message", lambda: lock_rx.open(wire[:-5])),
        ("junk bytes", lambda: lock_rx.open(b"\xff\x00junk")),
    ):
        _refused(what, fn, say)
        counts["refused"] += 1

    # 3. The lock records decisions and uploads a batch end to end.
    say(f"\n3. {LOCK} -> cloud: pass records")
    recs = [
        record.PassRecord(LOCK, 1, now, "door-1", "remote", "c-0001", True, "ok"),
        record.PassRecord(LOCK, 2, now + 60, "door-1", "code", "", False, "wrong-code"),
        record.PassRecord(LOCK, 3, now + 65, "door-1", "code", "pc-17", True, "ok"),
    ]
    batch = envelope.seal(k_up, "rec", LOCK, 1, now + 70, record.batch_body(recs))
    cloud_rx = envelope.Receiver(lambda s, t: k_up if s == LOCK else None)
    got = record.batch_from_body(cloud_rx.open(batch).body)
    counts["accepted"] += 1
    for r in got:
        say(f"  received {r!r}")
    _refused("the same batch uploaded twice", lambda: cloud_rx.open(batch), say)
    counts["refused"] += 1
    say(f"\n{counts['accepted']} messages accepted, {counts['refused']} refused, each with its reason")
    return counts
