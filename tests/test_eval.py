"""sleepy-eval on the tiny model: real adapters, a real MLflow sqlite store and registry, rustc.

What the tiny model answers is not asserted (its weights change as it is retrained); what eval does
with the answers is: the per-koan table, the metrics, the tags, and the champion alias."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import mlflow
import pytest
from rich.console import Console
from support import make_adapter, register, stage_config, truncate

from sleepy.console import Display
from sleepy.episodes import Episode, EpisodeStore
from sleepy.eval import EvalError, evaluate
from sleepy.eval.metrics import compare, earlier_failure_signatures, eval_metrics, outcomes
from sleepy.registry import CHAMPION, alias_version, get_version


@pytest.fixture(scope="module")
def evalset(tmp_path_factory, generated) -> Path:
    from sleepy.koan.model import save_evalset

    koans = generated("borrow_checker", 2, seed=11) + generated("mutability", 2, seed=11)
    return save_evalset(koans, tmp_path_factory.mktemp("evalsets") / "mini.json", name="mini")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    return make_adapter(tmp_path_factory.mktemp("adapters") / "a1", seed=1)


def eval_cfg(tmp_path: Path, evalset: Path, *overrides: str):
    policy = ["agent.max_new_tokens=16", "agent.max_attempts=1", "agent.max_steps=2"]
    return stage_config("eval", tmp_path, f"koans.evalset={evalset}", *policy, *overrides)


def test_registry_candidate_against_base_champion(tmp_path, evalset, adapter):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    version = register(adapter, uri)
    cfg = eval_cfg(tmp_path, evalset, f"candidate=models:/sleepy-fixer/{version}", "run_id=e1")
    r = evaluate(cfg)

    assert (r.candidate.version, r.candidate.label, r.champion.label) == (
        version,
        f"v{version}",
        "base",
    )
    assert len(r.rows) == 4 and {row["family"] for row in r.rows} == {
        "borrow_checker",
        "mutability",
    }
    for row in r.rows:
        want = {
            (True, True): "kept",
            (True, False): "lost",
            (False, True): "gained",
            (False, False): "failing",
        }[(row["champion_passed"], row["candidate_passed"])]
        assert row["change"] == want
    assert r.regressions == [row["koan_id"] for row in r.rows if row["change"] == "lost"]
    assert r.metrics["pass_rate"] == sum(row["candidate_passed"] for row in r.rows) / 4
    assert r.champion_metrics["pass_rate"] == sum(row["champion_passed"] for row in r.rows) / 4
    assert {
        "pass_rate.borrow_checker",
        "pass_rate.mutability",
        "repeat_error_rate",
        "median_steps_to_green",
        "tokens",
        "wall_time_s",
    } <= set(r.metrics)
    assert r.metrics["tokens"] > 0
    assert r.metrics["repeat_error_rate"] == 0.0  # no earlier cycle in this lineage
    with r.table.open() as f:
        assert [row["koan_id"] for row in csv.DictReader(f)] == [row["koan_id"] for row in r.rows]

    # the episodes are the agent's, with the adapter loaded for the candidate only
    with sqlite3.connect(tmp_path / "eval" / "episodes.sqlite") as c:
        runs = dict(
            c.execute("SELECT run_id, MAX(adapter) FROM episodes GROUP BY run_id").fetchall()
        )
    assert runs["e1-champion"] is None and runs["e1-candidate"] == str(r.candidate.adapter_dir)

    # the decision is on the run and on the model version; the alias follows the decision
    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=["sleepy-eval"], output_format="list")
    assert run.info.run_id == r.mlflow_run_id
    assert run.data.tags["gate.decision"] == r.decision.verdict
    assert run.data.tags["gate.reasons"] == "; ".join(r.decision.reasons)
    assert run.data.metrics["pass_rate"] == r.metrics["pass_rate"]
    assert run.data.metrics["champion_pass_rate"] == r.champion_metrics["pass_rate"]
    assert run.data.metrics["regressions"] == len(r.regressions)
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "eval")}
    assert arts == {"eval/per_koan.csv", "eval/per_koan.json"}
    mv = get_version("sleepy-fixer", version, uri)
    assert (
        mv.tags["gate.decision"] == r.decision.verdict
        and mv.tags["gate.eval_run"] == r.mlflow_run_id
    )
    assert (
        r.promoted
        == r.decision.promote
        # the default gate wants at least one koan more than the champion: a tie is rejected
        == (not r.regressions and r.metrics["pass_rate"] > r.champion_metrics["pass_rate"])
    )
    assert alias_version("sleepy-fixer", CHAMPION, uri) == (version if r.promoted else None)

    # the plots rebuild from this run alone
    from sleepy.plots import plots_from_mlflow

    paths = plots_from_mlflow("sleepy-eval", uri, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [
        "family_breakdown.png",
        "forgetting_heatmap.png",
        "forgetting_per_koan.png",
        "learning_curve.png",
    ]


def test_adapter_folder_candidate_cannot_be_promoted(tmp_path, evalset, adapter):
    cfg = eval_cfg(
        tmp_path,
        evalset,
        f"candidate={adapter}",
        "tracking=none",
        "run_id=e2",
        "koans.families=[mutability]",
    )
    r = evaluate(cfg)
    assert r.candidate.adapter_dir == adapter and r.candidate.version is None
    assert not r.decision.promote and "not a registry version" in r.decision.reasons[0]
    assert len(r.rows) == 2 and r.mlflow_run_id is None


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_unusable_adapter_is_one_line_and_leaves_champion(tmp_path, evalset, adapter, damage):
    import shutil

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    champ = register(adapter, uri)
    from sleepy.registry import promote

    promote("sleepy-fixer", champ, "first", uri)
    bad = tmp_path / "bad"
    shutil.copytree(adapter, bad)
    if damage == "truncated":
        truncate(bad / "adapter_model.safetensors")
        spec = str(bad)
    else:
        spec = str(tmp_path / "no-such-adapter")
    with pytest.raises(EvalError) as e:
        evaluate(eval_cfg(tmp_path, evalset, f"candidate={spec}", "run_id=e3"))
    msg = str(e.value)
    assert "\n" not in msg and (
        "corrupt" in msg if damage == "truncated" else "no such folder" in msg
    )
    assert alias_version("sleepy-fixer", CHAMPION, uri) == champ


def test_registry_version_corrupted_in_store_is_rejected_and_tagged(tmp_path, evalset, adapter):
    from sleepy.registry import promote

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    champ, cand = register(adapter, uri), register(adapter, uri)
    promote("sleepy-fixer", champ, "first", uri)
    # damage the candidate's stored weights after registration, as a bad disk or copy would
    model_id = get_version("sleepy-fixer", cand, uri).source.removeprefix("models:/")
    [weights] = (tmp_path / "artifacts" / "models" / model_id).rglob("adapter_model.safetensors")
    truncate(weights)
    with pytest.raises(EvalError, match=f"^version {cand} of 'sleepy-fixer': adapter .*corrupt"):
        evaluate(eval_cfg(tmp_path, evalset, f"candidate={cand}", "run_id=e4"))
    assert alias_version("sleepy-fixer", CHAMPION, uri) == champ
    mv = get_version("sleepy-fixer", cand, uri)
    assert mv.tags["gate.decision"] == "reject" and "corrupt" in mv.tags["gate.reasons"]


def _episode(run_id, task, family, passed, final, cycle, steps=None):
    return Episode(
        run_id=run_id,
        task_id=task,
        family=family,
        passed=passed,
        cycle=cycle,
        final_error_signature=final,
        steps_to_green=steps,
        status="done",
        timestamp=f"2026-01-01T00:00:0{cycle}",
        tokens_in=10,
        tokens_out=5,
    )


def test_repeat_errors_are_failures_seen_in_an_earlier_cycle_of_the_lineage(tmp_path):
    db = tmp_path / "lineage.sqlite"
    with EpisodeStore(db) as store:
        store.add(_episode("day0", "k1", "lifetimes", False, "E0106 missing lifetime specifier", 0))
        store.add(_episode("day0", "k2", "lifetimes", True, None, 0, 1))
        store.add(_episode("day1", "k3", "lifetimes", False, "E0499 second mutable borrow", 1))
        store.add(
            _episode("day2", "k4", "lifetimes", False, "E0308 mismatched types", 2)
        )  # same cycle
    earlier = earlier_failure_signatures([str(tmp_path / "*.sqlite")], before_cycle=2)
    assert earlier == {"E0106 missing lifetime specifier", "E0499 second mutable borrow"}

    now = [
        _episode("ev", "a", "lifetimes", False, "E0106 missing lifetime specifier", 2),
        _episode("ev", "b", "traits", False, "E0277 trait bound not satisfied", 2),
        _episode("ev", "c", "traits", True, None, 2, 3),
        _episode("ev", "d", "traits", True, None, 2, 1),
    ]
    m = eval_metrics(now, earlier)
    assert m["repeat_error_rate"] == 0.5 and m["failures"] == 2  # a repeats, b is new
    assert (
        m["pass_rate"] == 0.5 and m["pass_rate.traits"] == 2 / 3 and m["pass_rate.lifetimes"] == 0
    )
    assert m["median_steps_to_green"] == 2.0 and m["tokens"] == 60

    champion = outcomes(
        [
            _episode("ch", "a", "lifetimes", True, None, 2, 1),
            _episode("ch", "b", "traits", False, "E0277 x", 2),
            _episode("ch", "c", "traits", False, "E0277 y", 2),
            _episode("ch", "d", "traits", True, None, 2, 1),
        ]
    )
    rows = {r["koan_id"]: r for r in compare(outcomes(now), champion, earlier)}
    assert {k: r["change"] for k, r in rows.items()} == {
        "a": "lost",
        "b": "failing",
        "c": "gained",
        "d": "kept",
    }
    assert rows["a"]["repeat_error"] and not rows["b"]["repeat_error"]
    assert json.loads(json.dumps(list(rows.values())))  # the table is plain JSON


def test_no_such_evalset_is_one_line(tmp_path, adapter):
    with pytest.raises(EvalError, match="no such evalset file") as e:
        evaluate(eval_cfg(tmp_path, tmp_path / "missing.json", "candidate=base", "tracking=none"))
    assert "\n" not in str(e.value)


def test_sleepy_eval_command_gives_one_line_errors(tmp_path, evalset):
    import subprocess
    import sys

    args = [
        sys.executable,
        "-m",
        "sleepy.eval",
        f"paths.outputs={tmp_path}",
        f"koans.evalset={evalset}",
        f"candidate={tmp_path / 'nowhere'}",
    ]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"sleepy-eval: error: adapter {tmp_path / 'nowhere'}: no such folder"
    )


@pytest.mark.slow  # four evals
def test_results_are_kept_by_weights_evalset_and_policy_and_not_measured_again(
    tmp_path, evalset, adapter
):
    cfg = eval_cfg(tmp_path, evalset, f"candidate={adapter}", "tracking=none", "run_id=c1")
    first = evaluate(cfg)
    assert first.cached == []
    again = evaluate(
        eval_cfg(tmp_path, evalset, f"candidate={adapter}", "tracking=none", "run_id=c2")
    )
    assert again.cached == ["candidate", "champion"]
    assert again.rows == first.rows and again.metrics["pass_rate"] == first.metrics["pass_rate"]
    # another policy is another result: nothing is taken from the cache
    other = evaluate(
        eval_cfg(
            tmp_path,
            evalset,
            f"candidate={adapter}",
            "tracking=none",
            "run_id=c3",
            "agent.max_steps=3",
        )
    )
    assert other.cached == []
    # an edited adapter is another result too
    edited = tmp_path / "edited"
    import shutil

    shutil.copytree(adapter, edited)
    (edited / "README.md").write_text("edited")
    moved = evaluate(
        eval_cfg(tmp_path, evalset, f"candidate={edited}", "tracking=none", "run_id=c4")
    )
    assert moved.cached == ["champion"]


def test_a_larger_selection_is_measured_and_a_result_from_the_cache_names_its_eval(
    tmp_path, evalset
):
    """Two koans of the suite, then all four with the same outputs folder: the second eval runs
    the four, not the two kept from the first. Asked again, the four come from the cache, and the
    console, the run's log file and the eval's MLflow run say which eval measured them."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    few = evaluate(eval_cfg(tmp_path, evalset, "candidate=base", "koans.count=2", "run_id=few"))
    assert few.cached == [] and len(few.rows) == 2

    every = evaluate(eval_cfg(tmp_path, evalset, "candidate=base", "run_id=every"))
    assert every.cached == []
    assert len(every.rows) == 4 and {r["koan_id"] for r in few.rows} < {
        r["koan_id"] for r in every.rows
    }
    # the entrypoint's display, off a terminal, with its log file
    console, log = Console(file=io.StringIO(), width=80), tmp_path / "again" / "sleepy.log"
    with Display("sleepy-eval", log, console=console, quiet=False, heartbeat=0):
        again = evaluate(eval_cfg(tmp_path, evalset, "candidate=base", "run_id=again"))
    assert again.cached == ["candidate", "champion"] and again.rows == every.rows
    line = (
        f"eval base on mini: 4 koans from the eval cache, measured by eval run every "
        f"(MLflow run {every.mlflow_run_id})"
    )
    said = console.file.getvalue()
    assert said.count("from the eval cache") == 1 and f"{line}\n" in said  # one line, whole
    assert f"INFO sleepy: {line}\n" in log.read_text()
    tags = mlflow.MlflowClient(uri).get_run(again.mlflow_run_id).data.tags
    assert tags["cache.frozen.candidate"] == tags["cache.frozen.champion"] == "every"
    assert tags["cache.frozen.candidate.mlflow_run"] == every.mlflow_run_id
    assert (
        "cache.frozen.candidate"
        not in mlflow.MlflowClient(uri).get_run(every.mlflow_run_id).data.tags
    )


def test_a_base_model_rewritten_at_the_same_path_is_measured_again(tmp_path, evalset):
    """make tiny-model retrains into the same folder: a result of the old weights is not one of
    the new, though the path, the file names and the sizes are all the same."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from sleepy.tiny import MODEL_DIR

    model = tmp_path / "model"
    shutil.copytree(MODEL_DIR, model)
    args = ("candidate=base", "tracking=none", "koans.count=2", f"model.path={model}")
    assert evaluate(eval_cfg(tmp_path, evalset, *args, "run_id=old")).cached == []
    assert evaluate(eval_cfg(tmp_path, evalset, *args, "run_id=same")).cached == [
        "candidate",
        "champion",
    ]

    weights = sorted(model.glob("*.safetensors"))[-1]
    size = weights.stat().st_size
    with safe_open(str(weights), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] * 1.01  # a retrain that moved one tensor a little
    save_file(tensors, str(weights), metadata=meta)
    assert weights.stat().st_size == size

    assert evaluate(eval_cfg(tmp_path, evalset, *args, "run_id=new")).cached == []


def test_a_prompt_template_edited_in_place_is_measured_again(tmp_path, evalset):
    """The config names the template by its path; the model is shown the file's text. An edit
    that keeps the path is another prompt, so the results of the old one are not this one's."""
    from sleepy.prompts.template import PROMPTS_DIR

    template = tmp_path / "prompt.yaml"
    shutil.copy(PROMPTS_DIR / "tiny.yaml", template)
    args = ("candidate=base", "tracking=none", "koans.count=2", f"agent.prompt_template={template}")
    assert evaluate(eval_cfg(tmp_path, evalset, *args, "run_id=old")).cached == []
    assert evaluate(eval_cfg(tmp_path, evalset, *args, "run_id=same")).cached == [
        "candidate",
        "champion",
    ]

    template.write_text(template.read_text().replace("{{ koan.description }}", "Fix this."))
    assert evaluate(eval_cfg(tmp_path, evalset, *args, "run_id=new")).cached == []


def _put_one(root: str, key: str, n: int, start) -> None:
    from sleepy.eval.cache import ResultCache
    from sleepy.eval.metrics import KoanOutcome

    outcome = KoanOutcome(f"k{n}", "f", None, passed=True, steps_to_green=n, final_signature=None)
    start.wait()
    for _ in range(300):
        ResultCache(root).put(key, {outcome.koan_id: outcome}, {"pass_rate": float(n)}, f"r{n}")


def test_jobs_storing_one_result_at_once_all_succeed_and_leave_a_whole_file(tmp_path):
    """Two jobs of a sweep measure the same champion and store it under one key at the same time."""
    import multiprocessing

    from sleepy.eval.cache import ResultCache

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    jobs = [ctx.Process(target=_put_one, args=(str(tmp_path), "same", n, start)) for n in range(4)]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(timeout=120)
    assert [j.exitcode for j in jobs] == [0, 0, 0, 0]
    hits = [ResultCache(tmp_path).get("same", [f"k{n}"]) for n in range(4)]
    assert len([h for h in hits if h is not None]) == 1  # one whole result, stored last
    (hit,) = filter(None, hits)
    n = int(hit.metrics["pass_rate"])
    assert list(hit.outcomes) == [f"k{n}"] and hit.run_id == f"r{n}"
    assert [p.name for p in tmp_path.iterdir()] == ["same.json"]  # no temporary file left


def test_a_learning_set_is_measured_beside_the_frozen_suite(tmp_path, evalset, adapter):
    from sleepy.koan.model import save_evalset
    from sleepy.koans.generate import EVAL_SEEDS, generate

    learning = save_evalset(
        generate("trait_bounds", 2, seed=EVAL_SEEDS.start, purpose="eval"),
        tmp_path / "learning.json",
        name="learning",
    )
    r = evaluate(
        eval_cfg(
            tmp_path,
            evalset,
            f"candidate={adapter}",
            "tracking=none",
            "run_id=l1",
            f"koans.learning_set={learning}",
        )
    )
    assert r.learning is not None and len(r.learning.rows) == 2
    assert {row["family"] for row in r.learning.rows} == {"trait_bounds"}
    assert len(r.rows) == 4  # the frozen suite, unchanged
    assert any(reason.startswith("learning-set pass rate") for reason in r.decision.reasons)
    assert (tmp_path / "eval" / "learning" / "per_koan.json").exists()


def test_a_champion_that_moves_during_the_eval_leaves_the_candidate_rejected(
    tmp_path, evalset, adapter, monkeypatch
):
    import sleepy.eval.run as eval_stage
    from sleepy.registry import promote

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    other = register(adapter, uri)  # promoted by "another process" while this eval runs
    version = register(adapter, uri)
    real = eval_stage.registry_promote

    def another_promotion_lands_first(name, v, reason, uri_, measured):
        promote(name, other, "a concurrent eval", uri_)
        return real(name, v, reason, uri_, measured)

    monkeypatch.setattr(eval_stage, "registry_promote", another_promotion_lands_first)
    cfg = eval_cfg(tmp_path, evalset, f"candidate=models:/sleepy-fixer/{version}",
                   "gate.min_gain=-1", "gate.min_gain_koans=0", "gate.max_regressions=4", "run_id=raced")  # fmt: skip
    r = evaluate(cfg)
    assert not r.promoted and r.decision.verdict == "reject"
    assert alias_version("sleepy-fixer", CHAMPION, uri) == other
    assert get_version("sleepy-fixer", version, uri).tags["gate.decision"] == "reject"
