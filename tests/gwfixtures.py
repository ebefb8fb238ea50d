"""A whole gateway on one machine for integration tests: two real Mosquitto
brokers on free loopback ports (cloud: anonymous; local: per-lock passwords
and the shipped ACL), the gateway daemon, stub locks, the cloud receiver."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.daemon import Gateway
from protocol import keys
from simulators import site
from simulators.broker import Mosquitto, local_mosquitto
from simulators.cloud.receiver import CloudReceiver
from simulators.site import GW, SITE, write_gateway_config
from tests.lockstub import StubLock

__all__ = ["GW", "SITE", "Site", "cloud_outage", "gateway_process", "open_site", "wait_for"]


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    if not site.wait_for(cond, timeout):
        raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Site:
    dir: Path
    n_locks: int
    gw_root: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    lock_roots: dict[str, bytes] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    cloud_broker: Mosquitto | None = None
    local_broker: Mosquitto | None = None
    gateway: Gateway | None = None
    gw_thread: threading.Thread | None = None
    cloud: CloudReceiver | None = None
    locks: dict[str, StubLock] = field(default_factory=dict)
    cloud_settings: str = ""  # extra [cloud] lines (TLS); replaces the port when it sets one
    extra_config: str = ""  # more TOML sections (e.g. [gate])
    usb: Any = None  # a simulators.usbstick.SimBackend for [biometrics]
    local_epochs: dict[str, int] = field(default_factory=dict)  # the cloud's local-key epoch per lock

    def __post_init__(self) -> None:
        for i in range(self.n_locks):
            lid = f"lock-{i:04d}"
            self.lock_roots[lid] = secrets.token_bytes(32)
            self.passwords[lid] = secrets.token_hex(12)
        self.passwords["gateway"] = secrets.token_hex(12)

    def config_file(self) -> Path:
        """Write gateway.toml and its secret files; return the config path."""
        assert self.cloud_broker and self.local_broker
        local_keys = {
            lid: keys.derive(r, keys.LOCAL, lid, self.local_epochs.get(lid, 0))
            for lid, r in self.lock_roots.items()
        }
        return write_gateway_config(
            self.dir, self.gw_root, local_keys, self.passwords["gateway"], self.cloud_broker.port,
            self.local_broker.port, self.cloud_settings, self.extra_config,
        )  # fmt: skip

    def start_brokers(self) -> None:
        self.cloud_broker = Mosquitto("cloud", workdir=self.dir / "cloud-broker").start()
        self.local_broker = local_mosquitto(self.dir / "local-broker", self.passwords).start()

    def start_gateway(self) -> Gateway:
        from gateway import config

        mount_of = (lambda st: self.usb.mounts().get(st.serial)) if self.usb is not None else None
        self.gateway = Gateway(config.load(self.config_file()), usb_backend=self.usb, mount_of=mount_of)
        self.gw_thread = threading.Thread(target=self.gateway.run, daemon=True)
        self.gw_thread.start()
        wait_for(
            lambda: self.gateway is not None and self.gateway.local.connected.is_set(),
            what="gateway local link",
        )
        return self.gateway

    def stop_gateway(self) -> None:
        if self.gateway and self.gw_thread:
            self.gateway.stop()
            self.gw_thread.join(15)
        self.gateway = None

    def start_cloud(self) -> CloudReceiver:
        assert self.cloud_broker
        self.cloud = CloudReceiver(self.cloud_broker.port, SITE, {GW: self.gw_root}, self.lock_roots).start()
        return self.cloud

    def start_locks(self, auto_ack: bool = True) -> None:
        assert self.local_broker
        for lid, root in self.lock_roots.items():
            self.locks[lid] = StubLock(
                lid, root, self.local_broker.port, self.passwords[lid], auto_ack
            ).start()

    def close(self) -> None:
        for lk in self.locks.values():
            lk.stop()
        if self.cloud:
            self.cloud.stop()
        self.stop_gateway()
        for b in (self.cloud_broker, self.local_broker):
            if b:
                b.close()


def open_site(tmp: Path, n_locks: int = 2, auto_ack: bool = True) -> Site:
    os.chmod(tmp, 0o700)
    s = Site(tmp, n_locks)
    s.start_brokers()
    s.start_cloud()
    s.start_gateway()
    s.start_locks(auto_ack)
    wait_for(lambda: s.gateway is not None and s.gateway.cloud.connected.is_set(), what="gateway cloud link")
    return s


def gateway_process(cfg: Path) -> subprocess.Popen[bytes]:
    """`lockedge gateway run` as its own process (for kill -9 and two-daemon tests)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lockedge.cli", "gateway", "run", "--config", str(cfg)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cloud_outage(s: Site, per_lock: int, batch: int) -> None:
    """Stop the cloud broker, wait until the gateway sees it, and have every
    lock send `per_lock` records, all durable and acked while it is down."""
    assert s.cloud_broker and s.gateway
    gw = s.gateway
    s.cloud_broker.stop()
    wait_for(lambda: not gw.cloud.connected.is_set(), what="uplink down")
    for lk in s.locks.values():
        lk.produce(per_lock, batch=batch)
    wait_for(lambda: all(not lk.unacked for lk in s.locks.values()), timeout=60, what="locks acked")
