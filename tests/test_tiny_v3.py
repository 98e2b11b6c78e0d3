"""sleepy-tiny v3's parts: training koans renamed from a wide vocabulary keep their mistake and
their fix, and the prompt's loss is added with its weight."""

from __future__ import annotations

import random
import re

import pytest
from support import tiny_recipe

from sleepy.koan.model import normalized_form
from sleepy.koans.generate import generate
from sleepy.koans.generator import RUST_KEYWORDS, WideVocab, _words
from sleepy.koans.variation import rename, rename_together
from sleepy.pretrain.data import widen
from sleepy.sandbox import Sandbox


def test_the_word_list_is_wide_and_holds_no_rust_keyword():
    words = _words()
    assert len(words) == len(set(words)) >= 2000
    assert not RUST_KEYWORDS & set(words)
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)


def test_wide_names_are_fresh_and_rarely_repeat():
    vocab = WideVocab(random.Random(0), taken={"total"})
    names = [vocab.var() for _ in range(200)]
    assert len(set(names)) == 200 and "total" not in names
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)?", n) for n in names)
    assert all(re.fullmatch(r"([A-Z][a-z]+)+", vocab.type_name()) for _ in range(50))


def test_made_up_names_are_syllables_that_no_word_list_holds():
    words = set(_words())
    vocab = WideVocab(random.Random(2), made_up=1.0)
    names = [vocab.var() for _ in range(300)]
    parts = {w for n in names for w in n.split("_")}
    assert all(re.fullmatch(r"([bdfgklmnprstvz][aeiou]){2,3}", w) for w in parts)
    assert not parts & RUST_KEYWORDS and len(parts & words) < 10
    mixed = WideVocab(random.Random(2), made_up=0.5)
    parts = {w for _ in range(300) for w in mixed.var().split("_")}
    assert 0.3 < len(parts & words) / len(parts) < 0.7


def test_one_mapping_renames_buggy_and_correct_code_alike():
    buggy = "fn main() {\n    let v = Vec::new();\n    v.push(1);\n}\n"
    correct = "fn main() {\n    let mut v = Vec::new();\n    v.push(1);\n}\n"
    (b, c), _ = rename_together([buggy, correct], random.Random(4), vocab=WideVocab, keep=0.0)
    assert "let v" not in b and b.replace("let ", "let mut ") == c


METER = (
    "struct Meter {\n    reading: u32,\n}\n\nfn total(xs: &[u32]) -> u32 {\n    let mut sum = 0;\n"
    "    for x in xs {\n        sum += x;\n    }\n    sum\n}\n\nfn main() {\n"
    "    let values = vec![1, 2];\n    let meter = Meter { reading: total(&values) };\n"
    '    println!("{}", meter.reading);\n}\n'
)


def test_a_single_program_renames_as_before():
    """`rename` is `rename_together` of one program, and draws what it drew before that
    function existed (the expected text is the older `rename`'s output for seed 9): seeded
    mutants stay the same mutants."""
    code = generate("mutability", 1, seed=3)[0].correct_code
    assert rename(code, random.Random(9)) == (
        rename_together([code], random.Random(9))[0][0],
        "",
    )
    renamed, description = rename(METER, random.Random(9), "Sums `values`.")
    assert description == "Sums `recipe`."
    assert renamed == (
        METER.replace("Meter", "Message")
        .replace("total", "render_packet")
        .replace("xs", "batch")
        .replace("for x in batch", "for sensor in batch")
        .replace("sum += x", "sum += sensor")
        .replace("values", "recipe")
        .replace("meter", "student")
    )


def test_widened_koans_keep_their_mistake_and_their_fix():
    koans = generate("borrow_checker", 3, seed=12) + generate("type_mismatch", 3, seed=12)
    wide = widen(koans, 1.0, seed=0)
    sandbox = Sandbox()
    renamed = 0
    for before, after in zip(koans, wide, strict=True):
        assert normalized_form(after.buggy_code) == normalized_form(before.buggy_code)
        renamed += after.buggy_code != before.buggy_code
        buggy = sandbox.verdict(after, after.buggy_code)
        assert not buggy.passed
        assert buggy.signature is not None and buggy.signature.code == before.expected_code
        fixed = sandbox.check(after.correct_code, after.edition)
        assert not fixed.errors, after.correct_code
    assert renamed == len(koans)


def test_widen_keeps_a_share_and_is_deterministic():
    koans = generate("mutability", 12, seed=21)
    assert widen(koans, 0.0, seed=1) == koans
    half = widen(koans, 0.5, seed=1)
    assert half == widen(koans, 0.5, seed=1)
    assert 0 < sum(a != b for a, b in zip(half, koans, strict=True)) < len(koans)


def test_the_loss_adds_the_prompt_with_its_weight():
    import torch

    from sleepy.pretrain.architecture import build_model, train_tokenizer
    from sleepy.pretrain.train import collate, loss_of

    tok = train_tokenizer(["fn main() { let x = 1; }"] * 4, vocab_size=300)
    model = build_model(tok, hidden=32, layers=1, heads=2, intermediate=64)
    rows = [([5, 9, 12, 14, 20], [30, 31, 2]), ([5, 7, 8], [40, 2])]
    input_ids, mask, labels = collate(rows, [0, 1], tok.pad_token_id)
    with torch.no_grad():
        plain = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss0, c0, p0 = loss_of(model, input_ids, mask, labels, 0.0)
        loss1, c1, p1 = loss_of(model, input_ids, mask, labels, 0.5)
    assert loss0 == pytest.approx(plain.item(), rel=1e-5) and loss0 == c0
    assert loss1 == pytest.approx((c1 + 0.5 * p1).item(), rel=1e-6)
    assert p1.item() > 0


def test_v3_recipe_records_what_it_trained_on(tmp_path):
    from sleepy.pretrain.train import train_tiny

    cfg = tiny_recipe(
        "tiny_v3",
        tmp_path,
        "families=[mutability]",
        "per_family=6",
        "mutants.per_family=0",
        "wide_names=1.0",
        "train.steps=2",
        "train.curriculum_steps=0",
        "train.batch_size=3",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
    )
    summary = train_tiny(cfg)
    assert summary["examples"] == 6 and summary["final_prompt_loss"] > 0
    # both the koans drawn and the renamed programs trained on are kept out of later evals
    hashes = (tmp_path / "model" / "train_hashes.txt").read_text().split()
    assert len(hashes) == 12
    # and so are their renamed copies: the normalized forms of the same programs
    forms = set((tmp_path / "model" / "train_forms.txt").read_text().split())
    assert 1 <= len(forms) <= 12


def test_training_without_tracking_writes_no_store(tmp_path, monkeypatch):
    """tracking=none used to log to MLflow's default store (an mlflow.db in the working folder)."""
    from sleepy.pretrain.train import train_tiny

    default = tmp_path / "default.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{default}")
    cfg = tiny_recipe(
        "tiny",
        tmp_path,
        "families=[mutability]",
        "per_family=3",
        "train.steps=1",
        "train.batch_size=2",
        "tracking=none",
    )
    train_tiny(cfg)
    assert (tmp_path / "model" / "training.json").exists()
    assert not default.exists()


def test_search_lines_can_be_forced_to_the_programs_lines():
    """experiments/copy_search.py: inside a SEARCH section only tokens that keep the line a
    prefix of a program line (or of the divider) are allowed; elsewhere nothing changes."""
    import torch
    from transformers import AutoTokenizer

    from experiments.copy_search import ProgramLinesOnly
    from sleepy.tiny import MODEL_DIR

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    lines = ["fn main() {", "    let m = Matrix::identity();", "}"]
    proc = ProgramLinesOnly(tok, lines, prompt_len=1)

    def allowed(reply: str) -> list[str]:
        ids = torch.tensor([tok.bos_token_id, *tok(reply, add_special_tokens=False)["input_ids"]])
        return [proc.texts[i] for i in proc(0, ids)]

    partial = "    let m = Mat"
    after = [f"{lines[1]}\n{x}" for x in [*lines, "======="]]  # the line, then any next one
    got = allowed(f"<<<<<<< SEARCH\n{partial}")
    assert got and all(any(a.startswith(partial + t) for a in after) for t in got)
    assert not {"Vec", "vec", " ="} & set(got)
    assert set(allowed("<<<<<<< SEARCH\n")) >= {"=", "fn", " "}  # a line start: any line, or =
    assert len(allowed("<<<<<<< SEARCH\nfn main() {\n=======\n    let")) == len(tok)  # REPLACE
    assert len(allowed("no edit yet")) == len(tok)


def test_training_can_continue_from_a_trained_model_with_its_tokenizer(tmp_path):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from sleepy.pretrain.train import train_tiny

    common = ["per_family=4", "mutants.per_family=0", "train.steps=2", "train.batch_size=2",
              "train.curriculum_steps=0", "tracking=none"]  # fmt: skip
    first = tmp_path / "first"
    train_tiny(tiny_recipe("tiny_v3", first, "families=[mutability]", *common))
    second = tmp_path / "second"
    train_tiny(
        tiny_recipe(
            "tiny_v3",
            second,
            "families=[borrow_checker]",
            f"init={first / 'model'}",
            "seed=1",
            *common,
        )  # fmt: skip
    )
    a = PreTrainedTokenizerFast.from_pretrained(first / "model")
    b = PreTrainedTokenizerFast.from_pretrained(second / "model")
    assert a.get_vocab() == b.get_vocab()  # the ids keep their meaning
    wa = AutoModelForCausalLM.from_pretrained(first / "model").model.embed_tokens.weight
    wb = AutoModelForCausalLM.from_pretrained(second / "model").model.embed_tokens.weight
    assert wa.shape == wb.shape and (wa - wb).abs().max() < 0.02  # moved a little, not drawn afresh
    # what the first model saw stays out of later evals of the second
    seen_a = set((first / "model" / "train_hashes.txt").read_text().split())
    seen_b = set((second / "model" / "train_hashes.txt").read_text().split())
    assert seen_a < seen_b
