"""One MQTT connection (paho-mqtt 2.x, callback API version 2).

MQTT v5 first, falling back to 3.1.1 if the broker refuses the protocol
version; TLS with a CA file and client certificate, or username/password;
a persistent session (fixed client id, clean start off, session expiry) so
QoS 1 messages wait at the broker while the link is down; a last will and a
retained "online" message. paho runs callbacks in its network thread, so
incoming messages are only put on a queue for the daemon's own thread.

Acks are manual: a QoS 1 message is acknowledged to the broker only when the
daemon has finished with it (a record batch: after its fsync), so a gateway
that dies mid-way gets it redelivered, in order, after it restarts.
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import ssl
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import BrokerConfig

log = logging.getLogger("lockedge.mqtt")

SESSION_EXPIRY = 7 * 24 * 3600
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 3.0
_UNSUPPORTED_PROTOCOL = 0x84  # MQTT v5 CONNACK reason; 3.1.1 brokers answer rc 1


@dataclass(frozen=True)
class Inbound:
    link: str
    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0
    response_topic: str | None = None  # MQTT v5 request/response
    correlation: bytes | None = None


class MqttLink:
    def __init__(
        self,
        name: str,
        client_id: str,
        broker: BrokerConfig,
        inbox: queue.Queue[Inbound | tuple[str, str]],
        subscriptions: list[str],
        will: tuple[str, bytes] | None = None,
        online: tuple[str, bytes] | None = None,
    ) -> None:
        self.name = name
        self.client_id = client_id
        self.broker = broker
        self.inbox = inbox
        self.subscriptions = subscriptions
        self.will = will
        self.online = online
        self.connected = threading.Event()
        self._stopping = False
        self.protocol = mqtt.MQTTv5
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        v5 = self.protocol == mqtt.MQTTv5
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self.protocol,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        c.max_inflight_messages_set(100)
        # A short, jittered cap: records and commands wait while the link is
        # down, so it must come back within seconds of the broker (a 30 s cap
        # kept uploads stopped for tens of seconds after a 20 s outage), and
        # one attempt every ~3 s is no load on a broker that is down. The
        # jitter keeps a site's gateways from reconnecting in step.
        c.reconnect_delay_set(
            min_delay=RECONNECT_MIN_S * random.uniform(0.5, 1.0),  # type: ignore[arg-type]  # noqa: S311
            max_delay=RECONNECT_MAX_S * random.uniform(0.75, 1.0),  # type: ignore[arg-type]  # noqa: S311
        )
        b = self.broker
        if b.username:
            c.username_pw_set(b.username, b.password())
        if b.tls_ca:
            c.tls_set(
                ca_certs=str(b.tls_ca),
                certfile=str(b.tls_cert) if b.tls_cert else None,
                keyfile=str(b.tls_key) if b.tls_key else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.will:
            c.will_set(self.will[0], self.will[1], qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def start(self) -> None:
        props = None
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY
        self.client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.broker.keepalive,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def _on_connect(
        self, c: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: Properties | None
    ) -> None:
        if rc.is_failure:
            if self.protocol == mqtt.MQTTv5 and rc.value in (_UNSUPPORTED_PROTOCOL, 1):
                log.warning("%s: broker refused MQTT v5; falling back to 3.1.1", self.name)
                self.protocol = mqtt.MQTTv311
                threading.Thread(target=self._restart, daemon=True).start()
                return
            log.error("%s: connection refused: %s", self.name, rc)
            return
        nodelay(c)
        for t in self.subscriptions:
            c.subscribe(t, qos=1)
        if self.online:
            c.publish(self.online[0], self.online[1], qos=1, retain=True)
        self.connected.set()
        log.info("%s: connected to %s:%d", self.name, self.broker.host, self.broker.port)
        self.inbox.put((self.name, "connected"))

    def _restart(self) -> None:
        self.client.loop_stop()
        self.client = self._make_client()
        self.start()

    def _on_disconnect(
        self, c: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: Properties | None
    ) -> None:
        if self.connected.is_set():
            if self._stopping:  # ours: a clean stop is no warning
                log.info("%s: disconnected (stopping)", self.name)
            else:
                log.warning("%s: disconnected (%s)", self.name, rc)
        self.connected.clear()
        self.inbox.put((self.name, "disconnected"))

    def _on_message(self, c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        rt = getattr(props, "ResponseTopic", None) if props is not None else None
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        self.inbox.put(Inbound(self.name, msg.topic, bytes(msg.payload), msg.mid, msg.qos, rt, corr))

    def ack(self, item: Inbound) -> None:
        if item.qos > 0:
            self.client.ack(item.mid, item.qos)

    def publish(
        self,
        topic: str,
        payload: bytes,
        retain: bool = False,
        correlation: bytes | None = None,
        qos: int = 1,
        expiry: int | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """expiry: seconds after which the broker must not deliver the message
        (MQTT v5 Message Expiry Interval; a queued command past its deadline is
        dropped by the broker, not delivered late). qos 0: never queued for an
        offline client (time, which is worthless late)."""
        props = None
        if self.protocol == mqtt.MQTTv5 and (correlation is not None or expiry is not None):
            props = Properties(PacketTypes.PUBLISH)
            if correlation is not None:
                props.CorrelationData = correlation
            if expiry is not None:
                props.MessageExpiryInterval = max(1, expiry)
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)

    def stop(self, farewell: tuple[str, bytes] | None = None) -> None:
        self._stopping = True
        if farewell and self.connected.is_set():
            try:
                self.client.publish(farewell[0], farewell[1], qos=1, retain=True).wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()


def nodelay(c: mqtt.Client) -> None:
    """Disable Nagle's algorithm: paho leaves it on, and with delayed ACKs a
    small command (a door unlock) can wait tens of milliseconds per hop."""
    sock = c.socket()
    if sock is not None and hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
