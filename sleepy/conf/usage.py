"""What an entrypoint's `--help` lists: the config groups its own config uses, with their options.

conf/hydra/help/common.yaml asks for them with `${sleepy.help_groups:}`; Hydra resolves the help
template after composing the entrypoint's config, so the groups are the ones that config chose
(`hydra.runtime.choices`), never Hydra's own groups or the structured configs stored under
`schema/`.
"""

from __future__ import annotations

from omegaconf import OmegaConf

# group -> what choosing one of its options decides
ABOUT: dict[str, str] = {
    "accelerate": "where sleep trains: in this process, or under accelerate (GPUs, CPU)",
    "adapter": "what sleep trains: a LoRA, or coefficients in a consolidation basis",
    "agent": "the agent's policy: attempts, steps, edit format",
    "backend": "where the model runs: in this process (hf) or behind a server",
    "consolidation": "how task adapters are merged, so new fixes do not erase old ones",
    "curate": "which episodes become training rows",
    "experiment": "a ready-made experiment: its curriculum and strategies",
    "gate": "when a candidate is promoted over the champion",
    "model": "the base model, its prompt template and edit format",
    "paths": "where koans, evalsets and outputs are",
    "sandbox": "rustc's isolation and limits",
    "tracking": "MLflow, or no tracking",
}


def help_groups() -> str:
    """One entry per config group the composed config chose an option from: `group=choice`, what
    the group decides, and every option it has."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or not GlobalHydra.instance().is_initialized():
        return "  (listed by --help)"
    loader = GlobalHydra.instance().config_loader()
    lines = []
    for group, choice in sorted(HydraConfig.get().runtime.choices.items()):
        if group == "hydra" or group.startswith("hydra/"):
            continue
        picked = f"{group}={'null' if choice is None else choice}"
        lines.append(f"  {picked:<24} {ABOUT.get(group, '')}".rstrip())
        lines.append(f"  {'':<24} options: {', '.join(sorted(loader.get_group_options(group)))}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("sleepy.help_groups", help_groups, replace=True)
