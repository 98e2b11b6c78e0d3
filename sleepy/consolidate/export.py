"""Serve a Share bundle on vLLM or Ollama: every task adapter (and the averaged one) as a plain PEFT
LoRA folder, the lines that start the servers, and the name each adapter is served under.

    sleepy export outputs/cycle/<run>/cycle3/consolidate/adapter --out outputs/served

The folder it writes is itself a router bundle (`router.json` + `tasks/<name>/`), so the `vllm`,
`openai` and `ollama` backends given `backend.adapters=<folder>` route each request by its error
signature: the request's `model` is the routed task adapter's served name, or the base model's
when the router falls back. `served.json` names what is served under which name.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from sleepy.adapters.router import MODEL_FILE, Router, RouterError
from sleepy.adapters.served import (
    AVERAGED,
    OLLAMA_SCRIPT,
    PEFT_FILES,
    VLLM_SCRIPT,
    ExportError,
    ServedAdapters,
    served_name,
)


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it, once symlinks and `..` are resolved."""
    return path.resolve().is_relative_to(folder.resolve())


def _copy_peft(src: Path, dst: Path, base_model: str, out: Path) -> int:
    """The adapter's two PEFT files, its config naming the served base; returns its rank."""
    # the folder is emptied first, so it must be one of the export's own: never `out` itself,
    # nothing above it, nothing a symlink inside it points away to
    if dst.resolve() == out.resolve() or not _inside(dst, out):
        raise ExportError(
            f"{dst} leads to {dst.resolve()}, not a folder inside --out {out}: remove the link "
            "that leads there or give another --out (nothing was deleted)"
        )
    if dst.is_symlink():
        dst.unlink()
    elif dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    cfg = json.loads((src / PEFT_FILES[0]).read_text())
    cfg["base_model_name_or_path"] = base_model
    (dst / PEFT_FILES[0]).write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.copyfile(src / PEFT_FILES[1], dst / PEFT_FILES[1])
    return int(cfg["r"])


def _bundle_of(source: Path) -> tuple[Path, Path]:
    """(averaged adapter folder, bundle folder) of a Share adapter folder or of its bundle."""
    if (source / "router.json").is_file() and (source.parent / PEFT_FILES[0]).is_file():
        return source.parent, source
    bundle = Router.find(source)
    if bundle is None or not (source / PEFT_FILES[0]).is_file():
        raise ExportError(
            f"{source}: not a Share adapter (no bundle/router.json beside adapter_config.json) — "
            "export the adapter of a consolidation=share run"
        )
    return source, bundle


def ollama_base_for(base_model: str) -> str:
    """The Ollama name conf/model gives the base (`ollama:`), else the base as it is."""
    from omegaconf import OmegaConf

    from sleepy.config import CONF_DIR

    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        if str(cfg.get("path", "")) == base_model and cfg.get("ollama"):
            return str(cfg.ollama)
    return base_model


def export_bundle(
    source: str | Path,
    out: str | Path,
    base_model: str | None = None,
    ollama_base: str | None = None,
    prefix: str = "sleepy-",
    root: str | Path | None = None,
    store: str | None = None,
) -> ServedAdapters:
    """Write the export folder for a Share adapter (a folder or a `models:/` registry URI in the
    tracking store `store`, default the configured one)."""
    out = Path(out).expanduser()
    source_text = str(source)
    if source_text.startswith("models:/"):
        from sleepy.config import default_store
        from sleepy.registry import download_adapter

        out.mkdir(parents=True, exist_ok=True)
        try:
            source = download_adapter(source_text, out / "download", store or default_store()[0])
        except ValueError as e:
            raise ExportError(str(e)) from None
    averaged_dir, bundle = _bundle_of(Path(source).expanduser())
    try:
        router = Router(bundle)
    except RouterError as e:
        raise ExportError(str(e)) from None
    # writing into the source would delete the adapters being exported before they are copied
    for src in [averaged_dir, bundle, *map(router.task_dir, router.tasks)]:
        if _inside(out, src):
            raise ExportError(
                f"--out {out} is inside the adapter being exported ({src}): "
                "give a folder outside it"
            )
    if base_model is None:
        from sleepy.adapters import load_adapter_info

        base_model = load_adapter_info(averaged_dir).base_model
        if not base_model:
            raise ExportError(f"{averaged_dir}: no base model recorded: give --base NAME")
    ollama_base = ollama_base or ollama_base_for(base_model)
    # each name goes on a Modelfile line of its own: a newline in one would add a directive
    for what, name in (("base model", base_model), ("Ollama base", ollama_base)):
        if not name.isprintable():
            raise ExportError(
                f"the {what} {name!r} has a control character (a newline): "
                "give --base / --ollama-base without one"
            )
    out.mkdir(parents=True, exist_ok=True)

    names = {task: served_name(prefix, task) for task in router.tasks}
    averaged = served_name(prefix, AVERAGED)
    every = [averaged, *names.values()]
    clash = sorted({n for n in every if every.count(n) > 1})
    if clash:
        raise ExportError(
            f"two adapters would be served as {clash}: rename the tasks or the prefix"
        )
    ranks = [_copy_peft(averaged_dir, out / AVERAGED, base_model, out)]
    for task in router.tasks:
        ranks.append(_copy_peft(router.task_dir(task), out / "tasks" / task, base_model, out))
    shutil.copyfile(bundle / "router.json", out / "router.json")
    if router.model is not None:  # the learned router's vocabularies and coefficients
        shutil.copyfile(bundle / MODEL_FILE, out / MODEL_FILE)
    served = ServedAdapters(
        out, base_model, ollama_base, names, averaged, max(ranks), source=source_text
    )
    served.save()

    vllm = served.vllm_command(root)  # one --lora-modules entry per line
    lines = [shlex.join(vllm[:8]), *(shlex.quote(a) for a in vllm[8:])]
    (out / VLLM_SCRIPT).write_text(
        "#!/bin/sh\n# vLLM serving the base model and every adapter of this export by name "
        "(sleepy export)\nexec " + " \\\n  ".join(lines) + "\n"
    )
    modelfiles = out / "ollama"
    modelfiles.mkdir(exist_ok=True)
    for task, name in [(None, averaged), *names.items()]:
        adapter = f"../tasks/{task}" if task else f"../{AVERAGED}"  # relative to the Modelfile
        (modelfiles / f"{name}.Modelfile").write_text(
            f"# {name}: {ollama_base} + {'task adapter ' + task if task else 'the averaged adapter'}"
            f" (sleepy export)\nFROM {ollama_base}\nADAPTER {adapter}\n"
        )
    (out / OLLAMA_SCRIPT).write_text(
        "#!/bin/sh\n# one Ollama model per adapter of this export (sleepy export)\nset -e\n"
        'cd "$(dirname "$0")"\n'
        + "".join(" ".join(shlex.quote(a) for a in c) + "\n" for c in served.ollama_commands())
    )
    for script in (VLLM_SCRIPT, OLLAMA_SCRIPT):
        (out / script).chmod(0o755)
    return served


# -- `sleepy export` -------------------------------------------------------------------------------


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="a Share adapter's task adapters as vLLM LoRAs and Ollama models, with launch lines",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("source", help="a Share adapter folder (or its bundle/), or a models:/ URI")
    p.add_argument("--out", required=True, help="the export folder to write")
    p.add_argument("--base", help="the base model as vLLM serves it (default: the adapter's)")
    p.add_argument("--ollama-base", help="the Ollama model to build FROM (default: conf/model's)")
    p.add_argument("--prefix", default="sleepy-", help="served names are PREFIX<task>")
    p.add_argument("--uri", help="the tracking store of a models:/ source (default: configured)")
    p.add_argument(
        "--served-from", help="where the folder will be on the vLLM machine (default: --out)"
    )
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    if args.source.startswith("models:/"):  # read from the registry: it must be there
        from sleepy.config import default_store
        from sleepy.tracking import require_store

        args.uri = args.uri or default_store()[0]
        require_store(args.uri, "sleepy export")
    served = export_bundle(
        args.source,
        args.out,
        args.base,
        args.ollama_base,
        args.prefix,
        args.served_from,
        args.uri,
    )
    print(f"{len(served.names)} task adapters + {served.averaged} in {served.folder}")
    print(f"vLLM:   {served.folder / VLLM_SCRIPT}")
    print("        " + shlex.join(served.vllm_command(args.served_from)))
    print(f"Ollama: {served.folder / OLLAMA_SCRIPT}")
    for c in served.ollama_commands():
        print("        " + shlex.join(c))
    print(f"route:  backend=vllm backend.adapters={served.folder}  (or backend=ollama)")
    return 0
