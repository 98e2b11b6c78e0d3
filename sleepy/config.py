"""Where sleepy's files are, the resolvers its configs use (`${sleepy.tiny_model:}`, ...), and the
checks every config passes before work starts.

The configs are the package `sleepy.conf` (`pkg://sleepy.conf`), so an installed wheel has them;
importing it (Hydra does, on first use) registers the resolvers and the structured configs.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

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
    """What Hydra refused, in one line: an unknown option with the group's options, a value
    outside SCHEMA's range named as check_config names it, else Hydra's own words."""
    text = str(e)
    missing = re.search(r"Could not find '(.+)/([^/']+)'", text)
    if missing and "Available options" in text:
        group, option = missing.groups()
        listed = text.split("Available options", 1)[1].split("Config search path", 1)[0]
        options = re.findall(r"^\t(\S+)\s*$", listed, re.M)
        return f"no {group} '{option}' (options for {group}: {', '.join(options)})"
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 - an override Hydra cannot parse: its own message says why
        parsed = []
    for o in parsed:
        rule = SCHEMA.get(o.key_or_group)
        if rule is not None and o.is_force_add() is False and not rule.accepts(o.value()):
            return f"{o.key_or_group}={o.value()!r}: must be {rule.allowed()}"
    lines = text.strip().splitlines() or [type(e).__name__]
    cause = e.__cause__
    if len(lines) == 1 and cause is not None and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])  # e.g. what a value could not become
    return " ".join(" ".join(lines).split())


def default_store() -> tuple[str, str]:
    """(tracking.uri, registry.name) as base.yaml has them: what a command outside Hydra
    (`sleepy registry`, `sleepy report`, `sleepy-plots`) uses unless it is told otherwise."""
    base = compose_config("base", ["task=cli"])
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
    """For an entrypoint's main(): end with one line and status 2 when its overrides are bad."""
    import sys

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
    and whether null is allowed."""

    kind: type  # int | float | bool | str (one of `choices`)
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


# Every numeric or boolean knob of every entrypoint, in one place. A key a config does not have
# is not checked (each entrypoint composes only its own groups).
SCHEMA: dict[str, Rule] = {
    "cycle": Rule(int, ge=0),
    "cycles": Rule(int, ge=1),
    "seed": Rule(int, ge=0),
    "resume": Rule(bool),
    "register": Rule(bool),
    "promote": Rule(bool),
    "withdraw_routes": Rule(bool),
    "koans.count": Rule(int, ge=1, nullable=True),
    "koans.seed": Rule(int, ge=0),
    "koans.generate": Rule(int, ge=0),
    "koans.mutants": Rule(int, ge=0),
    "agent.max_attempts": Rule(int, ge=1),
    "agent.max_steps": Rule(int, ge=1),
    "agent.token_budget": Rule(int, ge=1),
    "agent.temperature": Rule(float, ge=0, le=2),
    "agent.max_new_tokens": Rule(int, ge=1),
    "agent.feedback_chars": Rule(int, ge=0, nullable=True),
    "agent.hints": Rule(bool),
    "agent.hints_k": Rule(int, ge=0),
    "agent.concurrency": Rule(int, ge=1),
    "agent.workers": Rule(int, ge=1),
    "adapter.rank": Rule(int, ge=1),
    "adapter.alpha": Rule(float, gt=0),
    "adapter.dropout": Rule(float, ge=0, le=0.99),
    "adapter.learning_rate": Rule(float, gt=0),
    "adapter.coeff_learning_rate": Rule(float, gt=0),
    "adapter.max_steps": Rule(int, ge=1, nullable=True),
    "adapter.epochs": Rule(float, gt=0, nullable=True),
    "adapter.batch_size": Rule(int, ge=1),
    "adapter.warmup_steps": Rule(int, ge=0),
    "adapter.max_length": Rule(int, ge=16),
    "adapter.logging_steps": Rule(int, ge=1),
    "curate.replay_ratio": Rule(float, ge=0),
    "curate.augment_k": Rule(int, ge=0),
    "curate.cluster_distance": Rule(float, gt=0, le=2),
    "curate.seed": Rule(int, ge=0),
    "gate.min_gain": Rule(float, ge=-1, le=1),
    "gate.max_regressions": Rule(int, ge=0),
    "gate.max_family_drop": Rule(float, ge=0, le=1),
    "consolidation.threshold": Rule(float, gt=0, le=1),
    "consolidation.k_min": Rule(int, ge=1),
    "consolidation.k_max": Rule(int, ge=1),
    "consolidation.p": Rule(int, ge=1),
    "consolidation.phi": Rule(int, ge=0),
    "consolidation.route_distance": Rule(float, ge=0, le=2),
    "consolidation.route_confidence": Rule(float, ge=0, le=1),
    # sleepy.adapters.router.ROUTERS (this module sits below it)
    "consolidation.router": Rule(str, choices=("learned", "signature")),
    "tracking.enabled": Rule(bool),
    "verbose": Rule(bool),
    "learning_set.k": Rule(int, ge=1),
    "learning_set.mutants": Rule(bool),
}


def check_config(cfg) -> None:
    """Raise ConfigError for the first value SCHEMA refuses (or a max_steps/epochs pair that
    leaves training without a length); call before any work starts."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for key, rule in SCHEMA.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True, default=_ABSENT)
        except OmegaConfBaseException as e:
            raise ConfigError(f"{key}: {' '.join(str(e).split())[:200]}") from None
        if value is _ABSENT:
            continue
        if not rule.accepts(value):
            raise ConfigError(f"{key}={value!r}: must be {rule.allowed()}")
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
