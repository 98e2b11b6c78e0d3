"""sleepy-cycle end to end on sleepy-tiny: two cycles with real training, a real registry, the gate,
resume after a crash; plus `mlflow server` on the run's store, queried over its REST API."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
from support import stage_config

from sleepy.adapters import load_adapter_info
from sleepy.config import ConfigError
from sleepy.cycle import CycleError, State, run_cycle
from sleepy.episodes import EpisodeStore


@pytest.fixture(scope="module")
def small_world(tmp_path_factory, generated):
    """A koan folder and a small frozen evalset, disjoint, both from the generator."""
    from sleepy.koan import save_evalset
    from sleepy.koan.model import save_koan

    tmp = tmp_path_factory.mktemp("world")
    koans = tmp / "koans"
    for fam in ("trait_bounds", "lifetimes"):
        for k in generated(fam, 3, seed=21):
            save_koan(k, koans)
    ev = [
        k for fam in ("trait_bounds", "lifetimes", "mutability") for k in generated(fam, 2, seed=99)
    ]
    save_evalset(ev, tmp / "frozen.json")
    return tmp


def cycle_cfg(tmp_path: Path, world: Path, *overrides: str):
    base = [
        f"paths.koans={world / 'koans'}",
        f"evalset={world / 'frozen.json'}",
        "lineage=test",
        "curriculum=[{families: [trait_bounds], count: 3},{families: [lifetimes], count: 3}]",
        "adapter.max_steps=3",
        "adapter.batch_size=4",
        "adapter.target_modules=[q_proj,v_proj]",
        "curate.augment_k=1",
        "learning_set.k=2",
        "agent.max_attempts=1",
        "model.max_new_tokens=24",
        f"curate.evalset_paths=[{world / 'frozen.json'}]",
    ]
    return stage_config("cycle", tmp_path, *base, *overrides)


def test_two_cycles_register_gate_and_resume(tmp_path, small_world, capsys):
    cfg = cycle_cfg(
        tmp_path,
        small_world,
        "cycles=2",
        "adapter=coefficients",
        "gate.min_gain=-1.0",
        "gate.min_gain_koans=0",
        "gate.max_regressions=100",
        "gate.max_family_drop=1.0",
    )
    summaries = run_cycle(cfg)
    assert [s["cycle"] for s in summaries] == [1, 2]
    # the run's own registered model, said before any stage runs
    said = " ".join(capsys.readouterr().err.split())
    assert "lineage test: adapters register as sleepy-fixer-test (this run's own" in said
    state = State.load(tmp_path / "cycle" / "state.json")
    for c in (1, 2):
        assert {"parent", "day", "sleep", "consolidate", "eval", "lineage"} <= set(
            state.data[str(c)]
        )
    # Share Phase 2: cycle 1's LoRA shaped the basis, cycle 2 trained coefficients in it
    methods = [load_adapter_info(state.data[c]["sleep"]["adapter"]).method for c in ("1", "2")]
    assert methods == ["lora", "coefficients"]
    # cycle 2's day ran the champion (a Share adapter): each koan was routed by its signature
    # and so did cycle 2's eval, on adapters downloaded from the registry (the bundle inside)
    for db in (
        state.data["2"]["day"]["db"],
        tmp_path / "cycle" / "cycle2" / "eval" / "episodes.sqlite",
    ):
        with EpisodeStore(db, create=False) as store:
            steps = [s for e in store.episodes() for s in e.trajectory if s.get("kind") != "start"]
        assert steps and all("adapter" in s for s in steps)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    assert [m.name for m in client.search_registered_models()] == ["sleepy-fixer-test"]
    versions = client.search_model_versions("name='sleepy-fixer-test'")
    assert len(versions) == 2
    # a permissive gate promotes both: champion is the newest, previous the one before
    assert str(client.get_model_version_by_alias("sleepy-fixer-test", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("sleepy-fixer-test", "previous").version) == "1"
    # each cycle is a parent run with its stages nested under it
    parent = state.data["1"]["parent"]["run_id"]
    exp = client.get_run(parent).info.experiment_id
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent}'")
    assert {r.data.tags["stage"] for r in children} >= {"day", "sleep", "consolidate", "eval"}

    _check_learning_sets(state, client, exp)

    # the README's table comes from the store, not from hand-copied figures
    from sleepy.report import cycle_summaries, cycles_markdown

    lineage, rows = cycle_summaries(f"sqlite:///{tmp_path}/mlflow.db", "sleepy-cycle")
    assert lineage == "test" and [r["cycle"] for r in rows] == [1, 2]
    for row, s in zip(rows, summaries, strict=True):
        assert row["learning_pass_rate"] == pytest.approx(s["learning_pass_rate"])
        assert row["families"] == s["families"] and row["decision"] == s["decision"]
    table = cycles_markdown(rows)
    assert table.splitlines()[2].startswith("| 1 | trait_bounds | ")
    assert "| 2 | lifetimes | " in table

    plots = sorted(p.name for p in (tmp_path / "cycle" / "plots").glob("*.png"))
    assert any("learning" in p for p in plots) and any("forgetting" in p for p in plots)
    _query_through_mlflow_server(tmp_path / "mlflow.db", exp, parent)

    # resume: every stage is already done, so nothing runs again and nothing is duplicated
    again = run_cycle(cfg)
    assert again == summaries
    assert len(client.search_model_versions("name='sleepy-fixer-test'")) == 2


def _check_learning_sets(state: State, client, experiment_id: str) -> None:
    """Each cycle's eval measured a learning set built from the lineage's day failures, disjoint
    from every koan its sleeps trained on, grown from the previous cycle's; gate on both sets."""
    from sleepy.koan import load_evalset
    from sleepy.koans.generate import EVAL_SEEDS

    sets, training = [], []
    for c in ("1", "2"):
        info = state.data[c]["learning_set"]
        koans = load_evalset(info["path"])
        assert koans and len(koans) == info["koans"]
        assert all(k.meta["learning"] in ("template", "transfer") for k in koans)
        assert all(k.meta["seed"] in EVAL_SEEDS for k in koans if k.meta["learning"] == "template")
        training += load_evalset(state.data[c]["sleep"]["training_koans"])
        assert not {k.content_hash for k in koans} & {t.content_hash for t in training}
        assert not {k.normalized_hash for k in koans} & {t.normalized_hash for t in training}
        sets.append({k.id for k in koans})
    assert sets[0] <= sets[1]  # cycle 1's koans are re-measured in cycle 2
    for c in ("1", "2"):
        ev = state.data[c]["eval"]
        assert "learning-set pass rate" in ev["decision"]
        assert 0.0 <= ev["learning_pass_rate"] <= 1.0
    evals = client.search_runs([experiment_id], "tags.stage = 'eval'")
    assert len(evals) == 2
    for run in evals:
        assert {"learning_pass_rate", "champion_learning_pass_rate", "pass_rate"} <= set(
            run.data.metrics
        )
        assert "regressions" in run.data.metrics


@pytest.mark.slow  # more cycles; make test runs the full cycle above
@pytest.mark.parametrize("where", ["before the eval", "mid-eval"])
def test_crash_between_stages_resumes_from_the_next_stage(
    tmp_path, small_world, monkeypatch, where
):
    """A crash before the eval, or in it after the learning set was measured: the resumed run
    goes on from there (the eval's finished measurements are continued, not refused)."""
    import sleepy.cycle
    import sleepy.eval.run

    # registry.name continues a named model instead of the run's own
    cfg = cycle_cfg(tmp_path, small_world, "cycles=1", "registry.name=sleepy-fixer")
    measure = sleepy.eval.run._measure_set

    def crash(*args, **kwargs):
        if where == "before the eval" or args[1] == "frozen":
            raise RuntimeError("power cut")
        return measure(*args, **kwargs)

    # the eval, as the cycle calls it, or its frozen-suite measurement
    if where == "before the eval":
        monkeypatch.setattr(sleepy.cycle, "evaluate", crash)
    else:
        monkeypatch.setattr(sleepy.eval.run, "_measure_set", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run_cycle(cfg)
    state = json.loads((tmp_path / "cycle" / "state.json").read_text())
    assert {"day", "sleep", "consolidate"} <= set(state["1"]) and "eval" not in state["1"]
    sleep_adapter = state["1"]["sleep"]["adapter"]
    if where == "mid-eval":
        import shutil

        # a cache that cannot answer (another sleepy version keys it apart): the learning set's
        # finished measurements are continued from the eval's episode store instead
        shutil.rmtree(tmp_path / "eval_cache")
    monkeypatch.undo()
    run_cycle(cfg)
    state = json.loads((tmp_path / "cycle" / "state.json").read_text())
    assert state["1"]["sleep"]["adapter"] == sleep_adapter and "eval" in state["1"]
    assert (
        len(
            mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_model_versions(
                "name='sleepy-fixer'"
            )
        )
        == 1
    )


@contextmanager
def mlflow_server(db: Path, artifacts: Path | None = None):
    """`mlflow server` on a sqlite store (its own process group); yields its URL. With
    `artifacts`, it stores the artifacts its clients upload there (proxied artifact access)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    store = ["--artifacts-destination", str(artifacts)] if artifacts else []
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            *store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError("mlflow server did not come up") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: the whole group
        proc.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.3)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("mlflow server left processes behind after SIGTERM to its group")


def _query_through_mlflow_server(db: Path, experiment_id: str, parent_run_id: str) -> None:
    """`mlflow server` on the run's store, the cycle's runs over REST."""
    import urllib.request

    with mlflow_server(db) as url:
        body = json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode()
        req = urllib.request.Request(
            f"{url}/api/2.0/mlflow/runs/search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        runs = json.loads(urllib.request.urlopen(req, timeout=30).read())["runs"]
        ids = {r["info"]["run_id"] for r in runs}
        assert parent_run_id in ids
        stages = {
            t["value"] for r in runs for t in r["data"].get("tags", []) if t["key"] == "stage"
        }
        assert {"cycle", "day", "sleep", "consolidate", "eval"} <= stages


@pytest.mark.slow  # more cycles; make test runs the full cycle above
def test_sweep_jobs_do_not_collide(tmp_path, small_world):
    """`sleepy-cycle -m` with two strategies: separate dirs and champions, one MLflow experiment."""
    import subprocess
    import sys

    overrides = [
        f"paths.outputs={tmp_path}",
        f"paths.koans={small_world / 'koans'}",
        f"evalset={small_world / 'frozen.json'}",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        "cycles=1",
        "curriculum=[{families: [trait_bounds], count: 2}]",
        "adapter.max_steps=2",
        "adapter.batch_size=4",
        "adapter.target_modules=[q_proj,v_proj]",
        "curate.augment_k=0",
        "agent.max_attempts=1",
        "model.max_new_tokens=16",
        "plots=false",
        f"curate.evalset_paths=[{small_world / 'frozen.json'}]",
        "run_id=sweep",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "sleepy.cycle", "-m", "consolidation=none,share", *overrides],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = sorted((tmp_path / "cycle" / "multirun" / "sweep").glob("*/state.json"))
    assert len(jobs) == 2
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("sleepy-cycle")
    parents = client.search_runs([exp.experiment_id], "tags.stage = 'cycle'")
    assert {r.data.tags["consolidation"] for r in parents} == {"none", "share"}
    assert len({r.data.tags["lineage"] for r in parents}) == 2
    names = {m.name for m in client.search_registered_models()}
    assert names == {"sleepy-fixer-sweep-0", "sleepy-fixer-sweep-1"}
    # runs named by what the job varies, each carrying its params; one summary at the end
    assert {r.info.run_name for r in parents} == {
        "consolidation=none · cycle 1",
        "consolidation=share · cycle 1",
    }
    assert all(r.data.params["cycle"] == "1" and "adapter.rank" in r.data.params for r in parents)
    assert {r.data.tags["sweep"] for r in parents} == {"sweep"}
    summary = (tmp_path / "cycle" / "multirun" / "sweep" / "sweep_summary.md").read_text()
    assert "| consolidation=none | 1 |" in summary and "| consolidation=share | 1 |" in summary
    assert "consolidation=share" in proc.stdout and "sweep summary:" in proc.stdout
    # off a terminal the same closing lines are in the sweep's own log
    log = (tmp_path / "cycle" / "multirun" / "sweep" / "sleepy.log").read_text()
    assert "consolidation=share" in log and "sweep summary:" in log
    [sweep_run] = client.search_runs([exp.experiment_id], "tags.stage = 'sweep'")
    assert "sweep/sweep_summary.md" in [
        a.path for a in client.list_artifacts(sweep_run.info.run_id, "sweep")
    ]


def test_a_sweep_through_submitit_logs_both_jobs_to_an_mlflow_server(tmp_path, small_world):
    """The cluster setup on one machine: hydra/launcher=slurm_local runs each job through
    submitit (pickled, started as its own process, result read back, as on a SLURM node), and
    the jobs log over HTTP to an `mlflow server` whose database and artifact store they never
    touch themselves. The server creates its store once, before the jobs start."""
    import subprocess
    import sys

    db, artifacts = tmp_path / "server" / "mlflow.db", tmp_path / "server" / "artifacts"
    db.parent.mkdir()
    overrides = [
        f"paths.outputs={tmp_path}",
        f"paths.koans={small_world / 'koans'}",
        f"evalset={small_world / 'frozen.json'}",
        "cycles=1",
        "curriculum=[{families: [trait_bounds], count: 2}]",
        "adapter.max_steps=2",
        "adapter.batch_size=4",
        "adapter.target_modules=[q_proj,v_proj]",
        "curate.augment_k=0",
        "learning_set.k=1",
        "agent.max_attempts=1",
        "model.max_new_tokens=16",
        "consolidation=none",
        "backend.threads=1",  # the two jobs run at once
        "plots=false",
        f"curate.evalset_paths=[{small_world / 'frozen.json'}]",
        "run_id=cluster",
        "hydra/launcher=slurm_local",
    ]
    with mlflow_server(db, artifacts) as url:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "sleepy.cycle",
                "-m",
                "adapter.rank=2,4",
                f"tracking.uri={url}",
                *overrides,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        sweep = tmp_path / "cycle" / "multirun" / "cluster"
        assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2  # submitit ran both jobs
        client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
        exp = client.get_experiment_by_name("sleepy-cycle")
        parents = client.search_runs([exp.experiment_id], "tags.stage = 'cycle'")
        ranks = {r.data.params["adapter.rank"]: r for r in parents}
        assert set(ranks) == {"2", "4"} and len({r.data.tags["lineage"] for r in parents}) == 2
        for parent in parents:
            stages = client.search_runs(
                [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
            )
            assert {r.data.tags["stage"] for r in stages} >= {"day", "sleep", "eval"}
        names = {m.name for m in client.search_registered_models()}
        assert names == {"sleepy-fixer-cluster-0", "sleepy-fixer-cluster-1"}
    # the artifacts went through the server into its store, not into the jobs' folders
    assert list(artifacts.rglob("adapter_model.safetensors"))
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow  # more cycles; make test runs the full cycle above
def test_a_cycle_runs_with_tracking_off(tmp_path, small_world):
    """tracking=none used to crash sleepy-cycle; without a registry nothing is promoted."""
    cfg = cycle_cfg(tmp_path, small_world, "tracking=none", "cycles=1", "consolidation=mean")
    summaries = run_cycle(cfg)
    assert [s["cycle"] for s in summaries] == [1]
    assert "not a registry version" in summaries[0]["decision"]
    state = State.load(tmp_path / "cycle" / "state.json")
    assert (Path(state.data["1"]["consolidate"]["adapter"]) / "adapter_model.safetensors").is_file()
    assert not list(tmp_path.rglob("mlflow.db"))


def test_resuming_over_a_damaged_state_json_is_a_one_line_error_that_keeps_the_file(tmp_path):
    # a crash mid-write cannot cut state.json short (it is written whole); a full disk in an editor,
    # a copy cut short or a hand edit can
    state = tmp_path / "cycle" / "damaged" / "state.json"
    state.parent.mkdir(parents=True)
    damaged = b'{"1": {"day": {"run_id": "damaged-c1-day", "db": "/runs/episodes.sq'
    state.write_bytes(damaged)
    proc = subprocess.run(
        [sys.executable, "-m", "sleepy.cycle", "run_id=damaged", f"paths.outputs={tmp_path}"]
        + ["tracking=none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"sleepy-cycle: error: {state} is damaged: not valid JSON (line 1")
    assert "restore it from a copy" in line
    assert state.read_bytes() == damaged  # the record of what is done is not lost


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\xff\xfe garbage", "not UTF-8 text"),
        (b"[]", "a JSON list, not an object of cycles"),
        (b'{"1": []}', "entry '1' is not a cycle number holding its stages"),
        (b'{"1": {"day": "done"}}', "cycle 1's 'day' is not an object"),
    ],
)
def test_state_json_that_is_not_what_the_cycle_writes_is_refused_as_it_is(
    tmp_path, content, problem
):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(CycleError, match=f"is damaged: {problem}"):
        State.load(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "curriculum, problem, error",
    [
        ("[{families: [lifetimes], mutant: 4}]", "unknown key 'mutant'", ConfigError),
        (
            "[{families: [lifetimes]},{families: [trait_bounds], generate: -2}]",
            r"curriculum\[1\].generate=-2: must be an integer >= 0",
            ConfigError,
        ),
        ("[{count: 4}]", r"curriculum\[0\].families is required", ConfigError),
        ("[{families: []}]", "entry 1: give its families", CycleError),
    ],
)
def test_a_broken_curriculum_stops_the_cycle_before_any_work(
    tmp_path, small_world, curriculum, problem, error
):
    with pytest.raises(error, match=problem):
        run_cycle(cycle_cfg(tmp_path, small_world, f"curriculum={curriculum}"))
    assert not (tmp_path / "cycle1").exists()
