"""Phase-2 training: a new task as coefficients in a frozen Share/UWSH basis (trl's SFTTrainer).

The result is exported as ordinary LoRA factors (A = (alpha eps_alpha)^T, B = beta eps_beta) so the
consolidation step and any PEFT user treat it like every other adapter.
"""

from __future__ import annotations

import time
from pathlib import Path

from sleepy.adapters import AdapterInfo, fingerprint
from sleepy.train import TrainResult, dataset_hash, drop_too_long


def train_coefficients(
    dataset,
    base_model: str | Path,
    bundle_dir: str | Path,
    adapter_cfg,
    out_dir: str | Path,
    seed: int = 0,
    p: int = 2,
    phi: int = 0,
    extra_info: dict | None = None,
) -> TrainResult:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from sleepy.consolidate.coeffs import attach, detach, trainable_parameters
    from sleepy.consolidate.lora_io import write_lora
    from sleepy.consolidate.methods import load_bundle

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    dataset, too_long = drop_too_long(dataset, tokenizer, adapter_cfg.max_length)
    if len(dataset) == 0:
        raise ValueError(f"no training rows fit adapter.max_length={adapter_cfg.max_length}")
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    layers = load_bundle(bundle_dir)
    wrapped = attach(model, layers, p=p, phi=phi, seed=seed)
    trainable = trainable_parameters(wrapped)
    args = SFTConfig(
        output_dir=str(out_dir / "trainer"),
        max_steps=adapter_cfg.max_steps or -1,
        num_train_epochs=adapter_cfg.get("epochs") or 1,
        per_device_train_batch_size=adapter_cfg.batch_size,
        learning_rate=adapter_cfg.get("coeff_learning_rate", adapter_cfg.learning_rate * 5),
        lr_scheduler_type="cosine",
        max_length=adapter_cfg.max_length,
        completion_only_loss=True,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=max(1, adapter_cfg.get("logging_steps", 5)),
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    factors = detach(model, wrapped)
    metrics = {
        "rows": len(dataset),
        "dropped_too_long": too_long,
        "trainable_params": trainable,
        "train_seconds": round(seconds, 2),
        "steps": trainer.state.global_step,
        "final_loss": next(
            (h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), float("nan")
        ),
    }
    info = AdapterInfo(
        base_model=str(base_model),
        base_model_fingerprint=fingerprint(base_model),
        method="coefficients",
        dataset_hash=dataset_hash(dataset),
        koan_ids=sorted(set(dataset["koan_id"])) if "koan_id" in dataset.column_names else [],
        signatures=sorted(set(dataset["signature"])) if "signature" in dataset.column_names else [],
        families=sorted(set(dataset["family"])) if "family" in dataset.column_names else [],
        config={"p": p, "phi": phi, "bundle": str(bundle_dir)},
        metrics=metrics,
        **(extra_info or {}),
    )
    like = next(Path(bundle_dir, "tasks").iterdir())
    adapter_dir = write_lora(factors, like, out_dir / "adapter", info)
    return TrainResult(adapter_dir, info, metrics, list(trainer.state.log_history))
