"""How a sleep trains its task adapter, chosen by the Hydra group `adapter` (`_target_`): a fresh
LoRA, or coefficients in the lineage's Share basis. Each says what it needs from the cycle."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sleepy.sleep.coefficients import train_coefficients
from sleepy.sleep.train import TrainResult, train_adapter


class LoRA:
    """A fresh LoRA adapter per task (trl's SFTTrainer over peft)."""

    # True: a new task trains in the basis of the lineage's consolidation: the cycle sets
    # adapter.bundle to the lineage's last bundle, and the consolidation must give new tasks a
    # place in its basis (its p and phi)
    in_basis = False

    @classmethod
    def train(
        cls, cfg: DictConfig, dataset, out: Path, extra_info: dict
    ) -> tuple[TrainResult, str]:
        """The adapter trained on `dataset` into `out`, and the method that trained it."""
        result = train_adapter(
            dataset, cfg.model.path, cfg.adapter, out, seed=cfg.seed, extra_info=extra_info
        )
        return result, "lora"


class Coefficients(LoRA):
    """Share Phase 2 / UWSH: a new task as coefficients in the frozen basis of the lineage's
    bundle (adapter.bundle); with no basis yet, an ordinary LoRA that shapes it."""

    in_basis = True

    @classmethod
    def train(
        cls, cfg: DictConfig, dataset, out: Path, extra_info: dict
    ) -> tuple[TrainResult, str]:
        if not cfg.adapter.bundle:
            return LoRA.train(cfg, dataset, out, extra_info)
        # the basis's consolidation says how a new task lives in it (uwsh: no phi)
        result = train_coefficients(
            dataset,
            cfg.model.path,
            cfg.adapter.bundle,
            cfg.adapter,
            out,
            seed=cfg.seed,
            p=int(cfg.consolidation.p),
            phi=int(cfg.consolidation.phi),
            extra_info=extra_info,
        )
        return result, "coefficients"
