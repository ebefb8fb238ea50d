"""Gateway configuration (TOML). Secrets live in files named by the config,
never in the config itself, and those files must not be readable by others."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gateway import configschema


class ConfigError(ValueError):
    pass


@dataclass
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keepalive: int = 30

    def check_secrets(self) -> None:
        """Refuse to start with a private key or password others can read."""
        for p in (self.password_file, self.tls_key):
            if p is not None:
                read_secret(p)

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return read_secret(self.password_file).decode().strip()


@dataclass
class LocalSite:
    """The installer's settings of [local] (gateway/provision.py)."""

    passwd_file: Path | None = None
    broker_pid_file: Path | None = None
    lock_server: str | None = None
    wifi_ssid: str | None = None
    wifi_password_file: Path | None = None


@dataclass
class MetricsConfig:
    textfile: Path | None = None
    port: int | None = None


@dataclass
class GateConfig:
    id: str
    open_seconds: float = 5.0
    held_open_limit: float = 60.0
    pins: dict[str, int] = field(default_factory=dict)
    groups_file: Path | None = None  # {group name: hex group code key}
    keypad_group: str | None = None

    def group_keys(self) -> dict[str, bytes]:
        if self.groups_file is None:
            return {}
        return {str(k): bytes.fromhex(v) for k, v in json.loads(read_secret(self.groups_file)).items()}


@dataclass
class GatewayConfig:
    id: str
    site: str
    state_dir: Path
    root_key_file: Path
    locks_file: Path  # {lock id: hex of the lock's local key}
    cloud: BrokerConfig = field(default_factory=BrokerConfig)
    local: BrokerConfig = field(default_factory=BrokerConfig)
    command_timeout: float = 10.0
    command_window: int = 64
    upload_batch: int = 200
    upload_window: int = 2000
    status_interval: float = 10.0
    time_sync_interval: float = 300.0
    # Wrong codes across all of this gateway's locks and its gate in one
    # hour above which a durable "site-brute-force" alarm is raised: each
    # lock throttles alone, so a site of N locks falls N times faster.
    wrong_codes_alarm_per_hour: int = 30
    gate: GateConfig | None = None
    biometrics: BiometricsConfig | None = None
    site_local: LocalSite = field(default_factory=LocalSite)
    metrics: MetricsConfig | None = None
    path: Path | None = None  # the file it was read from (its digest goes in the `info` message)

    def root_key(self) -> bytes:
        key = read_secret(self.root_key_file)
        if len(key) != 32:
            raise ConfigError(f"{self.root_key_file}: a root key is 32 bytes")
        return key

    def lock_keys(self) -> dict[str, bytes]:
        data = read_secret(self.locks_file)  # its own error (mode 0600) is not swallowed below
        try:
            raw = json.loads(data)
            keys = {str(k): bytes.fromhex(v) for k, v in raw.items()}
        except (AttributeError, TypeError, ValueError):  # not JSON, not a map, not hex
            raise ConfigError(f"{self.locks_file}: expected JSON {{lock id: hex key}}") from None
        bad = [k for k, v in keys.items() if len(v) != 32]
        if bad:
            raise ConfigError(f"{self.locks_file}: {bad[0][:40]!r}: a lock key is 32 bytes (64 hex digits)")
        return keys


def read_secret(path: Path) -> bytes:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds a secret and must not be accessible to group or others (chmod 600)")
    return path.read_bytes()


def write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _broker(b: configschema.BrokerSection, base: Path) -> BrokerConfig:
    def p(v: str | None) -> Path | None:
        return (base / v) if v else None

    return BrokerConfig(b.host, b.port, b.username, p(b.password_file), p(b.tls_ca), p(b.tls_cert),
                        p(b.tls_key), b.keepalive)  # fmt: skip


@dataclass
class BiometricsConfig:
    """[biometrics]: bundle import from provisioning sticks (docs/bundle.md)."""

    bundle_key_file: Path  # this gateway's HPKE private key (0600)
    store_key_file: Path  # at-rest key of biometrics.enc (0600, created if missing)
    signing_key_file: Path  # Ed25519 key for import receipts (0600, created if missing)
    issuers: list[str]  # trusted office Ed25519 public keys, hex
    sticks: list[tuple[int, int, str]]  # allow-list: (vendor, product, serial)
    poll_s: float = 2.0
    fpir: float = 1e-4  # the gate's false-positive identification rate per attempt


def load(path: Path) -> GatewayConfig:
    """Read and check gateway.toml whole (gateway/configschema.py): every
    problem is reported at once, one `file: section.key: what` per line."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    f, problems = configschema.check(data, path)
    if f is None:
        raise ConfigError("\n".join(problems))
    base = path.parent
    g = f.gateway
    gate = None
    if f.gate is not None:
        gs = f.gate
        gate = GateConfig(gs.id, gs.open_seconds, gs.held_open_limit_s, gs.pins.model_dump(exclude_none=True),
                          (base / gs.groups_file) if gs.groups_file else None, gs.keypad_group)  # fmt: skip
    bio = None
    if f.biometrics is not None:
        b = f.biometrics
        bio = BiometricsConfig(
            bundle_key_file=base / b.bundle_key_file,
            store_key_file=base / b.store_key_file,
            signing_key_file=base / b.signing_key_file,
            issuers=list(b.issuers),
            sticks=[(int(st.vendor, 16), int(st.product, 16), st.serial) for st in b.sticks],
            poll_s=b.poll_s,
            fpir=b.fpir,
        )
    lo = f.local

    def rel(v: str | None) -> Path | None:
        return (base / v) if v else None

    metrics = None if f.metrics is None else MetricsConfig(rel(f.metrics.textfile), f.metrics.port)
    return GatewayConfig(
        path=path,
        site_local=LocalSite(
            rel(lo.passwd_file),
            rel(lo.broker_pid_file),
            lo.lock_server,
            lo.wifi_ssid,
            rel(lo.wifi_password_file),
        ),
        metrics=metrics,
        id=g.id,
        site=g.site,
        state_dir=base / g.state_dir,
        root_key_file=base / g.root_key_file,
        locks_file=base / g.locks_file,
        cloud=_broker(f.cloud, base),
        local=_broker(f.local, base),
        command_timeout=f.relay.timeout_s,
        command_window=f.relay.window,
        upload_batch=f.upload.batch,
        upload_window=f.upload.window,
        status_interval=g.status_interval_s,
        time_sync_interval=g.time_sync_interval_s,
        wrong_codes_alarm_per_hour=g.wrong_codes_alarm_per_hour,
        gate=gate,
        biometrics=bio,
    )
