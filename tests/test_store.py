"""The gateway's TinyDB state survives crashes at any point of a write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway import store
from gateway.store import open_db


def test_state_file_is_private(tmp_path: Path) -> None:
    db = open_db(tmp_path / "state.json")
    db.table("locks").insert({"id": "lock-1"})
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_crash_before_rename_keeps_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    db = open_db(path)
    db.table("locks").insert({"id": "lock-1"})
    before = path.read_bytes()

    def power_cut(src: str, dst: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(store.os, "replace", power_cut)
    with pytest.raises(OSError):
        db.table("locks").insert({"id": "lock-2"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    # A restart sees the committed state and cleans the stray temp file.
    db2 = open_db(path)
    assert [d["id"] for d in db2.table("locks").all()] == ["lock-1"]
    assert not list(tmp_path.glob(".state.json.tmp-*"))
    # and the in-memory cache of the first handle did not run ahead of disk
    assert [d["id"] for d in db.table("locks").all()] == ["lock-1"]


WRITER = """
import sys
from gateway.store import open_db
db = open_db(sys.argv[1])
t = db.table("counter")
cur = t.get(lambda d: d.get("k") == "n")
i = cur["v"] if cur else 0
while True:
    i += 1
    t.upsert({"k": "n", "v": i, "pad": "x" * 2000}, lambda d: d.get("k") == "n")
    print(i, flush=True)
"""


def test_kill_9_at_random_moments_never_tears_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    root = Path(__file__).resolve().parent.parent
    last_acked = 0
    for round_ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=root
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # writing has begun (start-up time varies)
        time.sleep(0.005 + 0.013 * (round_ % 5))
        os.kill(proc.pid, signal.SIGKILL)
        out = (first + proc.stdout.read()).split()
        proc.wait()
        acked = int(out[-1]) if out else 0
        st = store.AtomicJSONStorage(path)  # never torn: a copy always checks
        assert st.damaged == 0
        data = st.read()
        assert data is not None
        v = data["counter"]["1"]["v"]
        # Everything the writer reported done is on disk (it may be one ahead:
        # killed between the rename and the print).
        assert v >= acked, (v, acked)
        assert v >= last_acked
        last_acked = max(last_acked, v)
    assert last_acked > 0


def test_a_damaged_copy_costs_at_most_the_last_write(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    db = open_db(path)
    for i in range(4):
        db.table("t").insert({"i": i})
    for junk in (b"", b"\x00" * 64, b"{not json", b'{"lockedge-state": 1, "gen": 9, "crc": 0, "data": {}}'):
        for victim in (path, path.with_name("state.json.b")):
            good = {p: p.read_bytes() for p in (path, path.with_name("state.json.b"))}
            victim.write_bytes(junk)
            st = store.AtomicJSONStorage(path)
            data = st.read()
            assert data is not None and len(data["t"]) >= 3, (victim.name, junk)  # the other copy
            assert st.damaged == 1  # an empty copy is a damaged one
            for p, b in good.items():
                p.write_bytes(b)
    for p in (path, path.with_name("state.json.b")):
        p.write_bytes(b"\xff" * 10)
    st = store.AtomicJSONStorage(path)
    assert st.read() is None and st.damaged == 2  # starts empty, says so
    legacy = tmp_path / "old.json"
    legacy.write_text(json.dumps({"t": {"1": {"i": 7}}}))
    assert open_db(legacy).table("t").all() == [{"i": 7}]  # a file from before the copies
