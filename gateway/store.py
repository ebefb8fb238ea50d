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
    def __init__(self, path: str | os.PathLike[str], mode: int = FILE_MODE) -> None:
        super().__init__()
        self.path = Path(path)
        self.mode = mode
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, Any] | None = None
        # A temp file left by a crash before its rename holds nothing
        # committed; remove it.
        for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
            stale.unlink(missing_ok=True)

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._cache is None:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return None
            if not raw:
                return None
            self._cache = json.loads(raw)
        # TinyDB mutates what it reads before writing it back; hand out a
        # copy so a failed write cannot leave the cache ahead of the disk.
        return copy.deepcopy(self._cache)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        atomic_write(self.path, json.dumps(data, sort_keys=True).encode(), self.mode)
        self._cache = copy.deepcopy(data)

    def close(self) -> None:
        self._cache = None


def open_db(path: str | os.PathLike[str]) -> TinyDB:
    return TinyDB(path, storage=AtomicJSONStorage)
