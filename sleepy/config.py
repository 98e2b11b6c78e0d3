"""Where the Hydra configs live, and the resolvers they use (`${sleepy.tiny_model:}`, ...).

Importing this module registers the resolvers; every entrypoint that composes conf/ imports it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
# One token per process: run ids made in the same second by parallel sweep jobs still differ.
_TOKEN = secrets.token_hex(3)


def register_resolvers() -> None:
    from sleepy.tiny import MODEL_DIR

    OmegaConf.register_new_resolver("sleepy.tiny_model", lambda: str(MODEL_DIR), replace=True)
    OmegaConf.register_new_resolver("sleepy.root", lambda: str(ROOT), replace=True)
    OmegaConf.register_new_resolver("sleepy.token", lambda: _TOKEN, replace=True)


register_resolvers()


def compose_config(name: str, overrides: list[str] = ()):
    """conf/<name>.yaml with overrides, as Hydra composes it (inside a running app or not)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(name, overrides=list(overrides))
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return compose(name, overrides=list(overrides))
