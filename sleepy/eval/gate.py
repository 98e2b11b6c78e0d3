"""The promotion gate: compare a candidate's eval metrics with the champion's; decide, with reasons.

Two sets, as the eval has them. On the learning set (what the lineage failed on, as fresh
programs) the candidate's pass rate must be at least the champion's plus `min_gain`. On the frozen
suite at most `max_regressions` koans the champion passes may fail with it. On both sets no
family's pass rate may drop by more than `max_family_drop` (on the learning set that is an earlier
family being forgotten). When the learning set holds new programs (the lineage's mistakes in
programs people wrote that it never saw), their pass rate may not drop by more than
`max_family_drop` either. Without a learning set, the gain is measured on the frozen suite. Every
check gives a reason, passed or not, so a decision explains itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sleepy.config import ranged

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
    min_gain: float = ranged(0.0, ge=-1, le=1)  # pass rate over the champion's (a fraction)
    # and koans passed over the champion's: a tie learned nothing and is not promoted
    min_gain_koans: int = ranged(1, ge=0)
    max_regressions: int = ranged(0, ge=0)
    max_family_drop: float = ranged(0.1, ge=0, le=1)

    def decide(
        self,
        candidate: dict[str, float],
        champion: dict[str, float],
        regressions: list[str],
        learning: tuple[dict[str, float], dict[str, float]] | None = None,
    ) -> GateDecision:
        """Frozen-suite metrics (candidate, champion) hold `pass_rate` and `pass_rate.<family>`;
        regressions are frozen koan ids; `learning` is (candidate, champion) on the learning set."""
        failed, passed = [], []

        def check(ok: bool, text: str) -> None:
            (passed if ok else failed).append(text)

        gain_on = learning or (candidate, champion)
        where = "learning-set pass rate" if learning else "pass rate"
        cand, champ = gain_on[0]["pass_rate"], gain_on[1]["pass_rate"]
        need = champ + self.min_gain
        # a tolerance so 0.1 + 0.2 style float sums do not block an equal candidate
        check(
            cand >= need - 1e-9,
            f"{where} {cand:.3f} {'>=' if cand >= need - 1e-9 else '<'} champion {champ:.3f} "
            f"+ min_gain {self.min_gain:g}",
        )
        # koans gained on that set: the set's size when the metrics have it, else any gain
        # in the rate counts as one
        size = gain_on[0].get("episodes")
        gained = round((cand - champ) * size) if size else int(cand > champ + 1e-9)
        check(
            gained >= self.min_gain_koans,
            f"{gained:+d} koan{'s' if abs(gained) != 1 else ''} on the "
            f"{'learning set' if learning else 'suite'} "
            f"{'>=' if gained >= self.min_gain_koans else '<'} min_gain_koans {self.min_gain_koans}",
        )
        if learning and "new_programs_pass_rate" in learning[0]:
            # the same mistakes in programs never seen: a gain there is what carries to code
            # people write; a candidate that gets worse there has learned the programs, not the fix
            new_c = learning[0]["new_programs_pass_rate"]
            new_ch = learning[1].get("new_programs_pass_rate", 0.0)
            ok = new_ch - new_c <= self.max_family_drop + 1e-9
            check(
                ok,
                f"new programs {new_c:.3f} {'>=' if ok else '<'} champion {new_ch:.3f} "
                f"- max_family_drop {self.max_family_drop:g}",
            )
        n = len(regressions)
        shown = ", ".join(regressions[:5]) + (f" (+{n - 5} more)" if n > 5 else "")
        check(
            n <= self.max_regressions,
            f"{n} regression{'s' if n != 1 else ''} {'<=' if n <= self.max_regressions else '>'} "
            f"max {self.max_regressions}" + (f": {shown}" if n else ""),
        )
        drops = []
        sets = [("", candidate, champion)]
        if learning:
            sets.append(("learning ", *learning))
        for label, cand_m, champ_m in sets:
            for key in sorted(k for k in champ_m if k.startswith(FAMILY_PREFIX)):
                family = key[len(FAMILY_PREFIX) :]
                drop = champ_m[key] - cand_m.get(key, 0.0)
                if drop > self.max_family_drop + 1e-9:
                    drops.append(f"{label}{family} -{drop:.3f}")
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
