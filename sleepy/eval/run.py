"""Eval: the agent with a candidate adapter and with the champion on two sets, as the design has
them: a learning set (did the candidate learn what the lineage failed on?) and the frozen suite
(did it break anything?). The gate decides; a passing candidate becomes the champion in the MLflow
registry. A champion's results are kept by what decides them (sleepy.eval.cache) and not
measured again; a result taken from there says which eval run measured it.

`evaluate(cfg)` does the work (tests and sleepy-cycle call it); `sleepy-eval` is the entrypoint.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from sleepy.adapters import AdapterError, load_adapter_info
from sleepy.adapters.router import Router, RouterError, add_withdrawn
from sleepy.console import say
from sleepy.day import DayError, run_day, select_koans
from sleepy.episodes import EpisodeStore, metrics_of
from sleepy.eval.cache import CachedResult, ResultCache, result_key
from sleepy.eval.gate import Gate, GateDecision
from sleepy.eval.metrics import (
    compare,
    earlier_failure_signatures,
    gains,
    outcomes,
    regressions,
    with_repeats,
    write_table,
)
from sleepy.eval.withdraw import routes_to_withdraw
from sleepy.koan import KoanError, load_evalset
from sleepy.koan.model import evalset_path
from sleepy.registry import (
    CHAMPION,
    RegistryError,
    alias_version,
    describe_version,
    download_adapter,
    get_version,
    model_uri,
    register_adapter,
    tag_version,
)
from sleepy.registry import promote as registry_promote
from sleepy.stage import StageRun
from sleepy.tracking import TrackingConfig, loggable, tracking_uri


class EvalError(RuntimeError):
    """An eval that cannot run (corrupt or missing adapter, no evalset); one line: what to fix."""


@dataclass
class Contender:
    """A model under evaluation: the base model, or the base plus one adapter."""

    spec: str  # as given: models:/sleepy-fixer/3, 3, champion, a folder, base
    label: str  # what plots and tables call it: "v3", "base", the folder name
    version: str | None = None  # registry version, when it is one
    adapter_dir: Path | None = None


@dataclass
class EvalResult:
    candidate: Contender
    champion: Contender
    metrics: dict[str, float | None]  # the candidate's (None: nothing to measure)
    champion_metrics: dict[str, float | None]
    rows: list[dict]  # per koan: both outcomes and the change
    decision: GateDecision
    promoted: bool = False
    table: Path | None = None  # per_koan.csv
    mlflow_run_id: str | None = None
    regressions: list[str] = field(default_factory=list)
    gains: list[str] = field(default_factory=list)
    learning: SetResult | None = None  # the learning set, when one was given
    cached: list[str] = field(default_factory=list)  # frozen-suite sides taken from the cache
    # routes taken back from the candidate's new tasks before the gate decided (then
    # `candidate` is the bundle with them withdrawn, measured again on the frozen suite)
    withdrawn: list[dict] = field(default_factory=list)

    def record(self, task: str, families: list[str], champion_adapter: str | None) -> dict:
        """What a cycle keeps of this eval (state.json's `eval`): the gate's decision, both sides'
        rates on the frozen suite and the learning set, and `champion_adapter`, the adapter the
        next cycle starts from. `task` is the candidate's new task, which learned `families`.
        With no learning set (no failures), learning is measured on the frozen suite."""
        on = self.learning or self
        lm, lcm = on.metrics, on.champion_metrics
        return {
            "promoted": self.promoted,
            "decision": self.decision.summary(),
            "pass_rate": self.metrics["pass_rate"],
            "champion_pass_rate": self.champion_metrics["pass_rate"],
            "learning_pass_rate": lm["pass_rate"],
            "champion_learning_pass_rate": lcm["pass_rate"],
            "repeat_error_rate": lm["repeat_error_rate"],
            "champion_repeat_error_rate": lcm["repeat_error_rate"],
            "median_steps_to_green": lm["median_steps_to_green"],
            # the lineage's mistakes in programs it never saw (learning_set.programs)
            **(
                {
                    "new_programs_pass_rate": lm["new_programs_pass_rate"],
                    "champion_new_programs_pass_rate": lcm["new_programs_pass_rate"],
                }
                if "new_programs_pass_rate" in lm
                else {}
            ),
            "regressions": self.regressions,
            "gains": self.gains,
            "table": str(self.table),
            "family": _families(self.metrics),
            "learning_family": _families(lm),
            "champion_learning_family": _families(lcm),
            "champion_adapter": champion_adapter,
            # koans of other families the new task adapter answered (a routing backend)
            "other_families_routed": other_families_routed(
                task, families, self.metrics, *([lm] if self.learning else [])
            ),
        }


def _families(metrics: dict) -> dict[str, float]:
    return {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("pass_rate.")}


def other_families_routed(task: str, families: list[str], *metrics: dict) -> dict[str, int]:
    """family -> koans of a family `task` did not learn that its adapter answered in the eval
    (the candidate's episodes on the frozen suite and the learning set)."""
    out: dict[str, int] = {}
    for m in metrics:
        for key, n in m.items():
            adapter, _, family = key.removeprefix("koans_routed.").partition(".")
            if key.startswith("koans_routed.") and adapter == task and family not in families:
                out[family] = out.get(family, 0) + int(n)
    return out


# -- who is evaluated ------------------------------------------------------------------------------


def resolve(
    spec: str | None, cfg: DictConfig, dst: Path, missing_alias_is_base: bool = False
) -> Contender:
    """A candidate/champion spec -> Contender with a checked adapter folder (else EvalError)."""

    name, uri = str(cfg.registry.name), tracking_uri(cfg.tracking)
    spec = "base" if spec in (None, "", "base", "none") else str(spec)
    if spec == "base":
        return Contender(spec, "base")
    version = None
    path = Path(spec).expanduser()
    if spec.startswith("models:/"):
        ref = spec[len("models:/") :]
        name, sep, ref = ref.partition("@") if "@" in ref else ref.partition("/")
        if not sep or not ref:
            raise EvalError(
                f"'{spec}': a registry URI is models:/<name>/<version> or models:/<name>@<alias>"
            )
        spec_ref = ref
    elif path.exists() or "/" in spec:
        spec_ref = None
    else:
        spec_ref = spec  # a version number or an alias of cfg.registry.name
    if spec_ref is not None:
        if uri is None and missing_alias_is_base:
            return Contender(
                spec, "base"
            )  # no registry without tracking: the base model is champion
        if uri is None:
            raise EvalError(
                f"'{spec}' names a registry version but tracking is off: set tracking=mlflow"
            )
        if (
            missing_alias_is_base
            and not spec_ref.isdigit()
            and alias_version(name, spec_ref, uri) is None
        ):
            return Contender(spec, "base")  # no champion yet: the base model holds the title
        try:
            version = str(get_version(name, spec_ref, uri).version)
        except RegistryError as e:
            raise EvalError(str(e)) from None
        try:
            path = download_adapter(model_uri(name, version), dst / f"v{version}", uri)
        except ValueError as e:
            raise EvalError(str(e).splitlines()[0]) from None
    try:
        load_adapter_info(path, str(cfg.model.path))
    except AdapterError as e:
        where = f"version {version} of '{name}': " if version else ""
        raise EvalError(f"{where}{str(e).splitlines()[0]}") from None
    return Contender(spec, f"v{version}" if version else path.name, version, path)


# -- the eval -------------------------------------------------------------------------------------


def _day_cfg(cfg: DictConfig, who: Contender, side: str, evalset: str) -> DictConfig:
    """The day that measures this contender on an evalset; its MLflow logging is the eval's."""
    day_cfg = copy.deepcopy(cfg)  # an EvalConfig is a DayConfig: the day reads its own keys
    day_cfg.run_id = f"{cfg.run_id}-{side}"
    day_cfg.koans.evalset = evalset
    # "eval v3 on frozen", "eval champion base on learning set"
    role = "champion " if side.startswith("champion") else ""
    on = "learning set" if side.endswith("learning") else Path(evalset).stem
    day_cfg.label = f"eval {role}{who.label} on {on}"
    day_cfg.stage_name = "eval"
    day_cfg.tracking = OmegaConf.structured(
        TrackingConfig(enabled=False, uri=None, experiment=None)
    )
    if who.adapter_dir is not None:
        if not get_class(cfg.backend._target_).loads_adapter:
            raise EvalError(
                f"backend {cfg.backend.get('_target_')} cannot load an adapter: use backend=hf "
                "(or serve the adapter with 'sleepy serve' and point backend=openai at it)"
            )
        day_cfg.backend.adapter = str(who.adapter_dir)
    return day_cfg


def _run_agent(day_cfg: DictConfig):
    try:
        result = run_day(day_cfg)
    except DayError as e:
        raise EvalError(str(e)) from None
    with EpisodeStore(result.episodes_db) as store:
        episodes = store.episodes(run_id=day_cfg.run_id)
    return episodes, result.metrics["wall_time_s"]


@dataclass
class SetResult:
    """Both contenders on one set: per-koan outcomes, metrics, and the per-koan comparison."""

    name: str  # "frozen" | "learning"
    metrics: dict[str, float | None]  # the candidate's (None: nothing to measure)
    champion_metrics: dict[str, float | None]
    rows: list[dict]
    # side ("candidate" | "champion") -> the eval that measured it, for sides from the cache
    cached_from: dict[str, CachedResult] = field(default_factory=dict)
    outcomes: dict[str, dict] = field(default_factory=dict)  # side -> koan id -> outcome
    episodes: dict[str, list] = field(default_factory=dict)  # side -> episodes (none if cached)

    @property
    def cached(self) -> list[str]:
        return list(self.cached_from)


def _measure(
    cfg, who: Contender, side: str, evalset: Path, cache, earlier, mlflow_run_id
) -> tuple[dict, dict, CachedResult | None, list]:
    """(outcomes, metrics, cache hit, episodes) of one contender on one set, from the cache when
    the key is there (then there are no episodes)."""

    day_cfg = _day_cfg(cfg, who, side, str(evalset))
    try:
        koans = select_koans(day_cfg.koans, str(cfg.paths.evalsets))
    except DayError as e:
        raise EvalError(str(e)) from None
    key = result_key(day_cfg, koans, who.adapter_dir)
    hit = cache.get(key, [k.id for k in koans]) if key else None
    episodes = []
    if hit is None:
        episodes, wall = _run_agent(day_cfg)
        res, day_metrics = outcomes(episodes), metrics_of(episodes)
        day_metrics["wall_time_s"] = wall
        if key:
            cache.put(key, res, day_metrics, str(cfg.run_id), mlflow_run_id)
    else:
        res, day_metrics = hit.outcomes, hit.metrics
        tracked = f" (MLflow run {hit.mlflow_run_id})" if hit.mlflow_run_id else ""
        say(
            f"{day_cfg.label}: {len(res)} koans from the eval cache, measured by eval run "
            f"{hit.run_id}{tracked}"
        )
    return res, with_repeats(day_metrics, res, earlier), hit, episodes


def _measure_set(cfg, name, evalset, candidate, champion, cache, earlier, run_id) -> SetResult:
    # the day's run ids: <run_id>-candidate on the frozen suite, <run_id>-candidate-learning, ...
    side = lambda who: who if name == "frozen" else f"{who}-{name}"  # noqa: E731
    cand_res, metrics, cand_hit, cand_eps = _measure(
        cfg, candidate, side("candidate"), evalset, cache, earlier, run_id
    )
    if _same(candidate, champion):
        champ_res, champ_metrics, champ_hit, champ_eps = cand_res, dict(metrics), cand_hit, cand_eps
    else:
        champ_res, champ_metrics, champ_hit, champ_eps = _measure(
            cfg, champion, side("champion"), evalset, cache, earlier, run_id
        )
    hits = {s: hit for s, hit in (("candidate", cand_hit), ("champion", champ_hit)) if hit}
    return SetResult(
        name,
        metrics,
        champ_metrics,
        compare(cand_res, champ_res, earlier),
        hits,
        {"candidate": cand_res, "champion": champ_res},
        {"candidate": cand_eps, "champion": champ_eps},
    )


def _measure_again(
    cfg, measured: SetResult, who: Contender, side: str, path, cache, earlier, run_id
) -> SetResult:
    """`measured` with its candidate side measured again as `who` (under its own day run id,
    `side`); the champion's side is kept."""
    res, metrics, hit, eps = _measure(cfg, who, side, path, cache, earlier, run_id)
    champ_res = measured.outcomes["champion"]
    return SetResult(
        measured.name,
        metrics,
        measured.champion_metrics,
        compare(res, champ_res, earlier),
        # the champion's side may be the cache's; the candidate's is this measurement's
        {k: v for k, v in measured.cached_from.items() if k != "candidate"}
        | ({"candidate": hit} if hit else {}),
        {"candidate": res, "champion": champ_res},
        {"candidate": eps, "champion": measured.episodes["champion"]},
    )


def withdraw_routes(
    cfg, frozen: SetResult, lost: list[str], candidate: Contender, champion: Contender, out: Path
) -> tuple[Contender, list[dict]]:
    """The candidate with the routes withdrawn that broke frozen koans of other families (a copy
    of its adapter folder, registered as a version of its own when the candidate is one), and
    the withdrawn routes; the candidate itself and [] when there is nothing to withdraw."""
    bundle = Router.find(candidate.adapter_dir) if candidate.adapter_dir else None
    if not lost or bundle is None:
        return candidate, []
    try:
        router = Router(bundle)
        earlier = Router.find(champion.adapter_dir) if champion.adapter_dir else None
        before = Router(earlier) if earlier else None
    except RouterError as e:
        raise EvalError(str(e)) from None
    known = set(before.tasks) if before else set()
    entries = routes_to_withdraw(
        router, set(router.tasks) - known, lost, frozen.outcomes.get("candidate", {}), before
    )
    if not entries:
        return candidate, []
    folder = out / "withdrawn" / candidate.label
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(candidate.adapter_dir, folder)
    add_withdrawn(Router.find(folder), entries)
    version = None
    if candidate.version is not None:
        version = register_adapter(
            folder,
            cfg.model.path,
            str(cfg.registry.name),
            tags={"withdrawn_from": candidate.version, "routes_withdrawn": str(len(entries))},
        )
    label = f"v{version}" if version else f"{candidate.label}-withdrawn"
    return Contender(str(version or folder), label, version, folder), entries


def split_new_programs(learning: SetResult, koans: list) -> None:
    """Add the learning set's two halves to both contenders' metrics: `instances_pass_rate` (new
    draws of programs the lineage has seen) and `new_programs_pass_rate` (its mistakes in
    programs never seen, `learning: new_program`); nothing when the set has no new programs."""
    new = {k.id for k in koans if k.meta.get("learning") == "new_program"}
    if not new:
        return
    for side, metrics in (("candidate", learning.metrics), ("champion", learning.champion_metrics)):
        for name, rows in (
            ("new_programs", [r for r in learning.rows if r["koan_id"] in new]),
            ("instances", [r for r in learning.rows if r["koan_id"] not in new]),
        ):
            if rows:
                passed = sum(bool(r[f"{side}_passed"]) for r in rows)
                metrics[f"{name}_pass_rate"] = passed / len(rows)
                metrics[f"{name}_koans"] = float(len(rows))


def evaluate(cfg: DictConfig) -> EvalResult:
    """Evaluate cfg.candidate against cfg.champion on the learning set (when given: does it learn?)
    and the frozen suite (does it break anything?), gate, tag, and maybe promote."""
    staged = StageRun(cfg, "eval")  # the config is checked here, before any work
    out = staged.out
    out.mkdir(parents=True, exist_ok=True)
    gate: Gate = OmegaConf.to_object(cfg.gate)
    name, uri = str(cfg.registry.name), tracking_uri(cfg.tracking)
    frozen_path = evalset_path(str(cfg.koans.evalset), str(cfg.paths.evalsets))
    learning_path = cfg.koans.learning_set
    learning_path = (
        evalset_path(str(learning_path), str(cfg.paths.evalsets)) if learning_path else None
    )
    for path in filter(None, (frozen_path, learning_path)):
        try:
            load_evalset(path)  # a missing or edited evalset stops the eval before any model runs
        except KoanError as e:
            raise EvalError(str(e).splitlines()[0]) from None

    try:
        candidate = resolve(cfg.candidate, cfg, out / "adapters")
    except EvalError as e:
        if uri is not None:
            _tag_unusable(cfg, str(e))
        raise
    champion = resolve(cfg.champion, cfg, out / "adapters", missing_alias_is_base=True)

    staged.run_name = cfg.run_name or f"eval-{candidate.label}"
    staged.tags |= {
        "lineage": str(cfg.lineage.name),
        "candidate": candidate.label,
        "champion": champion.label,
        "candidate_version": candidate.version or "none",
        "champion_version": champion.version or "none",
        "sleepy.run_id": str(cfg.run_id),
    }
    # The lineage's failures up to this cycle's day: failing with one of them again is a repeat.
    earlier = earlier_failure_signatures(list(cfg.lineage.episodes), int(cfg.cycle) + 1)
    cache = ResultCache(Path(str(cfg.paths.outputs)) / "eval_cache")

    with staged:
        run = staged.mlflow
        t0 = time.monotonic()
        run_id = run.info.run_id if run is not None else None
        learning = None
        if learning_path is not None:
            learning = _measure_set(
                cfg, "learning", learning_path, candidate, champion, cache, earlier, run_id
            )
        frozen = _measure_set(
            cfg, "frozen", frozen_path, candidate, champion, cache, earlier, run_id
        )
        lost = regressions(frozen.rows)
        withdrawn: list[dict] = []
        if cfg.withdraw_routes and not _same(candidate, champion):
            # once: the candidate with its harmful routes withdrawn is measured again, and the
            # gate judges that measurement; a regression that stays still rejects it
            candidate, withdrawn = withdraw_routes(cfg, frozen, lost, candidate, champion, out)
        if withdrawn:
            # the bundle the gate judges is the one with the routes withdrawn: both sets again
            again = lambda old, path, side: _measure_again(  # noqa: E731
                cfg, old, candidate, side, path, cache, earlier, run_id
            )
            frozen = again(frozen, frozen_path, "candidate-withdrawn")
            if learning is not None:
                learning = again(learning, learning_path, "candidate-withdrawn-learning")
            lost = regressions(frozen.rows)
            say(f"eval: withdrew {len(withdrawn)} route(s), both sets measured again")
        metrics, champ_metrics = frozen.metrics, frozen.champion_metrics
        won = gains(frozen.rows)
        csv_path, json_path = write_table(frozen.rows, out)
        if learning is not None:
            write_table(learning.rows, out / "learning")
            split_new_programs(learning, load_evalset(learning_path))
        both = (learning.metrics, learning.champion_metrics) if learning else None

        if candidate.version is None:
            decision = gate.refuse(
                f"candidate {candidate.label} is not a registry version: register it to promote"
            )
            decision.reasons += gate.decide(metrics, champ_metrics, lost, both).reasons
        elif candidate.version == champion.version:
            decision = gate.refuse(f"candidate v{candidate.version} is already the champion")
        else:
            decision = gate.decide(metrics, champ_metrics, lost, both)
        if withdrawn:
            routes = ", ".join(f"{w['task']}: {w['signature']}" for w in withdrawn)
            decision.reasons.append(
                f"withdrew {len(withdrawn)} route(s) that broke frozen koans ({routes}) and "
                "measured the frozen suite and the learning set again"
            )
        promoted = False
        if decision.promote and cfg.promote:
            # Measured against the champion alias: if another promotion moved it meanwhile, this
            # comparison says nothing about the version the candidate would replace.
            measured = (
                champion.version
                if str(cfg.champion) in (CHAMPION, model_uri(name, CHAMPION))
                else ...
            )
            try:
                registry_promote(name, candidate.version, decision.summary(), uri, measured)
                promoted = True
            except RegistryError as e:
                # compared with a champion that is no longer the champion: not a promotion, and
                # the version's and run's tags must not say it passed the gate
                decision = GateDecision(False, [str(e), *decision.reasons])
                say(f"eval: {e}")

        if run is not None:
            _log(
                frozen,
                learning,
                learning_path,
                lost,
                won,
                out,
                decision,
                promoted,
                time.monotonic() - t0,
            )
            if candidate.version is not None:
                tag_version(
                    name,
                    candidate.version,
                    {
                        **decision.tags(),
                        "gate.eval_run": run.info.run_id,
                        "eval.pass_rate": f"{metrics['pass_rate']:.4f}",
                        **(
                            {"eval.learning_pass_rate": f"{learning.metrics['pass_rate']:.4f}"}
                            if learning
                            else {}
                        ),
                    },
                    uri,
                )
                # the gate's reasons in words, where the registry page shows them uncut
                reasons = "\n".join(f"- {r}" for r in decision.reasons)
                describe_version(
                    name, candidate.version, f"gate: {decision.verdict}\n{reasons}", uri
                )
            if withdrawn:
                import mlflow

                mlflow.log_dict({"withdrawn": withdrawn}, "eval/withdrawn_routes.json")
                mlflow.log_metric("routes_withdrawn", len(withdrawn))
    if withdrawn:
        (out / "withdrawn_routes.json").write_text(json.dumps(withdrawn, indent=2))
    return EvalResult(
        candidate,
        champion,
        metrics,
        champ_metrics,
        frozen.rows,
        decision,
        promoted,
        csv_path,
        run.info.run_id if run is not None else None,
        lost,
        won,
        learning,
        frozen.cached,
        withdrawn,
    )


def _same(a: Contender, b: Contender) -> bool:
    if a.version or b.version:
        return a.version == b.version
    return a.adapter_dir == b.adapter_dir


def _log(frozen, learning, learning_path, lost, won, out, decision, promoted, wall) -> None:
    """Frozen-suite metrics under their plain names (pass_rate, champion_pass_rate, ...), learning
    set ones prefixed learning_ (learning_pass_rate, champion_learning_pass_rate, ...)."""
    import mlflow

    def clean(m: dict, prefix: str = "") -> dict:
        return loggable({prefix + k.replace("pass_rate.", "pass_rate_"): v for k, v in m.items()})

    values = {
        **clean(frozen.metrics),
        **clean(frozen.champion_metrics, "champion_"),
        "regressions": len(lost),
        "gains": len(won),
        "eval_wall_time_s": wall,
        "promoted": float(promoted),
    }
    if learning is not None:
        values |= clean(learning.metrics, "learning_")
        values |= clean(learning.champion_metrics, "champion_learning_")
        mlflow.log_artifacts(str(out / "learning"), "eval/learning")
        mlflow.log_artifact(str(learning_path), "eval")
    mlflow.log_metrics(values)
    mlflow.log_artifact(str(out / "per_koan.csv"), "eval")
    mlflow.log_artifact(str(out / "per_koan.json"), "eval")
    mlflow.set_tags({**decision.tags(), "promoted": str(promoted).lower()})
    # a side taken from the cache names the eval that measured it: cache.frozen.champion = its
    # run_id, cache.frozen.champion.mlflow_run = its MLflow run
    for measured in filter(None, (frozen, learning)):
        for who, hit in measured.cached_from.items():
            mlflow.set_tag(f"cache.{measured.name}.{who}", hit.run_id)
            if hit.mlflow_run_id:
                mlflow.set_tag(f"cache.{measured.name}.{who}.mlflow_run", hit.mlflow_run_id)


def _tag_unusable(cfg: DictConfig, reason: str) -> None:
    """A registry candidate whose adapter cannot be used is marked rejected, with the reason."""
    from mlflow.exceptions import MlflowException

    spec = str(cfg.candidate)
    name, ref = str(cfg.registry.name), spec
    if spec.startswith("models:/"):
        name, _, ref = spec[len("models:/") :].replace("@", "/").partition("/")
    if not ref.isdigit():
        return
    try:
        tag_version(
            name,
            ref,
            {"gate.decision": "reject", "gate.reasons": f"adapter unusable: {reason}"},
            tracking_uri(cfg.tracking),
        )
    except MlflowException:
        pass  # no such version: the error already says so


__all__ = ["Contender", "EvalError", "EvalResult", "Gate", "GateDecision", "evaluate", "resolve"]
