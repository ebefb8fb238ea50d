# The flash file system as the journal sees it: a directory of files.
# On the lock this is the board's littlefs/FAT flash; in the simulator, a
# host directory, optionally wrapped by a power-cut injector that tears a
# write at a chosen byte (simulators/lockfs.py).

import os


class FlashFS:
    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        try:
            os.mkdir(self.root)
        except OSError:
            pass

    def _p(self, name: str) -> str:
        return self.root + "/" + name

    def listdir(self) -> list:
        return os.listdir(self.root)

    def read(self, name: str) -> bytes:
        try:
            with open(self._p(name), "rb") as f:
                return f.read()
        except OSError:
            return b""

    def append(self, name: str, data: bytes) -> None:
        with open(self._p(name), "ab") as f:
            f.write(data)
            f.flush()
        self.sync()

    def write_atomic(self, name: str, data: bytes) -> None:
        tmp = self._p(name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
        self.sync()
        os.rename(tmp, self._p(name))
        self.sync()

    def truncate(self, name: str, size: int) -> None:
        data = self.read(name)[:size]
        self.write_atomic(name, data)

    def remove(self, name: str) -> None:
        try:
            os.remove(self._p(name))
        except OSError:
            pass

    def sync(self) -> None:
        # The fsync-equivalent: ESP32 MicroPython flushes the block device
        # with os.sync(); ports without it write through on close.
        s = getattr(os, "sync", None)
        if s is not None:
            s()
