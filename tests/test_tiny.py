"""sleepy-tiny: the shipped weights load through from_pretrained with the tokenizer they were trained
with, fix known-family koans through the real sandbox, and the recipe is deterministic for a seed."""

from __future__ import annotations

import json

from support import tiny_recipe
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleepy.tiny import MODEL_DIR

RUST = 'fn main() {\n    let mut v: Vec<u32> = vec![1, 2];\n    v.push(3);\n    println!("{:?}", v);\n}\n'


def test_tokenizer_round_trip_matches_the_trained_one():
    trained = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    loaded = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    assert loaded(RUST, add_special_tokens=False)["input_ids"] == trained.encode(RUST).ids
    assert loaded.decode(trained.encode(RUST).ids) == RUST
    text = loaded.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|user|>\nhi\n<|assistant|>\n"
    assert loaded.eos_token == "<|eos|>" and loaded.pad_token == "<|pad|>"


def test_weights_and_card_ship_with_the_package():
    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
    params = sum(p.numel() for p in model.parameters())
    training = json.loads((MODEL_DIR / "training.json").read_text())
    assert params == training["parameters"]
    size = sum(f.stat().st_size for f in MODEL_DIR.glob("*.safetensors"))
    assert size <= 40 * 2**20
    assert (MODEL_DIR / "README.md").exists()


def test_tiny_fixes_known_family_koans_through_the_sandbox(tmp_path, compose):
    from sleepy.day import run_day
    from sleepy.koan import save_evalset
    from sleepy.koans.generate import generate

    koans = generate("mutability", 4, seed=31337) + generate("borrow_checker", 4, seed=31337)
    suite = save_evalset(koans, tmp_path / "suite.json")
    cfg = compose("day", f"koans.evalset={suite}", "tracking=none", "run_id=tiny")
    result = run_day(cfg)
    assert result.metrics["pass_rate"] > 0  # real fixes: compiled, tests passed, output matched


def test_recipe_is_deterministic_for_a_seed(tmp_path):
    from sleepy.pretrain.train import train_tiny

    def run(name):
        cfg = tiny_recipe(
            "tiny",
            tmp_path / name,
            "families=[mutability]",
            "per_family=8",
            "train.steps=2",
            "train.batch_size=4",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        )
        return train_tiny(cfg)

    a, b = run("a"), run("b")
    assert a["final_loss"] == b["final_loss"]
    assert (tmp_path / "a" / "model" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model" / "model.safetensors"
    ).read_bytes()
