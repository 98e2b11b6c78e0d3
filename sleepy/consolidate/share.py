"""Share (arXiv 2602.06043): LoRA adapters as coefficients in a shared low-rank basis.

Per adapted layer and per factor, the T adapters' factors are stacked side by side and centred;
the top-k left singular vectors are the shared basis. Paper names:
    beta  (n x k)   basis for the B factors (B_t is n x r, n = out features)
    alpha (d x k)   basis for the A factors (A_t^T is d x r, d = in features)
    eps_beta, eps_alpha (k x r)   per-task coefficients, so B_t ~ beta eps_beta + mu_B
    k   principal count (explained-variance threshold, clamped to [k_min, k_max])
    p   pseudo-rank of a new task's coefficients (k x p)
    phi temporary basis vectors a new task may add (merged in at Phase 3)
"""

from __future__ import annotations

import torch

from sleepy.adapters.bundle import FactorBasis, LayerShare


def choose_k(s: torch.Tensor, threshold: float, k_min: int, k_max: int) -> int:
    """Smallest k whose components explain `threshold` of the variance, clamped to [k_min, k_max].

    A factors stay near their random init and spread their variance evenly, so the threshold alone
    would keep almost every component: the clamp bounds it.
    """
    var = s.double() ** 2
    total = var.sum()
    if total <= 0:
        return max(1, min(k_min, len(s)))
    cum = torch.cumsum(var, 0) / total
    k = int((cum < threshold).sum().item()) + 1
    return max(1, min(max(k, k_min), k_max, len(s)))


def fit_basis(
    factors: list[torch.Tensor],
    threshold: float | None = None,
    k_min: int = 1,
    k_max: int | None = None,
    k: int | None = None,
) -> FactorBasis:
    """Phase 1 for one factor side: factors are (m x r_t) matrices, stacked to (m x sum r_t).

    k is given, or chosen by `threshold` within [k_min, k_max] (consolidation.threshold, ...).
    """
    if k is None and (threshold is None or k_max is None):
        raise ValueError("fit_basis: give k, or threshold and k_max")
    D = torch.cat([f.double() for f in factors], dim=1)
    mu = D.mean(dim=1)
    U, s, _ = torch.linalg.svd(D - mu[:, None], full_matrices=False)
    kk = k if k is not None else choose_k(s, threshold, k_min, k_max)
    kk = min(kk, U.shape[1])
    var = s**2
    explained = float(var[:kk].sum() / var.sum()) if var.sum() > 0 else 1.0
    return FactorBasis(U[:, :kk].contiguous(), mu, explained)


def fit_layer(tasks: dict[str, tuple[torch.Tensor, torch.Tensor]], **basis_kw) -> LayerShare:
    """Phase 1 for one layer. tasks: name -> (A (r x d), B (n x r)) in PEFT's convention."""
    names = list(tasks)
    beta = fit_basis([tasks[t][1] for t in names], **basis_kw)
    alpha = fit_basis([tasks[t][0].T for t in names], **basis_kw)
    layer = LayerShare(beta, alpha)
    for t in names:
        A, B = tasks[t]
        layer.eps_beta[t] = beta.coefficients(B.double())
        layer.eps_alpha[t] = alpha.coefficients(A.T.double())
    return layer


def merge_layers(
    earlier: dict[str, LayerShare],
    new: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]],
    pool: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] | None = None,
    **basis_kw,
) -> tuple[dict[str, LayerShare], dict[str, float]]:
    """Phase 3 over every adapted layer: rebuild each earlier task from basis and coefficients
    (a task known there keeps that version), stack with the new tasks, re-SVD, recompute every
    task's coefficients. `pool` adapters (UWSH) shape the basis but are no task.

    earlier: layer -> LayerShare; new, pool: name -> {layer: (A (r x d), B (n x r))}.
    Returns the layers and each task's relative reconstruction error of delta-W over all layers.
    """
    tasks: dict[str, dict] = {}
    if earlier:
        for t in next(iter(earlier.values())).eps_beta:
            tasks[t] = {m: layer.factors(t) for m, layer in earlier.items()}
    for t, f in new.items():
        tasks.setdefault(t, {m: (A.double(), B.double()) for m, (A, B) in f.items()})
    fitted = {**tasks, **(pool or {})}
    modules = sorted(set.intersection(*(set(f) for f in fitted.values())))
    layers = {m: fit_layer({t: f[m] for t, f in fitted.items()}, **basis_kw) for m in modules}
    errors = {}
    for t, f in tasks.items():
        num = den = 0.0
        for m, layer in layers.items():
            A, B = f[m]
            ref = B @ A
            num += float(torch.linalg.norm(layer.delta(t) - ref) ** 2)
            den += float(torch.linalg.norm(ref) ** 2)
        errors[t] = (num / max(den, 1e-30)) ** 0.5
    return layers, errors


def average_coefficients(
    layer: LayerShare, tasks: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the tasks' coefficients, as an (A, B) LoRA pair.

    Rebuilding is affine, so this is the mean of the rebuilt factors. Tasks of different rank (a
    LoRA task and a Phase-2 task of pseudo-rank p) are padded with zero factor columns first:
    a column a task does not have contributes nothing to its delta-W.
    """
    pairs = [layer.factors(t) for t in tasks or list(layer.eps_beta)]
    r = max(A.shape[0] for A, _ in pairs)
    As = [torch.cat([A, A.new_zeros(r - A.shape[0], A.shape[1])]) for A, _ in pairs]
    Bs = [torch.cat([B, B.new_zeros(B.shape[0], r - B.shape[1])], 1) for _, B in pairs]
    return torch.stack(As).mean(0), torch.stack(Bs).mean(0)
