"""The cloud link over TLS with a client certificate, against a real broker."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import config
from gateway.config import write_secret
from simulators.broker import Mosquitto, local_mosquitto
from tests.gwfixtures import Site, wait_for


def _cert(
    subject: str, issuer_key: ec.EllipticCurvePrivateKey | None, issuer: x509.Name | None, ca: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
    return key, b.sign(issuer_key or key, hashes.SHA256())


def _write(d: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    kp, cp = d / f"{name}.key", d / f"{name}.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret(kp, pem)
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return kp, cp


# MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id "nocert".
_CONNECT = bytes.fromhex("101200044d5154540402003c00066e6f63657274")


def _raw_mqtt_connect(port: int, ca: Path, cert: tuple[Path, Path] | None) -> bytes | str:
    """TLS to the broker, an MQTT CONNECT, the first bytes back; or the TLS
    error the server's alert raised, as text."""
    import socket

    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False  # the server certificate is checked against the CA; its name is 127.0.0.1
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(_CONNECT)
                return s.recv(4)
        except ssl.SSLError as e:
            return f"ssl: {e.reason or e}"


def test_gateway_connects_with_client_certificate_and_relays(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    ca_key, ca = _cert("lockedge test CA", None, None, True)
    srv_key, srv = _cert("127.0.0.1", ca_key, ca.subject, False)
    gw_key, gw_cert = _cert("gw-1", ca_key, ca.subject, False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    skp, scp = _write(tmp_path, "server", srv_key, srv)
    _write(tmp_path, "gw", gw_key, gw_cert)

    s = Site(tmp_path, 1)
    s.cloud_broker = Mosquitto(
        "cloud",
        workdir=tmp_path / "cloud-broker",
        tls={"cafile": tmp_path / "ca.pem", "certfile": scp, "keyfile": skp},
    ).start()

    s.local_broker = local_mosquitto(tmp_path / "lb", s.passwords).start()
    try:
        tls_port = s.cloud_broker.tls_port
        assert tls_port is not None
        s.cloud_settings = f'port = {tls_port}\ntls_ca = "ca.pem"\ntls_cert = "gw.pem"\ntls_key = "gw.key"\n'
        s.start_cloud()  # the cloud service uses the plain listener
        gw = s.start_gateway()
        assert gw.cfg.cloud.port == tls_port and gw.cfg.cloud.tls_cert is not None
        wait_for(lambda: gw.cloud.connected.is_set(), what="TLS uplink")
        sock = gw.cloud.client.socket()
        assert isinstance(sock, ssl.SSLSocket) and sock.getpeername()[1] == tls_port
        cfg_path = tmp_path / "gateway.toml"
        s.start_locks()
        assert s.cloud
        s.cloud.send_command("lock-0000", "tls-1", int(time.time()) + 30)
        wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("tls-1")), what="ack over TLS")

        # Without a client certificate the TLS listener refuses: the refusal
        # itself is seen (the server's certificate alert), and the same MQTT
        # CONNECT with the certificate gets its CONNACK, so it is the missing
        # certificate that was refused, not a slow or broken connection.
        ca_file = tmp_path / "ca.pem"
        with_cert = _raw_mqtt_connect(tls_port, ca_file, (tmp_path / "gw.pem", tmp_path / "gw.key"))
        assert with_cert[:2] == b"\x20\x02" and with_cert[3:4] == b"\x00", with_cert  # CONNACK, accepted
        without = _raw_mqtt_connect(tls_port, ca_file, None)
        assert isinstance(without, str), without  # a TLS error, never a CONNACK
        # The server's alert races its close: the client sees either the
        # alert or an EOF; the broker logs the reason in either case.
        log = s.cloud_broker.dir / "mosquitto.log"
        wait_for(
            lambda: (
                "CERTIFICATE_REQUIRED" in without.upper()
                or "peer did not return a certificate" in log.read_text()
            ),
            timeout=10,
            what="the broker's refusal of the missing client certificate",
        )

        # A private key readable by others is refused at start-up.
        (tmp_path / "gw.key").chmod(0o644)
        with pytest.raises(config.ConfigError, match="chmod 600"):
            config.load(cfg_path).cloud.check_secrets()
    finally:
        s.close()
