"""The running daemon's local control socket: how a CLI acts on a gateway
that is running instead of writing its state behind its back.

A Unix stream socket `control.sock` in the state folder (mode 0600, in a
0700 folder: only the gateway's own user reaches it). One request per
connection, one JSON line each way:

    {"op": "status"}                 -> {"ok": true, "status": {...}}
    {"op": "import", "dir": "/media/stick"}
                                     -> {"ok": true, "reports": [...]}
    anything else                    -> {"ok": false, "error": "..."}

The server thread only parses and queues; the daemon's own thread, which
owns all state, answers (the same rule as paho's callbacks).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

log = logging.getLogger("lockedge.control")

SOCKET = "control.sock"
MAX_REQUEST = 64 * 1024
ANSWER_TIMEOUT = 600.0


class ControlUnavailable(Exception):
    """No daemon answers on this state folder."""


def _path(state_dir: Path) -> tuple[str, int | None]:
    """A path for bind/connect; long folders (sun_path holds 108 bytes) are
    reached through /proc/self/fd of an open directory descriptor."""
    full = str(state_dir / SOCKET)
    if len(full.encode()) < 100:
        return full, None
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{SOCKET}", fd


class ControlServer:
    def __init__(self, state_dir: Path, submit: Callable[[dict[str, Any], Future[dict[str, Any]]], None]):
        self.state_dir = state_dir
        self.submit = submit
        path, fd = _path(state_dir)
        try:
            try:
                os.unlink(state_dir / SOCKET)  # left by a daemon that died: we hold the state lock
            except FileNotFoundError:
                pass
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                self.sock.bind(path)
            finally:
                os.umask(old)
        finally:
            if fd is not None:
                os.close(fd)
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                buf = b""
                while b"\n" not in buf and len(buf) <= MAX_REQUEST:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                req = json.loads(buf.split(b"\n", 1)[0])
                if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                    raise ValueError("a request is a JSON object with an op")
            except (OSError, ValueError) as e:
                self._send(conn, {"ok": False, "error": f"bad request: {e}"})
                return
            fut: Future[dict[str, Any]] = Future()
            self.submit(req, fut)
            try:
                answer = fut.result(timeout=ANSWER_TIMEOUT)
            except FutureTimeout:
                answer = {"ok": False, "error": "the daemon did not answer in time"}
            except Exception as e:  # the daemon's handler failed: say so, keep serving
                answer = {"ok": False, "error": str(e)}
            self._send(conn, answer)

    @staticmethod
    def _send(conn: socket.socket, answer: dict[str, Any]) -> None:
        try:
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass  # the client went away

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)
        try:
            os.unlink(self.state_dir / SOCKET)
        except OSError:
            pass


def request(state_dir: Path, req: dict[str, Any], timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
    """Ask the daemon running on `state_dir`; ControlUnavailable if none answers."""
    if not (state_dir / SOCKET).exists():
        raise ControlUnavailable("no control socket")
    path, fd = _path(state_dir)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError as e:
            raise ControlUnavailable(e.strerror or str(e)) from None
        finally:
            if fd is not None:
                os.close(fd)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except TimeoutError:
        raise ControlUnavailable("the daemon did not answer in time") from None
    finally:
        s.close()
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ControlUnavailable("the daemon's answer was cut short") from None
    if not isinstance(answer, dict):
        raise ControlUnavailable("the daemon's answer is not an object")
    return answer
