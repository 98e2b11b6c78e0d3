"""Benchmarks of the `hf` backend on the same koan prompts: batched vs one-at-a-time generation,
and the custom greedy decoder vs model.generate on the same batch.

Run alone with `python -m benchmarks.generation` (the decoders); `make bench` runs both, as the
"generation" and "decoders" sections.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

KOANS_DIR = Path(__file__).resolve().parents[1] / "koans"


def koan_prompts(n: int, koans_dir: Path = KOANS_DIR) -> list[list[dict]]:
    """The opening prompts the day loop sends sleepy-tiny, for the first n koans (cycled)."""
    from sleepy.koan.model import load_koans
    from sleepy.prompts.template import PromptTemplate

    koans = load_koans(koans_dir)
    if not koans:
        raise SystemExit(f"no koans under {koans_dir} to build prompts from")
    template = PromptTemplate.load("tiny")
    return [
        template.messages(k, k.buggy_code, k.expected_error, edit_format="search_replace")
        for k in (koans[i % len(koans)] for i in range(n))
    ]


def _timed(backend, prompts: list, batch_size: int | None) -> tuple[float, list]:
    """(seconds, generations) for the prompts: one call each (batch_size None) or batched."""
    t0 = time.perf_counter()
    if batch_size is None:
        gens = [backend.generate([m])[0] for m in prompts]
    else:
        gens = backend.generate(prompts, batch_size=batch_size)
    return time.perf_counter() - t0, gens


def bench_generation(
    n: int = 32,
    max_new_tokens: int = 64,
    batch_sizes: tuple[int, ...] = (8, 32),
    model: str | None = None,
    threads: int | None = None,
    repeats: int = 2,
) -> dict[str, float]:
    """Greedy generation for n koan prompts: one call per prompt vs batches of at most each size.

    The backend plans the batches (prompts grouped by length, at most batch_size per group) and
    the table shows its plan. Every mode runs `repeats` times, interleaved, and keeps its fastest
    run, so a busy moment on a shared machine hits every mode alike; the speedup is the best
    batch size's tokens/s over one-at-a-time tokens/s.
    """
    import torch
    from rich.console import Console
    from rich.table import Table

    from sleepy.llm.hf import HFBackend
    from sleepy.tiny import MODEL_DIR

    backend = HFBackend(
        model or MODEL_DIR,
        model_id=None if model else "sleepy-tiny",
        max_new_tokens=max_new_tokens,
        threads=threads,
    )
    prompts = koan_prompts(n)
    backend.generate(prompts[:2])  # warm-up: first-call allocations are not generation

    modes: list[int | None] = [None, *batch_sizes]
    best: dict[int | None, float] = {}
    gens_of: dict[int | None, list] = {}
    plan_of: dict[int | None, str] = {None: f"{n}x1"}
    same = True  # every run of every mode gives the first one-at-a-time run's texts
    for _ in range(max(1, repeats)):
        for mode in modes:
            t, gens = _timed(backend, prompts, mode)
            if mode not in best or t < best[mode]:
                best[mode] = t
            same = same and [g.text for g in gens] == [g.text for g in gens_of.get(None, gens)]
            gens_of[mode] = gens
            if mode is not None:
                plan_of[mode] = "+".join(str(k) for k in backend.last_plan)
    t_alone, alone = best[None], gens_of[None]
    tok_alone = sum(g.tokens_out for g in alone)
    result: dict[str, float] = {
        "prompts": float(n),
        "prompt_tokens_mean": sum(g.tokens_in for g in alone) / n,
        "one_at_a_time_s": t_alone,
        "one_at_a_time_tok_s": tok_alone / t_alone,
    }
    table = Table(
        title=f"generation: {backend.model_id} on {backend.device} ({torch.get_num_threads()} "
        f"threads), {n} koan prompts, greedy, max_new_tokens={max_new_tokens}"
    )
    for col in (
        "mode",
        "batches",
        "wall s",
        "tokens out",
        "tokens/s",
        "vs one at a time",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        "one at a time",
        plan_of[None],
        f"{t_alone:.2f}",
        str(tok_alone),
        f"{tok_alone / t_alone:.0f}",
        "1.0x",
    )
    for bs in batch_sizes:
        t, gens = best[bs], gens_of[bs]
        tok = sum(g.tokens_out for g in gens)
        speedup = (tok / t) / (tok_alone / t_alone)
        result[f"batched_{bs}_tok_s"], result[f"batched_{bs}_speedup"] = tok / t, speedup
        table.add_row(
            f"batched <={bs}",
            plan_of[bs],
            f"{t:.2f}",
            str(tok),
            f"{tok / t:.0f}",
            f"{speedup:.1f}x",
        )
    result["speedup"] = max(result[f"batched_{bs}_speedup"] for bs in batch_sizes)
    result["same_greedy_text"] = float(same)
    console = Console()
    console.print(table)
    console.print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"best speedup {result['speedup']:.1f}x (target >= 3x); "
        f"mean prompt {result['prompt_tokens_mean']:.0f} tokens; "
        f"greedy outputs identical batched and alone: {same}; best of {max(1, repeats)} "
        "interleaved runs per mode"
    )
    return result


def bench_decoders(
    n: int = 32,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    model: str | None = None,
    threads: int | None = None,
    repeats: int = 2,
) -> dict[str, float]:
    """The custom greedy decoder vs model.generate: the same batch of n koan prompts through
    `backend.decoder=custom` and `backend.decoder=generate`, at most batch_size per batch. The
    texts must be the same; the speedup is custom's tokens/s over generate's. Runs interleave and
    each decoder keeps its fastest, as in bench_generation."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from sleepy.llm.hf import HFBackend
    from sleepy.tiny import MODEL_DIR

    prompts = koan_prompts(n)
    backends = {
        decoder: HFBackend(
            model or MODEL_DIR,
            model_id=None if model else "sleepy-tiny",
            max_new_tokens=max_new_tokens,
            threads=threads,
            batch_size=batch_size,
            decoder=decoder,
        )
        for decoder in ("custom", "generate")
    }
    for b in backends.values():
        b.generate(prompts[:2])  # warm-up
    best: dict[str, float] = {}
    texts: dict[str, list[str]] = {}
    tokens: dict[str, int] = {}
    for _ in range(max(1, repeats)):
        for decoder, b in backends.items():
            t0 = time.perf_counter()
            gens = b.generate(prompts)
            t = time.perf_counter() - t0
            best[decoder] = min(t, best.get(decoder, t))
            texts[decoder], tokens[decoder] = (
                [g.text for g in gens],
                sum(g.tokens_out for g in gens),
            )
    same = texts["custom"] == texts["generate"]
    rate = {d: tokens[d] / best[d] for d in backends}
    speedup = rate["custom"] / rate["generate"]
    table = Table(
        title=f"custom vs model.generate, same batch, same text: {n} koan prompts, at most "
        f"{batch_size} per batch, greedy, max_new_tokens={max_new_tokens}, "
        f"{torch.get_num_threads()} threads"
    )
    for col in ("decoder", "wall s", "tokens out", "tokens/s", "vs model.generate", "same text"):
        table.add_column(col, justify="right")
    for d in ("generate", "custom"):
        table.add_row(
            "model.generate" if d == "generate" else "custom (sleepy.llm.greedy)",
            f"{best[d]:.2f}",
            str(tokens[d]),
            f"{rate[d]:.0f}",
            f"{rate[d] / rate['generate']:.2f}x",
            "yes" if same else "NO",
        )
    Console().print(table)
    Console().print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of "
        f"{max(1, repeats)} interleaved runs per decoder; custom stays the default only if it "
        "is at least 1.5x faster"
    )
    return {"custom_tok_s": rate["custom"], "generate_tok_s": rate["generate"],
            "speedup": speedup, "same_text": float(same)}  # fmt: skip


if __name__ == "__main__":
    bench_decoders()


def bench_models(
    models: list[str] | None = None,
    n: int = 32,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    rounds: int = 3,
) -> dict[str, float]:
    """Generation speed of other models against the shipped sleepy-tiny, timed in one run.

    Each model answers the same n koan prompts one at a time and batched; the rounds interleave
    the models so a busy moment hits them alike, and each keeps its fastest round. The ratio is
    tokens/s against the first model (the shipped one unless `--model` names it first)."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from sleepy.llm.hf import HFBackend
    from sleepy.tiny import MODEL_DIR

    paths = [str(MODEL_DIR)] + [m for m in models or [] if Path(m).resolve() != MODEL_DIR]
    prompts = koan_prompts(n)
    backends = [HFBackend(p, model_id=p, max_new_tokens=max_new_tokens) for p in paths]
    best: dict[tuple[int, str], tuple[float, int]] = {}
    for b in backends:
        b.generate(prompts[:2])  # warm-up
    for _ in range(rounds):
        for i, b in enumerate(backends):
            for mode, size in (("alone", None), ("batched", batch_size)):
                t, gens = _timed(b, prompts, size)
                tok = sum(g.tokens_out for g in gens)
                if (i, mode) not in best or tok / t > best[i, mode][1] / best[i, mode][0]:
                    best[i, mode] = (t, tok)
    table = Table(
        title=f"generation speed by model: {n} koan prompts, greedy, max_new_tokens="
        f"{max_new_tokens}, {torch.get_num_threads()} threads, best of {rounds} interleaved rounds"
    )
    table.add_column("model", overflow="fold")  # a folder path: shown whole, on several lines
    for col in (
        "one at a time tok/s",
        "vs first",
        f"batched <={batch_size} tok/s",
        "vs first",
    ):
        table.add_column(col, justify="right")
    result: dict[str, float] = {}
    speed = {k: tok / t for k, (t, tok) in best.items()}
    for i, p in enumerate(paths):
        alone, batched = speed[i, "alone"], speed[i, "batched"]
        ra, rb = alone / speed[0, "alone"], batched / speed[0, "batched"]
        table.add_row(
            os.path.relpath(p), f"{alone:.0f}", f"{ra:.2f}x", f"{batched:.0f}", f"{rb:.2f}x"
        )
        result[f"model{i}_alone_tok_s"], result[f"model{i}_batched_tok_s"] = alone, batched
        result[f"model{i}_alone_ratio"], result[f"model{i}_batched_ratio"] = ra, rb
    console = Console()
    console.print(table)
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return result
