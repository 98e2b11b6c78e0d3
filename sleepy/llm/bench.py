"""Benchmark: batched vs one-at-a-time generation with the `hf` backend on the same koan prompts.

Run alone with `python -m sleepy.llm.bench`; `make bench` runs it as the "generation" section.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

KOANS_DIR = Path(__file__).resolve().parents[2] / "koans"


def koan_prompts(n: int, koans_dir: Path = KOANS_DIR) -> list[list[dict]]:
    """The opening prompts the day loop sends sleepy-tiny, for the first n koans (cycled)."""
    from sleepy.agent.prompts import PromptTemplate
    from sleepy.koans.model import load_koans

    koans = load_koans(koans_dir)
    if not koans:
        raise SystemExit(f"no koans under {koans_dir} to build prompts from")
    template = PromptTemplate.load("tiny")
    return [
        template.messages(k, k.buggy_code, k.expected_error, edit_format="search_replace")
        for k in (koans[i % len(koans)] for i in range(n))
    ]


def bench_generation(
    n: int = 32, max_new_tokens: int = 64, batch_size: int = 32, model: str | None = None
) -> dict[str, float]:
    """Greedy generation for n koan prompts, one call per prompt vs batches of `batch_size`."""
    from rich.console import Console
    from rich.table import Table

    from sleepy.llm.hf import HFBackend
    from sleepy.tiny import MODEL_DIR

    backend = HFBackend(
        model or MODEL_DIR,
        model_id=None if model else "sleepy-tiny",
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    prompts = koan_prompts(n)
    backend.generate(prompts[:2])  # warm-up: first-call allocations are not generation

    t0 = time.perf_counter()
    alone = [backend.generate([m])[0] for m in prompts]
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = backend.generate(prompts)
    t_batched = time.perf_counter() - t0

    tok_alone = sum(g.tokens_out for g in alone)
    tok_batched = sum(g.tokens_out for g in together)
    result = {
        "prompts": float(n),
        "prompt_tokens_mean": sum(g.tokens_in for g in together) / n,
        "one_at_a_time_s": t_alone,
        "one_at_a_time_tok_s": tok_alone / t_alone,
        "batched_s": t_batched,
        "batched_tok_s": tok_batched / t_batched,
        "speedup": (tok_batched / t_batched) / (tok_alone / t_alone),
        "same_greedy_text": float(
            all(a.text == b.text for a, b in zip(alone, together, strict=True))
        ),
    }
    table = Table(
        title=f"generation: {backend.model_id} on {backend.device}, {n} koan prompts, "
        f"greedy, max_new_tokens={max_new_tokens}"
    )
    for col in ("mode", "wall s", "tokens out", "tokens/s"):
        table.add_column(col, justify="right")
    table.add_row(
        "one at a time", f"{t_alone:.2f}", str(tok_alone), f"{result['one_at_a_time_tok_s']:.0f}"
    )
    table.add_row(
        f"batched ({batch_size})",
        f"{t_batched:.2f}",
        str(tok_batched),
        f"{result['batched_tok_s']:.0f}",
    )
    console = Console()
    console.print(table)
    console.print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"speedup {result['speedup']:.1f}x (target >= 3x); "
        f"mean prompt {result['prompt_tokens_mean']:.0f} tokens; "
        f"greedy outputs identical: {bool(result['same_greedy_text'])}"
    )
    return result


if __name__ == "__main__":
    bench_generation()
