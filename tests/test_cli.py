from __future__ import annotations

import pytest

from gateway.cli import main
from simulators import walkthrough


def test_walkthrough_accepts_and_refuses_what_it_should() -> None:
    lines: list[str] = []
    counts = walkthrough.run(lines.append)
    assert counts == {"accepted": 2, "refused": 6}
    text = "\n".join(lines)
    for reason in ("duplicate", "bad-tag", "malformed"):
        assert f"reason={reason}" in text


def test_cli_demo_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert main(["demo"]) == 0
    assert "refused" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no-such-verb"])
