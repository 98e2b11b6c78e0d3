"""Adapter folders: a PEFT LoRA (adapter_config.json + weights) plus sleepy's metadata beside it.

Every stage that reads an adapter goes through `load_adapter_info`, so a corrupt, missing or foreign
adapter fails the same clear way everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

META_FILE = "sleepy_adapter.json"
WEIGHTS_FILE = "adapter_model.safetensors"


class AdapterError(ValueError):
    """An adapter that cannot be used; the message says which folder and what to fix."""


@dataclass
class AdapterInfo:
    base_model: str  # model path or hub id it was trained on
    base_model_fingerprint: str  # hash of the base config, so another base is caught
    method: str = "lora"  # lora | share | uwsh | mean | ties | ...
    dataset_hash: str = ""
    koan_ids: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    # what the Share router learns this task from: {koan_id, family, signature, text} for each
    # koan it was trained on (sleepy.koans.route); empty for adapters that are no task's
    route_examples: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    cycle: int | None = None
    run_id: str | None = None
    weights_sha256: str = ""  # of adapter_model.safetensors as written: flipped bytes are caught


def fingerprint(model_path: str | Path) -> str:
    """A short hash of the base model's architecture config (what an adapter's shapes depend on)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(model_path)).to_dict()
    keys = (
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
        "num_key_value_heads",
    )
    text = json.dumps({k: cfg.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def weights_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with (Path(path) / WEIGHTS_FILE).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open_weights(path: Path) -> dict:
    """Every tensor of the weights file, or AdapterError when it does not parse."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path / WEIGHTS_FILE))
    except Exception as e:
        raise AdapterError(
            f"adapter {path}: {WEIGHTS_FILE} is corrupt ({str(e).splitlines()[0]})"
        ) from None
    if not tensors:
        raise AdapterError(f"adapter {path}: {WEIGHTS_FILE} holds no tensors")
    return tensors


def _check_finite(path: Path, tensors: dict) -> None:
    """A NaN or inf anywhere makes the model generate nothing useful (the tiny model answered
    with empty text), so such an adapter is refused, not served."""
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise AdapterError(
                f"adapter {path}: {WEIGHTS_FILE} tensor {name} holds NaN or inf — the training "
                "diverged or the file is damaged; retrain it"
            )


def write_info(path: str | Path, info: AdapterInfo) -> None:
    """Write sleepy's metadata beside weights already saved, with their checksum."""
    path = Path(path)
    _check_finite(path, _open_weights(path))
    info.weights_sha256 = weights_sha256(path)
    (path / META_FILE).write_text(json.dumps(asdict(info), indent=2) + "\n")


def load_adapter_info(path: str | Path, base_model: str | Path | None = None) -> AdapterInfo:
    """Check an adapter folder is whole and made for `base_model`; return its metadata."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"adapter {path}: no such folder")
    cfg = path / "adapter_config.json"
    if not cfg.exists():
        raise AdapterError(
            f"adapter {path}: adapter_config.json missing — not a PEFT adapter folder"
        )
    try:
        json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise AdapterError(f"adapter {path}: adapter_config.json is corrupt ({e.msg})") from None
    if not (path / WEIGHTS_FILE).exists():
        raise AdapterError(f"adapter {path}: {WEIGHTS_FILE} missing — retrain or re-download it")
    meta = path / META_FILE
    if not meta.exists():
        info = AdapterInfo(base_model="", base_model_fingerprint="")
    else:
        try:
            info = AdapterInfo(**json.loads(meta.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise AdapterError(f"adapter {path}: {META_FILE} is corrupt ({e})") from None
    tensors = _open_weights(path)
    # Bytes flipped inside a tensor leave a file that still parses: the checksum catches them.
    if info.weights_sha256 and weights_sha256(path) != info.weights_sha256:
        raise AdapterError(
            f"adapter {path}: {WEIGHTS_FILE} is corrupt: it does not match the checksum in "
            f"{META_FILE} (damaged or replaced after training); re-download or retrain it"
        )
    _check_finite(path, tensors)
    if base_model is not None and info.base_model_fingerprint:
        fp = fingerprint(base_model)
        if fp != info.base_model_fingerprint:
            raise AdapterError(
                f"adapter {path}: trained on base model '{info.base_model}', not '{base_model}' "
                f"(architecture {info.base_model_fingerprint} != {fp}) — pick the matching model"
            )
    return info


def load_peft_model(base_model: str | Path, adapter: str | Path, adapter_name: str = "default"):
    """Base model with the adapter attached (checked first), in eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    load_adapter_info(adapter, base_model)
    model = AutoModelForCausalLM.from_pretrained(str(base_model))
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter), adapter_name=adapter_name)
    except Exception as e:
        raise AdapterError(
            f"adapter {adapter}: cannot be applied to {base_model} ({str(e).splitlines()[0]})"
        ) from None
    return peft_model.eval()
