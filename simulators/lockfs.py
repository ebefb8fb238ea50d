# Simulated lock flash with a power-cut injector (MicroPython subset: the
# journal's fault tests run on both interpreters).
#
# `arm(n)` lets the next n bytes of writes through, then tears the write in
# progress at that byte and raises PowerCut: what reached "flash" is exactly
# a prefix of what the firmware meant to write, as after a real power loss.

from firmware.fsio import FlashFS


# A BaseException, as a power loss is nothing the firmware can catch: its
# fault handler (`except Exception`) must not turn one into a fault count.
class PowerCut(BaseException):
    pass


class PowerCutFS(FlashFS):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.budget = -1  # bytes until the cut; -1 = no cut armed
        self.written = 0

    def arm(self, budget: int) -> None:
        self.budget = budget

    def _take(self, data: bytes) -> bytes:
        if self.budget < 0:
            self.written += len(data)
            return data
        if len(data) <= self.budget:
            self.budget -= len(data)
            self.written += len(data)
            return data
        part = data[: self.budget]
        self.budget = -1
        self.written += len(part)
        raise PowerCut(part)

    def append(self, name: str, data: bytes) -> None:
        try:
            data = self._take(data)
        except PowerCut as e:
            FlashFS.append(self, name, e.args[0])
            raise
        FlashFS.append(self, name, data)

    def write_atomic(self, name: str, data: bytes) -> None:
        try:
            data = self._take(data)
        except PowerCut as e:
            # Torn while writing the temporary file: the rename never happens.
            with open(self._p(name + ".tmp"), "wb") as f:
                f.write(e.args[0])
            raise
        FlashFS.write_atomic(self, name, data)
