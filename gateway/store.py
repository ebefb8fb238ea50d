"""The gateway's small state (lock registry, credential metadata, blacklist,
authorization schedule) in TinyDB, behind a storage that never leaves a torn
file.

TinyDB's own JSONStorage rewrites its file in place; a power cut in the
middle leaves half a JSON document. AtomicJSONStorage writes a temporary
file, fsyncs it, renames it over the old one and fsyncs the directory, so
after a crash the file holds either the previous state or the new one.
TinyDB rewrites the whole file on every write, so this is for small state
only: the pass-record stream lives in the outbox journal.
"""

from __future__ import annotations

import copy
import json
import os
import zlib
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

FILE_MODE = 0o600  # state may name credentials; never world-readable


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE, durable: bool = True) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new
    content; `durable=False` skips the fsyncs (tests, benchmarks' scratch)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if not durable:
        return
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class AtomicJSONStorage(Storage):
    """Two copies, `<name>` and `<name>.b`, written alternately, each an
    atomic write of {"lockedge-state": 1, "gen": n, "crc": CRC-32, "data":
    tables}. A read takes the newest copy whose CRC checks, so a flipped bit
    or an erased file costs at most the last write, never the start. If no
    copy checks, the store starts empty and `damaged` says how many copies
    were unreadable (the daemon reports it as a record)."""

    def __init__(self, path: str | os.PathLike[str], mode: int = FILE_MODE) -> None:
        super().__init__()
        self.path = Path(path)
        self.copies = (self.path, self.path.with_name(self.path.name + ".b"))
        self.mode = mode
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, Any] | None = None
        self._gen = 0
        self.damaged = 0
        # A temp file left by a crash before its rename holds nothing
        # committed; remove it.
        for p in self.copies:
            for stale in self.path.parent.glob(f".{p.name}.tmp-*"):
                stale.unlink(missing_ok=True)
        self._cache = self._load()

    @staticmethod
    def _crc(data: Any) -> int:
        return zlib.crc32(json.dumps(data, sort_keys=True).encode())

    def _load(self) -> dict[str, Any] | None:
        best: tuple[int, dict[str, Any]] | None = None
        for p in self.copies:
            try:
                raw = p.read_bytes()
            except FileNotFoundError:
                continue
            try:
                doc = json.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError("not an object")
                if "lockedge-state" not in doc:
                    gen, data = 0, doc  # written by a version without copies
                else:
                    gen, data = int(doc["gen"]), doc["data"]
                    if doc["crc"] != self._crc(data) or not isinstance(data, dict):
                        raise ValueError("CRC mismatch")
            except (ValueError, KeyError, TypeError):
                self.damaged += 1
                continue
            if best is None or gen > best[0]:
                best = (gen, data)
        if best is None:
            return None
        self._gen = best[0]
        return best[1]

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._cache is None:
            return None
        # TinyDB mutates what it reads before writing it back; hand out a
        # copy so a failed write cannot leave the cache ahead of the disk.
        return copy.deepcopy(self._cache)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        gen = self._gen + 1
        doc = {"lockedge-state": 1, "gen": gen, "crc": self._crc(data), "data": data}
        atomic_write(self.copies[(gen + 1) % 2], json.dumps(doc, sort_keys=True).encode(), self.mode)
        self._gen = gen
        self._cache = copy.deepcopy(data)

    def close(self) -> None:
        pass  # every write is already on disk


def open_db(path: str | os.PathLike[str]) -> TinyDB:
    return TinyDB(path, storage=AtomicJSONStorage)
