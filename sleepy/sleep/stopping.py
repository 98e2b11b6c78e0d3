"""When training stops, and whether it went on too long.

With adapter.early_stopping=true training stops once the loss has not improved by
adapter.min_delta for adapter.patience intervals in a row: the training loss as the trainer logs
it every adapter.logging_steps, or, with adapter.eval_fraction above 0, the loss on the rows held
out (transformers' EarlyStoppingCallback, evaluated every logging_steps). Either way the adapter
keeps the last step's weights. Each stopper records the step it stopped at and why.

After training, more than adapter.warn_epochs epochs over the rows with the loss near zero is
one warning line: the adapter has probably memorised them.
"""

from __future__ import annotations

from transformers import EarlyStoppingCallback, TrainerCallback

NEAR_ZERO = 0.05  # a final training loss below this, after many epochs, is memorising


def _times(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


class Stopper:
    """What an early-stopping callback records: the step it stopped training at and why."""

    stopped_at: int | None = None
    reason: str | None = None

    def _stop(self, state, control, reason: str) -> None:
        control.should_training_stop = True
        if self.stopped_at is None and state.global_step < state.max_steps:
            self.stopped_at, self.reason = state.global_step, reason


class LossPlateau(TrainerCallback, Stopper):
    """Stop once the training loss, as logged every logging_steps, has not gone below the best
    so far by `min_delta` for `patience` logs in a row."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.flat = 0  # logs in a row without an improvement

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        if self.best is None or loss < self.best - self.min_delta:
            self.best, self.flat = loss, 0
            return
        self.flat += 1
        if self.flat >= self.patience:
            self._stop(
                state,
                control,
                f"training loss {loss:.3f}, not below its best {self.best:.3f} by "
                f"{self.min_delta:g} for {_times(self.flat, 'logging interval')}",
            )


class EvalPlateau(EarlyStoppingCallback, Stopper):
    """transformers' EarlyStoppingCallback on the held-out rows' eval loss, saying why it
    stopped."""

    def __init__(self, patience: int, min_delta: float):
        super().__init__(early_stopping_patience=patience, early_stopping_threshold=min_delta)

    def on_train_begin(self, args, state, control, **kwargs):
        # its warning that the best weights are not loaded at the end is not for sleepy: the
        # adapter keeps the last step's weights, as the module says
        assert args.metric_for_best_model == "eval_loss" and args.eval_strategy != "no"

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        best = state.best_metric  # the trainer updates it after this callback
        super().on_evaluate(args, state, control, metrics, **kwargs)
        if (
            self.early_stopping_patience_counter >= self.early_stopping_patience
            and best is not None
        ):
            self._stop(
                state,
                control,
                f"eval loss {metrics['eval_loss']:.3f}, not below its best {best:.3f} by "
                f"{self.early_stopping_threshold:g} for "
                f"{_times(self.early_stopping_patience_counter, 'evaluation')}",
            )


def stoppers(adapter_cfg, held_out: bool) -> list:
    """The callbacks adapter.early_stopping asks for (none when it is off)."""
    if not adapter_cfg.early_stopping:
        return []
    kind = EvalPlateau if held_out else LossPlateau
    return [kind(int(adapter_cfg.patience), float(adapter_cfg.min_delta))]


def eval_args(adapter_cfg) -> dict:
    """SFTConfig settings that evaluate the held-out rows every logging_steps."""
    return dict(
        eval_strategy="steps",
        eval_steps=adapter_cfg.logging_steps,
        per_device_eval_batch_size=adapter_cfg.batch_size,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
    )


def memorising(epochs: float, rows: int, loss: float, adapter_cfg) -> str | None:
    """The warning for training that went more than adapter.warn_epochs epochs over its rows
    with the loss near zero, or None."""
    if not (epochs > adapter_cfg.warn_epochs and loss < NEAR_ZERO):
        return None
    fix = (
        "fewer adapter.max_steps, or a lower adapter.patience, stops it sooner"
        if adapter_cfg.early_stopping
        else "adapter.early_stopping=true stops when the loss flattens"
    )
    return (
        f"trained {epochs:.1f} epochs over {rows} row{'s' if rows != 1 else ''} "
        f"(final loss {loss:.3f}): it may be memorising them; {fix}"
    )
