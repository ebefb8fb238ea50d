"""The mini site scenario behind `make demo`, asserted (real brokers,
gateway, firmware on the simulated HAL)."""

from __future__ import annotations

from pathlib import Path

from simulators.site import SiteRunner


def test_mini_site_scenario_holds_its_invariants(tmp_path: Path) -> None:
    lines: list[str] = []
    runner = SiteRunner(tmp_path, 2, say=lines.append)
    try:
        runner.start()
        report = runner.run_mini()
    finally:
        runner.close()
    assert report["invariants_failed"] == [], lines
    assert report["records_produced"] == report["records_received"]
    assert report["denied_by_reason"] == {"wrong-code": 1}
    assert int(report["outbox_backlog_during_outage"]) >= 20  # type: ignore[call-overload]
