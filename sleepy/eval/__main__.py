"""sleepy-eval (also `python -m sleepy.eval`): a thin Hydra entrypoint around `evaluate(cfg)`."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sleepy.config import CONF_PATH, ConfigError, exit_on_bad_overrides
from sleepy.console import LOG_NAME, Display, report, verbose_flag
from sleepy.eval import EvalError, evaluate
from sleepy.stop import stops
from sleepy.tracking import TrackingError


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="eval")
def _eval(cfg: DictConfig) -> None:
    try:
        log = Path(str(cfg.paths.output_dir)) / LOG_NAME
        with Display("sleepy-eval", log, bool(cfg.verbose)):
            r = evaluate(cfg)
    except (EvalError, ConfigError, TrackingError) as e:
        print(f"sleepy-eval: error: {e}", file=sys.stderr)
        sys.exit(2)
    m, c = r.metrics, r.champion_metrics
    lines = [
        f"candidate {r.candidate.label}: pass rate {m['pass_rate']:.1%}, repeat errors "
        f"{m['repeat_error_rate']:.1%}  |  champion {r.champion.label}: "
        f"pass rate {c['pass_rate']:.1%}",
        f"gains {len(r.gains)}, regressions {len(r.regressions)}  ->  {r.decision.verdict}"
        + ("  (promoted to champion)" if r.promoted else ""),
        *(f"  - {reason}" for reason in r.decision.reasons),  # one line each, never cut
        f"per-koan table: {r.table}",
    ]
    report(log, "\n".join(lines))


def main() -> None:
    with stops("sleepy-eval"):
        verbose_flag()
        exit_on_bad_overrides("eval", "sleepy-eval")
        _eval()


if __name__ == "__main__":
    main()
