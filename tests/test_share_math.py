"""Share's math against closed forms on random matrices."""

import torch

from sleepy.adapters.coefficients import CoefficientLinear, attach, detach, trainable_parameters
from sleepy.consolidate.share import (
    average_coefficients,
    choose_k,
    fit_basis,
    fit_layer,
    merge_layers,
)


def _tasks(T=3, r=4, n=24, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        f"t{i}": (
            torch.randn(r, d, generator=g, dtype=torch.float64),
            torch.randn(n, r, generator=g, dtype=torch.float64),
        )
        for i in range(T)
    }


def test_basis_is_orthonormal():
    layer = fit_layer(_tasks(), k=6)
    for basis in (layer.beta, layer.alpha):
        eye = basis.U.T @ basis.U
        assert torch.allclose(eye, torch.eye(basis.k, dtype=eye.dtype), atol=1e-10)


def test_full_k_reconstructs_stacked_factors_exactly():
    tasks = _tasks()
    layer = fit_layer(tasks, k=12)  # T * r = 12: every centred direction kept
    for t, (A, B) in tasks.items():
        A_hat, B_hat = layer.factors(t)
        assert torch.allclose(B_hat, B, atol=1e-5)
        assert torch.allclose(A_hat, A, atol=1e-5)


def test_analytic_coefficients_equal_least_squares():
    tasks = _tasks()
    layer = fit_layer(tasks, k=5)
    for t, (_, B) in tasks.items():
        lstsq = torch.linalg.lstsq(layer.beta.U, B - layer.beta.mu[:, None]).solution
        assert torch.allclose(layer.eps_beta[t], lstsq, atol=1e-8)


def test_truncated_k_loses_accuracy_and_threshold_is_clamped():
    s = torch.ones(40)  # flat spectrum, like near-random A factors
    assert choose_k(s, 0.6, 2, 8) == 8  # the threshold alone would keep 24
    s = torch.tensor([10.0, 1.0, 0.5, 0.1])
    assert choose_k(s, 0.6, 1, 8) == 1
    assert choose_k(s, 0.6, 2, 8) == 2
    basis = fit_basis([torch.randn(30, 6, dtype=torch.float64)], k=2)
    assert basis.explained < 1.0


def test_phase3_merge_keeps_earlier_tasks():
    tasks = _tasks(T=2)
    layer = fit_layer(tasks, k=8)
    new = _tasks(T=1, seed=7)
    merged, errors = merge_layers({"m": layer}, {"new": {"m": new["t0"]}}, k=12)
    assert set(errors) == {"t0", "t1", "new"}
    assert max(errors.values()) < 1e-6  # full k after the merge: every task is rebuilt exactly
    for t, (A, B) in tasks.items():
        assert torch.allclose(merged["m"].delta(t), B @ A, atol=1e-6)
    _, lossy = merge_layers({"m": layer}, {"new": {"m": new["t0"]}}, k=3)
    assert all(0 < e < 1.0 for e in lossy.values())


def test_phase2_trains_only_coefficients_and_has_gradient():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 24))
    layer = fit_layer(_tasks(), k=4)
    wrapped = attach(model, {"0": layer}, p=2, phi=0)
    assert isinstance(model[0], CoefficientLinear)
    assert trainable_parameters(wrapped) == 2 * 4 * 2
    x = torch.randn(5, 20)
    loss = model(x).pow(2).sum()
    loss.backward()
    m = wrapped["0"]
    assert m.eps_beta.grad is not None and m.eps_beta.grad.abs().sum() > 0
    assert m.eps_alpha.grad.abs().sum() > 0  # small random init on both sides: not a saddle
    assert m.base.weight.grad is None
    factors = detach(model, wrapped)
    assert isinstance(model[0], torch.nn.Linear)
    A, B = factors["0"]
    assert A.shape == (2, 20) and B.shape == (24, 2)


def test_average_coefficients_is_the_mean_of_rebuilt_factors_across_ranks():
    torch.manual_seed(3)
    n, d = 12, 10
    tasks = {
        "lora": (torch.randn(4, d, dtype=torch.float64), torch.randn(n, 4, dtype=torch.float64)),
        "coeffs": (torch.randn(2, d, dtype=torch.float64), torch.randn(n, 2, dtype=torch.float64)),
    }
    layer = fit_layer(tasks, threshold=1.0, k_min=6, k_max=6)
    A, B = average_coefficients(layer)
    assert A.shape == (4, d) and B.shape == (n, 4)
    (A1, B1), (A2, B2) = layer.factors("lora"), layer.factors("coeffs")
    assert torch.allclose(A[:2], (A1[:2] + A2) / 2) and torch.allclose(A[2:], A1[2:] / 2)
    assert torch.allclose(B[:, :2], (B1[:, :2] + B2) / 2) and torch.allclose(
        B[:, 2:], B1[:, 2:] / 2
    )
