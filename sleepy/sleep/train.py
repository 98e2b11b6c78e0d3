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
    dataset: Any  # the rows that fit adapter.max_length (less those held out)
    too_long: int  # rows dropped for not fitting
    max_length: int  # adapter.max_length
    eval_dataset: Any = None  # rows held out for the eval loss (adapter.eval_fraction > 0)

    def rows(self) -> str:
        """How many rows train, and why that is fewer than curated when some were dropped or
        held out: "30 rows (4 dropped as longer than adapter.max_length=512)"."""
        n = len(self.dataset)
        why = []
        if self.too_long:
            why.append(
                f"{self.too_long} dropped as longer than adapter.max_length={self.max_length}"
            )
        if self.eval_dataset is not None:
            why.append(f"{len(self.eval_dataset)} held out for the eval loss")
        return f"{n} row{'s' if n != 1 else ''}" + (f" ({', '.join(why)})" if why else "")


def hold_out(dataset, fraction: float, seed: int):
    """(training rows, held-out rows): `fraction` of the rows, at least one, held out for the eval
    loss; no split (None) when `fraction` is 0 or there are fewer than 2 rows to split."""
    if fraction <= 0:
        return dataset, None
    if len(dataset) < 2:
        from sleepy.console import say

        say(f"adapter.eval_fraction={fraction:g}: {len(dataset)} row is too few to hold one out")
        return dataset, None
    n = min(len(dataset) - 1, max(1, round(fraction * len(dataset))))
    split = dataset.train_test_split(test_size=n, seed=seed)
    return split["train"], split["test"]


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
    dataset, held_out = hold_out(dataset, float(adapter_cfg.eval_fraction), seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    return Setup(model, tokenizer, dataset, too_long, int(adapter_cfg.max_length), held_out)


@dataclass
class Fitted:
    """How a training run went: the seconds it took and, when early stopping ended it before
    its last step, the step and why."""

    seconds: float
    stopped_at: int | None = None
    stop_reason: str | None = None


def final_loss(trainer, key: str = "loss") -> float:
    """The last `key` ("loss", "eval_loss") the trainer logged; NaN when none was."""
    return next((h[key] for h in reversed(trainer.state.log_history) if key in h), float("nan"))


def fit(trainer, description: str, adapter_cfg) -> Fitted:
    """Run the trainer as one bar on sleepy's display, stopping early when adapter.early_stopping
    says so, and warn when it trained so many epochs that it may be memorising its rows."""
    from sleepy.console import say
    from sleepy.sleep.progress import show_training  # imports transformers
    from sleepy.sleep.stopping import memorising, stoppers

    stops = stoppers(adapter_cfg, held_out=trainer.eval_dataset is not None)
    for callback in stops:
        trainer.add_callback(callback)
    rows = len(trainer.train_dataset)
    bar = show_training(trainer, description, rows, stops)
    t0 = time.time()
    try:
        trainer.train()
    finally:
        bar.close(failed=True)  # a no-op after a finished run: on_train_end closed it
    seconds = time.time() - t0
    warning = memorising(trainer.state.epoch or 0.0, rows, final_loss(trainer), adapter_cfg)
    if warning and is_main_process():
        say(warning)
    stopped = next((s for s in stops if s.stopped_at is not None), None)
    if stopped is None:
        return Fitted(seconds)
    return Fitted(seconds, stopped.stopped_at, stopped.reason)


def sft_config(adapter_cfg, out_dir: Path, seed: int, held_out: bool = False, **overrides):
    """trl's SFTConfig from the `adapter` group, the same for LoRA and coefficient training;
    `held_out`: evaluate the held-out rows every logging_steps."""
    import torch
    from trl import SFTConfig

    from sleepy.sleep.stopping import eval_args

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
    if held_out:
        args |= eval_args(adapter_cfg)
    return SFTConfig(**(args | overrides))


def run_metrics(trainer, ready: Setup, trainable: int, fitted: Fitted) -> dict:
    """What the adapter's metadata and MLflow (as train_<key>) keep of its training: the rows,
    steps and epochs trained, the final loss, and where early stopping ended it and why (None
    when it ran every step)."""
    metrics = {
        "rows": len(ready.dataset),
        "dropped_too_long": ready.too_long,
        "trainable_params": trainable,
        "train_seconds": round(fitted.seconds, 2),
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0.0, 2),
        "final_loss": final_loss(trainer),
        "stopped_early_at": fitted.stopped_at,
        "stop_reason": fitted.stop_reason,
    }
    if ready.eval_dataset is not None:
        metrics["eval_rows"] = len(ready.eval_dataset)
        metrics["final_eval_loss"] = final_loss(trainer, "eval_loss")
    return metrics


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
    dataset, tokenizer = ready.dataset, ready.tokenizer
    lora = LoraConfig(
        r=adapter_cfg.rank,
        lora_alpha=adapter_cfg.alpha,
        lora_dropout=adapter_cfg.dropout,
        target_modules=list(adapter_cfg.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    args = sft_config(adapter_cfg, out_dir, seed, held_out=ready.eval_dataset is not None)
    trainer = SFTTrainer(
        model=ready.model,
        args=args,
        train_dataset=dataset,
        eval_dataset=ready.eval_dataset,
        processing_class=tokenizer,
        peft_config=lora,
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    fitted = fit(trainer, f"train LoRA r{adapter_cfg.rank} on {ready.rows()}", adapter_cfg)
    adapter_dir = out_dir / "adapter"
    if is_main_process():  # under accelerate launch the others trained the same weights
        trainer.model.save_pretrained(str(adapter_dir))
    tokens = sum(_length(tokenizer, row) for row in dataset)
    metrics = run_metrics(trainer, ready, trainable, fitted)
    seconds = fitted.seconds
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
