"""Eval: the agent on a frozen evalset with a candidate adapter and with the champion; the gate
decides, and a passing candidate becomes the champion in the MLflow registry.

`evaluate(cfg)` does the work (tests and sleepy-cycle call it); `sleepy-eval` is the entrypoint.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sleepy.config import check_config
from sleepy.eval.gate import Gate, GateDecision
from sleepy.eval.metrics import (
    compare,
    earlier_failure_signatures,
    eval_metrics,
    gains,
    outcomes,
    regressions,
    write_table,
)


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
    metrics: dict[str, float]  # the candidate's
    champion_metrics: dict[str, float]
    rows: list[dict]  # per koan: both outcomes and the change
    decision: GateDecision
    promoted: bool = False
    table: Path | None = None  # per_koan.csv
    mlflow_run_id: str | None = None
    regressions: list[str] = field(default_factory=list)
    gains: list[str] = field(default_factory=list)


# -- who is evaluated ------------------------------------------------------------------------------


def resolve(
    spec: str | None, cfg: DictConfig, dst: Path, missing_alias_is_base: bool = False
) -> Contender:
    """A candidate/champion spec -> Contender with a checked adapter folder (else EvalError)."""
    from sleepy.adapters import AdapterError, load_adapter_info
    from sleepy.registry import (
        RegistryError,
        alias_version,
        download_adapter,
        get_version,
        model_uri,
    )

    name, uri = str(cfg.registry.name), _tracking_uri(cfg)
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
            path = download_adapter(model_uri(name, version), dst / f"v{version}")
        except ValueError as e:
            raise EvalError(str(e).splitlines()[0]) from None
    try:
        load_adapter_info(path, str(cfg.model.path))
    except AdapterError as e:
        where = f"version {version} of '{name}': " if version else ""
        raise EvalError(f"{where}{str(e).splitlines()[0]}") from None
    return Contender(spec, f"v{version}" if version else path.name, version, path)


def _tracking_uri(cfg: DictConfig) -> str | None:
    t = cfg.tracking
    return str(t.uri) if t.get("enabled", False) and t.get("uri") else None


# -- the eval -------------------------------------------------------------------------------------


def _run_agent(cfg: DictConfig, who: Contender, side: str):
    """One day over the evalset with this contender's adapter; its MLflow logging is the eval's."""
    from sleepy.day import DayError, run_day
    from sleepy.episodes import EpisodeStore

    day_cfg = copy.deepcopy(cfg)
    OmegaConf.set_struct(day_cfg, False)
    day_cfg.run_id = f"{cfg.run_id}-{side}"
    day_cfg.tracking = {"enabled": False, "uri": None, "experiment": None}
    if who.adapter_dir is not None:
        if "adapter" not in day_cfg.backend:
            raise EvalError(
                f"backend {cfg.backend.get('_target_')} cannot load an adapter: use backend=hf "
                "(or serve the adapter with 'sleepy serve' and point backend=openai at it)"
            )
        day_cfg.backend.adapter = str(who.adapter_dir)
    try:
        result = run_day(day_cfg)
    except DayError as e:
        raise EvalError(str(e)) from None
    with EpisodeStore(result.episodes_db) as store:
        episodes = store.episodes(run_id=day_cfg.run_id)
    return episodes, result.metrics["wall_time_s"]


def evaluate(cfg: DictConfig) -> EvalResult:
    """Evaluate cfg.candidate against cfg.champion on the evalset, gate, tag, and maybe promote."""
    from sleepy.registry import promote as registry_promote
    from sleepy.registry import tag_version
    from sleepy.tracking import log_config, mlflow_run

    check_config(cfg)
    out = Path(str(cfg.paths.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    gate: Gate = hydra.utils.instantiate(cfg.gate)
    name, uri = str(cfg.registry.name), _tracking_uri(cfg)

    try:
        candidate = resolve(cfg.candidate, cfg, out / "adapters")
    except EvalError as e:
        if uri is not None:
            _tag_unusable(cfg, str(e))
        raise
    champion = resolve(cfg.champion, cfg, out / "adapters", missing_alias_is_base=True)

    tags = {
        "stage": "eval",
        "cycle": str(cfg.cycle),
        "lineage": str(cfg.lineage.name),
        "candidate": candidate.label,
        "champion": champion.label,
        "candidate_version": candidate.version or "none",
        "champion_version": champion.version or "none",
        "sleepy.run_id": str(cfg.run_id),
    }
    earlier = earlier_failure_signatures(
        [*cfg.lineage.episodes, str(cfg.paths.episodes_db)], int(cfg.cycle)
    )

    ctx = (
        mlflow_run(
            uri,
            str(cfg.tracking.experiment),
            run_name=f"eval-{candidate.label}",
            nested=bool(cfg.nested),
            tags=tags,
        )
        if uri
        else _NoRun()
    )
    with ctx as run:
        if run is not None:
            log_config(cfg, out)
        t0 = time.monotonic()
        cand_eps, cand_wall = _run_agent(cfg, candidate, "candidate")
        metrics = eval_metrics(cand_eps, earlier)
        metrics["wall_time_s"] = cand_wall
        if _same(candidate, champion):
            champ_eps, champ_metrics = cand_eps, dict(metrics)
        else:
            champ_eps, champ_wall = _run_agent(cfg, champion, "champion")
            champ_metrics = eval_metrics(champ_eps, earlier)
            champ_metrics["wall_time_s"] = champ_wall
        rows = compare(outcomes(cand_eps), outcomes(champ_eps), earlier)
        lost, won = regressions(rows), gains(rows)
        csv_path, json_path = write_table(rows, out)

        if candidate.version is None:
            decision = gate.refuse(
                f"candidate {candidate.label} is not a registry version: register it to promote"
            )
            decision.reasons += gate.decide(metrics, champ_metrics, lost).reasons
        elif candidate.version == champion.version:
            decision = gate.refuse(f"candidate v{candidate.version} is already the champion")
        else:
            decision = gate.decide(metrics, champ_metrics, lost)
        promoted = False
        if decision.promote and cfg.promote:
            registry_promote(name, candidate.version, decision.summary(), uri)
            promoted = True

        if run is not None:
            _log(
                cfg,
                metrics,
                champ_metrics,
                lost,
                won,
                csv_path,
                json_path,
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
                    },
                    uri,
                )
    return EvalResult(
        candidate,
        champion,
        metrics,
        champ_metrics,
        rows,
        decision,
        promoted,
        csv_path,
        run.info.run_id if run is not None else None,
        lost,
        won,
    )


def _same(a: Contender, b: Contender) -> bool:
    if a.version or b.version:
        return a.version == b.version
    return a.adapter_dir == b.adapter_dir


def _log(
    cfg, metrics, champ_metrics, lost, won, csv_path, json_path, decision, promoted, wall
) -> None:
    import mlflow

    def clean(m: dict, prefix: str = "") -> dict:
        return {prefix + k.replace("pass_rate.", "pass_rate_"): float(v) for k, v in m.items()}

    mlflow.log_metrics(
        {
            **clean(metrics),
            **clean(champ_metrics, "champion_"),
            "regressions": len(lost),
            "gains": len(won),
            "eval_wall_time_s": wall,
            "promoted": float(promoted),
        }
    )
    mlflow.log_artifact(str(csv_path), "eval")
    mlflow.log_artifact(str(json_path), "eval")
    mlflow.set_tags({**decision.tags(), "promoted": str(promoted).lower()})


def _tag_unusable(cfg: DictConfig, reason: str) -> None:
    """A registry candidate whose adapter cannot be used is marked rejected, with the reason."""
    from mlflow.exceptions import MlflowException

    from sleepy.registry import tag_version

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
            _tracking_uri(cfg),
        )
    except MlflowException:
        pass  # no such version: the error already says so


class _NoRun:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


__all__ = ["Contender", "EvalError", "EvalResult", "Gate", "GateDecision", "evaluate", "resolve"]
