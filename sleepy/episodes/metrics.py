"""What a set of episodes measures: pass rate, median steps to green, tokens and wall time,
overall and per family. The day logs it; the eval compares two models by it."""

from __future__ import annotations

import statistics


def metrics_of(episodes) -> dict[str, float | None]:
    """Pass rate, median steps to green, tokens and wall time, overall and per family.

    median_steps_to_green is None when no episode passed: there are no steps to green to take
    the median of (0.0 would read as fixed at once). MLflow is not given it then."""
    n = len(episodes)
    green = [e.steps_to_green for e in episodes if e.passed and e.steps_to_green]
    out = {
        "episodes": float(n),
        "pass_rate": sum(e.passed for e in episodes) / n if n else 0.0,
        "median_steps_to_green": float(statistics.median(green)) if green else None,
        "tokens_in": float(sum(e.tokens_in for e in episodes)),
        "tokens_out": float(sum(e.tokens_out for e in episodes)),
        "episode_wall_clock_s": sum(e.wall_clock_ms for e in episodes) / 1000,
        "errors": float(sum(e.status == "error" for e in episodes)),
    }
    for family in sorted({e.family for e in episodes}):
        group = [e for e in episodes if e.family == family]
        out[f"pass_rate.{family}"] = sum(e.passed for e in group) / len(group)
    views = [s["prompt_view"] for e in episodes for s in e.trajectory if "prompt_view" in s]
    # prompts longer than the model's context: shown as a window around the error, or cut
    out["prompts_windowed"] = float(sum(v.startswith("lines ") for v in views))
    out["prompts_cut"] = float(sum(v == "cut" for v in views))
    routed = [s for e in episodes for s in e.trajectory if "adapter" in s]
    if routed:  # a routing backend: how often a task adapter (not the base model) replied
        out["routed_rate"] = sum(s["adapter"] is not None for s in routed) / len(routed)
    for (adapter, family), n in koans_routed(episodes).items():
        out[f"koans_routed.{adapter}.{family}"] = float(n)
    return out


def koans_routed(episodes) -> dict[tuple[str, str], int]:
    """(task adapter, family) -> how many episodes of that family it answered at least once."""
    counts: dict[tuple[str, str], int] = {}
    for e in episodes:
        for adapter in {s["adapter"] for s in e.trajectory if s.get("adapter") is not None}:
            counts[(adapter, e.family)] = counts.get((adapter, e.family), 0) + 1
    return counts
