"""Phase 2 of Share (and UWSH-style training): a new task learns coefficients in a frozen basis.

    delta_W x = scale * [beta | phi_beta] eps_beta  ([alpha | phi_alpha] eps_alpha)^T x

Only eps_beta, eps_alpha ((k + phi) x p) and the optional phi temporary vectors train; the basis is a
frozen buffer. Both coefficient sides start small and random: zero on both is a saddle (no gradient).
"""

from __future__ import annotations

import torch
from torch import nn

from sleepy.adapters.bundle import LayerShare


class CoefficientLinear(nn.Module):
    """Wraps a frozen nn.Linear and adds the coefficient-parameterized low-rank update."""

    def __init__(
        self,
        base: nn.Linear,
        layer: LayerShare,
        p: int = 2,
        phi: int = 0,
        scale: float = 1.0,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.base = base
        for prm in self.base.parameters():
            prm.requires_grad_(False)
        dtype = base.weight.dtype
        self.register_buffer("beta", layer.beta.U.to(dtype))  # n x k, frozen
        self.register_buffer("alpha", layer.alpha.U.to(dtype))  # d x k, frozen
        n, d = self.beta.shape[0], self.alpha.shape[0]
        k = self.beta.shape[1], self.alpha.shape[1]
        g = generator
        self.phi_beta = (
            nn.Parameter(torch.randn(n, phi, generator=g, dtype=dtype) * init_std / n**0.5)
            if phi
            else None
        )
        self.phi_alpha = (
            nn.Parameter(torch.randn(d, phi, generator=g, dtype=dtype) * init_std / d**0.5)
            if phi
            else None
        )
        self.eps_beta = nn.Parameter(
            torch.randn(k[0] + phi, p, generator=g, dtype=dtype) * init_std
        )
        self.eps_alpha = nn.Parameter(
            torch.randn(k[1] + phi, p, generator=g, dtype=dtype) * init_std
        )
        self.scale = scale

    def basis(self) -> tuple[torch.Tensor, torch.Tensor]:
        beta = self.beta if self.phi_beta is None else torch.cat([self.beta, self.phi_beta], 1)
        alpha = self.alpha if self.phi_alpha is None else torch.cat([self.alpha, self.phi_alpha], 1)
        return beta, alpha

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This task's (A (p x d), B (n x p)) in PEFT's convention."""
        beta, alpha = self.basis()
        return (alpha @ self.eps_alpha).T, beta @ self.eps_beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, alpha = self.basis()
        h = (x @ alpha) @ self.eps_alpha  # (..., p)
        return self.base(x) + self.scale * (h @ self.eps_beta.T) @ beta.T


def attach(
    model: nn.Module,
    layers: dict[str, LayerShare],
    p: int = 2,
    phi: int = 0,
    scale: float = 1.0,
    seed: int = 0,
) -> dict[str, CoefficientLinear]:
    """Freeze the model and wrap each basis layer's linear (names as in the base model)."""
    for prm in model.parameters():
        prm.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    wrapped = {}
    for name, layer in layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        base = getattr(parent, child)
        if isinstance(base, CoefficientLinear):
            base = base.base
        if not isinstance(base, nn.Linear):
            raise TypeError(f"{name} is {type(base).__name__}, not nn.Linear: not a LoRA target")
        module = CoefficientLinear(base, layer, p=p, phi=phi, scale=scale, generator=g)
        setattr(parent, child, module)
        wrapped[name] = module
    return wrapped


def detach(
    model: nn.Module, wrapped: dict[str, CoefficientLinear]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Put the original linears back; return each layer's trained (A, B) factors (scale folded into B)."""
    out = {}
    for name, module in wrapped.items():
        A, B = module.factors()
        out[name] = (A.detach().double(), (module.scale * B).detach().double())
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.base)
    return out


def trainable_parameters(wrapped: dict[str, CoefficientLinear]) -> int:
    return sum(p.numel() for m in wrapped.values() for p in m.parameters() if p.requires_grad)
