"""scripts/gpu_cost.py, the cost of a cycle at 1.5B: made for a GPU, which this machine does not
have. Here: its model is Qwen2.5-Coder-1.5B's shape (counted on the meta device, nothing
allocated), and a smoke run of every step at a tiny shape on the CPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_cost.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_cost", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_cost"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_the_cost_model_has_qwen2_5_coder_1_5b_shape():
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    shape = load_script().QWEN_CODER_1_5B
    cfg = Qwen2Config(**{k: v for k, v in shape.items() if k != "architectures"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 1_543_714_304  # "1.54B", tied embeddings
    assert set(cfg.layer_types) == {"full_attention"}  # so the hf greedy loop applies
    assert cfg.rope_parameters["rope_theta"] == 1_000_000.0


@pytest.mark.slow  # every step at a tiny shape: about 1-2 min on 2 busy cores
def test_a_smoke_run_at_a_tiny_shape_prints_the_table_and_the_projections(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--shape", "tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for row in (
        "| generation, hf greedy loop, batch 4 x 8 new tokens |",
        "| generation, model.generate, batch 4 x 8 new tokens |",
        "| LoRA training, rank 16, batch 2, 2 steps |",
        "| Share consolidation, 3 task adapters (rank 16) |",
        "| Share consolidation, 10 task adapters (rank 16) |",
        "| routed generation, 10 adapters + base, batch 11 x 4 new tokens |",
        "| a day of 500 koans, base model |",
        "| a sleep of 300 steps (rank 16, batch 2) |",
        "| an eval of 94 koans (the frozen suite, candidate only) |",
    ):
        assert row in out
    assert "it/s" not in out and "Loading weights" not in out  # library output went to the log
    result = json.loads((tmp_path / "gpu_cost.json").read_text())
    assert result["device"] == "CPU" and all(s > 0 for s in result["projected_s"].values())
