"""What one sleepy cycle costs at 1.5B: a model of Qwen2.5-Coder-1.5B-Instruct's shape (its config
written out below, random weights: nothing is downloaded) through sleepy's own code paths.

Measures batched greedy generation through the `hf` backend (its own greedy loop and
model.generate), LoRA training at rank 16 (tokens/s, peak GPU memory), Share consolidation of 3
and 10 task adapters, and routed generation with 10 task adapters loaded; prints a markdown table
and the projected time of a day, a sleep and an eval. Made for one GPU (an H200 runs it in a few
minutes); `--shape tiny` runs the same steps on a CPU in about a minute, as a smoke test.

    python scripts/gpu_cost.py --out /tmp/cost                 # on the GPU
    python scripts/gpu_cost.py --shape tiny --out /tmp/cost    # smoke test on a CPU

Random weights rarely emit EOS, so every reply runs to its token limit: the rates are those of
full-length replies. Prompts are the frozen suite's koans, rendered with sleepy-tiny's tokenizer
(the only one that ships); Qwen's tokenizer gives different lengths, reported in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# config.json of Qwen/Qwen2.5-Coder-1.5B-Instruct (bos/eos/pad become the shipped tokenizer's ids)
QWEN_CODER_1_5B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "use_sliding_window": False,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
}
# the same architecture, small enough for a CPU smoke run
TINY = {
    **QWEN_CODER_1_5B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "vocab_size": 2048,
}


@dataclass
class Plan:
    """How much of each measurement to run."""

    prompts: int  # koan prompts decoded together
    new_tokens: int  # per reply
    routed_prompts: int  # spread over the 10 task adapters and the base model
    routed_tokens: int
    train_steps: int
    batch_size: int


SHAPES = {
    "qwen2.5-coder-1.5b": (QWEN_CODER_1_5B, Plan(32, 256, 44, 128, 30, 8)),
    "tiny": (TINY, Plan(4, 8, 11, 4, 2, 2)),
}


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_base(shape: dict, out: Path) -> tuple[Path, int]:
    """A model folder: the shape's config with random weights (bf16 on a GPU), and sleepy-tiny's
    tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from sleepy.tiny import MODEL_DIR

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    cfg = Qwen2Config(
        **{k: v for k, v in shape.items() if k != "architectures"},
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if gpu else torch.float32
    torch.manual_seed(0)
    with torch.device("cuda" if gpu else "cpu"):  # random init where it is fast
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    del model
    free()
    return out, params


def koan_rows(n: int) -> list[dict]:
    """The frozen suite's first n koans as the agent's first prompt (the `default` template,
    whole-file edits, as the Qwen model configs use) and the fix as the completion."""
    from sleepy.koan import load_evalset
    from sleepy.prompts.template import PromptTemplate

    koans = load_evalset(ROOT / "evalsets" / "frozen.json")
    template = PromptTemplate.load("default")
    rows = []
    for i in range(n):
        k = koans[i % len(koans)]
        messages = template.messages(k, k.buggy_code, k.expected_error, [], "whole_file")
        rows.append(
            {
                "prompt": messages,
                "completion": [{"role": "assistant", "content": f"```rust\n{k.correct_code}\n```"}],
                "koan_id": k.id,
                "family": k.family,
            }
        )
    return rows


def generation(backend, prompts: list, new_tokens: int, **opts) -> tuple[float, float]:
    """(tokens/s, seconds) of one batched greedy generate() call."""
    sync()
    t0 = time.perf_counter()
    gens = backend.generate(prompts, max_new_tokens=new_tokens, **opts)
    sync()
    seconds = time.perf_counter() - t0
    return sum(g.tokens_out for g in gens) / seconds, seconds


def task_adapters(base: Path, n: int, out: Path) -> list:
    """n random rank-16 LoRAs on every linear layer (the `adapter` group's targets), each with
    one error signature of its own for the router."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from sleepy.adapters import AdapterInfo, fingerprint, write_info
    from sleepy.consolidate.methods import TaskAdapter

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=16, lora_alpha=32, target_modules=targets, init_lora_weights=False),
    )
    tasks = []
    for i in range(n):
        torch.manual_seed(100 + i)
        for name, p in model.named_parameters():
            if "lora_" in name:
                torch.nn.init.normal_(p, std=0.02)
        path = out / f"task{i}"
        model.save_pretrained(path)
        write_info(
            path,
            AdapterInfo(
                base_model=str(base),
                base_model_fingerprint=fingerprint(base),
                families=[f"family{i}"],
                signatures=[f"E{i:04d} mistake number {i}"],
            ),
        )
        tasks.append(TaskAdapter.from_path(f"task{i}", path))
    del model
    free()
    return tasks


def share(tasks: list, base: Path, out: Path):
    """The project's Share consolidation (conf/consolidation/share.yaml), timed."""
    from hydra.utils import instantiate

    from sleepy.config import compose_config

    method = instantiate(compose_config("consolidate", ["consolidation=share"]).consolidation)
    t0 = time.perf_counter()
    result = method(tasks, str(base), out)
    return result, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-coder-1.5b")
    p.add_argument("--out", type=Path, required=True, help="scratch folder (model, adapters)")
    p.add_argument("--reply-tokens", type=int, default=400, help="projection: tokens per reply")
    p.add_argument("--calls", type=float, default=3, help="projection: model calls per koan")
    p.add_argument(
        "--sandbox-s",
        type=float,
        default=0.122,
        help="projection: seconds per sandbox verdict (README: 2 CPU cores)",
    )
    p.add_argument("--workers", type=int, default=2, help="projection: sandbox workers")
    args = p.parse_args(argv)

    import torch

    from sleepy.llm.hf import HFBackend
    from sleepy.sleep.launch import LaunchError, accelerate_config
    from sleepy.sleep.train import train_adapter

    shape, plan = SHAPES[args.shape]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if gpu else "CPU"
    log = (out / "gpu_cost.log").open("w")  # the libraries' own progress bars and warnings
    print(f"gpu_cost: shape {args.shape} on {device} (library output: {log.name})", flush=True)
    rows: list[tuple[str, str]] = []
    t_all = time.perf_counter()

    @contextlib.contextmanager
    def stage(name: str):
        print(f"  {name} ...", flush=True)
        t = time.perf_counter()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
        log.flush()
        print(f"  {name}: {time.perf_counter() - t:.0f} s", flush=True)

    dtype = "bfloat16" if gpu else "float32"
    with stage("model"):
        base, params = build_base(shape, out / "base")
    size = f"{params / 1e9:.2f}B" if params > 1e8 else f"{params / 1e6:.2f}M"
    rows.append(("model", f"Qwen2 shape {args.shape}, {size} parameters, {dtype}"))

    # 1. batched generation through the hf backend: its greedy loop, then model.generate
    data = koan_rows(max(plan.prompts, plan.routed_prompts))
    prompts = [r["prompt"] for r in data[: plan.prompts]]
    shape_of = f"batch {len(prompts)} x {plan.new_tokens} new tokens"
    with stage("generation"):
        backend = HFBackend(base, dtype=dtype, batch_size=plan.prompts)
        lengths = [len(backend.tokenizer(backend.render(m))["input_ids"]) for m in prompts]
        generation(backend, prompts[:2], 4)  # warm-up: kernels, allocator
        assert backend.plain_greedy, "the hf backend's greedy loop did not apply to this model"
        loop, loop_s = generation(backend, prompts, plan.new_tokens)
        backend.plain_greedy = False
        gen, gen_s = generation(backend, prompts, plan.new_tokens)
        del backend
        free()
    rows += [
        ("prompts", f"{len(prompts)} koans, {statistics.mean(lengths):.0f} tokens on average"),
        (f"generation, hf greedy loop, {shape_of}", f"{loop:,.0f} tokens/s ({loop_s:.1f} s)"),
        (f"generation, model.generate, {shape_of}", f"{gen:,.0f} tokens/s ({gen_s:.1f} s)"),
    ]

    # 2. LoRA training, rank 16 on every linear layer (the `adapter` group's other defaults)
    from datasets import Dataset

    from sleepy.config import compose_config

    adapter_cfg = compose_config(
        "sleep",
        [
            "adapter.rank=16",
            "adapter.alpha=32",
            f"adapter.max_steps={plan.train_steps}",
            f"adapter.batch_size={plan.batch_size}",
            "adapter.max_length=2048",
            "adapter.warmup_steps=0",
            f"adapter.logging_steps={plan.train_steps}",
        ],
    ).adapter
    with stage("LoRA training"):
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        m = train_adapter(Dataset.from_list(data), base, adapter_cfg, out / "train").metrics
        setup = time.perf_counter() - t0 - m["train_seconds"]  # loading, tokenizing
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB peak" if gpu else "on CPU"
        free()
    per_step = m["train_seconds"] / max(1, m["steps"])
    rows.append(
        (
            f"LoRA training, rank 16, batch {plan.batch_size}, {m['steps']} steps",
            f"{m['tokens_per_second']:,.0f} tokens/s, {per_step:.2f} s/step, {peak}, "
            f"{m['trainable_params'] / 1e6:.1f}M trainable, {setup:.0f} s setup",
        )
    )
    try:
        acc = accelerate_config(compose_config("sleep", ["accelerate=single_gpu"]).accelerate)
        settled = f"{acc['num_processes']} process, mixed_precision {acc['mixed_precision']}"
    except LaunchError as e:
        settled = f"refused: {str(e).split(': ', 1)[1]}"
    rows.append(("accelerate=single_gpu on this machine", settled))

    # 3. Share consolidation (conf/consolidation/share.yaml) of 3 and of 10 task adapters
    with stage("Share consolidation"):
        tasks = task_adapters(base, 10, out / "tasks")
        _, three_s = share(tasks[:3], base, out / "share3")
        ten, ten_s = share(tasks, base, out / "share10")
    rows += [
        ("Share consolidation, 3 task adapters (rank 16)", f"{three_s:.1f} s"),
        (
            "Share consolidation, 10 task adapters (rank 16)",
            f"{ten_s:.1f} s, mean rebuild error {ten.metrics['mean_recon_error']:.3f}",
        ),
    ]

    # 4. routed generation: the 10 task adapters loaded, each koan routed by its signature
    sigs = [f"E{i:04d} mistake number {i}" for i in range(10)] + [None]  # None: base model
    batch = [r["prompt"] for r in data[: plan.routed_prompts]]
    signatures = [sigs[i % len(sigs)] for i in range(len(batch))]
    with stage("routed generation"):
        t0 = time.perf_counter()
        routed = HFBackend(base, adapter=ten.adapter_dir, dtype=dtype, batch_size=len(batch))
        load_s = time.perf_counter() - t0
        assert routed.router is not None and len(routed.router.tasks) == 10
        generation(routed, batch[:2], 4, signatures=signatures[:2])
        rate, rate_s = generation(routed, batch, plan.routed_tokens, signatures=signatures)
        del routed
        free()
    rows.append(
        (
            f"routed generation, 10 adapters + base, batch {len(batch)} x "
            f"{plan.routed_tokens} new tokens",
            f"{rate:,.0f} tokens/s ({rate_s:.1f} s: 11 groups of one adapter each; "
            f"loading the 10 adapters {load_s:.1f} s)",
        )
    )

    # projections: model time at the measured rates, plus the sandbox's verdicts
    def koans(n: int, tokens_per_s: float) -> float:
        calls = n * args.calls
        return calls * args.reply_tokens / tokens_per_s + calls * args.sandbox_s / args.workers

    proj = [
        ("a day of 500 koans, base model", koans(500, loop)),
        ("a day of 500 koans, routed over 10 task adapters", koans(500, rate)),
        (f"a sleep of 300 steps (rank 16, batch {plan.batch_size})", setup + 300 * per_step),
        ("an eval of 94 koans (the frozen suite, candidate only)", koans(94, loop)),
    ]
    print()
    print("| what | measured |")
    print("|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")
    print()
    print(
        f"Projected ({args.calls:g} model calls per koan of {args.reply_tokens} tokens each at "
        f"the rates above, {args.sandbox_s} s per sandbox verdict on {args.workers} workers):"
    )
    print()
    print("| stage | projected time |")
    print("|---|---|")
    for what, seconds in proj:
        print(f"| {what} | {seconds / 60:.1f} min |")
    print()
    print(f"gpu_cost: done in {time.perf_counter() - t_all:.0f} s")
    json.dump(
        {"rows": rows, "projected_s": dict(proj), "shape": args.shape, "device": device},
        (out / "gpu_cost.json").open("w"),
        indent=2,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
