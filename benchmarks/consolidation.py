"""Benchmark: what a task costs under Share (coefficients) vs LoRA at the same rank, on sleepy-tiny."""

from __future__ import annotations

import tempfile
from pathlib import Path


def bench_consolidation(rank: int = 8, tasks: int = 3, p: int = 2) -> dict:
    import torch
    from omegaconf import OmegaConf
    from peft import LoraConfig, get_peft_model
    from rich.console import Console
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from sleepy.adapters import AdapterInfo, fingerprint, write_info
    from sleepy.adapters.bundle import load_bundle
    from sleepy.adapters.coefficients import attach, trainable_parameters
    from sleepy.adapters.lora_io import adapter_bytes, lora_parameters, read_lora
    from sleepy.config import compose_config
    from sleepy.consolidate.methods import Share, TaskAdapter
    from sleepy.tiny import MODEL_DIR

    # UWSH's basis (a threshold, a clamp), as consolidation=uwsh configures it
    uwsh = OmegaConf.to_object(
        compose_config("consolidate", ["tasks=[none]", "consolidation=uwsh"]).consolidation
    )
    console = Console()
    console.rule(f"[bold]consolidation: one task under Share vs LoRA (rank {rank}, sleepy-tiny)")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        adapters = []
        for i in range(tasks):
            torch.manual_seed(i)
            model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
            cfg = LoraConfig(
                r=rank, lora_alpha=2 * rank, target_modules=targets, init_lora_weights=False
            )
            get_peft_model(model, cfg).save_pretrained(str(tmp / f"t{i}"))
            write_info(tmp / f"t{i}", AdapterInfo(str(MODEL_DIR), fingerprint(MODEL_DIR)))
            adapters.append(TaskAdapter.from_path(f"t{i}", tmp / f"t{i}"))
        lora_params = lora_parameters(read_lora(adapters[0].path))
        lora_bytes = adapter_bytes(adapters[0].path)
        res = Share(uwsh)(adapters, str(MODEL_DIR), tmp / "share")
        model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
        wrapped = attach(model, load_bundle(res.bundle_dir), p=p, phi=0)
        share_params = trainable_parameters(wrapped)
        coeffs = {
            f"{n}.{s}": getattr(m, s).detach().contiguous()
            for n, m in wrapped.items()
            for s in ("eps_beta", "eps_alpha")
        }
        save_file(coeffs, str(tmp / "coeffs.safetensors"))
        share_bytes = (tmp / "coeffs.safetensors").stat().st_size
        basis_bytes = res.metrics["basis_bytes"]
    ks = [v["k_beta"] for v in res.per_layer.values()]
    console.print(
        f"k per layer: {min(ks)}..{max(ks)} (consolidation=uwsh: threshold {uwsh.threshold:g}, "
        f"clamp [{uwsh.k_min}, {uwsh.k_max}]); pseudo-rank p={p}"
    )
    console.print(f"shared basis (paid once, for all tasks): {basis_bytes / 1024:.0f} KiB")
    console.print(
        f"Share {share_params} trainable params/task; LoRA {lora_params} = "
        f"{lora_params / share_params:.0f}x fewer; storage per task Share {share_bytes / 1024:.1f} KiB, "
        f"LoRA {lora_bytes / 1024:.1f} KiB = {lora_bytes / share_bytes:.0f}x smaller"
    )
    return {
        "share_params": share_params,
        "lora_params": lora_params,
        "share_bytes": share_bytes,
        "lora_bytes": lora_bytes,
    }
