"""Train a LoRA adapter on a curated SFT set with trl's SFTTrainer and peft, on CPU by default."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleepy.adapters import AdapterInfo, fingerprint, write_info
from sleepy.sleep.launch import is_main_process


@dataclass
class TrainResult:
    adapter_dir: Path
    info: AdapterInfo
    metrics: dict
    log_history: list[dict]


def dataset_hash(dataset) -> str:
    h = hashlib.sha256()
    for row in dataset:
        h.update(json.dumps([row["prompt"], row["completion"]], sort_keys=True).encode())
    return h.hexdigest()[:16]


def _length(tokenizer, row) -> int:
    ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return len(ids)


def drop_too_long(dataset, tokenizer, max_length: int):
    """trl truncates long rows, which cuts the completion and trains on nothing: drop them instead."""
    keep = [i for i, row in enumerate(dataset) if _length(tokenizer, row) <= max_length]
    return dataset.select(keep), len(dataset) - len(keep)


@dataclass
class Setup:
    """What LoRA and coefficient training both start from."""

    model: Any  # the base model, float32
    tokenizer: Any
    dataset: Any  # the rows that fit adapter.max_length
    too_long: int  # rows dropped for not fitting
    max_length: int  # adapter.max_length

    def rows(self) -> str:
        """How many rows train, and why that is fewer than curated when some were dropped:
        "30 rows (4 dropped as longer than adapter.max_length=512)"."""
        n = len(self.dataset)
        why = (
            f" ({self.too_long} dropped as longer than adapter.max_length={self.max_length})"
            if self.too_long
            else ""
        )
        return f"{n} row{'s' if n != 1 else ''}{why}"


def setup(dataset, base_model: str | Path, adapter_cfg, seed: int) -> Setup:
    """The base model and its tokenizer after seeding torch, and the rows short enough to train
    on; a ValueError that names the fix when none is."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset, too_long = drop_too_long(dataset, tokenizer, adapter_cfg.max_length)
    if len(dataset) == 0:
        raise ValueError(
            f"no training rows fit adapter.max_length={adapter_cfg.max_length} "
            f"({too_long} dropped as too long): raise adapter.max_length"
        )
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    return Setup(model, tokenizer, dataset, too_long, int(adapter_cfg.max_length))


def fit(trainer, description: str) -> float:
    """Run the trainer as one bar on sleepy's display; the seconds it took."""
    from sleepy.sleep.progress import show_training  # imports transformers

    bar = show_training(trainer, description)
    t0 = time.time()
    try:
        trainer.train()
    finally:
        bar.close(failed=True)  # a no-op after a finished run: on_train_end closed it
    return time.time() - t0


def sft_config(adapter_cfg, out_dir: Path, seed: int, **overrides):
    """trl's SFTConfig from the `adapter` group, the same for LoRA and coefficient training."""
    import torch
    from trl import SFTConfig

    on_cpu = not torch.cuda.is_available()
    args = dict(
        output_dir=str(out_dir / "trainer"),
        max_steps=adapter_cfg.max_steps or -1,
        num_train_epochs=adapter_cfg.epochs or 1,
        per_device_train_batch_size=adapter_cfg.batch_size,
        learning_rate=adapter_cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=adapter_cfg.warmup_steps,
        max_length=adapter_cfg.max_length,
        completion_only_loss=True,
        # On CPU both make a step 1.5x-12x slower: trl turns them on by default.
        bf16=False if on_cpu else bool(adapter_cfg.bf16),
        gradient_checkpointing=False if on_cpu else bool(adapter_cfg.gradient_checkpointing),
        use_cpu=on_cpu,
        logging_steps=adapter_cfg.logging_steps,  # adapter/lora.yaml; >= 1 (sleepy.config)
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
    )
    return SFTConfig(**(args | overrides))


def run_metrics(trainer, dataset, too_long: int, trainable: int, seconds: float) -> dict:
    return {
        "rows": len(dataset),
        "dropped_too_long": too_long,
        "trainable_params": trainable,
        "train_seconds": round(seconds, 2),
        "steps": trainer.state.global_step,
        "final_loss": next(
            (h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), float("nan")
        ),
    }


def adapter_info(
    dataset, base_model, method: str, config: dict, metrics: dict, extra_info: dict | None = None
) -> AdapterInfo:
    """What an adapter was trained on, read off its dataset's columns."""

    def column(name: str) -> list[str]:
        return sorted(set(dataset[name])) if name in dataset.column_names else []

    return AdapterInfo(
        base_model=str(base_model),
        base_model_fingerprint=fingerprint(base_model),
        method=method,
        dataset_hash=dataset_hash(dataset),
        koan_ids=column("koan_id"),
        signatures=column("signature"),
        families=column("family"),
        config=config,
        metrics=metrics,
        **(extra_info or {}),
    )


def train_adapter(
    dataset,
    base_model: str | Path,
    adapter_cfg,
    out_dir: str | Path,
    seed: int = 0,
    extra_info: dict | None = None,
) -> TrainResult:
    """LoRA on `dataset` (conversational prompt/completion rows); saves adapter + metadata to out_dir."""
    from peft import LoraConfig
    from trl import SFTTrainer

    out_dir = Path(out_dir)
    ready = setup(dataset, base_model, adapter_cfg, seed)
    dataset, tokenizer, too_long = ready.dataset, ready.tokenizer, ready.too_long
    lora = LoraConfig(
        r=adapter_cfg.rank,
        lora_alpha=adapter_cfg.alpha,
        lora_dropout=adapter_cfg.dropout,
        target_modules=list(adapter_cfg.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    args = sft_config(adapter_cfg, out_dir, seed)
    trainer = SFTTrainer(
        model=ready.model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    seconds = fit(trainer, f"train LoRA r{adapter_cfg.rank} on {ready.rows()}")
    adapter_dir = out_dir / "adapter"
    if is_main_process():  # under accelerate launch the others trained the same weights
        trainer.model.save_pretrained(str(adapter_dir))
    tokens = sum(_length(tokenizer, row) for row in dataset)
    metrics = run_metrics(trainer, dataset, too_long, trainable, seconds)
    # rows seen by every process: batch_size is per process (per GPU)
    seen = metrics["steps"] * adapter_cfg.batch_size * int(os.environ.get("WORLD_SIZE", "1"))
    metrics["tokens_per_second"] = round(
        tokens * max(1.0, seen / len(dataset)) / max(seconds, 1e-9), 1
    )
    from omegaconf import OmegaConf

    cfg_dict = (
        adapter_cfg
        if isinstance(adapter_cfg, dict)
        else OmegaConf.to_container(adapter_cfg, resolve=True)
    )
    info = adapter_info(dataset, base_model, "lora", cfg_dict, metrics, extra_info)
    if is_main_process():
        write_info(adapter_dir, info)
    return TrainResult(adapter_dir, info, metrics, list(trainer.state.log_history))
