"""The learned router on real koans, real rustc feedback and a real Share bundle: what reaches a new
task adapter when families share rustc's error codes, its files, and route withdrawal."""

from __future__ import annotations

import json

import pytest
from support import make_adapter, stage_config

from sleepy.adapters.router import MODEL_FILE, Router, RouterError, RouterModel, add_withdrawn
from sleepy.consolidate.methods import Share, TaskAdapter
from sleepy.episodes.store import Episode
from sleepy.eval.metrics import outcomes
from sleepy.eval.withdraw import routes_to_withdraw
from sleepy.koan import load_koans
from sleepy.koans.generate import generate
from sleepy.koans.mutate import mutate, programs_of
from sleepy.koans.route import route_example
from sleepy.sandbox import Sandbox
from sleepy.tiny import MODEL_DIR


def _corpus() -> tuple[str, str]:
    """The corpus and the evalsets as a composed config names them (consolidation=share's
    route_koans and route_evalsets)."""
    from sleepy.config import compose_config

    cfg = compose_config("consolidate", ["tasks=[x]", "paths.output_dir=/tmp/unused"])
    return str(cfg.consolidation.route_koans[0]), str(cfg.consolidation.route_evalsets[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trait_bounds task (trained on generated koans of its patterns: E0277, E0369 and the
    missing derive's E0599) consolidated by Share twice, learned router and signature router, with
    the corpus's other families as the base model's examples; and rustc's real verdict on held-out
    koans: a result_handling method called on a Result (E0599 too) and a missing derive."""
    tmp = tmp_path_factory.mktemp("learned")
    koans_dir, evalsets_dir = _corpus()
    trained = generate("trait_bounds", 24, seed=11, validate=False)
    sandbox = Sandbox()
    signatures = sorted({str(sandbox.verdict(k, k.buggy_code).signature) for k in trained})
    task = TaskAdapter(
        "c1",
        make_adapter(tmp / "c1", seed=1, family="trait_bounds", rank=2),
        ["trait_bounds"],
        signatures,
        [route_example(k) for k in trained],
    )
    bundles = {}
    for kind in ("learned", "signature"):
        share = Share(
            threshold=1.0,
            k_min=2,
            k_max=4,
            router=kind,
            # curation's distance: what routing by signature used before it was tightened
            route_distance=0.6,
            route_koans=[koans_dir],
            route_evalsets=[evalsets_dir],
        )
        bundles[kind] = share([task], str(MODEL_DIR), tmp / kind).bundle_dir

    def held_out(family: str, pattern: str):
        [koan] = generate(family, 1, seed=1_000_000_011, patterns=[pattern], purpose="eval")
        v = sandbox.verdict(koan, koan.buggy_code)
        return str(v.signature), v.feedback()

    return {
        "task": task,
        "corpus": (koans_dir, evalsets_dir),
        "bundles": bundles,
        "signatures": signatures,
        "result_on_result": held_out("result_handling", "method_on_result"),
        "missing_derive": held_out("trait_bounds", "missing_derive_clone"),
    }


def test_a_koan_of_another_family_with_the_same_error_code_reaches_the_base_not_the_new_task(
    world,
):
    signature, feedback = world["result_on_result"]
    assert signature.startswith("E0599")  # the code the task's missing-derive koans have too
    assert any(s.startswith("E0599") for s in world["signatures"])
    learned = Router(world["bundles"]["learned"])
    route = learned.decide(signature, feedback)
    assert route.task is None, route
    # the task's own mistake, with rustc's text, still reaches it
    own_signature, own_feedback = world["missing_derive"]
    assert learned.route(own_signature, own_feedback) == "c1"
    # routing by signature alone sends the other family's koan to the new task: the bug
    assert Router(world["bundles"]["signature"]).route(signature, feedback) == "c1"


def test_a_learned_router_round_trips_through_its_files_and_refuses_a_corrupt_one(world, tmp_path):
    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from sleepy.sandbox.signatures import SIGNATURE_TOKENS

    examples = [
        ("E0599 no method named <id> found for struct", "no method named `clone` x.clone()", "a"),
        ("E0277 the trait bound <type>: <id> is not satisfied", "Display bound T", "a"),
        ("E0599 found for enum <type>", "found for enum `Result` r.len()", None),
        ("E0382 borrow of moved value: <id>", "value moved v", None),
        ("E0106 missing lifetime specifier", "expected named lifetime parameter", "b"),
    ]
    model = RouterModel.fit(examples)
    model.save(tmp_path / MODEL_FILE)
    again = RouterModel.load(tmp_path / MODEL_FILE)
    assert again == model and again.classes == [None, "a", "b"]
    # the JSON rebuilt by hand gives scikit-learn's own probabilities
    make = lambda: TfidfVectorizer(  # noqa: E731
        token_pattern=SIGNATURE_TOKENS, lowercase=False, sublinear_tf=True
    )
    sig, txt = make(), make()
    phi = hstack(
        [sig.fit_transform([e[0] for e in examples]), txt.fit_transform([e[1] for e in examples])]
    )
    y = [again.classes.index(e[2]) for e in examples]
    clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=5000, random_state=0)
    clf.fit(phi, y)
    query = ("E0599 found for enum <type>", "no method named `len` found for enum `Result`")
    ours = again.probabilities(*query)
    theirs = clf.predict_proba(hstack([sig.transform([query[0]]), txt.transform([query[1]])]))[0]
    assert np.allclose(ours, theirs, atol=1e-6)

    bundle = world["bundles"]["learned"]
    saved = (bundle / MODEL_FILE).read_text()
    try:
        data = json.loads(saved)
        data["coef"][0] = data["coef"][0][:-1]  # one coefficient short
        (bundle / MODEL_FILE).write_text(json.dumps(data))
        with pytest.raises(RouterError, match="not a router model") as e:
            Router(bundle)
        assert "\n" not in str(e.value) and MODEL_FILE in str(e.value)
        (bundle / MODEL_FILE).write_text(saved[: len(saved) // 2])  # cut short
        with pytest.raises(RouterError, match="not a router model") as e:
            Router(bundle)
        assert "\n" not in str(e.value)
    finally:
        (bundle / MODEL_FILE).write_text(saved)
    assert Router(bundle).tasks == ["c1"]


def test_withdrawal_rewrites_router_json_and_the_query_then_goes_to_the_base(world, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(world["bundles"]["signature"], bundle)
    signature, feedback = world["result_on_result"]
    router = Router(bundle)
    assert router.route(signature, feedback) == "c1"  # the new task took another family's koan
    step = lambda adapter: {  # noqa: E731
        "step": 1,
        "adapter": adapter,
        "route_confidence": None,
        "route_signature": signature,
    }
    lost = Episode("eval-candidate", "rh-1", family="result_handling", trajectory=[{}, step("c1")])
    kept = Episode("eval-candidate", "tb-1", family="trait_bounds", trajectory=[{}, step("c1")])
    entries = routes_to_withdraw(router, {"c1"}, ["rh-1"], outcomes([lost, kept]), None)
    assert [(e["task"], e["signature"], e["to"], e["koan_ids"]) for e in entries] == [
        ("c1", signature, None, ["rh-1"])
    ]
    add_withdrawn(bundle, entries)
    table = json.loads((bundle / "router.json").read_text())
    [entry] = table["withdrawn"]
    assert entry["task"] == "c1" and entry["signature"] == signature
    assert "regressed" in entry["reason"] and entry["koan_ids"] == ["rh-1"]
    assert Router(bundle).route(signature, feedback) is None  # the base model answers it now
    # a route the task trained on is never withdrawn: that regression is the task's own
    own = world["signatures"][0]
    trained = Episode(
        "e", "tb-2", family="trait_bounds", trajectory=[{}, {**step("c1"), "route_signature": own}]
    )
    assert routes_to_withdraw(router, {"c1"}, ["tb-2"], outcomes([trained]), None) == []


def test_the_router_reads_rustcs_message_and_quoted_lines_not_its_help():
    """At inference the router sees rustc's whole feedback; it learned from a koan's message and
    the lines its fix changes, so the arrows, notes and help (which name other types and methods)
    are left out before it decides."""
    from sleepy.adapters.router import diagnostic_core

    feedback = (
        "error[E0599]: no method named `len` found for enum `Result` in the current scope\n"
        " --> src/main.rs:4:13\n  |\n4 |     let n = r.len();\n"
        "  |               ^^^ method not found in `Result<String, ParseIntError>`\n  |\n"
        "note: the method `len` exists on the type `String`\n"
        "help: consider using `Result::expect` to unwrap the `String` value\n"
    )
    assert diagnostic_core(feedback).splitlines() == [
        "no method named `len` found for enum `Result` in the current scope",
        "let n = r.len();",
    ]
    koan_text = "found for enum `Result\nlet n = r.len();"
    assert diagnostic_core(koan_text) == koan_text  # no quoted line: kept as it is


def test_the_eval_withdraws_routes_into_a_copy_of_the_candidate(world, tmp_path):
    """The eval's own step (the one a cycle runs): the candidate's folder is copied, the copy's
    router.json lists the withdrawn route, and the candidate's own folder is left as it was."""
    import shutil

    from sleepy.eval.run import Contender, SetResult, withdraw_routes

    cand = tmp_path / "candidate"
    shutil.copytree(world["bundles"]["signature"], cand / "bundle")
    signature, feedback = world["result_on_result"]
    step = {"step": 1, "adapter": "c1", "route_confidence": None, "route_signature": signature}
    lost = Episode("eval-candidate", "rh-1", family="result_handling", trajectory=[{}, step])
    frozen = SetResult("frozen", {}, {}, [], outcomes={"candidate": outcomes([lost])})
    candidate = Contender(str(cand), "candidate", None, cand)
    got, entries = withdraw_routes(
        None, frozen, ["rh-1"], candidate, Contender("base", "base"), tmp_path / "eval"
    )
    assert [e["koan_ids"] for e in entries] == [["rh-1"]]
    assert (
        got.adapter_dir != cand
        and Router(Router.find(got.adapter_dir)).route(signature, feedback) is None
    )
    assert Router(cand / "bundle").route(signature, feedback) == "c1"  # the candidate untouched


def test_a_withdrawn_route_goes_where_the_champions_router_sends_it(world, tmp_path):
    """A champion served from the eval cache has no episodes: where a withdrawn route goes is
    asked of the champion bundle's router, with the text the candidate was routed on. The
    champion sent this E0599 to its task c1; the candidate's new task c2 took it and broke it,
    so it goes back to c1, not to the base model."""
    from sleepy.adapters.router import diagnostic_core

    koans_dir, evalsets_dir = world["corpus"]
    c2 = TaskAdapter(
        "c2",
        make_adapter(tmp_path / "c2", seed=2, family="lifetimes", rank=2),
        ["lifetimes"],
        ["E0106 missing lifetime specifier"],
        [],
    )
    share = Share(
        threshold=1.0, k_min=2, k_max=4, router="signature", route_distance=0.6,
        route_koans=[koans_dir], route_evalsets=[evalsets_dir],
    )  # fmt: skip
    candidate = Router(share([world["task"], c2], str(MODEL_DIR), tmp_path / "cand").bundle_dir)
    signature, feedback = world["result_on_result"]
    step = {
        "step": 1,
        "adapter": "c2",
        "route_confidence": None,
        "route_signature": signature,
        "route_text": diagnostic_core(feedback),
    }
    lost = Episode("eval-candidate", "rh-1", family="result_handling", trajectory=[{}, step])
    champion = Router(world["bundles"]["signature"])
    assert champion.route(signature, feedback) == "c1"
    [entry] = routes_to_withdraw(candidate, {"c2"}, ["rh-1"], outcomes([lost]), champion)
    assert (entry["task"], entry["to"]) == ("c2", "c1")
    assert "where the champion's router sends it (c1)" in entry["reason"]
    # a champion with no router (the base model) answered it itself: the base model takes it
    [entry] = routes_to_withdraw(candidate, {"c2"}, ["rh-1"], outcomes([lost]), None)
    assert entry["to"] is None


def _lock_task(tmp_path, sandbox, koans_dir, adapter=None):
    """A concurrency task trained on `.unwrap()` dropped after `lock()` in programs people wrote
    (the corpus's hand-written concurrency koans, fixed): (its koans with rustc's verdicts, one
    such koan held out, the TaskAdapter). Its rustc error is `E0599 no method named … found for
    enum …`, as the demo's days meet it."""
    written = [k for k in load_koans(koans_dir) if k.family == "concurrency"]
    mutants = mutate(
        "concurrency", 12, 13, programs_of(written), operator_names=["lock_without_unwrap"],
        allow_fewer=True,
    )  # fmt: skip
    verdicts = [(k, sandbox.verdict(k, k.buggy_code)) for k in mutants]
    on_result = [(k, v) for k, v in verdicts if "found for enum" in str(v.signature)]
    assert len(on_result) >= 3, [str(v.signature) for _, v in verdicts]
    *trained, (_, held) = on_result  # the last one held out: the task's own kind of koan
    c3 = TaskAdapter(
        "c3",
        adapter or make_adapter(tmp_path / "c3", seed=3, family="concurrency", rank=2),
        ["concurrency"],
        sorted({str(v.signature) for _, v in trained}),
        [route_example(k) for k, _ in trained],
    )
    return trained, held, c3


def test_a_route_the_task_trained_on_is_withdrawn_for_the_other_familys_text_only(tmp_path):
    """Two families fail with one error: concurrency's lock without unwrap and result_handling's
    method called on a Result are both `E0599 no method named … found for enum …`. A concurrency
    task that broke a frozen result_handling koan keeps the signature (its own koans need it) and
    gives back the queries whose text is nearer that koan's than its own examples: another
    result_handling koan goes to the base model, a held-out concurrency koan stays with it."""
    from sleepy.adapters.router import diagnostic_core

    koans_dir, evalsets_dir = _corpus()
    sandbox = Sandbox()
    trained, held, c3 = _lock_task(tmp_path, sandbox, koans_dir)
    share = Share(
        threshold=1.0, k_min=2, k_max=4, router="signature", route_distance=0.3,
        route_koans=[koans_dir], route_evalsets=[evalsets_dir],
    )  # fmt: skip
    bundle = share([c3], str(MODEL_DIR), tmp_path / "share").bundle_dir

    def held_out(family: str, pattern: str, seed: int):
        [koan] = generate(family, 1, seed=seed, patterns=[pattern], purpose="eval")
        v = sandbox.verdict(koan, koan.buggy_code)
        return str(v.signature), v.feedback()

    broken = held_out("result_handling", "method_on_result", 1_000_000_021)
    other = held_out("result_handling", "method_on_result", 1_000_000_022)
    own = (str(held.signature), held.feedback())
    signature = broken[0]
    assert signature in c3.signatures and other[0] == own[0] == signature  # one error, two families
    router = Router(bundle)
    assert {router.route(*q) for q in (broken, other, own)} == {"c3"}

    step = {"step": 1, "adapter": "c3", "route_confidence": 1.0, "route_signature": signature}
    lost = Episode(
        "eval-candidate", "rh-1", family="result_handling",
        trajectory=[{}, {**step, "route_text": diagnostic_core(broken[1])}],
    )  # fmt: skip
    mine = Episode(
        "eval-candidate", "cc-1", family="concurrency",
        trajectory=[{}, {**step, "route_text": diagnostic_core(own[1])}],
    )  # fmt: skip
    [entry] = routes_to_withdraw(router, {"c3"}, ["rh-1", "cc-1"], outcomes([lost, mine]), None)
    assert (entry["task"], entry["signature"], entry["to"]) == ("c3", signature, None)
    assert entry["text"] == diagnostic_core(broken[1]) and entry["koan_ids"] == ["rh-1"]
    assert "of result_handling regressed" in entry["reason"], entry["reason"]
    add_withdrawn(bundle, [entry])
    after = Router(bundle)
    assert after.route(*broken) is None and after.route(*other) is None  # back to the base model
    assert after.route(*own) == "c3"  # the task's own family still reaches it
    # a regression in the task's own family is its own: nothing withdrawn for it
    assert routes_to_withdraw(router, {"c3"}, ["cc-1"], outcomes([mine]), None) == []


def test_the_eval_withdraws_a_route_by_text_and_judges_the_bundle_it_measured_again(tmp_path):
    """The eval end to end on sleepy-tiny: a candidate whose concurrency task (an adapter that
    breaks the model) takes the frozen suite's method-on-a-Result koan, which the base model
    fixes. The eval withdraws that route for the koan's text, measures both sets again with the
    bundle it wrote, and the gate judges that bundle: the koan is fixed again, no regression."""
    from safetensors.torch import load_file, save_file

    from sleepy.adapters.folder import META_FILE, weights_sha256
    from sleepy.eval.run import evaluate
    from sleepy.koan import load_evalset, save_evalset

    koans_dir, evalsets_dir = _corpus()
    frozen = [
        k for k in load_evalset(f"{evalsets_dir}/frozen.json")
        if k.pattern == "method_on_result"
    ][:1]  # fmt: skip
    assert frozen, "the frozen suite has a result_handling method_on_result koan"
    suite = save_evalset(frozen, tmp_path / "suite.json")
    broken = make_adapter(tmp_path / "broken", seed=5, family="concurrency", rank=2)
    weights = broken / "adapter_model.safetensors"
    save_file({k: v * 40 for k, v in load_file(weights).items()}, weights)  # it says nonsense
    meta = broken / META_FILE  # trained so, as far as its checksum knows
    meta.write_text(
        json.dumps(json.loads(meta.read_text()) | {"weights_sha256": weights_sha256(broken)})
    )
    *_, c3 = _lock_task(tmp_path, Sandbox(), koans_dir, adapter=broken)
    share = Share(
        threshold=1.0, k_min=2, k_max=4, router="signature", route_distance=0.3,
        route_koans=[koans_dir], route_evalsets=[evalsets_dir],
    )  # fmt: skip
    candidate = share([c3], str(MODEL_DIR), tmp_path / "share").adapter_dir
    cfg = stage_config(
        "eval", tmp_path, f"candidate={candidate}", "champion=base", "tracking=none",
        f"koans.evalset={suite}", f"koans.learning_set={suite}", "agent.max_attempts=2",
    )  # fmt: skip
    r = evaluate(cfg)
    assert r.learning.champion_metrics["pass_rate"] == 1.0, (
        "sleepy-tiny fixes this frozen koan by itself: the test needs a koan the champion passes"
    )
    [entry] = r.withdrawn
    assert entry["task"] == "c3" and entry["text"] and entry["koan_ids"] == [frozen[0].id]
    assert r.candidate.adapter_dir != candidate  # the bundle with the route withdrawn
    assert r.regressions == [] and r.metrics["pass_rate"] == 1.0  # the frozen suite, again
    assert r.learning.metrics["pass_rate"] == 1.0  # the learning set, again
    assert any(
        "measured the frozen suite and the learning set again" in x for x in r.decision.reasons
    )
