"""Measure sleepy-tiny the way the agent uses it: greedy, at most 3 attempts, the sandbox's verdict.

    python -m sleepy.pretrain.evaluate                      # writes sleepy/tiny/model/eval.json
    python -m sleepy.pretrain.evaluate --model DIR          # a trained, not installed model
    python -m sleepy.pretrain.evaluate --programs DIR       # + mutants of new programs (harvest)

Suites: fresh generated koans of the known and of the unknown families (never seen in training),
the frozen evalset split into known and unknown families and, within the known ones, into its
hand-written and generated koans, and fresh mutants of the corpus's real programs in the known
families (drawn with the reserved evaluation seeds, so never a training mutant). The model's own
edit format and prompt template (from its training.json) are used.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from sleepy.config import compose_config
from sleepy.day import run_day
from sleepy.koan import FAMILIES, load_evalset, save_evalset
from sleepy.koan.model import known_hashes
from sleepy.koans.generate import EVAL_SEEDS, generate
from sleepy.koans.mutate import load_programs, mutate_families
from sleepy.tiny import MODEL_DIR


def _day(source: Path, out: Path, evalset: bool, max_attempts: int, model: list[str]) -> dict:
    overrides = [
        f"paths.outputs={out}",
        f"paths.output_dir={out}",
        "tracking=none",
        "run_id=tiny-eval",
        f"agent.max_attempts={max_attempts}",
        "agent.temperature=0.0",
        *model,
    ]
    overrides += [f"koans.evalset={source}"] if evalset else [f"koans.source={source}"]
    return run_day(compose_config("day", overrides)).metrics


def evaluate_tiny(
    known: list[str],
    per_family: int = 15,
    seed: int = 5000,
    max_attempts: int = 3,
    model_dir: Path = MODEL_DIR,
    mutants_per_family: int = 15,
    new_programs: Path | None = None,
    only: list[str] | None = None,
) -> dict:
    """Pass rates per suite. `new_programs` (a `sleepy koans harvest` folder) adds
    `mutants_new_programs_known`: mutants of its eval-side programs, programs a person wrote that
    no sleepy-tiny recipe trains on."""

    training = json.loads((Path(model_dir) / "training.json").read_text())["config"]
    model = [
        f"model.path={Path(model_dir).resolve()}",
        f"model.edit_format={training.get('edit_format', 'search_replace')}",
        f"model.prompt_template={training.get('template', 'tiny')}",
    ]
    unknown = [f for f in FAMILIES if f not in known]
    exclude = set(known_hashes(Path("koans"), Path("evalsets")))
    hashes = Path(model_dir) / "train_hashes.txt"
    if hashes.exists():
        exclude |= set(hashes.read_text().split())
    # models trained since the twin guard also list their programs' normalized forms
    forms_file = Path(model_dir) / "train_forms.txt"
    forms = set(forms_file.read_text().split()) if forms_file.exists() else None
    twins: dict[str, int] = {}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        suites: dict[str, list] = {}

        def want(name: str) -> bool:
            return not only or name in only

        for name, fams in (("fresh_known", known), ("fresh_unknown", unknown)):
            if not want(name):
                continue
            suites[name] = [
                k for f in fams for k in generate(f, per_family, seed=seed, exclude_hashes=exclude)
            ]
        if mutants_per_family and want("mutants_known"):
            programs, _ = load_programs([Path("koans")])
            suites["mutants_known"] = mutate_families(
                known, mutants_per_family, EVAL_SEEDS.start + seed, programs, exclude, "eval"
            )
        if mutants_per_family and new_programs is not None and want("mutants_new_programs_known"):
            held, _ = load_programs([new_programs], side="eval")
        else:
            held = []
        if held:  # a folder with no eval-side program measures nothing new
            suites["mutants_new_programs_known"] = mutate_families(
                known, mutants_per_family, EVAL_SEEDS.start + seed, held, exclude, "eval", True
            )
        frozen = load_evalset(Path("evalsets/frozen.json"))
        suites["frozen_known"] = [k for k in frozen if k.family in known]
        suites["frozen_known_handwritten"] = [
            k for k in suites["frozen_known"] if k.source == "handwritten"
        ]
        suites["frozen_known_generated"] = [
            k for k in suites["frozen_known"] if k.source != "handwritten"
        ]
        suites["frozen_unknown"] = [k for k in frozen if k.family in unknown]
        for name in ("fresh_known", "fresh_unknown", "mutants_known", "mutants_new_programs_known"):
            if forms is not None and name in suites:
                kept = [k for k in suites[name] if k.normalized_hash not in forms]
                twins[name] = len(suites[name]) - len(kept)
                suites[name] = kept
        for name, koans in suites.items():
            if only and name not in only:
                continue
            path = save_evalset(koans, tmp / f"{name}.json")
            results[name] = _day(path, tmp / name, True, max_attempts, model)
    out = {
        name: {k: v for k, v in m.items() if not isinstance(v, str)} for name, m in results.items()
    }
    for name, n in twins.items():
        out[name]["twins_dropped"] = n
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-family", type=int, default=15)
    p.add_argument("--seed", type=int, default=5000)
    p.add_argument("--mutants-per-family", type=int, default=15)
    p.add_argument("--model", type=Path, default=MODEL_DIR, help="a trained sleepy-tiny folder")
    p.add_argument("--out", default=None, help="default: MODEL/eval.json")
    p.add_argument(
        "--programs",
        type=Path,
        default=None,
        help="a `sleepy koans harvest` folder: adds mutants of its eval-side programs",
    )
    p.add_argument(
        "--only",
        action="append",
        help="measure only these suites (default: all), e.g. frozen_known",
    )
    args = p.parse_args(argv)
    from sleepy.console import quiet_libraries

    args.out = args.out or str(args.model / "eval.json")
    quiet_libraries(Path("outputs/tiny_eval.log"))  # the libraries' noise goes there
    training = json.loads((args.model / "training.json").read_text())
    known = training["config"]["families"]
    results = evaluate_tiny(
        known,
        args.per_family,
        args.seed,
        model_dir=args.model,
        mutants_per_family=args.mutants_per_family,
        new_programs=args.programs,
        only=args.only,
    )
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for name, m in results.items():
        twins = (
            f", {m['twins_dropped']} renamed training programs dropped"
            if "twins_dropped" in m
            else ""
        )
        print(
            f"{name:26s} pass rate {m.get('pass_rate', 0):.1%}  "
            f"({int(m.get('episodes', 0))} koans{twins})"
        )
    if not (args.model / "train_forms.txt").exists():
        print("(this model lists no train_forms.txt: held-out koans checked by content hash only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
