"""The Share bundle's format: per adapted layer a basis for each LoRA factor (beta for B, alpha
for A^T, each with its mean column) and every task's coefficients in it, in share.safetensors,
beside router.json and one plain PEFT adapter per task (tasks/<name>/). Consolidation writes it;
coefficient training and the backends read it.

    beta  (n x k), mu_beta (n,)     B_t ~ beta eps_beta[t] + mu_beta       (eps_beta: k x r_t)
    alpha (d x k), mu_alpha (d,)    A_t^T ~ alpha eps_alpha[t] + mu_alpha  (eps_alpha: k x r_t)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

BUNDLE_WEIGHTS = "share.safetensors"


@dataclass
class FactorBasis:
    """One factor side of one layer: orthonormal basis U (m x k), the mean column mu (m,)."""

    U: torch.Tensor
    mu: torch.Tensor
    explained: float  # share of the centred variance the kept components explain

    @property
    def k(self) -> int:
        return self.U.shape[1]

    def coefficients(self, F: torch.Tensor) -> torch.Tensor:
        """Analytic coefficients U^T (F - mu): the least-squares solution since U is orthonormal."""
        return self.U.T @ (F - self.mu[:, None])

    def rebuild(self, eps: torch.Tensor) -> torch.Tensor:
        return self.U @ eps + self.mu[:, None]


@dataclass
class LayerShare:
    """Both sides of one layer: beta for B (n x k), alpha for A^T (d x k), and every task's coefficients."""

    beta: FactorBasis
    alpha: FactorBasis
    eps_beta: dict[str, torch.Tensor] = field(default_factory=dict)  # task -> k x r_t
    eps_alpha: dict[str, torch.Tensor] = field(default_factory=dict)  # task -> k x r_t

    def factors(self, task: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(A (r x d), B (n x r)) of a task, rebuilt from basis and coefficients."""
        B = self.beta.rebuild(self.eps_beta[task])
        A = self.alpha.rebuild(self.eps_alpha[task]).T
        return A, B

    def delta(self, task: str, scale: float = 1.0) -> torch.Tensor:
        A, B = self.factors(task)
        return scale * B @ A


def load_bundle(bundle_dir: str | Path) -> dict[str, LayerShare]:
    """The Share basis (and every task's coefficients) saved by `Share.consolidate`."""
    path = Path(bundle_dir) / BUNDLE_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"{bundle_dir}: no share.safetensors — not a Share bundle")
    t = {k: v.double() for k, v in load_file(str(path)).items()}
    layers: dict[str, LayerShare] = {}
    for key in t:
        if key.endswith(".mu_beta"):
            m = key[: -len(".mu_beta")]
            layers[m] = LayerShare(
                FactorBasis(t[f"{m}.beta"], t[f"{m}.mu_beta"], 1.0),
                FactorBasis(t[f"{m}.alpha"], t[f"{m}.mu_alpha"], 1.0),
            )
    for key, v in t.items():
        for side in ("eps_beta", "eps_alpha"):
            if key.endswith(f".{side}"):
                rest = key[: -len(side) - 1]
                m, _, task = rest.rpartition(".")
                if m in layers:
                    getattr(layers[m], side)[task] = v
    return layers


def save_bundle(layers: dict[str, LayerShare], tasks: list[str], bundle_dir: str | Path) -> Path:
    """Write every layer's bases and these tasks' coefficients (as load_bundle reads them); a
    UWSH pool adapter shaped the bases but is no task, so it is not written."""
    bundle = Path(bundle_dir)
    bundle.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for m, layer in layers.items():
        tensors[f"{m}.beta"], tensors[f"{m}.mu_beta"] = layer.beta.U, layer.beta.mu
        tensors[f"{m}.alpha"], tensors[f"{m}.mu_alpha"] = layer.alpha.U, layer.alpha.mu
        for task in tasks:
            tensors[f"{m}.{task}.eps_beta"] = layer.eps_beta[task]
            tensors[f"{m}.{task}.eps_alpha"] = layer.eps_alpha[task]
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, str(bundle / BUNDLE_WEIGHTS))
    return bundle
