"""A real Mosquitto broker on a free loopback port, for tests, benchmarks and
the site simulator. Binds only to 127.0.0.1; generated config, optional
password file and ACL; can be stopped, killed and restarted on the same port
(with its persistence, so queued QoS 1 messages survive a restart).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def mosquitto_binary() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("mosquitto is not installed: run `make setup` (it installs it from Debian's packages)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    def __init__(
        self,
        name: str = "broker",
        port: int | None = None,
        workdir: Path | None = None,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        max_queued: int = 200_000,
        tls: dict[str, Path] | None = None,
        extra: list[str] | None = None,
    ) -> None:
        """tls: {"cafile", "certfile", "keyfile"} adds a second listener on
        `tls_port` that requires a client certificate signed by the CA."""
        self.name = name
        self.port = port or free_port()
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix=f"lockedge-{name}-")
        self.dir = Path(workdir) if workdir else Path(self._tmp.name)  # type: ignore[union-attr]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.users = users
        self.acl = acl
        self.max_queued = max_queued
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.extra = list(extra or [])  # more config lines (the shipped local broker's hardening)
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            f"max_queued_messages {self.max_queued}",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
            "log_type error",
            "log_type warning",
            f"log_dest file {self.dir}/mosquitto.log",
        ]
        if self.tls:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.tls['cafile']}",
                f"certfile {self.tls['certfile']}",
                f"keyfile {self.tls['keyfile']}",
                "require_certificate true",
                "tls_version tlsv1.2",
            ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to "mosquitto" and cannot read our 0600 files
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            pw = self.dir / "passwd"
            fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                for u, p in self.users.items():
                    f.write(f"{u}:{p}\n")
            # Hash the plain-text file in place (mosquitto_passwd -U).
            subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        if self.acl is not None:
            acl = self.dir / "acl"
            acl.write_text(self.acl)
            acl.chmod(0o600)
            lines.append(f"acl_file {acl}")
        lines += [x for x in self.extra if x not in lines]
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto {self.name} exited: {err}{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto {self.name} did not listen on 127.0.0.1:{self.port}")

    def log_tail(self) -> str:
        p = self.dir / "mosquitto.log"
        return p.read_text()[-2000:] if p.exists() else ""

    def stop(self) -> None:
        """Graceful stop (SIGTERM): persistence is written."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def local_mosquitto(
    workdir: Path, users: dict[str, str], gateway_user: str = "gateway", port: int | None = None
) -> Mosquitto:
    """A site's local broker as shipped: per-lock passwords, the shipped ACL
    and the shipped template's hardening (client id bound to the username)."""
    from gateway.localbroker import acl_text, security_lines

    acl = acl_text(gateway_user)
    return Mosquitto("local", port=port, workdir=workdir, users=users, acl=acl, extra=security_lines())
