"""Structured logs: one JSON object per line, for journald and log shippers.

Under systemd (JOURNAL_STREAM names our stderr) each line starts with its
syslog priority as sd-daemon(3) defines it ("<4>" for a warning): journald
strips the prefix and files the line at that priority, so `journalctl -p
warning` shows the alarms and not a clean stop. Elsewhere lines are bare.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# sd-daemon.h: SD_CRIT <2>, SD_ERR <3>, SD_WARNING <4>, SD_INFO <6>, SD_DEBUG <7>.
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JsonFormatter(logging.Formatter):
    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = self._json(record)
        return f"<{priority(record.levelno)}>{line}" if self.journal else line

    def _json(self, record: logging.LogRecord) -> str:
        out = {
            "t": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (as logging's last
    resort does), not the stream it was made with: a test harness that
    swaps and closes stderr leaves no handler on a closed file."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup(level: int = logging.INFO, env: dict[str, str] | None = None) -> None:
    import os

    h = _Stderr()
    h.setFormatter(JsonFormatter(journal=bool((os.environ if env is None else env).get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(level)
