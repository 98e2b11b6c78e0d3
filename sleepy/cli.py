"""The `sleepy` command: one subcommand group per stage (koans, sandbox, episodes, serve, ...).

Each group lives beside its stage and exposes `add_parser(subparsers)`; modules load lazily so that
`sleepy koans list` does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

GROUPS = {
    "koans": ("sleepy.koans.cli", "koans: generate, import, validate, list, show, freeze"),
    "sandbox": ("sleepy.sandbox.cli", "run one Rust file in the sandbox and print its verdict"),
    "episodes": ("sleepy.episodes.cli", "episode store: export, import, stats"),
    "serve": ("sleepy.serve", "OpenAI-compatible server over a local model (+ adapter)"),
    "export": (
        "sleepy.consolidate.export",
        "a Share adapter's task adapters as vLLM LoRAs and Ollama models, with launch lines",
    ),
    "registry": ("sleepy.registry.cli", "MLflow model registry: list, show, promote, rollback"),
    "report": ("sleepy.report", "results tables rebuilt from the MLflow store (markdown)"),
}

# The pipeline's stages are commands of their own (Hydra configs; each has --help with examples).
PIPELINE = """the pipeline (each its own command; --help says what it does, with examples):
  sleepy-day          the agent works through koans; episodes to SQLite, the run to MLflow
  sleepy-sleep        a day's failures become a training set and an adapter trained on it
  sleepy-consolidate  task adapters merged into one, so new fixes do not erase old ones
  sleepy-eval         the candidate against the champion on the frozen evalset; the gate decides
  sleepy-cycle        day -> sleep -> consolidate -> eval -> gate, cycle after cycle
  sleepy-plots        learning, forgetting and strategy plots from the MLflow store
  sleepy-tiny         trains sleepy-tiny, the small bundled model, on generated koans
"""


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sleepy",
        description="sleepy: a Rust-fixing agent that learns while it sleeps",
        epilog=PIPELINE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="group", metavar="{" + ",".join(GROUPS) + "}")
    wanted = argv[0] if argv and argv[0] in GROUPS else None
    for name, (module, help_text) in GROUPS.items():
        if wanted and name != wanted:
            sub.add_parser(name, help=help_text)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            sub.add_parser(name, help=f"(not available: {module} missing)")
            continue
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except BrokenPipeError:  # `sleepy koans list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for the user; the traceback is there with SLEEPY_DEBUG=1
        import os

        if os.environ.get("SLEEPY_DEBUG"):
            raise
        print(f"sleepy {args.group}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
