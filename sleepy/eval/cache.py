"""Eval results kept by what decides them, so an unchanged champion is not measured again.

The key is everything a result depends on: the koans run (each id with its bytes), the weights by
content (the adapter folder and the base model's files), the agent's policy and the backend's
options, the prompt template's text, the sandbox (its limits, the isolation it got on this host,
the rustc it runs) and sleepy's own code (the agent loop and the verdict). A change to any of them
is a different key. Stored per koan, with the koan ids and the eval run that
measured them, so the comparison with a candidate needs no rerun and a hit can say where it came
from; a stored result for other koans than this eval's is a miss, whatever its key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import sleepy
from sleepy.eval.metrics import KoanOutcome
from sleepy.files import write_atomic
from sleepy.koan import Koan
from sleepy.prompts.template import PromptError, PromptTemplate
from sleepy.sandbox import Sandbox, SandboxConfig

# (path, device, inode, size, mtime_ns, ctime_ns) -> sha256 of the file's bytes, for this process.
# Hashing a base model's gigabytes on every eval would cost seconds, and sleepy-cycle evals the
# same champion every cycle. A file is hashed again when any of these move; ctime is among them
# because nothing can set it back, so a retrain that rewrites a file in place at the same size and
# restores its mtime (cp -p, rsync -t) still changes it. A new process always reads the bytes:
# size and times alone are not content, and another process may have rewritten the file at any
# time in between.
_FILE_DIGESTS: dict[tuple, str] = {}


def _file_digest(f: Path) -> str:
    st = f.stat()
    seen = (str(f.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if seen not in _FILE_DIGESTS:
        with f.open("rb") as fh:
            _FILE_DIGESTS[seen] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _FILE_DIGESTS[seen]


def weights_digest(path: Path) -> str:
    """sha256 over a model or adapter folder: every file's name and bytes. Dot-folders (a clone's
    .git, a hub download's .cache) are left out: the model loads nothing from them."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in Path(path).rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    for f in files:
        h.update(str(f.relative_to(path)).encode() + b"\0" + _file_digest(f).encode())
    return h.hexdigest()


def base_weights(backend: DictConfig) -> Path | None:
    """The folder a backend loads its base model from, when this process loads it: `backend.model`
    as a folder, or a hub id already in the local hub cache. None for a backend that talks to a
    server (its weights are the server's, out of sight here) or a hub id not downloaded yet."""
    # A backend that takes an `adapter` loads the weights itself (the same test the eval uses to
    # decide whether it can hand a contender's adapter to the backend).
    if "adapter" not in backend or not backend.get("model"):
        return None
    model = Path(str(backend.model)).expanduser()
    if model.is_dir():
        return model
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(backend.model), local_files_only=True))
    except (OSError, ValueError):
        return None


@functools.cache
def _rustc_version(rustc: str) -> str:
    """rustc's own version lines: its diagnostics are what the agent reads and the verdict judges."""
    return subprocess.run([rustc, "-vV"], capture_output=True, text=True, check=True).stdout


@functools.cache
def _code_digest() -> str:
    """sleepy's Python source. The agent loop, the edit formats and the verdict decide a result as
    much as the weights do: a result measured before a fix to any of them is not one of the fixed
    code (a stricter verdict must re-measure the champion, not hand back its old passes)."""
    root = Path(sleepy.__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + _file_digest(f).encode())
    return h.hexdigest()


def result_key(cfg: DictConfig, koans: list[Koan], adapter_dir: Path | None) -> str | None:
    """The key of one contender's result on these koans under cfg, or None when the weights
    cannot be read from here (a served model): such a result is measured every time, never kept."""
    base = base_weights(cfg.backend)
    if base is None:
        return None
    policy = {
        k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("agent", "backend", "model")
    }
    # the weights are keyed by their bytes below; where they lie is not a result's business
    policy["backend"].pop("adapter", None)
    policy["backend"].pop("model", None)
    policy["model"].pop("path", None)
    try:
        prompt = PromptTemplate.load(str(cfg.agent.prompt_template)).source
    except PromptError:
        return None  # the day says what is wrong with it, in one line
    sandbox_cfg: SandboxConfig = OmegaConf.to_object(cfg.sandbox)
    sandbox = Sandbox.from_config(sandbox_cfg)
    parts = {
        "koans": sorted((k.id, k.frozen_hash) for k in koans),
        "adapter": weights_digest(adapter_dir) if adapter_dir else None,
        "base": weights_digest(base),
        "policy": policy,
        # the config names the template; what the model is shown is the file's text
        "prompt": prompt,
        "code": _code_digest(),
        "sandbox": asdict(sandbox_cfg),
        # `auto` isolation is whatever this host allows: a program with the network may pass
        # where the same program without it fails
        "isolation": sandbox.isolation,
        "rustc": _rustc_version(str(sandbox.toolchain.rustc)),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass
class CachedResult:
    outcomes: dict[str, KoanOutcome]
    metrics: dict[str, float]
    run_id: str  # the eval run (cfg.run_id) that measured it
    mlflow_run_id: str | None  # and its MLflow run, when it was tracked


class ResultCache:
    """One JSON file per key under `root`; a file that cannot be read is a miss, never an error."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def get(self, key: str, koan_ids: list[str]) -> CachedResult | None:
        """The stored result for `key`, if it is one of exactly these koans."""
        try:
            data = json.loads((self.root / f"{key}.json").read_text())
            res = {o["koan_id"]: KoanOutcome(**o) for o in data["outcomes"]}
            if sorted(data["koan_ids"]) != sorted(koan_ids) or sorted(res) != sorted(koan_ids):
                return None
            by = data["measured_by"]
            metrics = {k: None if v is None else float(v) for k, v in data["metrics"].items()}
            return CachedResult(res, metrics, str(by["run_id"]), by.get("mlflow_run_id"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(
        self,
        key: str,
        res: dict[str, KoanOutcome],
        metrics: dict[str, float],
        run_id: str,
        mlflow_run_id: str | None = None,
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "koan_ids": sorted(res),
            "outcomes": [asdict(o) for o in res.values()],
            "metrics": metrics,
            "measured_by": {"run_id": run_id, "mlflow_run_id": mlflow_run_id},
        }
        # a reader never sees half a result; two jobs writing one key both succeed
        write_atomic(self.root / f"{key}.json", json.dumps(data))
