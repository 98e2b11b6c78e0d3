"""Training health: the training bar's closing line says the steps, epochs and final loss;
adapter.early_stopping stops a real trl run on sleepy-tiny once the loss stops improving and
records where and why; many epochs over a few rows with the loss near zero is one warning line."""

from __future__ import annotations

import io
import math

import pytest
from datasets import Dataset
from rich.console import Console
from support import stage_config

from sleepy.adapters import load_adapter_info
from sleepy.console import Display
from sleepy.sleep.train import train_adapter
from sleepy.tiny import MODEL_DIR


def rows(n: int) -> Dataset:
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": f"fix koan {i}: let x = 1; x = 2;"}],
                "completion": [{"role": "assistant", "content": f"let mut x = {i};"}],
            }
            for i in range(n)
        ]
    )


def train(tmp_path, dataset: Dataset, *overrides: str):
    """A real LoRA run on sleepy-tiny (two target modules, a loss logged every step) under a
    display of its own; the result and what the display printed."""
    cfg = stage_config(
        "sleep",
        tmp_path,
        "adapter.batch_size=2",
        "adapter.target_modules=[q_proj,v_proj]",
        "adapter.logging_steps=1",
        "adapter.warmup_steps=0",
        *overrides,
    )
    console = Console(file=io.StringIO(), width=400)
    with Display("sleepy-sleep", console=console, quiet=False, heartbeat=0):
        result = train_adapter(dataset, MODEL_DIR, cfg.adapter, tmp_path / "sleep")
    return result, console.file.getvalue()


@pytest.mark.parametrize("early", [True, False])
def test_early_stopping_ends_training_when_the_loss_stops_improving_by_min_delta(tmp_path, early):
    """No step lowers the loss by min_delta=100: with early_stopping the run ends after
    `patience` (2) flat logging intervals, at step 3 of 6, and the metrics (the adapter's
    metadata too) and the closing line say where and why; without it every step runs."""
    result, shown = train(
        tmp_path,
        rows(2),
        "adapter.max_steps=6",
        f"adapter.early_stopping={str(early).lower()}",
        "adapter.patience=2",
        "adapter.min_delta=100",
    )
    m = result.metrics
    saved = load_adapter_info(result.adapter_dir, MODEL_DIR).metrics
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert saved["steps"] == m["steps"] and saved["stop_reason"] == m["stop_reason"]
    # two rows in batches of two: one step an epoch
    assert m["epochs"] == pytest.approx(m["steps"]) and math.isfinite(m["final_loss"])
    if early:
        assert m["steps"] == 3 and len(losses) == 3 and m["stopped_early_at"] == 3
        assert m["stop_reason"] == (
            f"training loss {losses[-1]:.3f}, not below its best {losses[0]:.3f} by 100 "
            "for 2 logging intervals"
        )
        closing = (
            f"3/6  3 steps, 3.0 epochs over 2 rows, final loss {losses[-1]:.3f}; "
            f"stopped early at step 3: {m['stop_reason']}"
        )
    else:
        assert m["steps"] == 6 and len(losses) == 6
        assert m["stopped_early_at"] is None and m["stop_reason"] is None
        closing = f"6/6  6 steps, 6.0 epochs over 2 rows, final loss {losses[-1]:.3f}  "
    assert f"✓ train LoRA r16 on 2 rows {closing}" in shown
    assert "memorising" not in shown  # 6 epochs or fewer: under adapter.warn_epochs (8)


def test_early_stopping_on_held_out_rows_watches_their_eval_loss(tmp_path):
    """adapter.eval_fraction=0.5 holds 2 of 4 rows out and evaluates them every logging step;
    early stopping (transformers' EarlyStoppingCallback) watches that eval loss, not the training
    loss, and stops after one evaluation without an improvement of min_delta."""
    result, shown = train(
        tmp_path,
        rows(4),
        "adapter.max_steps=8",
        "adapter.early_stopping=true",
        "adapter.patience=1",
        "adapter.min_delta=100",
        "adapter.eval_fraction=0.5",
    )
    m = result.metrics
    evals = [h["eval_loss"] for h in result.log_history if "eval_loss" in h]
    assert m["rows"] == 2 and m["eval_rows"] == 2
    assert m["steps"] == 2 and m["stopped_early_at"] == 2 and len(evals) == 2
    assert m["final_eval_loss"] == evals[-1]
    assert m["stop_reason"] == (
        f"eval loss {evals[-1]:.3f}, not below its best {evals[0]:.3f} by 100 for 1 evaluation"
    )
    assert "train LoRA r16 on 2 rows (2 held out for the eval loss) 2/8  2 steps" in shown
    assert f"eval loss {evals[-1]:.3f}; stopped early at step 2: eval loss" in shown


def test_many_epochs_over_few_rows_with_the_loss_near_zero_warns_of_memorising(tmp_path):
    """Twelve steps over two rows at a high learning rate drive the loss near zero: 12 epochs
    is more than adapter.warn_epochs (8), so one line says the rows may be memorised and how to
    stop sooner."""
    result, shown = train(tmp_path, rows(2), "adapter.max_steps=12", "adapter.learning_rate=1e-2")
    m = result.metrics
    assert m["steps"] == 12 and m["epochs"] == 12.0 and m["final_loss"] < 0.05
    warning = (
        f"trained 12.0 epochs over 2 rows (final loss {m['final_loss']:.3f}): it may be "
        "memorising them; adapter.early_stopping=true stops when the loss flattens"
    )
    assert shown.count(warning) == 1
    assert f"12/12  12 steps, 12.0 epochs over 2 rows, final loss {m['final_loss']:.3f}" in shown
