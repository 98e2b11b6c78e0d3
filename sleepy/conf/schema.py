"""The structured configs of sleepy's entrypoints and Hydra groups, stored in Hydra's ConfigStore
under `schema/`: dataclasses that hold their keys, types, defaults and ranges in one place. An
entrypoint's YAML extends its stage's schema (`- /schema/day@_here_`), a group's YAML its group's
(`- /schema/gate@_here_`), and each sets only what differs from it; a key no schema declares is
refused when the config is composed."""

from hydra.core.config_store import ConfigStore

from sleepy.consolidate.config import ConsolidateConfig, LatestConfig, MergeConfig, ShareConfig
from sleepy.cycle import CycleConfig
from sleepy.day.config import DayConfig
from sleepy.day.loop import AgentConfig
from sleepy.eval.config import EvalConfig
from sleepy.eval.gate import Gate
from sleepy.llm.hf import HFConfig
from sleepy.sandbox.isolation import SandboxConfig
from sleepy.sleep.config import AdapterConfig, CoefficientsConfig, CurateConfig, SleepConfig
from sleepy.tracking import TrackingConfig

_store = ConfigStore.instance()
for name, node in {
    # entrypoints
    "day": DayConfig,
    "sleep": SleepConfig,
    "consolidate": ConsolidateConfig,
    "eval": EvalConfig,
    "cycle": CycleConfig,
    # groups
    "agent": AgentConfig,
    "gate": Gate,
    "hf": HFConfig,
    "sandbox": SandboxConfig,
    "share": ShareConfig,
    "merge": MergeConfig,
    "latest": LatestConfig,
    "lora": AdapterConfig,
    "coefficients": CoefficientsConfig,
    "curate": CurateConfig,
    "tracking": TrackingConfig,
}.items():
    _store.store(group="schema", name=name, node=node)
