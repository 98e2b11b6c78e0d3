"""Training examples for sleepy-tiny: generated koans and mutants of real programs, turned into
exactly what the agent sends.

Prompt = the model's own prompt template over (description, buggy code, the sandbox's feedback);
completion = the buggy -> correct edit written in the model's edit format, ended by EOS.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from sleepy.koan import Koan
from sleepy.koans.generate import default_exclude_hashes, draft, select_patterns
from sleepy.prompts.edits import get_edit_format
from sleepy.prompts.template import PromptTemplate
from sleepy.sandbox import Sandbox, run_batch


@dataclass
class Example:
    koan_id: str
    family: str
    pattern: str
    messages: list[dict]
    completion: str


def koans_for_training(
    families: list[str], per_family: int, seed: int, exclude_hashes: set[str] | None = None
) -> list[Koan]:
    """Distinct template drafts of the given families, none in koans/ or evalsets/.

    Drafts are not compiled here: `build_examples` compiles each buggy program once anyway (for its
    feedback) and drops the ones that do not fail as declared.
    """

    seen = set(default_exclude_hashes() if exclude_hashes is None else exclude_hashes)
    out: list[Koan] = []
    for family in families:
        pats = select_patterns(family)
        got, index = 0, 0
        while got < per_family and index < 50 * per_family:
            koan = draft(pats[index % len(pats)], seed, index)
            index += 1
            if koan.content_hash not in seen:
                seen.add(koan.content_hash)
                out.append(koan)
                got += 1
    return out


def mutants_for_training(
    families: list[str],
    per_family: int,
    seed: int,
    sources: list[str],
    exclude_hashes: set[str],
    workers: int | None = None,
    side: str | None = None,
) -> list[Koan]:
    """Validated mutants of the real programs under `sources` (`sleepy koans mutate`), none an
    evalset program, none in `exclude_hashes`: the same mistakes as the templates teach, in
    programs a person wrote. `side="train"` keeps out the programs held out for evaluation."""
    from sleepy.koans.mutate import load_programs, mutate_families

    programs, _ = load_programs(list(sources), side=side)
    return mutate_families(
        families, per_family, seed, programs, set(exclude_hashes), workers=workers
    )


def widen(koans: list[Koan], share: float, seed: int, made_up: float = 0.0) -> list[Koan]:
    """The koans with a `share` of them renamed from 2,000 words (WideVocab; `made_up` of the
    words made of random syllables): buggy and correct code with one mapping, so the fix is the
    same fix in other names. Names a model cannot have memorized teach it to copy them from the
    program it is shown."""
    from functools import partial

    from sleepy.koans.generator import WideVocab
    from sleepy.koans.variation import rename_together

    out = []
    for koan in koans:
        rng = random.Random(f"{seed}:wide:{koan.content_hash}")
        if rng.random() < share:
            (buggy, correct), description = rename_together(
                [koan.buggy_code, koan.correct_code],
                rng,
                koan.description,
                partial(WideVocab, made_up=made_up),
                keep=0.1,
            )
            koan = replace(koan, buggy_code=buggy, correct_code=correct, description=description)
        out.append(koan)
    return out


def build_examples(
    koans: list[Koan], template: str, edit_format: str, workers: int | None = None
) -> tuple[list[Example], dict]:
    """Compile every buggy program once for its feedback; keep the koans that fail as declared."""

    sandbox = Sandbox()
    prompt = PromptTemplate.load(template)
    fmt = get_edit_format(edit_format)
    verdicts = run_batch(
        lambda k: sandbox.verdict(k, k.buggy_code),
        koans,
        workers=workers,
        desc="compiling buggy programs",
    )
    examples, dropped = [], {"passes_already": 0, "other_error": 0}
    for koan, v in zip(koans, verdicts, strict=True):
        if v.passed:
            dropped["passes_already"] += 1
            continue
        if koan.kind == "compile" and (
            v.signature is None or v.signature.code != koan.expected_code
        ):
            dropped["other_error"] += 1
            continue
        messages = prompt.messages(koan, koan.buggy_code, v.feedback(), [], edit_format)
        examples.append(
            Example(
                koan.id,
                koan.family,
                koan.pattern,
                messages,
                fmt.render(koan.buggy_code, koan.correct_code),
            )
        )
    return examples, dropped
