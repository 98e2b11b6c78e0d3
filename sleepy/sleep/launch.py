"""Training under `accelerate launch`: the `accelerate` config group becomes accelerate's own config
file, and sleepy-sleep runs again under it with the same overrides, one process per GPU.

trl's SFTTrainer (LoRA and coefficient training alike) picks up the processes accelerate starts;
what a sleep writes (the dataset, the adapter, the MLflow run, the registry version) is written by
the main process only.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

# overrides the launcher sets on the processes it starts (a user's own are dropped)
_SET = ("run_id", "accelerate.launch", "adapter.bf16")


class LaunchError(ValueError):
    """An accelerate config that cannot run here; the message says which key and what to do."""


def is_main_process() -> bool:
    """True outside a distributed launch, and in its rank-0 process."""
    return int(os.environ.get("RANK", "0")) == 0


def gpus() -> tuple[int, bool]:
    """(visible CUDA GPUs, whether every one of them computes in bf16)."""
    import torch

    if not torch.cuda.is_available():
        return 0, False
    return torch.cuda.device_count(), bool(torch.cuda.is_bf16_supported())


def accelerate_config(
    group, visible: int | None = None, bf16: bool | None = None
) -> dict[str, object]:
    """The group's `config` with its `auto` values settled for this machine (GPUs counted by
    torch unless given): num_processes one per GPU, mixed_precision bf16 when supported."""
    from omegaconf import OmegaConf

    if visible is None or bf16 is None:
        found, supported = gpus()
        visible = found if visible is None else visible
        bf16 = supported if bf16 is None else bf16
    cfg = OmegaConf.to_container(group.config, resolve=True)
    on_gpu = not cfg.get("use_cpu", False)
    if on_gpu and visible == 0:
        raise LaunchError(
            "accelerate: this option trains on GPUs and torch sees none "
            "(torch.cuda.is_available() is false): use accelerate=none or accelerate=cpu"
        )
    if cfg.get("num_processes") == "auto":
        cfg["num_processes"] = visible
    n = cfg.get("num_processes")
    if not isinstance(n, int) or n < 1:
        raise LaunchError(
            f"accelerate.config.num_processes={n!r}: must be a positive integer or auto"
        )
    if cfg.get("distributed_type") == "MULTI_GPU" and n < 2:
        raise LaunchError(
            f"accelerate=multi_gpu: {n} process(es) on {visible} visible GPU(s); "
            "several GPUs need at least 2: use accelerate=single_gpu"
        )
    if on_gpu and n > visible * int(cfg.get("num_machines", 1)):
        raise LaunchError(
            f"accelerate.config.num_processes={n}: more than the {visible} visible GPU(s)"
        )
    if cfg.get("mixed_precision") == "auto":
        cfg["mixed_precision"] = "bf16" if on_gpu and bf16 else "no"
    if cfg.get("mixed_precision") not in ("no", "bf16", "fp16", "fp8"):
        raise LaunchError(
            f"accelerate.config.mixed_precision={cfg.get('mixed_precision')!r}: "
            "must be auto, no, bf16, fp16 or fp8"
        )
    return cfg


def write_config(cfg: dict, path: str | Path) -> Path:
    """accelerate's config file (YAML, the format `accelerate config` writes)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def launch_command(config_file: Path, module: str, overrides: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_file),
        "-m",
        module,
        *overrides,
    ]


def relaunch(cfg, module: str, overrides: list[str]) -> int:
    """Run `module` again under `accelerate launch` with the user's overrides, the same run_id
    (every process writes to one run folder) and bf16 as the accelerate config settles it."""
    settled = accelerate_config(cfg.accelerate)
    out = Path(str(cfg.paths.output_dir))
    config_file = write_config(settled, out / "accelerate.yaml")
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in _SET]
    cmd = launch_command(
        config_file,
        module,
        [
            *kept,
            f"run_id={cfg.run_id}",
            "accelerate.launch=false",
            f"adapter.bf16={str(settled['mixed_precision'] == 'bf16').lower()}",
        ],
    )
    shown = shlex.join(["accelerate", "launch", *cmd[3:]])
    print(f"{settled['num_processes']} process(es), {settled['mixed_precision']}: {shown}")
    return subprocess.run(cmd).returncode
