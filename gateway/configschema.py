"""The schema of gateway.toml, checked whole before anything starts.

Every section and key is declared here with its type and range; an unknown
section or key (a typo), a wrong type or a value out of range is refused,
and every problem is reported at once as `file: section.key: what is wrong`
(`lockedge gateway check-config`, and the daemon at start). pydantic does
the checking (strict: no "5" for 5, no true for 1); gateway/config.py turns
the checked model into the daemon's settings and paths.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEVICE_ID = r"^[A-Za-z0-9._-]{1,64}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GatewaySection(_Section):
    id: str = Field(pattern=DEVICE_ID)
    site: str = Field(pattern=DEVICE_ID)
    state_dir: str = Field(default="state", min_length=1)
    root_key_file: str = Field(min_length=1)
    locks_file: str = Field(min_length=1)
    status_interval_s: float = Field(default=10.0, gt=0, le=3600)
    time_sync_interval_s: float = Field(default=300.0, ge=10, le=86400)
    wrong_codes_alarm_per_hour: int = Field(default=30, ge=1, le=1_000_000)


class BrokerSection(_Section):
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = Field(default=None, min_length=1)
    password_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)


class LocalBrokerSection(BrokerSection):
    """[local]: the broker on the lock network. The keys past the link's own
    are the installer's (`lockedge lock add/remove`, `gateway init`)."""

    # The broker's password database, where `lock add` writes each lock's
    # login (mosquitto_passwd), and its pid file, signalled to reload it.
    passwd_file: str | None = None
    broker_pid_file: str | None = None
    # What a lock's lock.json names: the broker's address on the lock
    # network, and the lock network's Wi-Fi (its passphrase in a 0600 file).
    lock_server: str | None = Field(default=None, min_length=1, max_length=253)
    wifi_ssid: str | None = Field(default=None, min_length=1, max_length=32)
    wifi_password_file: str | None = None


class MetricsSection(_Section):
    """[metrics]: Prometheus text format (docs/gateway.md), in a file for
    node_exporter's textfile collector, on a loopback port, or both."""

    textfile: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # served on 127.0.0.1 only


class RelaySection(_Section):
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    window: int = Field(default=64, ge=1, le=10_000)


class UploadSection(_Section):
    batch: int = Field(default=200, ge=1, le=500)  # a record batch holds at most 500 (docs/protocol.md)
    window: int = Field(default=2000, ge=1, le=1_000_000)


class PinsSection(_Section):
    """BCM GPIO numbers on the Pi's header (0..27). A pin left out takes
    its default from gateway/gate.py's GatePins, the one place that has them."""

    strike: int | None = Field(default=None, ge=0, le=27)
    contact: int | None = Field(default=None, ge=0, le=27)
    exit_button: int | None = Field(default=None, ge=0, le=27)
    led: int | None = Field(default=None, ge=0, le=27)
    buzzer: int | None = Field(default=None, ge=0, le=27)


class GateSection(_Section):
    id: str = Field(pattern=DEVICE_ID)
    open_seconds: float = Field(default=5.0, gt=0, le=60)
    held_open_limit_s: float = Field(default=60.0, gt=0, le=3600)
    pins: PinsSection = PinsSection()
    groups_file: str | None = None
    keypad_group: str | None = Field(default=None, pattern=DEVICE_ID)


class StickSection(_Section):
    vendor: str = Field(pattern=r"^[0-9A-Fa-f]{4}$")
    product: str = Field(pattern=r"^[0-9A-Fa-f]{4}$")
    serial: str = Field(min_length=1, max_length=126)


class BiometricsSection(_Section):
    bundle_key_file: str = Field(min_length=1)
    store_key_file: str = Field(default="biometrics.key", min_length=1)
    signing_key_file: str = Field(default="receipt-signing.key", min_length=1)
    issuers: list[str] = Field(default_factory=list)  # office Ed25519 public keys
    sticks: list[StickSection] = Field(default_factory=list)
    poll_s: float = Field(default=2.0, gt=0, le=60)
    # The gate's target false-positive identification rate per attempt
    # (docs/matcher.md): the match threshold follows the gallery's size.
    fpir: float = Field(default=1e-4, ge=1e-9, le=1e-2)

    @field_validator("issuers")
    @classmethod
    def _hex_keys(cls, v: list[str]) -> list[str]:
        for i, h in enumerate(v):
            if len(h) != 64 or any(c not in "0123456789abcdefABCDEF" for c in h):
                raise ValueError(f"entry {i}: an office public key is 64 hex digits")
        return v


class GatewayFile(_Section):
    gateway: GatewaySection
    cloud: BrokerSection = BrokerSection()
    local: LocalBrokerSection = LocalBrokerSection()
    relay: RelaySection = RelaySection()
    upload: UploadSection = UploadSection()
    gate: GateSection | None = None
    biometrics: BiometricsSection | None = None
    metrics: MetricsSection | None = None


def check(data: dict[str, object], path: Path) -> tuple[GatewayFile | None, list[str]]:
    """The checked file, or every problem as `file: section.key: what is wrong`."""
    try:
        return GatewayFile.model_validate(data), []
    except ValidationError as e:
        out = []
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown setting (a typo?)"
            elif err["type"] == "missing":
                msg = "required, missing"
            out.append(f"{path}: {where}: {msg}")
        return None, out
