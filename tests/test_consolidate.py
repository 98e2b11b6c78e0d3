"""Consolidation methods on real PEFT adapters of sleepy-tiny: each writes a loadable LoRA."""

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from sleepy.adapters import AdapterInfo, fingerprint, write_info
from sleepy.adapters.lora_io import read_lora
from sleepy.adapters.router import Router, RouterError
from sleepy.consolidate.methods import Latest, PeftMerge, Share, TaskAdapter
from sleepy.sleep.config import CoefficientsConfig
from sleepy.tiny import MODEL_DIR

TARGETS = ["q_proj", "v_proj"]


SIGNATURES = {
    "lifetimes": "E0106 missing lifetime specifier",
    "trait_bounds": "E0277 the trait bound <type>: <id> is not satisfied",
}


def _adapter(tmp_path, name, seed, family):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(model, cfg)
    path = tmp_path / name
    peft_model.save_pretrained(str(path))
    write_info(
        path,
        AdapterInfo(
            base_model=str(MODEL_DIR),
            base_model_fingerprint=fingerprint(MODEL_DIR),
            families=[family],
            signatures=[SIGNATURES[family]],
        ),
    )
    return TaskAdapter.from_path(name, path)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapters")
    return [
        _adapter(tmp, f"task{i}", i + 1, fam) for i, fam in enumerate(["lifetimes", "trait_bounds"])
    ]


def _delta(factors):
    return {m: B @ A for m, (A, B) in factors.items()}


def test_mean_via_peft_cat_is_the_mean_delta(tasks, tmp_path):
    res = PeftMerge("cat", method="mean")(tasks, str(MODEL_DIR), tmp_path)
    merged = _delta(read_lora(res.adapter_dir))
    parts = [_delta(read_lora(t.path)) for t in tasks]
    for m, d in merged.items():
        assert torch.allclose(d, (parts[0][m] + parts[1][m]) / 2, atol=1e-5)
    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(MODEL_DIR)), str(res.adapter_dir)
    )


@pytest.mark.parametrize(
    "ctype,density", [("ties_svd", 0.5), ("dare_ties_svd", 0.5), ("svd", None)]
)
def test_peft_merges_write_loadable_adapters(tasks, tmp_path, ctype, density):
    res = PeftMerge(ctype, density=density, svd_rank=4)(tasks, str(MODEL_DIR), tmp_path)
    factors = read_lora(res.adapter_dir)
    assert set(factors) == set(read_lora(tasks[0].path))
    assert res.per_task["task0"]["lora_params"] > 0


def test_latest_keeps_only_the_newest(tasks, tmp_path):
    res = Latest()(tasks, str(MODEL_DIR), tmp_path)
    new, last = _delta(read_lora(res.adapter_dir)), _delta(read_lora(tasks[-1].path))
    assert all(torch.allclose(new[m], last[m], atol=1e-6) for m in new)


def test_share_full_k_rebuilds_tasks_and_routes(tasks, tmp_path):
    res = Share(threshold=1.0, k_min=8, k_max=8)(tasks, str(MODEL_DIR), tmp_path)
    assert all(v["recon_error"] < 1e-5 for v in res.per_task.values())
    for t in tasks:
        rebuilt = _delta(read_lora(res.bundle_dir / "tasks" / t.name))
        ref = _delta(read_lora(t.path))
        assert all(torch.allclose(rebuilt[m], ref[m], atol=1e-5) for m in ref)
    assert all(v["share_coeff_params"] < v["lora_params"] for v in res.per_task.values())
    assert res.bundle_dir == res.adapter_dir / "bundle"  # it travels with the adapter
    assert Router.find(res.adapter_dir) == res.bundle_dir


def test_router_routes_by_signature_then_cluster_else_base(tasks, tmp_path):
    res = Share(threshold=1.0, k_min=8, k_max=8, router="signature")(
        tasks, str(MODEL_DIR), tmp_path
    )
    router = Router(res.bundle_dir)
    assert router.tasks == ["task0", "task1"]
    assert router.route(SIGNATURES["trait_bounds"]) == "task1"  # seen in training
    assert router.route(SIGNATURES["lifetimes"]) == "task0"
    # unseen, but in the same cluster as a training signature
    assert router.route("E0277 the trait bound <type>: <id> is not satisfied in <id>") == "task1"
    assert router.route("E0106 missing lifetime specifier in return type") == "task0"
    # nothing like it: the base model
    assert router.route("E0384 cannot assign twice to immutable variable <id>") is None
    assert router.route(None) is None
    assert (router.task_dir("task1") / "adapter_config.json").is_file()


def test_router_distance_is_the_bundles_and_a_bare_test_failure_routes_nowhere(tasks, tmp_path):
    import json

    res = Share(threshold=1.0, k_min=8, k_max=8, route_distance=0.01, router="signature")(
        tasks, str(MODEL_DIR), tmp_path
    )
    table = json.loads((res.bundle_dir / "router.json").read_text())
    assert table["distance"] == 0.01
    tight = Router(res.bundle_dir)
    assert tight.route(SIGNATURES["trait_bounds"]) == "task1"  # exact still routes
    assert tight.route("E0277 the trait bound <type>: <id> is not satisfied in <id>") is None
    # a failing assertion names no mistake: even when a task trained on it, it is not routed
    table["tasks"]["task1"]["signatures"].append("test_failed assertion left == right failed")
    (res.bundle_dir / "router.json").write_text(json.dumps(table))
    assert Router(res.bundle_dir).route("test_failed assertion left == right failed") is None


def test_router_rejects_a_broken_table_in_one_line(tasks, tmp_path):
    res = Share(threshold=1.0, k_min=8, k_max=8)(tasks, str(MODEL_DIR), tmp_path)
    (res.bundle_dir / "router.json").write_text("{not json")
    with pytest.raises(RouterError, match="router.json: not a router table") as e:
        Router(res.bundle_dir)
    assert "\n" not in str(e.value)
    (res.bundle_dir / "router.json").write_text('{"tasks": {}}')
    with pytest.raises(RouterError, match="not a router table .*distance"):
        Router(res.bundle_dir)  # the distance is the bundle's own: there is no second default
    (res.bundle_dir / "router.json").write_text(
        '{"tasks": {"gone": {"signatures": []}}, "distance": 0.3}'
    )
    with pytest.raises(RouterError, match="no adapter: \\['gone'\\]"):
        Router(res.bundle_dir)


def test_share_truncated_k_reports_error(tasks, tmp_path):
    res = Share(threshold=0.6, k_min=1, k_max=2)(tasks, str(MODEL_DIR), tmp_path)
    assert all(0 < v["recon_error"] < 1 for v in res.per_task.values())
    assert all(layer["k_beta"] <= 2 for layer in res.per_layer.values())


def test_phase2_coefficient_training_in_frozen_basis(tasks, tmp_path):
    from datasets import Dataset
    from omegaconf import OmegaConf

    from sleepy.sleep.coefficients import train_coefficients

    bundle = Share(threshold=0.6, k_min=2, k_max=4)(
        tasks, str(MODEL_DIR), tmp_path / "share"
    ).bundle_dir
    rows = [
        {
            "prompt": [{"role": "user", "content": f"fix: let x{i} = 1; x{i} = 2;"}],
            "completion": [{"role": "assistant", "content": f"let mut x{i} = 1;"}],
            "koan_id": f"k{i}",
            "family": "mutability",
            "signature": "E0384",
        }
        for i in range(8)
    ]
    cfg = OmegaConf.structured(
        CoefficientsConfig(
            max_length=128,
            max_steps=3,
            batch_size=4,
            learning_rate=1e-2,
            coeff_learning_rate=5e-2,
            logging_steps=1,
        )
    )
    res = train_coefficients(Dataset.from_list(rows), MODEL_DIR, bundle, cfg, tmp_path / "t2", p=2)
    lora_params = sum(A.numel() + B.numel() for A, B in read_lora(tasks[0].path).values())
    # k <= 4 per side, p = 2, two target modules x 4 layers: coefficients only.
    assert res.metrics["trainable_params"] <= 2 * 4 * 2 * 2 * 4
    assert lora_params / res.metrics["trainable_params"] >= 30
    factors = read_lora(res.adapter_dir)
    assert all(A.shape[0] == 2 and A.abs().sum() > 0 for A, _ in factors.values())


def test_share_phase3_from_previous_bundle_keeps_earlier_tasks(tasks, tmp_path):
    first = Share(threshold=1.0, k_min=8, k_max=8)(tasks[:1], str(MODEL_DIR), tmp_path / "c1")
    second = Share(threshold=1.0, k_min=8, k_max=8, previous=str(first.bundle_dir))(
        tasks[1:], str(MODEL_DIR), tmp_path / "c2"
    )
    assert set(second.per_task) == {"task0", "task1"}
    assert all(v["recon_error"] < 1e-5 for v in second.per_task.values())
    # task0's original adapter is not read again: its bundle reconstruction carries it
    rebuilt = _delta(read_lora(second.bundle_dir / "tasks" / "task0"))
    ref = _delta(read_lora(tasks[0].path))
    assert all(torch.allclose(rebuilt[m], ref[m], atol=1e-4) for m in ref)
    assert Router(second.bundle_dir).tasks == ["task0", "task1"]


@pytest.mark.parametrize("method", ["none", "mean", "ties", "dare_ties", "svd", "share", "uwsh"])
def test_consolidate_entrypoint_logs_and_registers(tasks, tmp_path, compose, method):
    import mlflow

    from sleepy.consolidate.run import run_consolidate

    cfg = compose(
        "consolidate",
        f"consolidation={method}",
        f"tasks=[{tasks[0].path},{tasks[1].path}]",
        "consolidation.svd_rank=4" if method in ("ties", "dare_ties", "svd") else "cycle=0",
        out="out",
    )
    version = run_consolidate(cfg).version
    assert version == "1"
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mv = mlflow.MlflowClient().get_model_version("sleepy-fixer", version)
    assert mv.tags["method"] == method
    run = mlflow.get_run(mv.tags["run_id"])
    assert run.data.metrics["task0.lora_bytes"] > 0 and "seconds" in run.data.metrics
    if method in ("share", "uwsh"):
        assert any(k.endswith("explained_beta") for k in run.data.metrics)
        assert "task1.recon_error" in run.data.metrics
        # the registered version carries the router bundle: what a routed eval downloads
        from sleepy.registry import download_adapter, model_uri

        got = download_adapter(model_uri("sleepy-fixer", version), tmp_path / "dl")
        assert (got / "bundle" / "router.json").is_file()


def test_hf_backend_routes_each_conversation_to_its_task_adapter(tasks, tmp_path):
    from sleepy.llm import BackendError
    from sleepy.llm.hf import HFBackend

    res = Share(threshold=1.0, k_min=8, k_max=8, router="signature")(
        tasks, str(MODEL_DIR), tmp_path
    )
    routed = HFBackend(MODEL_DIR, adapter=res.adapter_dir, max_new_tokens=12)
    assert routed.supports_routing and routed.router.tasks == ["task0", "task1"]
    prompt = [{"role": "user", "content": "fn main() { let x = 1; x = 2; }"}]
    sigs = [SIGNATURES["trait_bounds"], "E0384 cannot assign twice to immutable variable <id>"]
    gens = routed.generate([prompt, prompt], signatures=sigs, route_texts=["E0277", None])
    assert [(g.routed, g.adapter) for g in gens] == [(True, "task1"), (True, None)]
    assert gens[0].route_confidence == 1.0  # a signature the task trained on
    # the same text as that task's adapter alone, and as the base model alone
    alone = HFBackend(MODEL_DIR, adapter=res.bundle_dir / "tasks" / "task1", max_new_tokens=12)
    base = HFBackend(MODEL_DIR, max_new_tokens=12)
    assert gens[0].text == alone.generate([prompt])[0].text
    assert gens[1].text == base.generate([prompt])[0].text
    assert gens[0].text != gens[1].text  # the adapter changed the reply
    # route=off: the averaged adapter, no routing
    averaged = HFBackend(MODEL_DIR, adapter=res.adapter_dir, route="off", max_new_tokens=12)
    assert not averaged.supports_routing and averaged.router is None
    with pytest.raises(BackendError, match=r"route must be one of \('auto', 'off', 'arrow'\)"):
        HFBackend(MODEL_DIR, adapter=res.adapter_dir, route="maybe")
    # route=arrow: PEFT's Arrow router over the bundle's task adapters, a training-free baseline
    arrow = HFBackend(MODEL_DIR, adapter=res.adapter_dir, route="arrow", max_new_tokens=12)
    assert "arrow_router" in arrow.model.peft_config and not arrow.supports_routing
    assert arrow.generate([prompt])[0].text != gens[1].text  # the task adapters took part


def test_sleepy_serve_routes_requests_that_carry_an_error_signature(tasks, tmp_path):
    from sleepy.llm.hf import HFBackend
    from sleepy.llm.openai import OpenAIBackend
    from sleepy.serve import OpenAIServer

    res = Share(threshold=1.0, k_min=8, k_max=8)(tasks, str(MODEL_DIR), tmp_path)
    routed = HFBackend(MODEL_DIR, adapter=res.adapter_dir, model_id="tiny", max_new_tokens=12)
    prompt = [{"role": "user", "content": "fn main() { let x = 1; x = 2; }"}]
    sigs = [SIGNATURES["lifetimes"], SIGNATURES["trait_bounds"], None]
    direct = routed.generate([prompt] * 3, signatures=sigs)
    with OpenAIServer(routed, host="127.0.0.1", port=0, max_batch=8) as server:
        client = OpenAIBackend(
            "tiny", base_url=server.url, retries=0, route=True, max_new_tokens=12
        )
        over_http = client.generate([prompt] * 3, signatures=sigs)
        plain = OpenAIBackend("tiny", base_url=server.url, retries=0).generate([prompt])[0]
    assert [g.adapter for g in over_http] == ["task0", "task1", None]
    assert all(g.routed for g in over_http)
    assert [g.text for g in over_http] == [g.text for g in direct]
    assert plain.routed and plain.adapter is None  # no signature sent: the base model


@pytest.mark.parametrize("method", ["lora", "coefficients"])
def test_both_trainers_say_to_raise_max_length_when_no_row_fits(method, tmp_path):
    from datasets import Dataset
    from omegaconf import OmegaConf

    from sleepy.sleep.coefficients import train_coefficients
    from sleepy.sleep.train import train_adapter

    rows = [
        {
            "prompt": [{"role": "user", "content": "fix: let x = 1; x = 2;"}],
            "completion": [{"role": "assistant", "content": "let mut x = 1;"}],
        }
    ]
    cfg = OmegaConf.structured(CoefficientsConfig(max_length=4))
    # the rows are checked before the basis is read: no bundle is needed to get there
    with pytest.raises(ValueError, match=r"\(1 dropped as too long\): raise adapter.max_length"):
        if method == "lora":
            train_adapter(Dataset.from_list(rows), MODEL_DIR, cfg, tmp_path)
        else:
            train_coefficients(Dataset.from_list(rows), MODEL_DIR, tmp_path / "none", cfg, tmp_path)
