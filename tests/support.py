"""What the test modules share besides fixtures (conftest.py builds on it): a stage's config with
every path in a test folder, and real parts for the eval, gate and registry tests: small PEFT LoRA
adapters of sleepy-tiny and versions of them in a real MLflow sqlite store."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from sleepy.adapters import AdapterInfo, fingerprint, write_info
from sleepy.config import compose_config
from sleepy.registry import register_adapter
from sleepy.tiny import MODEL_DIR
from sleepy.tracking import mlflow_run


def stage_config(name: str, root: Path, *overrides: str, out: str | None = None) -> DictConfig:
    """sleepy/conf/<name>.yaml as its entrypoint composes it, with every path under `root`:
    outputs (and so the MLflow store, root/mlflow.db) and the run's own folder
    (root/<out or name>)."""
    paths = [f"paths.outputs={root}", f"paths.output_dir={root / (out or name)}"]
    return compose_config(name, [*paths, *overrides])


def tiny_recipe(name: str, root: Path, *overrides: str) -> DictConfig:
    """A sleepy-tiny recipe (sleepy/conf/<name>.yaml) shrunk to train in seconds, writing its
    model to root/model and nothing into the package. Tracking is the caller's to choose."""
    shape = [
        "train.warmup=1",
        "arch.hidden=32",
        "arch.layers=1",
        "arch.heads=2",
        "arch.intermediate=64",
        "tokenizer.vocab_size=400",
    ]
    paths = [f"out={root / 'model'}", f"paths.output_dir={root}", "install=false"]
    return compose_config(name, [*shape, *paths, *overrides])


def make_adapter(
    path: Path,
    seed: int = 1,
    family: str = "borrow_checker",
    rank: int = 2,
    signatures: list[str] | None = None,
) -> Path:
    """A loadable LoRA with non-zero (random) weights: it really changes what the model says.
    Its metadata is what a sleep writes: the family it learned and the error signatures seen."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
    cfg = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, cfg).save_pretrained(str(path))
    write_info(
        path,
        AdapterInfo(
            base_model=str(MODEL_DIR),
            base_model_fingerprint=fingerprint(MODEL_DIR),
            families=[family],
            signatures=signatures or [],
        ),
    )
    return path


def register(adapter: Path, uri: str, cycle: int = 0, name: str = "sleepy-fixer") -> str:
    """A new version of registered model `name` holding this adapter, logged from its own run."""
    with mlflow_run(uri, "sleepy-sleep", run_name=f"sleep-{adapter.name}", tags={"stage": "sleep"}):
        return register_adapter(adapter, MODEL_DIR, name, tags={"cycle": cycle})


def truncate(weights: Path) -> None:
    """Cut a safetensors file in half, as a crashed copy would leave it."""
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
