"""systemd's readiness and watchdog notifications (sd_notify(3)).

The unit (packaging/systemd/lockedge-gateway.service) is Type=notify with a
watchdog: systemd counts the gateway started only once it says READY=1
(state loaded, the outbox open, both broker links started), and restarts it
if its main loop stops saying WATCHDOG=1, so a wedged gateway does not sit
on a door's records. The protocol is one datagram of KEY=value lines to the
AF_UNIX socket named by $NOTIFY_SOCKET (a leading '@' is Linux's abstract
namespace); systemd documents it as a stable interface to implement without
libsystemd, and the Python binding (python-systemd) needs the C library and
its headers on the Pi, so these few lines are ours. Without $NOTIFY_SOCKET
(a shell, the tests, a container) every call does nothing. A notification
that cannot be sent is logged once and never stops the gateway.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("lockedge.sdnotify")


class Notifier:
    def __init__(
        self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self._addr = ("\0" + path[1:]) if path.startswith("@") else path
        self._clock = clock
        self._warned = False
        self._next = 0.0
        # WATCHDOG_PID names the process the watchdog is for; another process
        # (a child that inherited the environment) must not ping for it.
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.interval = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) > 0 and mine else None

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def send(self, *lines: str) -> bool:
        if not self._addr:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(lines).encode(), self._addr)
            return True
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("systemd notification not sent (%s): is NOTIFY_SOCKET stale?", e.strerror)
            return False

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))
        self._next = self._clock()  # the first watchdog ping goes with the next loop turn

    def watchdog(self) -> None:
        """Called from the main loop on every turn: pings at half the
        interval systemd set, and not at all when it set none."""
        if self.interval is None:
            return
        now = self._clock()
        if now >= self._next:
            self._next = now + self.interval
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")
