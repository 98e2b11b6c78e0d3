"""Training as one bar on sleepy's display: steps, the latest loss (and eval loss, with rows held
out), the epoch and steps per second (off a terminal, the heartbeat line says the same: step
40/100 · loss 0.812 · epoch 1.50 · ...). Its closing line says what was trained ("250/250  250
steps, 13.8 epochs over 116 rows, final loss 0.002") and, when training stopped early, why.

trl's own per-step printout (a raw dict per logging step) and its tqdm bar are taken off the
trainer; the same numbers go to the log file and, when a run is active, to MLflow as train_loss
(and eval_loss).
"""

from __future__ import annotations

import logging
import time

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from sleepy.console import current, stage

log = logging.getLogger("sleepy.train")


class TrainingBar(TrainerCallback):
    """One bar from on_train_begin to on_train_end over `rows` training rows; `stops` are the
    early-stopping callbacks (sleepy.sleep.stopping), whose reason the closing line gives."""

    def __init__(self, description: str, rows: int = 0, stops: list | tuple = ()):
        self.description = description
        self.rows = rows
        self.stops = list(stops)
        self._stage = None
        self._bar = None
        self._t0 = 0.0
        self._loss: float | None = None
        self._eval_loss: float | None = None

    def _note(self, state) -> str:
        rate = state.global_step / max(time.monotonic() - self._t0, 1e-9)
        loss = f"loss {self._loss:.3f} · " if self._loss is not None else ""
        held = f"eval loss {self._eval_loss:.3f} · " if self._eval_loss is not None else ""
        epoch = f"epoch {state.epoch:.2f} · " if state.epoch is not None else ""
        return f"{loss}{held}{epoch}{rate:.2f} steps/s"

    def summary(self, state) -> str:
        """What was trained: "250 steps, 13.8 epochs over 116 rows, final loss 0.002", then the
        eval loss and why training stopped early, when it did."""
        rows = f"{self.rows} row{'s' if self.rows != 1 else ''}"
        parts = [f"{state.global_step} steps, {state.epoch or 0.0:.1f} epochs over {rows}"]
        if self._loss is not None:
            parts.append(f"final loss {self._loss:.3f}")
        if self._eval_loss is not None:
            parts.append(f"eval loss {self._eval_loss:.3f}")
        text = ", ".join(parts)
        stopped = next((s for s in self.stops if s.stopped_at is not None), None)
        if stopped is not None:
            text += f"; stopped early at step {stopped.stopped_at}: {stopped.reason}"
        return text

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.monotonic()
        self._stage = stage("train", self.description, total=state.max_steps or None, unit="step")
        self._bar = self._stage.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(completed=state.global_step, note=self._note(state))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        log.info("step %d: %s", state.global_step, logs)
        for key, name in (("loss", "train_loss"), ("eval_loss", "eval_loss")):
            if key not in logs:
                continue
            value = float(logs[key])
            if key == "loss":
                self._loss = value
            else:
                self._eval_loss = value
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_metric(name, value, step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(completed=state.global_step, note=self.summary(state))
        self.close()

    def close(self, failed: bool = False) -> None:
        """End the bar (train() raising skips on_train_end: call this from a finally)."""
        if self._stage is not None:
            err = RuntimeError("training stopped") if failed else None
            self._stage.__exit__(type(err) if err else None, err, None)
            self._stage = self._bar = None


def show_training(
    trainer, description: str, rows: int = 0, stops: list | tuple = ()
) -> TrainingBar:
    """Put the bar on `trainer` in place of transformers' printout and tqdm bar (kept with -v)."""
    display = current()
    if display is None or not display.verbose:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    bar = TrainingBar(description, rows, stops)
    trainer.add_callback(bar)
    return bar
