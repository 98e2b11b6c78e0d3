"""Benchmark: LoRA training throughput on sleepy-tiny, sleepy's CPU settings vs trl's defaults."""

from __future__ import annotations

import time


def _rows(n: int) -> list[dict]:
    import random

    from sleepy.koans.generate import draft, select_patterns
    from sleepy.prompts.edits import get_edit_format
    from sleepy.prompts.template import PromptTemplate

    fmt, tpl = get_edit_format("search_replace"), PromptTemplate.load("tiny")
    pats = select_patterns("lifetimes")
    rows = []
    for i in range(n):
        k = draft(pats[i % len(pats)], 77, i)
        rows.append(
            {
                "prompt": tpl.messages(k, k.buggy_code, "", [], "search_replace"),
                "completion": [
                    {"role": "assistant", "content": fmt.render(k.buggy_code, k.correct_code)}
                ],
            }
        )
    random.Random(0).shuffle(rows)
    return rows


def _throughput(rows, steps: int, cpu_settings: bool) -> float:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from sleepy.sleep.train import _length
    from sleepy.tiny import MODEL_DIR

    tok = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    ds = Dataset.from_list(rows)
    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR), dtype=torch.float32)
    extra = (
        {"bf16": False, "gradient_checkpointing": False}
        if cpu_settings
        else {"bf16": True, "gradient_checkpointing": True}
    )
    args = SFTConfig(
        output_dir="/tmp/sleepy-bench-train",
        max_steps=steps,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        max_length=768,
        completion_only_loss=True,
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        logging_steps=1000,
        disable_tqdm=True,
        **extra,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=tok,
        peft_config=LoraConfig(
            r=8,
            lora_alpha=16,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    tokens = sum(_length(tok, r) for r in rows[: steps * 8])
    return tokens / seconds


def bench_training(steps: int = 8) -> dict:
    from rich.console import Console

    console = Console()
    console.rule("[bold]training: LoRA on sleepy-tiny (trl SFTTrainer, batch 8, rank 8)")
    rows = _rows(steps * 8)
    ours = _throughput(rows, steps, cpu_settings=True)
    try:
        default = _throughput(rows, steps, cpu_settings=False)
    except Exception as e:  # bf16 may be unsupported on this CPU: the reason is the result
        console.print(
            f"trl defaults (bf16 + gradient checkpointing) failed: {str(e).splitlines()[0]}"
        )
        default = float("nan")
    console.print(
        f"sleepy CPU settings {ours:.0f} tokens/s; trl defaults (bf16 + gradient checkpointing) "
        f"{default:.0f} tokens/s = {ours / default:.2f}x faster"
    )
    return {"tokens_per_s": ours, "trl_default_tokens_per_s": default}
