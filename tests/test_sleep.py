"""Sleep: curate failures (dedup, clusters, leakage guard), train a real LoRA on sleepy-tiny with trl,
register it in a real MLflow sqlite store, load it back by registry URI and generate."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from support import stage_config

from sleepy.adapters import AdapterError, load_adapter_info, load_peft_model
from sleepy.adapters.bundle import load_bundle
from sleepy.config import KOANS_DIR, ConfigError, compose_config
from sleepy.episodes import EpisodeStore
from sleepy.koan import save_evalset
from sleepy.sleep import run_sleep
from sleepy.sleep.curate import LeakageError, cluster_failures, curate
from sleepy.tiny import MODEL_DIR

FROZEN = [str(Path(__file__).resolve().parents[1] / "evalsets" / "frozen.json")]
DISTANCE = compose_config("sleep").curate.cluster_distance


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A day's record as the agent leaves it: failed attempts (one koan twice) and one success."""
    from sleepy.koans.generate import generate

    tmp = tmp_path_factory.mktemp("day")
    koans = generate("lifetimes", 4, seed=11, validate=False) + generate(
        "trait_bounds", 3, seed=11, validate=False
    )
    db = tmp / "episodes.sqlite"
    with EpisodeStore(db) as store:
        store.add_koans(koans)  # as the day keeps its selection
        for i, k in enumerate(koans):
            attempts = 2 if i == 0 else 1
            for a in range(attempts):
                eid = store.start_episode(
                    "day1",
                    k.id,
                    attempt_idx=a,
                    family=k.family,
                    pattern=k.pattern,
                    error_signature=f"{k.expected_code} sig",
                    edit_format="search_replace",
                )
                passed = i == len(koans) - 1
                store.finish_episode(
                    eid,
                    passed=passed,
                    final_error_signature=None if passed else f"{k.expected_code} sig",
                )
    return tmp, db, koans


def sleep_cfg(tmp_path: Path, *overrides: str):
    base = [
        "adapter.max_steps=4",
        "adapter.batch_size=4",
        "adapter.target_modules=[q_proj,v_proj]",
        "curate.augment_k=1",
        "adapter.logging_steps=1",
    ]
    return stage_config("sleep", tmp_path, *base, *overrides)


def test_curate_dedups_clusters_and_pairs(day):
    _, db, koans = day
    with EpisodeStore(db, create=False) as store:
        eps = store.episodes()
    by_id = {k.id: k for k in koans}
    cur = curate(
        eps,
        by_id,
        "tiny",
        "search_replace",
        augment_k=0,
        evalset_paths=FROZEN,
        cluster_distance=DISTANCE,
    )
    rows = cur.dataset
    assert cur.stats["failures"] == 6  # koan 0 failed twice with one signature: counted once
    assert sorted(set(rows["koan_id"])) == sorted(
        k.id for k in koans[:-1]
    )  # the success is not trained on
    first = rows[0]
    assert (
        first["prompt"][0]["role"] == "user"
        and by_id[first["koan_id"]].buggy_code in first["prompt"][0]["content"]
    )
    assert "<<<<<<< SEARCH" in first["completion"][0]["content"]
    assert sum(c["size"] for c in cur.clusters) == len(rows)
    replay = curate(
        eps,
        by_id,
        "tiny",
        "search_replace",
        replay_ratio=1.0,
        evalset_paths=FROZEN,
        cluster_distance=DISTANCE,
    )
    assert replay.stats["replay_rows"] == 1


def test_clusters_follow_signatures():
    sigs = ["E0106 missing lifetime specifier"] * 3 + [
        "E0277 the trait bound <ty>: Clone is not satisfied"
    ] * 3
    diags = ["expected named lifetime parameter"] * 3 + ["the trait Clone is not implemented"] * 3
    ids = cluster_failures(sigs, diags, DISTANCE)
    assert len(set(ids[:3])) == 1 and len(set(ids[3:])) == 1 and ids[0] != ids[3]


def test_leakage_guard_names_the_koan(day, tmp_path):
    _, db, koans = day
    frozen = save_evalset([koans[1]], tmp_path / "frozen.json")
    with EpisodeStore(db, create=False) as store:
        eps = store.episodes()
    with pytest.raises(LeakageError, match=koans[1].id):
        curate(
            eps,
            {k.id: k for k in koans},
            "tiny",
            "search_replace",
            evalset_paths=[frozen],
            cluster_distance=DISTANCE,
        )


def test_leakage_guard_fails_closed_on_a_missing_evalset(day, tmp_path):
    """A typo in curate.evalset_paths used to turn the guard off and train on the evalset."""
    _, db, koans = day
    with EpisodeStore(db, create=False) as store:
        eps = store.episodes()
    typo = tmp_path / "evalsets" / "frozn.json"
    with pytest.raises(LeakageError, match=r"frozn\.json: no such evalset file") as e:
        curate(
            eps,
            {k.id: k for k in koans},
            "tiny",
            "search_replace",
            evalset_paths=[typo],
            cluster_distance=DISTANCE,
        )
    assert "\n" not in str(e.value)
    with pytest.raises(LeakageError, match="is empty"):
        curate(
            eps,
            {k.id: k for k in koans},
            "tiny",
            "search_replace",
            evalset_paths=[],
            cluster_distance=DISTANCE,
        )
    unreadable = tmp_path / "frozen.json"
    unreadable.write_text('{"name": "frozen", "koans": [')
    with pytest.raises(LeakageError, match="not valid JSON"):
        curate(
            eps,
            {k.id: k for k in koans},
            "tiny",
            "search_replace",
            evalset_paths=[unreadable],
            cluster_distance=DISTANCE,
        )


def test_sleep_with_a_mistyped_evalset_path_fails_before_training(day, tmp_path):
    _, db, _ = day
    cfg = sleep_cfg(
        tmp_path, f"curate.episodes={db}", f"curate.evalset_paths=[{tmp_path}/nope.json]"
    )
    with pytest.raises(LeakageError, match="nope.json"):
        run_sleep(cfg)
    assert not (tmp_path / "sleep" / "adapter").exists()


def renamed(koan, **names):
    """The koan with identifiers renamed and literals changed, as a careless copy would be."""
    import re

    def edit(code: str) -> str:
        for old, new in names.items():
            code = re.sub(rf"\b{old}\b", new, code)
        return code

    return koan.__class__.from_dict(
        koan.to_dict()
        | {
            "id": koan.id + "-copy",
            "buggy_code": edit(koan.buggy_code),
            "correct_code": edit(koan.correct_code),
        }
    )


def test_leakage_guard_catches_a_renamed_evalset_koan(day, tmp_path):
    """A frozen koan with its names changed is the same koan: it is never trained on."""
    import re

    _, db, koans = day
    frozen = save_evalset([koans[1]], tmp_path / "frozen.json")
    names = sorted(set(re.findall(r"\bfn\s+([a-z_]\w*)", koans[1].buggy_code)) - {"main"})
    assert names, "the koan defines a function to rename"
    copy = renamed(koans[1], **{n: f"{n}_renamed" for n in names})
    assert copy.content_hash != koans[1].content_hash  # the old exact-hash guard let it through
    assert copy.normalized_hash == koans[1].normalized_hash
    with EpisodeStore(tmp_path / "ep.sqlite") as store:
        for k in (copy, koans[2]):
            eid = store.start_episode("d", k.id, family=k.family, pattern=k.pattern)
            store.finish_episode(eid, passed=False, final_error_signature="E0106 sig")
        eps = store.episodes()
    cur = curate(
        eps, {copy.id: copy, koans[2].id: koans[2]}, "tiny", "search_replace",
        evalset_paths=[frozen], augment_k=0, cluster_distance=DISTANCE,
    )  # fmt: skip
    assert set(cur.dataset["koan_id"]) == {koans[2].id}
    assert cur.stats["evalset_variants_dropped"] == 1


def test_sleep_trains_registers_and_loads_by_uri(day, tmp_path):
    _, db, _ = day
    cfg = sleep_cfg(tmp_path, f"curate.episodes={db}", "cycle=1")
    result = run_sleep(cfg)
    info = load_adapter_info(result.adapter_dir, MODEL_DIR)
    assert info.families == ["lifetimes", "trait_bounds"] and info.dataset_hash
    assert result.metrics["steps"] == 4 and result.metrics["rows"] > 0
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    version = client.get_model_version("sleepy-fixer", result.version)
    assert version.tags["cycle"] == "1" and version.tags["run_id"] == result.run_id
    run = client.get_run(result.run_id)
    assert "train_loss" in run.data.metrics and run.data.metrics["curate_rows"] > 0
    model = mlflow.pyfunc.load_model(f"models:/sleepy-fixer/{result.version}")
    out = model.predict(
        [[{"role": "user", "content": "fn main() { let x = 1; x = 2; }"}]],
        params={"max_new_tokens": 8},
    )
    assert isinstance(out[0], str)


def test_sleep_bad_inputs_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such episode database"):
        run_sleep(sleep_cfg(tmp_path, f"curate.episodes={tmp_path}/nope.sqlite"))
    with pytest.raises(ValueError, match="curate.episodes=PATH or curate.day_run_id"):
        run_sleep(sleep_cfg(tmp_path))


def _sleep_cli(cwd, *args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "sleepy.sleep", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, said",
    [
        (["tracking=none"], "is read from the tracking store, and tracking is off"),
        (["tracking.uri=sqlite:///gone/mlflow.db"], "no MLflow store at"),
    ],
)
def test_a_day_run_id_that_cannot_be_read_is_one_line_and_creates_no_store(tmp_path, args, said):
    proc = _sleep_cli(
        tmp_path, "curate.day_run_id=0123abcd", f"paths.outputs={tmp_path}/out", *args
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("sleepy-sleep: error: curate.day_run_id=0123abcd") and said in line
    assert not list(tmp_path.rglob("*.db"))  # no store made where none was


def test_a_day_run_id_the_store_does_not_hold_is_one_line(tmp_path):
    from sleepy.tracking import mlflow_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with mlflow_run(uri, "sleepy-day", run_name="a day"):
        pass
    proc = _sleep_cli(tmp_path, "curate.day_run_id=0123abcd", f"tracking.uri={uri}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    [line] = proc.stderr.strip().splitlines()
    assert "curate.day_run_id=0123abcd: no such run in" in line


def test_a_day_with_no_failures_is_nothing_to_learn_in_one_line(tmp_path):
    from sleepy.episodes.store import Episode
    from sleepy.koan import load_koans

    koan = load_koans(KOANS_DIR)[0]
    db = tmp_path / "episodes.sqlite"
    with EpisodeStore(db) as store:
        store.add_koans([koan])
        store.add(Episode("day", koan.id, family=koan.family, passed=True, status="done", steps=1))
    proc = _sleep_cli(
        tmp_path, f"curate.episodes={db}", "tracking=none", f"paths.outputs={tmp_path}"
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    # the curate stage's own start and end lines, then the one error line
    [line] = [x for x in proc.stderr.strip().splitlines() if "error" in x]
    assert line.startswith("sleepy-sleep: error: nothing to learn") and "every koan passed" in line
    assert proc.stderr.strip().splitlines()[-1] == line


def test_corrupt_or_foreign_adapter_is_refused(day, tmp_path):
    _, db, _ = day
    result = run_sleep(sleep_cfg(tmp_path, f"curate.episodes={db}", "register=false"))
    weights = result.adapter_dir / "adapter_model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:100])
    with pytest.raises(AdapterError, match="corrupt"):
        load_peft_model(MODEL_DIR, result.adapter_dir)
    weights.write_bytes(good)
    other = tmp_path / "other_base"
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cfg = AutoConfig.from_pretrained(MODEL_DIR)
    cfg.num_hidden_layers = 2
    AutoModelForCausalLM.from_config(cfg).save_pretrained(other)
    AutoTokenizer.from_pretrained(MODEL_DIR).save_pretrained(other)
    with pytest.raises(AdapterError, match="trained on base model"):
        load_adapter_info(result.adapter_dir, other)
    (result.adapter_dir / "adapter_config.json").unlink()
    with pytest.raises(AdapterError, match="adapter_config.json missing"):
        load_adapter_info(result.adapter_dir)


def test_augmentation_skips_patterns_without_templates(day):
    import dataclasses

    _, db, koans = day
    with EpisodeStore(db, create=False) as store:
        eps = store.episodes()
    by_id = {k.id: k for k in koans}
    k0 = koans[0]
    by_id[k0.id] = dataclasses.replace(k0, pattern="a_handwritten_only_pattern")
    cur = curate(
        eps,
        by_id,
        "tiny",
        "search_replace",
        augment_k=1,
        evalset_paths=FROZEN,
        cluster_distance=DISTANCE,
    )
    assert cur.stats["augment_rows"] >= 1  # the templated patterns were varied, the other skipped


@pytest.fixture(scope="module")
def share_basis(day, tmp_path_factory):
    """A lineage's first sleep with adapter=coefficients (an ordinary LoRA: there is no basis
    yet) and the Share bundle consolidated from it."""
    from sleepy.consolidate.methods import Share, TaskAdapter

    _, db, _ = day
    tmp = tmp_path_factory.mktemp("basis")
    first = run_sleep(
        sleep_cfg(tmp / "a", f"curate.episodes={db}", "register=false", "adapter=coefficients")
    )
    share = Share(threshold=0.6, k_min=2, k_max=4)(
        [TaskAdapter.from_path("c1", first.adapter_dir)], str(MODEL_DIR), tmp / "share"
    )
    return first, share.bundle_dir


def test_sleep_trains_coefficients_in_a_share_basis(day, share_basis, tmp_path):
    """adapter=coefficients (Share Phase 2): with a bundle, only coefficients train; without one
    (the lineage's first task) it is an ordinary LoRA that will shape the basis."""
    _, db, _ = day
    first, bundle = share_basis
    assert load_adapter_info(first.adapter_dir, MODEL_DIR).method == "lora"
    run = [f"curate.episodes={db}", "register=false", "adapter=coefficients"]
    second = run_sleep(sleep_cfg(tmp_path / "b", *run, f"adapter.bundle={bundle}"))
    info = load_adapter_info(second.adapter_dir, MODEL_DIR)
    assert info.method == "coefficients" and info.config["bundle"] == str(bundle)
    assert (info.config["p"], info.config["phi"]) == (2, 1)  # consolidation=share's
    # with phi 1 each layer also trains one temporary basis vector per side (n + d values)
    layers = load_bundle(bundle)
    assert second.metrics["trainable_params"] == sum(
        (x.beta.k + 1) * 2 + (x.alpha.k + 1) * 2 + x.beta.U.shape[0] + x.alpha.U.shape[0]
        for x in layers.values()
    )
    assert second.metrics["trainable_params"] * 10 < first.metrics["trainable_params"]
    assert second.metrics["steps"] == 4
    with pytest.raises(FileNotFoundError, match="not a Share bundle"):
        run_sleep(sleep_cfg(tmp_path / "c", *run, f"adapter.bundle={tmp_path}"))


def test_coefficient_training_stops_early_on_held_out_rows_and_mlflow_says_where_and_why(
    day, share_basis, tmp_path
):
    """Coefficient training shares LoRA's setup: adapter.eval_fraction holds rows out, early
    stopping watches their eval loss, and the sleep's MLflow run has the epochs trained, the step
    it stopped at (train_stopped_early_at) and why (the train_stop_reason tag)."""
    _, db, _ = day
    _, bundle = share_basis
    cfg = sleep_cfg(
        tmp_path,
        f"curate.episodes={db}",
        "register=false",
        "adapter=coefficients",
        f"adapter.bundle={bundle}",
        "adapter.max_steps=8",
        "adapter.early_stopping=true",
        "adapter.patience=1",
        "adapter.min_delta=100",
        "adapter.eval_fraction=0.25",
    )
    result = run_sleep(cfg)
    m = result.metrics
    assert load_adapter_info(result.adapter_dir, MODEL_DIR).method == "coefficients"
    assert m["eval_rows"] >= 1 and m["rows"] + m["eval_rows"] == result.stats["rows"]
    assert m["steps"] == 2 and m["stopped_early_at"] == 2
    assert m["stop_reason"].startswith("eval loss ") and m["stop_reason"].endswith(
        "by 100 for 1 evaluation"
    )
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.data.metrics["train_epochs"] == m["epochs"] > 0
    assert run.data.metrics["train_stopped_early_at"] == 2
    assert run.data.tags["train_stop_reason"] == m["stop_reason"]
    assert "eval_loss" in run.data.metrics


# -- training under `accelerate launch` ------------------------------------------------------------


def test_accelerate_configs_for_one_and_several_gpus_compose_with_bf16_where_supported(tmp_path):
    """The `accelerate` group, composed by Hydra, settled for a machine (GPUs and bf16 given, so
    this runs on CPU) and written as a file accelerate itself reads."""
    from accelerate.commands.config.config_args import load_config_from_file

    from sleepy.sleep.launch import LaunchError, accelerate_config, write_config

    one = sleep_cfg(tmp_path, "accelerate=single_gpu").accelerate
    many = sleep_cfg(tmp_path, "accelerate=multi_gpu").accelerate
    assert one.launch and many.launch and not sleep_cfg(tmp_path).accelerate.launch
    h200 = accelerate_config(one, visible=1, bf16=True)
    assert (h200["num_processes"], h200["mixed_precision"]) == (1, "bf16")
    eight = accelerate_config(many, visible=8, bf16=True)
    assert (eight["num_processes"], eight["mixed_precision"]) == (8, "bf16")
    v100s = accelerate_config(many, visible=4, bf16=False)  # no bf16 before Ampere
    assert (v100s["num_processes"], v100s["mixed_precision"]) == (4, "no")

    parsed = load_config_from_file(str(write_config(eight, tmp_path / "multi.yaml")))
    assert parsed.distributed_type == "MULTI_GPU" and parsed.num_processes == 8
    assert parsed.mixed_precision == "bf16" and parsed.gpu_ids == "all"
    parsed = load_config_from_file(str(write_config(h200, tmp_path / "one.yaml")))
    assert parsed.distributed_type == "NO" and parsed.mixed_precision == "bf16"

    with pytest.raises(LaunchError, match="torch sees none.*accelerate=none or accelerate=cpu"):
        accelerate_config(one, visible=0, bf16=False)
    with pytest.raises(LaunchError, match="use accelerate=single_gpu"):
        accelerate_config(many, visible=1, bf16=True)
    cpu = accelerate_config(sleep_cfg(tmp_path, "accelerate=cpu").accelerate)  # torch's own view
    assert (cpu["num_processes"], cpu["mixed_precision"], cpu["use_cpu"]) == (1, "no", True)


@pytest.mark.slow  # three processes start (sleepy-sleep, accelerate, sleepy-sleep): ~1 min
def test_sleepy_sleep_runs_again_under_accelerate_launch(day, tmp_path):
    """accelerate=cpu: the launch path of the GPU options, with one process on the CPU."""
    import subprocess
    import sys

    import yaml

    _, db, _ = day
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sleepy.sleep",
            "accelerate=cpu",
            f"curate.episodes={db}",
            f"paths.outputs={tmp_path}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            "adapter.max_steps=2",
            "adapter.batch_size=4",
            "adapter.target_modules=[q_proj,v_proj]",
            "curate.augment_k=0",
            "run_id=launched",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    launch = proc.stdout.splitlines()[0]
    assert launch.startswith("1 process(es), no: accelerate launch --config_file ")
    assert "-m sleepy.sleep" in launch and "accelerate.launch=false" in launch
    run = tmp_path / "sleep" / "launched"
    assert yaml.safe_load((run / "accelerate.yaml").read_text())["use_cpu"] is True
    info = load_adapter_info(run / "adapter", MODEL_DIR)  # trained by the launched process
    assert info.metrics["steps"] == 2
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["sleepy-sleep"], output_format="list")
    assert len(runs) == 1  # the launching process logs nothing itself
    assert [str(v.version) for v in mlflow.MlflowClient().search_model_versions()] == ["1"]


def test_a_process_other_than_the_main_one_trains_but_writes_and_logs_nothing(
    day, tmp_path, monkeypatch
):
    _, db, _ = day
    monkeypatch.setenv("RANK", "1")  # as torchrun sets it in the second process
    result = run_sleep(sleep_cfg(tmp_path, f"curate.episodes={db}", "adapter.max_steps=2"))
    assert result.metrics["steps"] == 2 and result.version is None
    assert not (tmp_path / "sleep" / "adapter").exists()
    assert not (tmp_path / "sleep" / "dataset").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_consolidation_uwsh_trains_coefficients_with_phi_0(day, share_basis, tmp_path):
    """UWSH adds no temporary basis vectors: sleep takes phi from the consolidation, not from a
    second copy of it in the adapter group; fewer parameters train than with share's phi 1."""
    _, db, _ = day
    _, bundle = share_basis
    run = [f"curate.episodes={db}", "register=false", "adapter=coefficients"]
    run.append(f"adapter.bundle={bundle}")
    uwsh = run_sleep(sleep_cfg(tmp_path / "uwsh", *run, "consolidation=uwsh"))
    assert load_adapter_info(uwsh.adapter_dir, MODEL_DIR).config["phi"] == 0
    # only the coefficients eps_beta (k x p) and eps_alpha (k x p) of each layer trained
    p = 2
    layers = load_bundle(bundle)
    assert uwsh.metrics["trainable_params"] == sum(
        (x.beta.k + x.alpha.k) * p for x in layers.values()
    )
    with pytest.raises(ConfigError, match="use consolidation=share or consolidation=uwsh"):
        run_sleep(sleep_cfg(tmp_path / "none", *run, "consolidation=none"))


class NoSandbox:
    """A sandbox that must not be asked: what the day recorded is all curation needs."""

    def verdict(self, koan, code):
        raise AssertionError(f"curation re-ran the sandbox on {koan.id}")


def test_curation_reads_the_feedback_the_day_recorded_instead_of_rerunning_the_sandbox(tmp_path):
    from sleepy.koans.generate import generate

    koans = generate("lifetimes", 2, seed=5, validate=False)
    with EpisodeStore(tmp_path / "ep.sqlite") as store:
        store.add_koans(koans)
        for k in koans:
            start = {"kind": "start", "code": k.buggy_code, "feedback": f"as the day saw {k.id}"}
            eid = store.start_episode(
                "d", k.id, family=k.family, pattern=k.pattern, error_signature="E0106 sig",
                trajectory=[start],
            )  # fmt: skip
            store.finish_episode(eid, passed=False, final_error_signature="E0106 sig")
        eps, by_id = store.episodes(), store.koans()
    assert set(by_id) == {k.id for k in koans}  # the day's selection, read back from the store
    cur = curate(
        eps, by_id, "tiny", "search_replace", evalset_paths=FROZEN, cluster_distance=DISTANCE,
        sandbox=NoSandbox(),
    )  # fmt: skip
    assert sorted(cur.dataset["feedback"]) == sorted(f"as the day saw {k.id}" for k in koans)
    assert all(f"as the day saw {r['koan_id']}" in r["prompt"][-1]["content"] for r in cur.dataset)


def test_the_training_line_says_how_many_rows_were_dropped_as_too_long_and_why(tmp_path):
    """curate counts 5 rows, training keeps 3: the stage line says the other 2 were longer than
    adapter.max_length, where setup drops them (trl would cut their completions)."""
    import io

    from datasets import Dataset
    from rich.console import Console

    from sleepy.console import Display
    from sleepy.sleep.train import train_adapter

    def row(i: int, words: int) -> dict:
        return {
            "prompt": [{"role": "user", "content": f"fix koan {i}: let x = 1; x = 2;"}],
            "completion": [{"role": "assistant", "content": " ".join(["let"] * words)}],
        }

    dataset = Dataset.from_list([row(i, 4) for i in range(3)] + [row(i, 400) for i in range(2)])
    cfg = sleep_cfg(
        tmp_path, "adapter.max_steps=1", "adapter.batch_size=2", "adapter.max_length=96"
    )
    console = Console(file=io.StringIO(), width=200)
    with Display("sleepy-sleep", console=console, quiet=False, heartbeat=0):
        result = train_adapter(dataset, MODEL_DIR, cfg.adapter, tmp_path / "sleep")
    assert result.metrics["rows"] == 3 and result.metrics["dropped_too_long"] == 2
    shown = console.file.getvalue()
    said = (
        f"train LoRA r{cfg.adapter.rank} on 3 rows (2 dropped as longer than adapter.max_length=96)"
    )
    assert f"start: {said} · 1 step\n" in shown and f"✓ {said} 1/1" in shown
