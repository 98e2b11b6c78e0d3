"""Train sleepy-tiny from scratch: tokenizer, model, loss on the completion (from v3, plus a
weighted loss on the prompt) over generated koans (from v2, and mutants of the corpus's real
programs; from v3, most of them renamed from a wide vocabulary).

`make tiny-model` reruns the shipped recipe (conf/tiny_v3.yaml) and installs the result;
`python -m sleepy.pretrain.train` the v1 recipe (conf/tiny.yaml), `--config-name tiny_v2` v2's.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sleepy.config import CONF_PATH
from sleepy.pretrain.architecture import EOS, build_model, save, train_tokenizer
from sleepy.pretrain.data import (
    Example,
    build_examples,
    koans_for_training,
    mutants_for_training,
    widen,
)
from sleepy.stop import stops
from sleepy.tiny import MODEL_DIR
from sleepy.tracking import log_config, mlflow_run


def encode(
    examples: list[Example], tokenizer, max_len: int
) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(prompt ids, completion ids) pairs; rows over max_len are dropped and counted, never cut."""
    rows, too_long = [], 0
    for ex in examples:
        p = tokenizer.apply_chat_template(ex.messages, add_generation_prompt=True, tokenize=True)
        if isinstance(p, dict) or hasattr(p, "input_ids"):
            p = p["input_ids"]
        c = tokenizer(ex.completion + EOS, add_special_tokens=False)["input_ids"]
        if len(p) + len(c) > max_len:
            too_long += 1
            continue
        rows.append((list(p), list(c)))
    return rows, too_long


def batches(rows, batch_size: int, seed: int, curriculum_steps: int = 0):
    """Endless length-bucketed batches: similar lengths together, so little compute goes to padding.

    With `curriculum_steps`, short to long: the first batches come from the shortest rows only,
    and the pool grows linearly from the shortest 30% to every row by that step.
    """
    rng = random.Random(seed)
    by_length = sorted(range(len(rows)), key=lambda j: len(rows[j][0]) + len(rows[j][1]))
    step = 0
    while step < curriculum_steps:
        share = 0.3 + 0.7 * step / curriculum_steps
        pool = by_length[: max(batch_size, int(share * len(rows)))]
        idx = rng.sample(pool, batch_size)
        yield sorted(idx, key=lambda j: len(rows[j][0]) + len(rows[j][1]))
        step += 1
    while True:
        order = list(range(len(rows)))
        rng.shuffle(order)
        chunk = batch_size * 32
        epoch = []
        for i in range(0, len(order), chunk):
            part = sorted(order[i : i + chunk], key=lambda j: len(rows[j][0]) + len(rows[j][1]))
            epoch.extend(part[k : k + batch_size] for k in range(0, len(part), batch_size))
        rng.shuffle(epoch)
        yield from (b for b in epoch if len(b) == batch_size)


def collate(rows, idx, pad_id: int):
    import torch

    seqs = [rows[i][0] + rows[i][1] for i in idx]
    width = max(map(len, seqs))
    input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        p, c = rows[i]
        input_ids[r, : len(p) + len(c)] = torch.tensor(p + c)
        labels[r, len(p) : len(p) + len(c)] = torch.tensor(c)  # loss on the completion only
        mask[r, : len(p) + len(c)] = 1
    return input_ids, mask, labels


def loss_of(model, input_ids, mask, labels, prompt_weight: float):
    """(loss to train on, completion loss, prompt loss): the mean loss over completion tokens,
    plus `prompt_weight` times the mean over prompt tokens. The prompt quotes the program's lines
    in rustc's diagnostics, so its loss teaches copying from the program too."""
    import torch.nn.functional as F

    logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
    targets = input_ids[:, 1:]
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    completion = labels[:, 1:] != -100
    prompt = mask[:, 1:].bool() & ~completion
    c_loss, p_loss = ce[completion].mean(), ce[prompt].mean()
    return c_loss + prompt_weight * p_loss if prompt_weight else c_loss, c_loss, p_loss


def train_tiny(cfg: DictConfig) -> dict:
    import mlflow
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from transformers import get_cosine_schedule_with_warmup

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.train.threads)
    out = Path(cfg.out)
    t0 = time.time()
    koans = koans_for_training(list(cfg.families), cfg.per_family, cfg.seed)
    n_templates = len(koans)
    if cfg.mutants.per_family:
        from sleepy.koan.model import known_hashes

        exclude = known_hashes("koans", "evalsets") | {k.content_hash for k in koans}
        koans += mutants_for_training(
            list(cfg.families),
            cfg.mutants.per_family,
            cfg.mutants.seed,
            list(cfg.mutants.sources),
            exclude,
            side=cfg.mutants.get("side"),
        )
    trained = widen(koans, cfg.wide_names, cfg.seed, cfg.made_up_names) if cfg.wide_names else koans
    examples, dropped = build_examples(trained, cfg.template, cfg.edit_format)
    texts = [m["content"] for ex in examples for m in ex.messages] + [
        ex.completion for ex in examples
    ]
    if cfg.get("init"):
        # continued training: the earlier model's own tokenizer and weights, so ids keep meaning
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(cfg.init))
    else:
        tokenizer = train_tokenizer(texts, cfg.tokenizer.vocab_size)
    rows, too_long = encode(examples, tokenizer, cfg.train.max_len)
    data_s = time.time() - t0
    if cfg.get("init"):
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_pretrained(str(cfg.init), dtype=torch.float32)
    else:
        model = build_model(tokenizer, **cfg.arch, seed=cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, betas=(0.9, 0.95)
    )
    sched = get_cosine_schedule_with_warmup(opt, cfg.train.warmup, cfg.train.steps)
    stream = batches(rows, cfg.train.batch_size, cfg.seed, cfg.train.curriculum_steps)
    losses: list[float] = []  # completion loss, whatever the prompt's weight
    prompt_losses: list[float] = []
    with mlflow_run(cfg.tracking.uri, cfg.tracking.experiment, run_name="sleepy-tiny") as run:
        tracked = run is not None  # tracking=none: nothing goes to a store, not even a default one
        if tracked:
            log_config(cfg)
            mlflow.log_metrics(
                {
                    "examples": len(rows),
                    "mutants": len(koans) - n_templates,
                    "dropped_too_long": too_long,
                    "dropped_passing": dropped["passes_already"],
                    "dropped_other_error": dropped["other_error"],
                    "parameters": n_params,
                }
            )
        model.train()
        t1 = time.time()
        cols = [
            TextColumn("training sleepy-tiny"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TimeRemainingColumn(),
        ]
        with Progress(*cols) as bar:
            task = bar.add_task("train", total=cfg.train.steps, loss=float("nan"))
            for step in range(1, cfg.train.steps + 1):
                input_ids, mask, labels = collate(rows, next(stream), tokenizer.pad_token_id)
                loss, c_loss, p_loss = loss_of(
                    model, input_ids, mask, labels, cfg.train.prompt_loss
                )
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                losses.append(c_loss.item())
                prompt_losses.append(p_loss.item())
                if tracked and (step % 10 == 0 or step == cfg.train.steps):
                    last = min(10, len(losses))
                    avg = sum(losses[-last:]) / last
                    mlflow.log_metric("loss", avg, step=step)
                    mlflow.log_metric("prompt_loss", sum(prompt_losses[-last:]) / last, step=step)
                    mlflow.log_metric("lr", sched.get_last_lr()[0], step=step)
                bar.update(task, advance=1, loss=losses[-1])
        train_s = time.time() - t1
        model.eval()
        save(model, tokenizer, out)
        summary = {
            "parameters": n_params,
            "vocab_size": len(tokenizer),
            "examples": len(rows),
            "distinct_koans": len(koans),
            "template_koans": n_templates,
            "mutant_koans": len(koans) - n_templates,
            "dropped_too_long": too_long,
            **{f"dropped_{k}": v for k, v in dropped.items()},
            "steps": cfg.train.steps,
            "batch_size": cfg.train.batch_size,
            "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "final_prompt_loss": sum(prompt_losses[-20:]) / len(prompt_losses[-20:]),
            "train_seconds": round(train_s),
            "data_seconds": round(data_s),
            "seconds_per_step": round(train_s / cfg.train.steps, 3),
            "patterns": sorted({f"{e.family}/{e.pattern}" for e in examples}),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
        # Evalsets and later generated koans must stay disjoint from what the model saw.
        seen = {k.content_hash for k in koans} | {k.content_hash for k in trained}
        earlier = Path(str(cfg.init)) if cfg.get("init") else None  # what it had seen before
        if earlier is not None and (earlier / "train_hashes.txt").exists():
            seen |= set((earlier / "train_hashes.txt").read_text().split())
        (out / "train_hashes.txt").write_text("".join(f"{h}\n" for h in sorted(seen)))
        # and up to names and literals: a renamed copy of a training program is no held-out koan
        forms = {k.normalized_hash for k in koans} | {k.normalized_hash for k in trained}
        if earlier is not None and (earlier / "train_forms.txt").exists():
            forms |= set((earlier / "train_forms.txt").read_text().split())
        (out / "train_forms.txt").write_text("".join(f"{h}\n" for h in sorted(forms)))
        if tracked:
            mlflow.log_dict(summary, "training.json")
            mlflow.log_metrics({"final_loss": summary["final_loss"], "train_seconds": train_s})
        if not math.isfinite(summary["final_loss"]):
            raise RuntimeError("training diverged (loss is not finite): lower train.lr")
    if cfg.install:
        if MODEL_DIR.exists():
            shutil.rmtree(MODEL_DIR)
        shutil.copytree(out, MODEL_DIR)
    return summary


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="tiny")
def _tiny(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from sleepy.console import quiet_libraries

    quiet_libraries(Path(HydraConfig.get().runtime.output_dir) / "train.log")
    summary = train_tiny(cfg)
    print(
        json.dumps({k: v for k, v in summary.items() if k not in ("config", "patterns")}, indent=2)
    )


def main() -> None:
    with stops("sleepy-tiny"):
        _tiny()


if __name__ == "__main__":
    main()
