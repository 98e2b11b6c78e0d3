"""The gate on the trained sleepy-tiny: a harmless candidate is promoted, a candidate trained on
wrong fixes is blocked with its reasons, and a rollback restores the champion that eval confirms."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf
from peft import LoraConfig, get_peft_model
from support import stage_config
from transformers import AutoModelForCausalLM

from sleepy.adapters import AdapterInfo, fingerprint, write_info
from sleepy.eval import evaluate
from sleepy.registry import alias_version, promote, register_adapter, rollback
from sleepy.sleep.config import AdapterConfig
from sleepy.tiny import MODEL_DIR
from sleepy.tracking import mlflow_run

WRONG_FIX = (
    "<<<<<<< SEARCH\nfn main() {\n=======\nfn main() {\n    std::process::exit(1);\n>>>>>>> REPLACE"
)


# A whole lineage of evals against trained adapters: the longest test there is.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory, generated):
    from sleepy.koan.model import save_evalset

    tmp = tmp_path_factory.mktemp("gate")
    koans = [k for fam in ("mutability", "borrow_checker") for k in generated(fam, 4, seed=404)]
    return tmp, koans, save_evalset(koans, tmp / "suite.json")


def _cfg(tmp: Path, suite: Path, *overrides: str):
    return stage_config("eval", tmp, f"koans.evalset={suite}", "agent.max_attempts=2", *overrides)


def _register(path: Path, uri: str) -> str:
    with mlflow_run(uri, "sleepy-sleep", run_name=path.name, tags={"stage": "sleep"}):
        return register_adapter(path, MODEL_DIR, "sleepy-fixer")


def _identity_adapter(path: Path) -> Path:
    """A LoRA whose B is zero: the base model's behaviour exactly (a candidate that breaks nothing)."""
    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
    get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    ).save_pretrained(str(path))
    write_info(
        path, AdapterInfo(base_model=str(MODEL_DIR), base_model_fingerprint=fingerprint(MODEL_DIR))
    )
    return path


def _wrong_fix_adapter(path: Path, koans) -> Path:
    from datasets import Dataset

    from sleepy.prompts.template import PromptTemplate
    from sleepy.sandbox import Sandbox
    from sleepy.sleep.train import train_adapter

    sandbox, tpl = Sandbox(), PromptTemplate.load("tiny")
    rows = [
        {
            "prompt": tpl.messages(
                k, k.buggy_code, sandbox.verdict(k, k.buggy_code).feedback(), [], "search_replace"
            ),
            "completion": [{"role": "assistant", "content": WRONG_FIX}],
            "koan_id": k.id,
            "family": k.family,
            "signature": "",
        }
        for k in koans
    ]
    cfg = OmegaConf.structured(
        AdapterConfig(rank=8, alpha=16, learning_rate=5e-3, max_steps=24, logging_steps=8)
    )
    return train_adapter(Dataset.from_list(rows * 3), MODEL_DIR, cfg, path).adapter_dir


def test_bad_candidate_blocked_and_rollback_restores(world):
    tmp, koans, suite = world
    uri = f"sqlite:///{tmp}/mlflow.db"
    good = _register(_identity_adapter(tmp / "good"), uri)
    first = evaluate(_cfg(tmp, suite, f"candidate={good}", "run_id=good"))
    assert first.champion_metrics["pass_rate"] > 0, "sleepy-tiny should fix some known-family koans"
    assert first.promoted and not first.regressions
    assert alias_version("sleepy-fixer", "champion", uri) == good

    bad = _register(_wrong_fix_adapter(tmp / "bad", koans), uri)
    second = evaluate(_cfg(tmp, suite, f"candidate={bad}", "run_id=bad"))
    assert not second.promoted and second.regressions
    assert alias_version("sleepy-fixer", "champion", uri) == good
    mlflow.set_tracking_uri(uri)
    tags = mlflow.MlflowClient().get_model_version("sleepy-fixer", bad).tags
    assert tags["gate.decision"] == "reject" and "regress" in tags["gate.reasons"]

    # someone promotes it anyway; rollback puts the good champion back, and eval confirms it
    promote("sleepy-fixer", bad, "forced for the test", uri)
    assert alias_version("sleepy-fixer", "champion", uri) == bad
    rollback("sleepy-fixer", "it regressed", uri)
    assert alias_version("sleepy-fixer", "champion", uri) == good
    third = evaluate(_cfg(tmp, suite, "candidate=champion", "run_id=confirm", "promote=false"))
    assert third.candidate.version == good
    assert third.metrics["pass_rate"] == first.metrics["pass_rate"]
