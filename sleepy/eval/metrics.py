"""Eval metrics from episodes: per-koan outcomes, pass rates, repeated errors, and the per-koan
comparison of a candidate with the champion (gains and regressions)."""

from __future__ import annotations

import csv
import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

from sleepy.episodes import EpisodeStore, metrics_of


@dataclass
class KoanOutcome:
    """How one koan ended for one model: the last finished episode of it in the run."""

    koan_id: str
    family: str
    pattern: str | None
    passed: bool
    steps_to_green: int | None
    final_signature: str | None
    # each routed step: {adapter, route_signature, route_text}, the evidence a route withdrawal
    # reads; kept with the outcome so a result from the eval cache carries it too
    routes: list[dict] = field(default_factory=list)


ROUTE_KEYS = ("adapter", "route_signature", "route_text")


def outcomes(episodes) -> dict[str, KoanOutcome]:
    """koan id -> outcome; a later episode of the same koan (a resumed attempt) wins."""
    out = {}
    for e in episodes:
        out[e.task_id] = KoanOutcome(
            e.task_id,
            e.family or "",
            e.pattern,
            bool(e.passed),
            e.steps_to_green,
            e.final_error_signature,
            [
                {k: step.get(k) for k in ROUTE_KEYS}
                for step in e.trajectory
                if step.get("adapter") and step.get("route_signature")
            ],
        )
    return out


def earlier_failure_signatures(databases: list[str | Path], before_cycle: int) -> set[str]:
    """Final error signatures of failed episodes of cycles before `before_cycle` (globs allowed)."""
    paths: list[str] = []
    for pattern in databases:
        found = sorted(glob.glob(str(pattern)))
        paths += found
    seen: set[str] = set()
    for path in dict.fromkeys(paths):
        with EpisodeStore(path, create=False) as store:
            for e in store.episodes(passed=False):
                if e.cycle < before_cycle and e.final_error_signature:
                    seen.add(e.final_error_signature)
    return seen


def repeat_failures(results: dict[str, KoanOutcome], earlier: set[str]) -> list[str]:
    """Koans that failed with an error this lineage already failed with in an earlier cycle."""
    return sorted(
        k
        for k, o in results.items()
        if not o.passed and o.final_signature and o.final_signature in earlier
    )


def eval_metrics(episodes, earlier: set[str]) -> dict[str, float]:
    """The day's metrics (pass rate, per family, steps, tokens, time) plus repeat_error_rate.

    repeat_error_rate = failures whose final error signature is among the lineage's failures,
    over all failures (0 when nothing failed): the share of mistakes the lineage has made before.
    """
    return with_repeats(metrics_of(episodes), outcomes(episodes), earlier)


def with_repeats(
    day_metrics: dict[str, float], res: dict[str, KoanOutcome], earlier: set[str]
) -> dict[str, float]:
    """A day's metrics plus the repeat-error counts of these outcomes against `earlier`."""
    m = dict(day_metrics)
    m["tokens"] = m["tokens_in"] + m["tokens_out"]
    failures = sum(not o.passed for o in res.values())
    repeats = len(repeat_failures(res, earlier))
    m["failures"] = float(failures)
    m["repeat_errors"] = float(repeats)
    m["repeat_error_rate"] = repeats / failures if failures else 0.0
    return m


def change(champion_passed: bool | None, candidate_passed: bool) -> str:
    """gained | lost | kept | failing, from the champion's outcome to the candidate's."""
    if champion_passed is None:
        return "passed" if candidate_passed else "failing"
    if candidate_passed:
        return "kept" if champion_passed else "gained"
    return "lost" if champion_passed else "failing"


def compare(
    candidate: dict[str, KoanOutcome],
    champion: dict[str, KoanOutcome],
    earlier: set[str] = frozenset(),
) -> list[dict]:
    """One row per koan: both outcomes and what changed; `lost` rows are the regressions."""
    rows = []
    for koan_id in sorted(candidate):
        c, ch = candidate[koan_id], champion.get(koan_id)
        rows.append(
            {
                "koan_id": koan_id,
                "family": c.family,
                "pattern": c.pattern,
                "champion_passed": ch.passed if ch else None,
                "candidate_passed": c.passed,
                "change": change(ch.passed if ch else None, c.passed),
                "candidate_steps_to_green": c.steps_to_green,
                "candidate_final_signature": c.final_signature,
                "champion_final_signature": ch.final_signature if ch else None,
                "repeat_error": bool(not c.passed and c.final_signature in earlier),
            }
        )
    return rows


def regressions(rows: list[dict]) -> list[str]:
    return [r["koan_id"] for r in rows if r["change"] == "lost"]


def gains(rows: list[dict]) -> list[str]:
    return [r["koan_id"] for r in rows if r["change"] == "gained"]


def write_table(rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """The per-koan table as per_koan.csv (for people) and per_koan.json (for plots)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "per_koan.csv", out / "per_koan.json"
    fields = list(rows[0]) if rows else ["koan_id"]
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    json_path.write_text(json.dumps(rows, indent=1) + "\n")
    return csv_path, json_path


__all__ = [
    "KoanOutcome",
    "change",
    "compare",
    "earlier_failure_signatures",
    "eval_metrics",
    "gains",
    "outcomes",
    "regressions",
    "repeat_failures",
    "with_repeats",
    "write_table",
]
