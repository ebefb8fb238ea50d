# Small state on the lock's flash that must survive damage: two copies
# ("<name>" and "<name>.b"), each one CRC frame holding [generation, value],
# written alternately (each with the FS's atomic write). A load takes the
# newest copy that checks, so a torn write, a flipped bit or an erased copy
# costs at most the last save, never the boot. MicroPython and CPython.
#
#   copy = one frame (firmware/frame.py) whose payload is CBOR [generation, value]

from firmware.frame import frame, unframe
from protocol import cbor


class StateFile:
    def __init__(self, fs, name: str) -> None:  # type: ignore[no-untyped-def]
        self.fs = fs
        self.names = (name, name + ".b")
        self.gen = 0
        self.unreadable = 0  # copies that existed but did not check at the last load

    def load(self, depth: int = 8):  # type: ignore[no-untyped-def]
        """The newest value that checks, or None (nothing saved, or every
        copy damaged: then `unreadable` says how many were)."""
        best = None
        best_gen = -1
        self.unreadable = 0
        for name in self.names:
            data = self.fs.read(name)
            if not data:
                continue
            payload = unframe(data)
            v = None
            if payload is not None:
                try:
                    v = cbor.decode(payload, depth + 1)
                except Exception:  # checks but does not decode: as damaged
                    v = None
            if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], int)):
                self.unreadable += 1
                continue
            if v[0] > best_gen:
                best_gen = v[0]
                best = v[1]
        if best_gen >= 0:
            self.gen = best_gen
        return best

    def save(self, value) -> None:  # type: ignore[no-untyped-def]
        self.gen += 1
        self.fs.write_atomic(self.names[self.gen % 2], frame(cbor.encode([self.gen, value])))
