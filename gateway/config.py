"""Gateway configuration (TOML). Secrets live in files named by the config,
never in the config itself, and those files must not be readable by others."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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

    def root_key(self) -> bytes:
        key = read_secret(self.root_key_file)
        if len(key) != 32:
            raise ConfigError(f"{self.root_key_file}: a root key is 32 bytes")
        return key

    def lock_keys(self) -> dict[str, bytes]:
        try:
            raw = json.loads(read_secret(self.locks_file))
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


def _broker(d: dict[str, Any], base: Path) -> BrokerConfig:
    def p(key: str) -> Path | None:
        return (base / d[key]) if d.get(key) else None

    port = d.get("port", 1883)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"port: {str(port)[:20]!r} is not a TCP port (1..65535)")
    return BrokerConfig(
        host=str(d.get("host", "127.0.0.1")),
        port=port,
        username=d.get("username"),
        password_file=p("password_file"),
        tls_ca=p("tls_ca"),
        tls_cert=p("tls_cert"),
        tls_key=p("tls_key"),
        keepalive=int(d.get("keepalive", 30)),
    )


@dataclass
class BiometricsConfig:
    """[biometrics]: bundle import from provisioning sticks (docs/bundle.md)."""

    bundle_key_file: Path  # this gateway's HPKE private key (0600)
    store_key_file: Path  # at-rest key of biometrics.enc (0600, created if missing)
    signing_key_file: Path  # Ed25519 key for import receipts (0600, created if missing)
    issuers: list[str]  # trusted office Ed25519 public keys, hex
    sticks: list[tuple[int, int, str]]  # allow-list: (vendor, product, serial)
    poll_s: float = 2.0


def _biometrics(d: dict[str, Any], base: Path) -> BiometricsConfig:
    sticks = []
    for st in d.get("sticks", []):
        sticks.append((int(str(st["vendor"]), 16), int(str(st["product"]), 16), str(st["serial"])))
    return BiometricsConfig(
        bundle_key_file=base / d["bundle_key_file"],
        store_key_file=base / d.get("store_key_file", "biometrics.key"),
        signing_key_file=base / d.get("signing_key_file", "receipt-signing.key"),
        issuers=[str(x) for x in d.get("issuers", [])],
        sticks=sticks,
        poll_s=float(d.get("poll_s", 2.0)),
    )


def _gate(d: dict[str, Any], base: Path) -> GateConfig:
    return GateConfig(
        id=str(d["id"]),
        open_seconds=float(d.get("open_seconds", 5.0)),
        held_open_limit=float(d.get("held_open_limit_s", 60.0)),
        pins={str(k): int(v) for k, v in d.get("pins", {}).items()},
        groups_file=(base / d["groups_file"]) if d.get("groups_file") else None,
        keypad_group=d.get("keypad_group"),
    )


def load(path: Path) -> GatewayConfig:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    base = path.parent
    g = data.get("gateway", {})
    try:
        return GatewayConfig(
            id=str(g["id"]),
            site=str(g["site"]),
            state_dir=base / g.get("state_dir", "state"),
            root_key_file=base / g["root_key_file"],
            locks_file=base / g["locks_file"],
            cloud=_broker(data.get("cloud", {}), base),
            local=_broker(data.get("local", {}), base),
            command_timeout=float(data.get("relay", {}).get("timeout_s", 10.0)),
            command_window=int(data.get("relay", {}).get("window", 64)),
            upload_batch=int(data.get("upload", {}).get("batch", 200)),
            upload_window=int(data.get("upload", {}).get("window", 2000)),
            status_interval=float(g.get("status_interval_s", 10.0)),
            time_sync_interval=float(g.get("time_sync_interval_s", 300.0)),
            wrong_codes_alarm_per_hour=int(g.get("wrong_codes_alarm_per_hour", 30)),
            gate=_gate(data["gate"], base) if "gate" in data else None,
            biometrics=_biometrics(data["biometrics"], base) if "biometrics" in data else None,
        )
    except KeyError as e:
        raise ConfigError(f"{path}: missing required setting {e}") from None
    except (TypeError, ValueError) as e:  # a wrong type or value where a setting is read
        raise ConfigError(f"{path}: {str(e)[:200]}") from None
