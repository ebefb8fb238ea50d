"""Visitor pass-code policy: how long a visitor's code is valid, from who
they are, why they come and how often.

From the product's seed: a courier or food-delivery rider who comes often
gets a month; a water or gas delivery or a repair worker who comes rarely
gets a day; everyone else gets a default. The table is configuration: the
most specific matching rule wins (ties: first in the table).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import passcode as pc

FREQUENCIES = ("frequent", "occasional", "rare")
KINDS = {"once": pc.ONCE, "window": pc.WINDOW}


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    name: str
    hours: int
    kind: int = pc.WINDOW
    occupation: str | None = None
    purpose: str | None = None
    frequency: str | None = None

    def specificity(self) -> int:
        return sum(x is not None for x in (self.occupation, self.purpose, self.frequency))

    def matches(self, occupation: str, purpose: str, frequency: str) -> bool:
        return (
            (self.occupation is None or self.occupation == occupation)
            and (self.purpose is None or self.purpose == purpose)
            and (self.frequency is None or self.frequency == frequency)
        )


DEFAULT_RULES = (
    Rule("courier-frequent", 31 * 24, pc.WINDOW, occupation="courier", frequency="frequent"),
    Rule("food-delivery-frequent", 31 * 24, pc.WINDOW, occupation="food-delivery", frequency="frequent"),
    Rule("courier", 24, pc.WINDOW, occupation="courier"),
    Rule("food-delivery", 4, pc.WINDOW, occupation="food-delivery"),
    Rule("water-delivery-rare", 24, pc.WINDOW, occupation="water-delivery", frequency="rare"),
    Rule("gas-delivery-rare", 24, pc.WINDOW, occupation="gas-delivery", frequency="rare"),
    Rule("repair-rare", 24, pc.WINDOW, occupation="repair", frequency="rare"),
    Rule("repair", 8, pc.WINDOW, occupation="repair"),
    Rule("family-visit-frequent", 7 * 24, pc.WINDOW, purpose="family-visit", frequency="frequent"),
    Rule("guest", 24, pc.WINDOW, purpose="visit"),
    Rule("default", 4, pc.ONCE),
)


class VisitorPolicy:
    def __init__(self, rules: tuple[Rule, ...] = DEFAULT_RULES) -> None:
        if not any(r.specificity() == 0 for r in rules):
            raise PolicyError("the policy needs a default rule (no occupation, purpose or frequency)")
        for r in rules:
            if not (1 <= r.hours <= 366 * 24):
                raise PolicyError(f"rule {r.name}: validity must be 1 hour to 1 year")
            if r.frequency is not None and r.frequency not in FREQUENCIES:
                raise PolicyError(f"rule {r.name}: frequency must be one of {FREQUENCIES}")
        self.rules = rules

    @classmethod
    def from_toml(cls, path: Path) -> VisitorPolicy:
        data: dict[str, Any] = tomllib.loads(path.read_text())
        rules = []
        for i, r in enumerate(data.get("rule", [])):
            try:
                rules.append(
                    Rule(
                        name=str(r.get("name", f"rule-{i}")),
                        hours=int(r["hours"]),
                        kind=KINDS[r.get("kind", "window")],
                        occupation=r.get("occupation"),
                        purpose=r.get("purpose"),
                        frequency=r.get("frequency"),
                    )
                )
            except (KeyError, TypeError, ValueError) as e:
                raise PolicyError(f"{path}: rule {i} is invalid ({e})") from None
        return cls(tuple(rules))

    def decide(self, occupation: str, purpose: str, frequency: str) -> Rule:
        if frequency not in FREQUENCIES:
            raise PolicyError(f"visit frequency must be one of {FREQUENCIES}")
        best: Rule | None = None
        for r in self.rules:
            if r.matches(occupation, purpose, frequency) and (
                best is None or r.specificity() > best.specificity()
            ):
                best = r
        assert best is not None  # the default rule always matches
        return best
