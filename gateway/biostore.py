"""Biometric templates at rest on the gateway, and bundle application.

One file, `biometrics.enc`: AES-256-GCM (key in a 0600 file the config
names) over CBOR {1: {person: {finger: ISO record}}, 2: {issuer id: last
sequence}, 3: [imported bundle ids], 4: {lock id: [[bundle id, index,
sealed entry], ...]} (lock entries not yet acknowledged by their lock),
5: {lock id: {result: count}} (delivery report)}. Applying a bundle builds
the whole next state in memory, checks it, and replaces the file
atomically (write, fsync, rename, fsync the directory): either every
operation of the bundle is in effect or none is. Templates reach memory
only to be loaded into the matcher.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.bundle import BundleError, Header, Payload
from gateway.config import read_secret, write_secret
from gateway.store import atomic_write

AAD = b"lockedge biometrics at rest v1"
MAX_MISSING = 1000  # skipped sequences remembered per issuer


@dataclass
class State:
    persons: dict[str, dict[int, bytes]] = field(default_factory=dict)
    last_seq: dict[bytes, int] = field(default_factory=dict)
    imported: list[bytes] = field(default_factory=list)
    pending: dict[str, list[list[Any]]] = field(default_factory=dict)
    delivered: dict[str, dict[str, int]] = field(default_factory=dict)
    # issuer -> sequences skipped over (a stick that never came, or came
    # late: an older bundle after a newer one is a rollback). Reported on
    # each receipt and as a record; the office re-sends what has no receipt.
    missing: dict[bytes, list[int]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"State({len(self.persons)} persons, {sum(map(len, self.pending.values()))} entries pending)"

    def copy(self) -> State:
        return State(
            {p: dict(f) for p, f in self.persons.items()},
            dict(self.last_seq),
            list(self.imported),
            {k: [list(e) for e in v] for k, v in self.pending.items()},
            {k: dict(v) for k, v in self.delivered.items()},
            {k: list(v) for k, v in self.missing.items()},
        )

    def templates(self) -> int:
        return sum(len(f) for f in self.persons.values())


def load_key(path: Path) -> bytes:
    """The at-rest key; created (0600) on first use."""
    if not path.exists():
        write_secret(path, AESGCM.generate_key(bit_length=256))
    key = read_secret(path)
    if len(key) != 32:
        raise ValueError(f"{path} must hold a 32-byte key")  # its length, never its bytes
    return key


class BioStore:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self.state = self._load()

    def _load(self) -> State:
        if not self.path.exists():
            return State()
        data = self.path.read_bytes()
        try:
            m = cbor2.loads(self._aead.decrypt(data[:12], data[12:], AAD))
        except (InvalidTag, ValueError):
            raise ValueError(f"{self.path} does not decrypt with the configured key") from None
        return State(
            {p: {int(k): v for k, v in f.items()} for p, f in m[1].items()},
            dict(m[2]),
            list(m[3]),
            {k: [list(e) for e in v] for k, v in m[4].items()},
            {k: dict(v) for k, v in m[5].items()},
            {k: list(v) for k, v in m.get(6, {}).items()},  # absent in stores from before gaps were kept
        )

    def commit(self, st: State) -> None:
        plain = cbor2.dumps({1: st.persons, 2: st.last_seq, 3: st.imported, 4: st.pending, 5: st.delivered,
                             6: st.missing})  # fmt: skip
        nonce = os.urandom(12)
        atomic_write(self.path, nonce + self._aead.encrypt(nonce, plain, AAD))
        self.state = st


@dataclass
class Applied:
    state: State
    counts: dict[str, int]
    results: list[str]  # one per operation: "ok" or why it did nothing


def apply(st: State, hdr: Header, payload: Payload) -> Applied:
    """The state after a bundle, without touching disk. A bundle already
    imported is refused (its sequence would be, too)."""
    if hdr.bundle_id in st.imported:
        raise BundleError("rollback", "bundle already imported")
    new = st.copy()
    counts = {"added": 0, "replaced": 0, "deleted": 0, "persons-deleted": 0, "lock-entries": 0}
    results = []
    for op in payload.operations:
        fingers = new.persons.get(op.person)
        if op.op == "add":
            f = new.persons.setdefault(op.person, {})
            for pos, tpl in op.templates:
                counts["replaced" if pos in f else "added"] += 1
                f[pos] = tpl
            results.append("ok")
        elif op.op == "replace":
            if fingers:
                counts["deleted"] += len(fingers)
            new.persons[op.person] = {pos: tpl for pos, tpl in op.templates}
            counts["added"] += len(op.templates)
            results.append("ok")
        elif op.op == "del-finger":
            gone = [pos for pos, _t in op.templates if fingers and pos in fingers]
            for pos in gone:
                del new.persons[op.person][pos]
            counts["deleted"] += len(gone)
            results.append("ok" if gone else "not-enrolled")
        else:  # del-person: consent withdrawn or moved out
            if fingers is not None:
                counts["deleted"] += len(fingers)
                counts["persons-deleted"] += 1
                del new.persons[op.person]
            results.append("ok" if fingers is not None else "not-enrolled")
        if op.person in new.persons and not new.persons[op.person]:
            del new.persons[op.person]
    for lock, entries in payload.lock_entries.items():
        q = new.pending.setdefault(lock, [])
        for i, e in enumerate(entries):
            q.append([hdr.bundle_id, i, e])
            counts["lock-entries"] += 1
    last = new.last_seq.get(hdr.issuer)
    if last is not None and hdr.seq > last + 1:
        gap = list(range(last + 1, min(hdr.seq, last + 1 + MAX_MISSING)))
        new.missing[hdr.issuer] = (new.missing.get(hdr.issuer, []) + gap)[-MAX_MISSING:]
        counts["missing"] = len(gap)
    new.last_seq[hdr.issuer] = hdr.seq
    new.imported.append(hdr.bundle_id)
    return Applied(new, counts, results)
