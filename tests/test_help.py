"""`--help` orients: each pipeline entrypoint says what it does, gives examples, lists the config
groups its own config uses with their options (never the structured configs under `schema/` or
another stage's groups) and how to print the composed config; `sleepy --help` names the pipeline's
commands; `sleepy-plots --help` is whole sentences. Each runs as a real process."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import sleepy

CONF = Path(sleepy.__file__).parent / "conf"
PYPROJECT = Path(sleepy.__file__).parent.parent / "pyproject.toml"
BASE = {"backend", "model", "paths", "sandbox", "tracking"}
TRAINING = {"adapter", "curate", "consolidation"}
# module -> the command's name, the groups its config uses
ENTRYPOINTS = {
    "sleepy.day": ("sleepy-day", BASE | {"agent"}),
    "sleepy.sleep": ("sleepy-sleep", BASE | TRAINING | {"accelerate"}),
    "sleepy.consolidate.run": ("sleepy-consolidate", BASE | {"consolidation"}),
    "sleepy.eval": ("sleepy-eval", BASE | {"agent", "gate"}),
    "sleepy.cycle": ("sleepy-cycle", BASE | TRAINING | {"agent", "gate", "experiment"}),
    "sleepy.pretrain.train": ("sleepy-tiny", {"paths", "tracking"}),
}
# every group folder of the config tree, Hydra's own aside
ALL_GROUPS = {p.name for p in CONF.iterdir() if p.is_dir() and any(p.glob("*.yaml"))} - {"hydra"}


def help_text(module: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stdout


def listed_groups(text: str) -> dict[str, tuple[str, list[str]]]:
    """group -> (the option shown as picked, the options listed) from the help's group list."""
    found = re.findall(r"^  (\w+)=(\S+) .*\n +options: (.+)$", text, re.M)
    return {group: (picked, options.split(", ")) for group, picked, options in found}


@pytest.mark.parametrize("module", ENTRYPOINTS)
def test_an_entrypoint_help_says_what_it_does_with_examples_and_its_own_groups(module):
    name, groups = ENTRYPOINTS[module]
    text = help_text(module)
    assert "powered by Hydra" not in text
    # what it does, first, under its own name
    assert re.match(rf"{name}: \w+", text.splitlines()[0]), text.splitlines()[0]
    examples = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(examples) >= 2 and all(line.startswith(f"  {name} ") for line in examples)

    listed = listed_groups(text)
    assert set(listed) == groups
    for group, (_, options) in listed.items():
        assert options == sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert "schema" not in text
    for other in ALL_GROUPS - groups:  # e.g. consolidation for sleepy-day
        assert not re.search(rf"^\s*{other}[=:]", text, re.M), other
    assert f"  {name} --cfg job\n" in text


def test_the_help_shows_the_option_an_override_picks():
    assert listed_groups(help_text("sleepy.day"))["backend"][0] == "hf"
    assert listed_groups(help_text("sleepy.day", "backend=openai"))["backend"][0] == "openai"


def test_sleepy_help_names_every_pipeline_command_with_a_line_each():
    text = help_text("sleepy.cli")
    named = dict(re.findall(r"^  (sleepy-[a-z]+) +(\S.+)$", text, re.M))
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    assert set(named) == set(scripts) - {"sleepy"}
    assert (
        "sleepy-cycle" in named and "day -> sleep -> consolidate -> eval" in named["sleepy-cycle"]
    )


def test_sleepy_plots_help_describes_the_plots_in_whole_sentences_with_examples():
    text = help_text("sleepy.plots")
    description = text.split("\n\n")[1]
    assert description.startswith("Plots of what sleep did") and description.endswith(".")
    for plot in ("learning curve", "forgetting", "family breakdown", "strategy comparison"):
        assert plot in description.replace("\n", " ")
    examples = text.split("examples:\n", 1)[1].splitlines()
    assert examples and all(line.startswith("  sleepy-plots") for line in examples)
