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
