"""The structured configs of sleepy's Hydra groups, stored in Hydra's ConfigStore under `schema/`:
dataclasses that hold their groups' keys, types and defaults in one place. A group's YAML file
extends its schema (`- /schema/gate@_here_`) and sets only what differs from it.
"""

from hydra.core.config_store import ConfigStore

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
