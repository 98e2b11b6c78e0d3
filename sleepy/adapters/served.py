"""The format of an export folder (`sleepy export`): what is served under which name on vLLM or
Ollama, read from and written to served.json. The backends read it to route each request by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from sleepy.adapters.router import Router, RouterError

SERVED_FILE = "served.json"
VLLM_SCRIPT = "vllm-serve.sh"
OLLAMA_SCRIPT = "ollama-create.sh"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
# --max-lora-rank takes one of these; an adapter's rank is rounded up to the next
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
AVERAGED = "averaged"  # the served name's suffix for the averaged adapter (no routing needed)


class ExportError(ValueError):
    """A source that cannot be exported or an export folder that cannot be served; one line."""


def served_name(prefix: str, task: str) -> str:
    """A name both servers accept: vLLM takes any, Ollama lowercase letters, digits, `.-_`."""
    name = re.sub(r"[^a-z0-9._-]+", "-", f"{prefix}{task}".lower()).strip("-._")
    if not name:
        raise ExportError(f"task {task!r} with prefix {prefix!r} leaves no usable model name")
    return name


def _tagged(name: str) -> str:
    """Ollama lists `name` as `name:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@dataclass
class ServedAdapters:
    """An export folder: what is served under which name, read from and written to served.json."""

    folder: Path
    base_model: str  # the base as `vllm serve` is given it (vLLM names the base model by it)
    ollama_base: str  # the Ollama model the Modelfiles build FROM
    names: dict[str, str]  # task -> served name (a vLLM LoRA name, an Ollama model name)
    averaged: str  # served name of the averaged adapter
    max_rank: int
    source: str = ""

    @classmethod
    def load(cls, folder: str | Path) -> ServedAdapters:
        folder = Path(folder).expanduser()
        path = folder / SERVED_FILE
        if not path.is_file():
            raise ExportError(f"{folder}: no {SERVED_FILE} — make the folder with 'sleepy export'")
        try:
            data = json.loads(path.read_text())
            data.pop("folder", None)
            served = cls(folder=folder, **data)
        except (ValueError, TypeError) as e:
            raise ExportError(f"{path}: not an export manifest ({type(e).__name__}: {e})") from None
        missing = [t for t in served.names if not (folder / "tasks" / t / PEFT_FILES[0]).is_file()]
        if missing:
            raise ExportError(f"{folder}: {SERVED_FILE} names tasks with no adapter: {missing}")
        return served

    def save(self) -> None:
        data = asdict(self)
        data.pop("folder")
        (self.folder / SERVED_FILE).write_text(json.dumps(data, indent=2) + "\n")

    def router(self) -> Router:
        try:
            return Router(self.folder)
        except RouterError as e:
            raise ExportError(str(e)) from None

    def model_for(self, task: str | None, base: str) -> str:
        """The `model` a request names: the task adapter's served name, or `base` for none."""
        return base if task is None else self.names[task]

    def missing(self, listed: set[str], base: str, ollama: bool = False) -> list[str]:
        """Which of the base and the task adapters a server's model list lacks."""
        wanted = [base, *self.names.values()]
        if ollama:
            have = {_tagged(n) for n in listed}
            return [n for n in wanted if _tagged(n) not in have]
        return [n for n in wanted if n not in listed]

    # -- the lines that start the servers ---------------------------------------------------------

    def vllm_command(self, root: str | Path | None = None) -> list[str]:
        """`vllm serve BASE --enable-lora ... --lora-modules name=path ...`; the paths are under
        `root` (where the folder lives on the serving machine; default: where it is now)."""
        root = Path(root) if root is not None else self.folder.resolve()
        rank = next((r for r in VLLM_RANKS if r >= self.max_rank), self.max_rank)
        modules = [f"{self.averaged}={root / AVERAGED}"] + [
            f"{name}={root / 'tasks' / task}" for task, name in self.names.items()
        ]
        return [
            "vllm",
            "serve",
            self.base_model,
            "--enable-lora",
            "--max-loras",
            str(len(modules)),
            "--max-lora-rank",
            str(rank),
            "--lora-modules",
            *modules,
        ]

    def ollama_commands(self) -> list[list[str]]:
        """One `ollama create NAME -f ollama/NAME.Modelfile` per adapter, run from the folder."""
        return [
            ["ollama", "create", name, "-f", f"ollama/{name}.Modelfile"]
            for name in [self.averaged, *self.names.values()]
        ]
