"""One simulated lock: the unchanged firmware (firmware/main.py) on the
simulated HAL, in a thread with its own asyncio loop, with an emulated
fingerprint module on a virtual serial line. Scriptable: type a code,
present a finger, press the exit button, open the door, cut the power,
boot again. The module keeps its library across the lock's power cuts, as
the real one does in its own flash.

With `torn_writes=True` the flash is a PowerCutFS: `cut_power_during_write`
arms it so that a later write stops part-way and the board dies there, as
it would if the supply failed while the flash was being written."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from firmware.fpmodule import FingerprintModule
from firmware.fsio import FlashFS
from firmware.main import LockApp
from simulators.fpemu import FingerprintEmulator, VirtualUART
from simulators.lockfs import PowerCut, PowerCutFS
from simulators.lockhal import SimHAL


def _module_match(probe: bytes, template: bytes) -> int | None:
    """The emulated module's matcher: the project's, over ISO 19794-2
    records; the module reports scores 0..1000 as real ones report 0..N."""
    from gateway.biometrics import gallery, iso19794, mcc

    try:
        s = mcc.score(gallery.features_of(probe), gallery.features_of(template))
    except iso19794.TemplateError:
        return None  # not a template this module understands
    return int(s * 1000) if s >= gallery.THRESHOLD_FMR_1E4 else None


class SimLock:
    def __init__(self, lock_id: str, root_key: bytes, flash_dir: Path, gateway_id: str, port: int,
                 password: str, hal: SimHAL | None = None, open_s: float = 1.0,
                 torn_writes: bool = False) -> None:  # fmt: skip
        self.id = lock_id
        self.root = root_key
        self.flash = flash_dir
        self.gateway_id = gateway_id
        self.port = port
        self.password = password
        self.hal = hal or SimHAL()
        self.open_s = open_s
        self.module = FingerprintEmulator(match=_module_match)
        self.app: LockApp | None = None
        self.thread: threading.Thread | None = None
        self.torn_writes = torn_writes
        self.fs: FlashFS | None = None
        self.died_in_write = 0  # power cuts that tore a write

    def boot(self) -> SimLock:
        self.flash.mkdir(parents=True, exist_ok=True)
        fs = PowerCutFS(str(self.flash)) if self.torn_writes else FlashFS(str(self.flash))
        self.fs = fs
        fp = FingerprintModule(VirtualUART(self.module), lambda: int(time.monotonic() * 1000))
        self.app = LockApp(self.hal, fs, self.id, self.root, self.gateway_id, "127.0.0.1", self.port,
                           self.password, open_s=self.open_s, fp=fp)  # fmt: skip
        self.thread = threading.Thread(target=self._run, args=(self.app,), daemon=True)
        self.thread.start()
        return self

    def _run(self, app: LockApp) -> None:
        try:
            asyncio.run(app.run())
        except PowerCut:
            self.died_in_write += 1
            self.hal.strike(False)  # no power: a fail-secure strike locks

    def cut_power_during_write(self, after_bytes: int) -> None:
        """The supply fails `after_bytes` into the lock's next flash writes."""
        if not isinstance(self.fs, PowerCutFS):
            raise RuntimeError("this lock was not built with torn_writes=True")
        self.fs.arm(after_bytes)

    def dead(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def power_cut(self) -> None:
        """Stop at once: no goodbye, no flush beyond what was already synced."""
        if self.app is not None:
            self.app.running = False
            if self.thread:
                self.thread.join(5)
            for c in self.hal.clients:
                c.c.loop_stop()
                c.c.socket() and c.c.socket().close()  # type: ignore[union-attr]
            self.hal.clients.clear()
        self.app = None

    def type_code(self, digits: str) -> None:
        self.hal.type(digits + "#")

    def present_finger(self, template: bytes | None) -> None:
        """Put a finger (as the template its image would give) on the sensor."""
        self.module.finger = template
        self.hal.touch_finger()
