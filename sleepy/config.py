"""Where sleepy's files are, the resolvers its configs use (`${sleepy.tiny_model:}`, ...), and the
checks every config passes before work starts.

The configs are the package `sleepy.conf` (`pkg://sleepy.conf`), so an installed wheel has them;
importing it (Hydra does, on first use) registers the resolvers and the structured configs.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import MISSING, OmegaConf

from sleepy.tiny import MODEL_DIR

PACKAGE = Path(__file__).resolve().parent
CONF_MODULE = "sleepy.conf"
CONF_PATH = f"pkg://{CONF_MODULE}"  # for @hydra.main
CONF_DIR = PACKAGE / "conf"
# koans/ and evalsets/: a checkout has them at its root, a wheel carries a copy in sleepy/data/
DATA_ROOT = PACKAGE / "data" if (PACKAGE / "data").is_dir() else PACKAGE.parent
KOANS_DIR = DATA_ROOT / "koans"
EVALSETS_DIR = DATA_ROOT / "evalsets"
# One token per process: run ids made in the same second by parallel sweep jobs still differ.
_TOKEN = secrets.token_hex(3)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("sleepy.tiny_model", lambda: str(MODEL_DIR), replace=True)
    OmegaConf.register_new_resolver("sleepy.root", lambda: str(DATA_ROOT), replace=True)
    OmegaConf.register_new_resolver("sleepy.token", lambda: _TOKEN, replace=True)


register_resolvers()


def compose_config(name: str, overrides: list[str] = ()):
    """sleepy/conf/<name>.yaml with overrides, as Hydra composes it (inside a running app or not).

    Hydra checks the overrides (an unknown option or key, a value of the wrong type for a
    structured config); what it refuses is raised as a one-line ConfigError.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        if GlobalHydra.instance().is_initialized():
            return compose(name, overrides=list(overrides))
        with initialize_config_module(CONF_MODULE, version_base=None):
            return compose(name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(composition_problem(e, overrides)) from None


def composition_problem(e: BaseException, overrides: list[str] = ()) -> str:
    """What Hydra refused, in one line: an unknown option with the group's options, a value of
    the wrong type named as check_config names a value out of range, else Hydra's own words."""
    from hydra.errors import MissingConfigException

    if isinstance(e, MissingConfigException) and e.options and e.missing_cfg_file:
        group, _, option = str(e.missing_cfg_file).rpartition("/")
        return f"no {group} '{option}' (options for {group}: {', '.join(sorted(e.options))})"
    from omegaconf.errors import ConfigKeyError

    cause = e if getattr(e, "full_key", None) else e.__cause__
    key, owner = getattr(cause, "full_key", None), _owner(cause)
    typed = getattr(cause, "object_type", None)
    if isinstance(cause, ConfigKeyError | AttributeError) and dataclasses.is_dataclass(typed):
        keys = ", ".join(f.name for f in dataclasses.fields(typed) if not f.name.startswith("_"))
        return f"unknown key '{key}' ({typed.__name__} has: {keys})"
    if key and owner is not None:
        rule = rule_of(owner, str(key).rsplit(".", 1)[-1].split("[")[0])
        if rule is not None:
            return f"{key}={cause.value!r}: must be {rule.allowed()}"
    lines = str(e).strip().splitlines() or [type(e).__name__]
    if len(lines) == 1 and cause is not None and cause is not e and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])  # e.g. what a value could not become
    return " ".join(" ".join(lines).split())


def _owner(error) -> type | None:
    """The structured config class whose field an OmegaConf error is about, if any."""
    import dataclasses

    node = getattr(error, "parent_node", None)
    if node is None:
        return None
    t = OmegaConf.get_type(node)
    return t if dataclasses.is_dataclass(t) else None


def default_store() -> tuple[str, str]:
    """(tracking.uri, registry.name) as every stage has them: what a command outside Hydra
    (`sleepy registry`, `sleepy report`, `sleepy-plots`) uses unless it is told otherwise."""
    base = compose_config("day")
    return str(base.tracking.uri), str(base.registry.name)


def override_problem(name: str, argv: list[str]) -> str | None:
    """Compose `name` with the command line's overrides and check it, before Hydra runs: a bad
    override or value is one line, and no output folder is made for a run that cannot start."""
    if any(a in ("-m", "--multirun") or a.startswith("-") for a in argv):
        return None  # sweeps and Hydra's own flags: each job is checked as it starts
    overrides = [a for a in argv if not a.lstrip("+~").startswith("hydra")]
    try:
        check_config(compose_config(name, overrides))
    except ConfigError as e:
        return str(e)
    return None


def exit_on_bad_overrides(name: str, prog: str) -> None:
    """For an entrypoint's main(), before Hydra runs: end with one line and status 2 when its
    overrides are bad or leave a required value out.

    It also imports sleepy.conf, which stores the structured configs (`schema/...`) in Hydra's
    ConfigStore: Hydra's own flags (`--info defaults`) look them up before anything else would
    have imported it, and failed with "Could not load 'schema/agent'"."""
    import importlib
    import sys

    importlib.import_module(CONF_MODULE)
    problem = override_problem(name, sys.argv[1:])
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        sys.exit(2)


# -- the values a run may be given: checked before any work starts ------------------------------


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; one line naming the key and the range."""


@dataclass(frozen=True)
class Rule:
    """What one key accepts: its type, an inclusive range (`gt` for an exclusive lower bound),
    and whether null is allowed. A structured config's field declares it with `ranged`; its type
    and whether it may be null come from the field's annotation."""

    kind: type = float  # int | float | bool | str (one of `choices`)
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    nullable: bool = False
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        if self.kind is str:
            return "one of " + ", ".join(self.choices)
        what = {int: "an integer", float: "a number", bool: "true or false"}[self.kind]
        parts = [f">= {self.ge:g}"] if self.ge is not None else []
        parts += [f"> {self.gt:g}"] if self.gt is not None else []
        parts += [f"<= {self.le:g}"] if self.le is not None else []
        return (
            what
            + (" " + " and ".join(parts) if parts else "")
            + (" or null" if self.nullable else "")
        )

    def accepts(self, value: object) -> bool:
        if value is None:
            return self.nullable
        if self.kind is str:
            return value in self.choices
        if isinstance(value, bool) != (self.kind is bool):
            return False
        if self.kind is bool:
            return True
        if not isinstance(value, int | float) or (self.kind is int and not isinstance(value, int)):
            return False
        if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
        )


def required(example: str):
    """A structured config field with no default (`???`): the run is refused before it starts
    until the command line gives it, in one line naming the key and `example`, what to give
    (`candidate=models:/sleepy-fixer/3`)."""
    return dataclasses.field(default=MISSING, metadata={"example": example})


def missing_problem(cfg) -> str | None:
    """The first `???` value under `cfg` in one line, naming the key and its field's example
    (`required`), or None. Interpolations are not resolved (the output folder is Hydra's, not
    yet known when the command line is checked)."""
    for key, owner, name in _missing_values(cfg):
        found = {f.name: f for f in dataclasses.fields(owner)} if owner else {}
        example = found[name].metadata.get("example") if name in found else None
        return f"{key} is required: give {example or f'{key}=VALUE'} on the command line"
    return None


def needs_problem(cfg) -> str | None:
    """The line of the root config's `needs_one_of` when none of its keys is set, else None."""
    from omegaconf import DictConfig

    owner = OmegaConf.get_type(cfg) if isinstance(cfg, DictConfig) else None
    needs = getattr(owner, "needs_one_of", None)
    if needs:
        keys, line = needs
        if not any(OmegaConf.select(cfg, k, default=None) not in (None, "") for k in keys):
            return line
    return None


def _missing_values(cfg, prefix: str = ""):
    """(key, owning dataclass or None, field name) of every `???` value under `cfg`, depth
    first; `hydra` is skipped."""
    from omegaconf import DictConfig, ListConfig

    owner = OmegaConf.get_type(cfg) if isinstance(cfg, DictConfig) else None
    owner = owner if owner is not None and dataclasses.is_dataclass(owner) else None
    keys = [k for k in cfg.keys() if k != "hydra"] if isinstance(cfg, DictConfig) else []
    items = [(f"{prefix}{k}", k, cfg._get_node(k)) for k in keys]
    if isinstance(cfg, ListConfig):
        items = [(f"{prefix[:-1]}[{i}]", i, cfg._get_node(i)) for i in range(len(cfg))]
    for key, name, node in items:
        if node._is_missing():
            yield key, owner, name
        elif (
            isinstance(node, DictConfig | ListConfig)
            and not node._is_none()
            and not node._is_interpolation()
        ):
            yield from _missing_values(node, f"{key}.")


def ranged(default=dataclasses.MISSING, *, factory=dataclasses.MISSING, **rule):
    """A structured config field with the range its value must be in: `ranged(16, ge=1)`,
    `ranged(0.5, ge=0, le=1)`, `ranged("learned", choices=("learned", "signature"))`. The field's
    annotation gives the kind (`int | None` allows null); `check_config` enforces it."""
    return dataclasses.field(
        default=default, default_factory=factory, metadata={"rule": Rule(**rule)}
    )


def rule_of(owner: type, name: str) -> Rule | None:
    """The Rule of field `name` of structured config class `owner` (with its annotation's kind
    and nullability), or None when the field declares no range."""
    import types
    import typing

    found = {f.name: f for f in dataclasses.fields(owner)}.get(name)
    if found is None or "rule" not in found.metadata:
        return None
    hint = typing.get_type_hints(owner).get(name)
    args = typing.get_args(hint)
    nullable = type(None) in args
    kinds = [a for a in args if a is not type(None)] if args else [hint]
    kind = kinds[0] if kinds and kinds[0] in (int, float, bool, str) else float
    if typing.get_origin(hint) not in (None, typing.Union, types.UnionType):
        kind = float
    return dataclasses.replace(found.metadata["rule"], kind=kind, nullable=nullable)


def ranged_values(cfg, prefix: str = ""):
    """(key, value, Rule) for every field of a structured config in `cfg` that declares a range,
    depth first; interpolations are resolved, `hydra` is skipped."""
    from omegaconf import DictConfig, ListConfig

    owner = OmegaConf.get_type(cfg) if isinstance(cfg, DictConfig) else None
    if owner is not None and dataclasses.is_dataclass(owner):
        declared = {f.name for f in dataclasses.fields(owner)}
        for key in cfg.keys():
            if key not in declared and key != "hydra":  # added with `+key=` or open_dict
                keys = ", ".join(sorted(k for k in declared if not k.startswith("_")))
                raise ConfigError(f"unknown key '{prefix}{key}' ({owner.__name__} has: {keys})")
        for f in dataclasses.fields(owner):
            rule = rule_of(owner, f.name)
            if rule is not None and f.name in cfg:
                value = OmegaConf.select(cfg, f.name, throw_on_missing=True, default=_ABSENT)
                if value is not _ABSENT:
                    yield prefix + f.name, value, rule
    if isinstance(cfg, DictConfig):
        for key in cfg.keys():
            child = cfg._get_node(key)
            if key != "hydra" and isinstance(child, DictConfig | ListConfig):
                yield from ranged_values(child, f"{prefix}{key}.")
    elif isinstance(cfg, ListConfig):
        for i in range(len(cfg)):
            child = cfg._get_node(i)
            if isinstance(child, DictConfig | ListConfig):
                yield from ranged_values(child, f"{prefix[:-1]}[{i}].")


def check_fields(obj, prefix: str = "") -> None:
    """Raise ConfigError for the first field of dataclass `obj` outside its declared range: the
    same rules for an object built in Python as for a composed config."""
    for f in dataclasses.fields(obj):
        rule = rule_of(type(obj), f.name)
        value = getattr(obj, f.name)
        if rule is not None and not rule.accepts(value):
            raise ConfigError(f"{prefix}{f.name}={value!r}: must be {rule.allowed()}")


def check_config(cfg) -> None:
    """Raise ConfigError for the first value outside its field's range (or a max_steps/epochs
    pair that leaves training without a length); call before any work starts. The ranges live
    in the structured configs themselves (`ranged`), one place per key. A required value left
    out is refused too: a `???` one first (missing_problem), none of a `needs_one_of` after
    the ranges (needs_problem)."""
    from omegaconf.errors import OmegaConfBaseException

    problem = missing_problem(cfg)
    if problem:
        raise ConfigError(problem)
    try:
        for key, value, rule in ranged_values(cfg):
            if not rule.accepts(value):
                raise ConfigError(f"{key}={value!r}: must be {rule.allowed()}")
    except OmegaConfBaseException as e:
        raise ConfigError(
            f"{getattr(e, 'full_key', '')}: {' '.join(str(e).split())[:200]}"
        ) from None
    problem = needs_problem(cfg)
    if problem:
        raise ConfigError(problem)
    adapter = OmegaConf.select(cfg, "adapter", default=None)
    if adapter is not None and "max_steps" in adapter and "epochs" in adapter:
        if adapter.max_steps is None and adapter.epochs is None:
            raise ConfigError("adapter.max_steps and adapter.epochs are both null: set one")
    tracking = OmegaConf.select(cfg, "tracking", default=None)
    if tracking is not None and tracking.get("enabled") and not tracking.get("uri"):
        raise ConfigError(
            "tracking.uri: null while tracking.enabled is true: set a uri or tracking=none"
        )


_ABSENT = object()


def one_line_errors(prog: str, *errors: type[BaseException]):
    """Wrap an entrypoint: the given errors (and ConfigError) end it with one line on stderr and
    exit status 2, not a traceback."""
    import functools
    import sys

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (ConfigError, *errors) as e:
                msg = " ".join(str(e).split()) or type(e).__name__
                print(f"{prog}: error: {msg}", file=sys.stderr)
                sys.exit(2)

        return run

    return wrap


# -- what every stage's config holds (base.yaml's keys) -------------------------------------------


@dataclass
class RegistryConfig:
    name: str = "sleepy-fixer"  # the registered model adapters are versions of


@dataclass
class StageConfig:
    """The keys every entrypoint's config has, their types and defaults: the model and its
    backend, the sandbox, tracking, paths (groups, typed by their own schemas), the registered
    model's name, and what names this run. Each stage's config extends it (DayConfig, ...)."""

    # What a run needs one of, beyond its `???` fields: (keys, the one line that asks for one);
    # checked with the config, before any folder or MLflow run is made.
    needs_one_of: ClassVar[tuple[tuple[str, ...], str] | None] = None

    task: str = MISSING  # the stage: day | sleep | consolidate | eval | cycle
    run_id: str = "${now:%Y-%m-%d_%H-%M-%S}_${sleepy.token:}"  # the output dir and MLflow run
    cycle: int = ranged(0, ge=0)  # the cycle this run belongs to (sleepy-cycle sets it)
    seed: int = ranged(0, ge=0)
    verbose: bool = False  # -v: other libraries' warnings, logs and progress bars on the console
    nested: bool = False  # true inside a sleepy-cycle parent run (its stages' MLflow runs)
    run_name: str | None = None  # the MLflow run's name; null: the stage's own
    registry: RegistryConfig = dataclasses.field(default_factory=RegistryConfig)
    backend: Any = None
    model: Any = None
    sandbox: Any = None
    tracking: Any = None
    paths: Any = None
