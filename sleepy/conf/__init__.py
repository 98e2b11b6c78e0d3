"""sleepy's Hydra config tree (`pkg://sleepy.conf`): one group per axis a user swaps, one file per
entrypoint, all starting from base.yaml.

Hydra imports this package when it first reads a config from it, which registers the
`${sleepy.*:}` resolvers and the structured configs below: dataclasses that hold their groups'
keys, types and defaults in one place, so a value of the wrong type is refused when the config is
composed. A group's YAML file extends its schema (`- /schema/gate@_here_`) and sets only what
differs from it.
"""

from hydra.core.config_store import ConfigStore

import sleepy.config  # noqa: F401  (registers the resolvers)
from sleepy.consolidate.config import ShareConfig
from sleepy.day.loop import AgentConfig
from sleepy.eval.gate import Gate
from sleepy.llm.hf import HFConfig
from sleepy.sandbox.isolation import SandboxConfig

_store = ConfigStore.instance()
_store.store(group="schema", name="agent", node=AgentConfig)
_store.store(group="schema", name="gate", node=Gate)
_store.store(group="schema", name="hf", node=HFConfig)
_store.store(group="schema", name="sandbox", node=SandboxConfig)
_store.store(group="schema", name="share", node=ShareConfig)
