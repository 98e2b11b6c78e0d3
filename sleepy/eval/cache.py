"""Eval results kept by what decides them, so an unchanged champion is not measured again.

The key is the contender's weights (the adapter folder's bytes, or the base model's path), the
evalset file's bytes and the agent's whole policy (agent, backend, model config): a change to any
of them is a different key. Stored per koan, so the comparison with a candidate needs no rerun.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sleepy.eval.metrics import KoanOutcome
from sleepy.files import write_atomic


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def result_key(adapter_dir: Path | None, evalset: Path, cfg: DictConfig) -> str:
    policy = {
        k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("agent", "backend", "model")
    }
    policy["backend"].pop("adapter", None)
    h = hashlib.sha256()
    h.update((_folder_digest(adapter_dir) if adapter_dir else "base").encode())
    h.update(hashlib.sha256(Path(evalset).read_bytes()).hexdigest().encode())
    h.update(json.dumps(policy, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


class ResultCache:
    """One JSON file per key under `root`; a file that cannot be read is a miss, never an error."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def get(self, key: str) -> tuple[dict[str, KoanOutcome], dict[str, float]] | None:
        try:
            data = json.loads((self.root / f"{key}.json").read_text())
            res = {o["koan_id"]: KoanOutcome(**o) for o in data["outcomes"]}
            return res, {k: float(v) for k, v in data["metrics"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, res: dict[str, KoanOutcome], metrics: dict[str, float]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(  # a reader never sees half a result; two jobs writing one key both succeed
            self.root / f"{key}.json",
            json.dumps({"outcomes": [asdict(o) for o in res.values()], "metrics": metrics}),
        )
