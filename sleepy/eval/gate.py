"""The promotion gate: compare a candidate's eval metrics with the champion's; decide, with reasons.

A candidate is promoted only if its pass rate is at least the champion's plus `min_gain`, at most
`max_regressions` koans the champion passes fail with it, and no family's pass rate drops by more
than `max_family_drop`. Every check gives a reason, passed or not, so a decision explains itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAMILY_PREFIX = "pass_rate."


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)  # every check, failed ones first

    @property
    def verdict(self) -> str:
        return "promote" if self.promote else "reject"

    def summary(self) -> str:
        return f"{self.verdict}: " + "; ".join(self.reasons)

    def tags(self) -> dict[str, str]:
        """MLflow tags for the candidate's run and model version (tag values are capped at 5000)."""
        return {"gate.decision": self.verdict, "gate.reasons": "; ".join(self.reasons)[:4900]}


@dataclass
class Gate:
    min_gain: float = 0.0
    max_regressions: int = 0
    max_family_drop: float = 0.1

    def decide(
        self, candidate: dict[str, float], champion: dict[str, float], regressions: list[str]
    ) -> GateDecision:
        """Metrics hold `pass_rate` and `pass_rate.<family>`; regressions are koan ids."""
        failed, passed = [], []

        def check(ok: bool, text: str) -> None:
            (passed if ok else failed).append(text)

        cand, champ = candidate["pass_rate"], champion["pass_rate"]
        need = champ + self.min_gain
        # a tolerance so 0.1 + 0.2 style float sums do not block an equal candidate
        check(
            cand >= need - 1e-9,
            f"pass rate {cand:.3f} {'>=' if cand >= need - 1e-9 else '<'} champion {champ:.3f} "
            f"+ min_gain {self.min_gain:g}",
        )
        n = len(regressions)
        shown = ", ".join(regressions[:5]) + (f" (+{n - 5} more)" if n > 5 else "")
        check(
            n <= self.max_regressions,
            f"{n} regression{'s' if n != 1 else ''} {'<=' if n <= self.max_regressions else '>'} "
            f"max {self.max_regressions}" + (f": {shown}" if n else ""),
        )
        drops = []
        for key in sorted(k for k in champion if k.startswith(FAMILY_PREFIX)):
            family = key[len(FAMILY_PREFIX) :]
            drop = champion[key] - candidate.get(key, 0.0)
            if drop > self.max_family_drop + 1e-9:
                drops.append(f"{family} -{drop:.3f}")
        check(
            not drops,
            (f"family drop over max {self.max_family_drop:g}: " + ", ".join(drops))
            if drops
            else f"no family drops more than {self.max_family_drop:g}",
        )
        return GateDecision(not failed, failed + passed)

    def refuse(self, reason: str) -> GateDecision:
        """A decision made before any metric: the candidate cannot be promoted at all."""
        return GateDecision(False, [reason])
