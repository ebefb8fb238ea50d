"""One writer per state folder.

Two processes writing one outbox or one store lose records (one deletes the
segment the other still appends to). Every process that writes gateway
state holds an exclusive `flock` on a lock file in the folder for as long
as it runs; a second one is refused with the holder's pid and command line.
The kernel drops the lock when the holder dies, kill -9 included, so a
crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path


class StateLocked(Exception):
    """Another live process holds the folder."""

    def __init__(self, path: Path, pid: int | None, holder: str) -> None:
        self.path = path
        self.pid = pid
        self.holder = holder
        who = f"process {pid} ({holder})" if pid else "another process"
        super().__init__(f"{path.parent} is in use by {who}")


def holder_of(path: Path) -> tuple[int | None, str]:
    """(pid, command line) the current holder wrote into the lock file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None, ""
    first, _, rest = text.partition("\n")
    try:
        return int(first), rest.strip()[:200]
    except ValueError:
        return None, ""


class StateLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateLocked(path, *holder_of(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{' '.join(sys.argv)[:200]}\n".encode())
        self._fd: int | None = fd

    @staticmethod
    def held(path: Path) -> bool:
        """Whether a live process holds the lock (without taking it for long)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
