"""Read and write PEFT LoRA adapter folders as plain factor dicts: module -> (A (r x d), B (n x r)).

Scales are folded into B on read (delta_W = B @ A) and exported adapters use lora_alpha = r, so any
PEFT user (and Ollama/vLLM via PEFT) loads the result as an ordinary LoRA.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sleepy.adapters import AdapterInfo, load_adapter_info, write_info

Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]
_PREFIX = "base_model.model."


def read_lora(path: str | Path) -> Factors:
    path = Path(path)
    load_adapter_info(path)
    cfg = json.loads((path / "adapter_config.json").read_text())
    r, alpha = cfg["r"], cfg.get("lora_alpha", cfg["r"])
    scale = alpha / (r**0.5 if cfg.get("use_rslora") else r)
    tensors = load_file(str(path / "adapter_model.safetensors"))
    out: Factors = {}
    for key, A in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix(_PREFIX)
        B = tensors[key.replace(".lora_A.", ".lora_B.")]
        out[module] = (A.double(), scale * B.double())
    if not out:
        raise ValueError(f"adapter {path}: no LoRA A/B tensors found")
    return out


def write_lora(factors: Factors, like: str | Path, out: str | Path, info: AdapterInfo) -> Path:
    """Write factors as a PEFT adapter, taking the config of adapter `like` (target modules, type)."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg = json.loads((Path(like) / "adapter_config.json").read_text())
    ranks = {A.shape[0] for A, _ in factors.values()}
    r = max(ranks)
    tensors = {}
    for module, (A, B) in factors.items():
        if A.shape[0] < r:  # pad to a common rank with zero rows/cols: the product is unchanged
            A = torch.cat([A, A.new_zeros(r - A.shape[0], A.shape[1])])
            B = torch.cat([B, B.new_zeros(B.shape[0], r - B.shape[1])], 1)
        tensors[f"{_PREFIX}{module}.lora_A.weight"] = A.float().contiguous()
        tensors[f"{_PREFIX}{module}.lora_B.weight"] = B.float().contiguous()
    cfg.update(
        {"r": r, "lora_alpha": r, "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {}}
    )
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    save_file(tensors, str(out / "adapter_model.safetensors"))
    write_info(out, info)
    return out


def adapter_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def lora_parameters(factors: Factors) -> int:
    return sum(A.numel() + B.numel() for A, B in factors.values())
