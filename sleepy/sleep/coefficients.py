"""Phase-2 training: a new task as coefficients in a frozen Share/UWSH basis (trl's SFTTrainer).

The result is exported as ordinary LoRA factors (A = (alpha eps_alpha)^T, B = beta eps_beta) so the
consolidation step and any PEFT user treat it like every other adapter.
"""

from __future__ import annotations

from pathlib import Path

from sleepy.adapters.bundle import load_bundle
from sleepy.adapters.coefficients import attach, detach, trainable_parameters
from sleepy.adapters.lora_io import write_lora
from sleepy.sleep.launch import is_main_process
from sleepy.sleep.train import TrainResult, adapter_info, fit, run_metrics, setup, sft_config


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
    from trl import SFTTrainer

    out_dir = Path(out_dir)
    ready = setup(dataset, base_model, adapter_cfg, seed)
    model, dataset = ready.model, ready.dataset
    layers = load_bundle(bundle_dir)
    wrapped = attach(model, layers, p=p, phi=phi, seed=seed)
    trainable = trainable_parameters(wrapped)
    # the coefficients start small and random: a higher rate than LoRA's, no warmup
    args = sft_config(
        adapter_cfg,
        out_dir,
        seed,
        held_out=ready.eval_dataset is not None,
        warmup_steps=0,
        learning_rate=adapter_cfg.coeff_learning_rate,  # adapter/coefficients.yaml
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=ready.eval_dataset,
        processing_class=ready.tokenizer,
    )
    fitted = fit(trainer, f"train coefficients (p={p}) on {ready.rows()}", adapter_cfg)
    factors = detach(model, wrapped)
    metrics = run_metrics(trainer, ready, trainable, fitted)
    info = adapter_info(
        dataset,
        base_model,
        "coefficients",
        {"p": p, "phi": phi, "bundle": str(bundle_dir)},
        metrics,
        extra_info,
    )
    like = next(Path(bundle_dir, "tasks").iterdir())
    adapter_dir = out_dir / "adapter"
    if is_main_process():  # under accelerate launch the others trained the same coefficients
        write_lora(factors, like, adapter_dir, info)
    return TrainResult(adapter_dir, info, metrics, list(trainer.state.log_history))
