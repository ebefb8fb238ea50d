"""The gateway's metrics in Prometheus's text format ([metrics] in
gateway.toml): written for node_exporter's textfile collector, served on a
loopback port, or both.

Rule: a view of the daemon's status, never a second source of truth. Every
figure comes from the status dict the daemon already publishes (so the
metrics, `gateway status` and the cloud's status message cannot disagree),
through a custom collector, as prometheus_client's docs advise for values
kept elsewhere: a lock removed from the site leaves no stale series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.config import MetricsConfig


class StatusCollector(Collector):
    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None

    def collect(self) -> Iterator[Metric]:
        st = self.status
        if st is None:
            return
        g = GaugeMetricFamily(
            "lockedge_link_up", "1 when the gateway's link to the broker is up", labels=["link"]
        )
        g.add_metric(["cloud"], 1 if st["cloud"] else 0)
        g.add_metric(["local"], 1 if st["local"] else 0)
        yield g
        yield GaugeMetricFamily(
            "lockedge_outbox_backlog_records",
            "pass records the cloud has not acknowledged",
            value=st["backlog"],
        )
        yield GaugeMetricFamily(
            "lockedge_outbox_oldest_unacked_age_seconds",
            "age of the oldest record the cloud has not acknowledged (0: none)",
            value=st["oldest_unacked_age_s"] or 0,
        )
        yield GaugeMetricFamily(
            "lockedge_uptime_seconds", "seconds since the gateway started", value=st["uptime_s"]
        )
        c = CounterMetricFamily("lockedge_records", "pass records since start", labels=["state"])
        c.add_metric(["received"], st["records_in"])
        c.add_metric(["acked"], st["records_acked"])
        yield c
        g = GaugeMetricFamily(
            "lockedge_lock_available", "1 while the lock says it is online", labels=["lock"]
        )
        for lock, state in sorted(st["locks"].items()):
            g.add_metric([lock], 1 if state == "online" else 0)
        yield g
        g = GaugeMetricFamily(
            "lockedge_lock_clock_drift_seconds", "the lock's clock minus the gateway's", labels=["lock"]
        )
        for lock, d in sorted(st["clock_drift_s"].items()):
            g.add_metric([lock], d)
        yield g
        c = CounterMetricFamily(
            "lockedge_refused_messages", "messages refused since start", labels=["reason"]
        )
        for reason, n in sorted(st["refused"].items()):
            c.add_metric([reason], n)
        yield c
        c = CounterMetricFamily(
            "lockedge_decisions", "access decisions recorded since start", labels=["kind", "reason"]
        )
        for kr, n in sorted(st["decisions"].items()):
            kind, _, reason = kr.partition(":")
            c.add_metric([kind, reason], n)
        yield c
        c = CounterMetricFamily(
            "lockedge_bundle_imports", "bundle files since start, by result", labels=["result"]
        )
        for result, n in sorted(st.get("biometrics", {}).get("imports", {}).items()):
            c.add_metric([result], n)
        yield c


class Metrics:
    def __init__(self, cfg: MetricsConfig) -> None:
        self.cfg = cfg
        self.registry = CollectorRegistry()
        self.collector = StatusCollector()
        self.registry.register(self.collector)
        self.server: Any = None

    def start(self) -> None:
        if self.cfg.port is not None:
            # Loopback only: the metrics name locks and reasons, and a scraper
            # on this machine (or an SSH tunnel) is all a site needs.
            self.server, _thread = start_http_server(self.cfg.port, addr="127.0.0.1", registry=self.registry)

    def update(self, st: dict[str, Any]) -> None:
        self.collector.status = st
        if self.cfg.textfile is not None:
            write_to_textfile(str(self.cfg.textfile), self.registry)  # temp file and rename: never half read

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
