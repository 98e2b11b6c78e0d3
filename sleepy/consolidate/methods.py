"""Consolidation methods, one class each, chosen by the Hydra group `consolidation` (`_target_`).

Every method takes the task adapters learned so far (oldest first) and writes one PEFT LoRA folder a
user can serve anywhere, plus what it needs to report (parameters, bytes, variance, errors).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from sleepy.adapters import AdapterInfo, fingerprint, load_adapter_info
from sleepy.adapters.bundle import BUNDLE_WEIGHTS, load_bundle, save_bundle
from sleepy.adapters.lora_io import (
    adapter_bytes,
    lora_parameters,
    read_lora,
    write_lora,
)
from sleepy.config import check_fields
from sleepy.consolidate.config import ShareConfig
from sleepy.consolidate.routing import base_examples, write_router
from sleepy.consolidate.share import average_coefficients, merge_layers


@dataclass
class TaskAdapter:
    name: str
    path: Path
    families: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)  # the router's (AdapterInfo.route_examples)

    @classmethod
    def from_path(cls, name: str, path: str | Path) -> TaskAdapter:
        info = load_adapter_info(path)
        return cls(name, Path(path), info.families, info.signatures, info.route_examples)


@dataclass
class Consolidated:
    adapter_dir: Path  # the merged adapter, plain PEFT LoRA
    method: str
    metrics: dict = field(default_factory=dict)
    per_task: dict = field(default_factory=dict)  # task -> {params, bytes, recon_error}
    per_layer: dict = field(default_factory=dict)  # layer -> {k_beta, k_alpha, explained_*}
    bundle_dir: Path | None = None  # Share: basis + coefficients + router


def _info(method: str, tasks: list[TaskAdapter], base_model: str) -> AdapterInfo:
    return AdapterInfo(
        base_model=str(base_model),
        base_model_fingerprint=fingerprint(base_model),
        method=method,
        families=sorted({f for t in tasks for f in t.families}),
        signatures=sorted({s for t in tasks for s in t.signatures}),
        config={"tasks": [t.name for t in tasks]},
    )


class Consolidator:
    method = "base"
    # True: it keeps lineage state: each consolidation builds on the bundle the previous one made,
    # which the cycle hands it as `previous` (a key its config must then have)
    keeps_lineage = False
    # True: a new task may train in its basis (adapter=coefficients), with its `p` and `phi`
    new_tasks_in_basis = False

    def __call__(self, tasks: list[TaskAdapter], base_model: str, out: str | Path) -> Consolidated:
        if not tasks:
            raise ValueError("nothing to consolidate: no task adapters yet")
        t0 = time.time()
        result = self.consolidate(tasks, base_model, Path(out))
        result.metrics["seconds"] = round(time.time() - t0, 3)
        result.metrics["merged_bytes"] = adapter_bytes(result.adapter_dir)
        for t in tasks:
            result.per_task.setdefault(t.name, {}).update(
                lora_params=lora_parameters(read_lora(t.path)), lora_bytes=adapter_bytes(t.path)
            )
        return result

    def consolidate(self, tasks, base_model, out) -> Consolidated:
        raise NotImplementedError


class Latest(Consolidator):
    """No consolidation (sequential LoRA): the newest adapter replaces the others."""

    method = "none"

    def consolidate(self, tasks, base_model, out):
        factors = read_lora(tasks[-1].path)
        path = write_lora(
            factors, tasks[-1].path, out / "adapter", _info(self.method, tasks[-1:], base_model)
        )
        return Consolidated(path, self.method)


class PeftMerge(Consolidator):
    """PEFT's `add_weighted_adapter`: linear/cat (mean), TIES, DARE-TIES, SVD — not re-implemented here."""

    def __init__(
        self,
        combination_type: str = "cat",
        density: float | None = None,
        svd_rank: int | None = None,
        method: str | None = None,
        weighting: str = "mean",
    ):
        self.combination_type, self.density, self.svd_rank = combination_type, density, svd_rank
        self.method = method or combination_type
        self.weighting = weighting

    def consolidate(self, tasks, base_model, out):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(base_model))
        model = PeftModel.from_pretrained(model, str(tasks[0].path), adapter_name=tasks[0].name)
        for t in tasks[1:]:
            model.load_adapter(str(t.path), adapter_name=t.name)
        w = 1.0 / len(tasks) if self.weighting == "mean" else 1.0
        kwargs = {"density": self.density} if self.density is not None else {}
        if self.svd_rank:
            kwargs["svd_rank"] = self.svd_rank
        model.add_weighted_adapter(
            [t.name for t in tasks],
            [w] * len(tasks),
            "merged",
            combination_type=self.combination_type,
            **kwargs,
        )
        model.set_adapter("merged")
        raw = out / "peft_merged"
        model.save_pretrained(str(raw), selected_adapters=["merged"])
        src = raw / "merged" if (raw / "merged").exists() else raw
        path = write_lora(
            read_lora(src), src, out / "adapter", _info(self.method, tasks, base_model)
        )
        return Consolidated(path, self.method, metrics={"combination_type": self.combination_type})


class Share(Consolidator):
    """Share: one basis per layer and factor from every task's factors; per-task coefficients.

    Exports the averaged coefficients as the merged adapter, every task as its own adapter, and a
    router from error signatures to tasks (the bundle).
    """

    method = "share"
    keeps_lineage = True  # Phase 3: earlier tasks come from the previous bundle
    new_tasks_in_basis = True  # Phase 2: coefficients in the basis (p, phi)

    def __init__(self, config: ShareConfig | None = None, **fields):
        """`config` (default: ShareConfig's defaults) with `fields` set on it, as Hydra passes them."""
        fields.pop("_target_", None)
        self.config = cfg = replace(config or ShareConfig(), **fields)
        self.kw = {"threshold": cfg.threshold, "k_min": cfg.k_min, "k_max": cfg.k_max}
        self.route_distance = cfg.route_distance  # written into router.json: what routes where
        check_fields(cfg, "consolidation.")  # before any work: its ranges, as composing checks
        self.pool = [Path(p) for p in cfg.pool]
        self.method = cfg.method
        # Phase 3: earlier tasks come from the previous bundle (basis + coefficients), not from
        # their original adapters, which Share does not need to keep.
        self.previous = Path(cfg.previous) if cfg.previous else None

    def consolidate(self, tasks, base_model, out):
        earlier = load_bundle(self.previous) if self.previous is not None else {}
        router = {"tasks": {}, "withdrawn": []}
        if self.previous is not None and (self.previous / "router.json").exists():
            router = json.loads((self.previous / "router.json").read_text())
        layers, errors = merge_layers(
            earlier,
            {t.name: read_lora(t.path) for t in tasks},
            {f"pool{i}": read_lora(p) for i, p in enumerate(self.pool)},  # UWSH's larger pool
            **self.kw,
        )
        names = list(errors)
        per_layer = {
            m: {
                "k_beta": layer.beta.k,
                "k_alpha": layer.alpha.k,
                "explained_beta": layer.beta.explained,
                "explained_alpha": layer.alpha.explained,
            }
            for m, layer in layers.items()
        }
        per_task = {
            t: {
                "recon_error": errors[t],
                "share_coeff_params": sum(
                    layer.eps_beta[t].numel() + layer.eps_alpha[t].numel()
                    for layer in layers.values()
                ),
            }
            for t in names
        }
        # The merged adapter (averaged coefficients) is what plain PEFT users load; the bundle
        # inside it (basis, coefficients, router, every task) travels with it into the registry.
        merged = {m: average_coefficients(layer, names) for m, layer in layers.items()}
        like = tasks[-1].path
        path = write_lora(merged, like, out / "adapter", _info(self.method, tasks, base_model))
        bundle = save_bundle(layers, names, path / "bundle")
        for t in tasks:
            router["tasks"][t.name] = {
                "signatures": t.signatures,
                "families": t.families,
                "examples": t.examples,
            }
        for t in names:
            entry = router["tasks"].get(t, {})
            info = _info(
                self.method,
                [TaskAdapter(t, like, entry.get("families", []), entry.get("signatures", []))],
                base_model,
            )
            write_lora(
                {m: layer.factors(t) for m, layer in layers.items()},
                like,
                bundle / "tasks" / t,
                info,
            )
        cfg = self.config
        learned = {f for entry in router["tasks"].values() for f in entry.get("families", [])}
        write_router(
            bundle,
            router["tasks"],
            cfg.router,
            self.route_distance,
            cfg.route_confidence,
            base_examples(cfg.route_koans, learned, cfg.route_evalsets),
            router.get("withdrawn", []),
        )
        return Consolidated(
            path,
            self.method,
            per_task=per_task,
            per_layer=per_layer,
            bundle_dir=bundle,
            metrics={
                "basis_bytes": (bundle / BUNDLE_WEIGHTS).stat().st_size,
                "tasks": len(names),
                "mean_recon_error": sum(v["recon_error"] for v in per_task.values()) / len(names),
            },
        )
