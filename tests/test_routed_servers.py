"""Routing on the inference servers people use: a Share bundle exported by `sleepy export`, served
by vLLM (one LoRA per task, chosen by the request's `model`) or Ollama (one model per task), and a
day of the agent whose requests name the task adapter each koan's error signature routes to.

vLLM (it needs a GPU) and Ollama (a server binary) cannot be installed here, so each test starts a
stand-in on 127.0.0.1 that speaks the documented API — vLLM's OpenAI-compatible `/v1/models` and
`/v1/chat/completions`, Ollama's `/api/tags` and `/api/chat` — and is configured only from the
files the export wrote: the vLLM stand-in from the `vllm serve` line in vllm-serve.sh, the Ollama
stand-in from the `ollama create` lines and the Modelfiles they name. The koans, the sandbox, the
adapters, the Share bundle and the router are all real.
"""

from __future__ import annotations

import json
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from peft import PeftModel
from support import make_adapter
from transformers import AutoModelForCausalLM

from sleepy.adapters.lora_io import read_lora
from sleepy.adapters.served import (
    OLLAMA_SCRIPT,
    SERVED_FILE,
    VLLM_SCRIPT,
    ExportError,
    ServedAdapters,
)
from sleepy.config import compose_config
from sleepy.consolidate.export import export_bundle
from sleepy.consolidate.methods import Share, TaskAdapter
from sleepy.day import DayError, run_day
from sleepy.episodes import EpisodeStore
from sleepy.prompts.template import messages_hash
from sleepy.tiny import MODEL_DIR

FAMILIES = ("borrow_checker", "mutability", "type_mismatch")
TASK_OF = {"borrow_checker": "borrow", "mutability": "mutability"}  # type_mismatch: no task
OLLAMA_BASE = "sleepy-tiny"  # what backend=ollama names the tiny model (model.name)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Koans of three families; a task adapter trained (here: made) on the errors of two of them,
    consolidated by Share, and exported."""
    from sleepy.koans.generate import generate
    from sleepy.sandbox import Sandbox

    tmp = tmp_path_factory.mktemp("routed")
    koans = [k for f in FAMILIES for k in generate(f, 2, seed=5, out=tmp / "koans")]
    sandbox = Sandbox()
    signature = {k.id: str(sandbox.verdict(k, k.buggy_code).signature) for k in koans}
    assert all(s.startswith("E0") for s in signature.values())  # rustc errors: all routable
    tasks = [
        TaskAdapter.from_path(
            task,
            make_adapter(  # rank 4: a random (non-zero) LoRA with the metadata a sleep writes
                tmp / task,
                seed=i,
                family=family,
                rank=4,
                signatures=sorted({signature[k.id] for k in koans if k.family == family}),
            ),
        )
        for i, (family, task) in enumerate(TASK_OF.items())
    ]
    # a tight distance: only the signatures the tasks learned route (nothing near them)
    share = Share(threshold=1.0, k_min=4, k_max=8, route_distance=0.05, router="signature")
    result = share(tasks, str(MODEL_DIR), tmp / "share")
    served = export_bundle(result.adapter_dir, tmp / "served", ollama_base=OLLAMA_BASE)
    return SimpleNamespace(tmp=tmp, koans=tmp / "koans", bundle=result.bundle_dir, served=served)


# -- the export ----------------------------------------------------------------------------------


def test_export_writes_plain_peft_loras_and_the_launch_lines(world):
    served, out = world.served, world.served.folder
    assert served.names == {"borrow": "sleepy-borrow", "mutability": "sleepy-mutability"}
    assert served.averaged == "sleepy-averaged" and served.base_model == str(MODEL_DIR)
    assert ServedAdapters.load(out) == served
    base = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
    for task in served.names:
        folder = out / "tasks" / task
        # plain PEFT: the two files, no sleepy metadata, the same delta-W as the bundle's task
        assert sorted(p.name for p in folder.iterdir()) == [
            "adapter_config.json",
            "adapter_model.safetensors",
        ]
        ours, theirs = read_lora(folder), read_lora(world.bundle / "tasks" / task)
        assert all(torch.equal(ours[m][1] @ ours[m][0], theirs[m][1] @ theirs[m][0]) for m in ours)
    model = PeftModel.from_pretrained(base, str(out / "averaged"), adapter_name="averaged")
    model.load_adapter(str(out / "tasks" / "borrow"), adapter_name="borrow")
    assert set(model.peft_config) == {"averaged", "borrow"}

    line = shlex.split((out / VLLM_SCRIPT).read_text().replace("\\\n", " "), comments=True)
    assert line[:4] == ["exec", "vllm", "serve", str(MODEL_DIR)]
    assert "--enable-lora" in line and line[line.index("--max-lora-rank") + 1] == "8"
    modules = line[line.index("--lora-modules") + 1 :]
    assert modules == [
        f"sleepy-averaged={out.resolve() / 'averaged'}",
        f"sleepy-borrow={out.resolve() / 'tasks' / 'borrow'}",
        f"sleepy-mutability={out.resolve() / 'tasks' / 'mutability'}",
    ]
    assert line[line.index("--max-loras") + 1] == "3"
    assert (out / "ollama" / "sleepy-borrow.Modelfile").read_text().splitlines()[1:] == [
        f"FROM {OLLAMA_BASE}",
        "ADAPTER ../tasks/borrow",
    ]
    creates = [c for c in (out / OLLAMA_SCRIPT).read_text().splitlines() if c.startswith("ollama")]
    assert creates[1] == "ollama create sleepy-borrow -f ollama/sleepy-borrow.Modelfile"
    assert len(creates) == 3


def test_export_refuses_an_adapter_without_a_bundle_in_one_line(world, tmp_path):
    with pytest.raises(ExportError, match="not a Share adapter") as e:
        export_bundle(world.tmp / "borrow", tmp_path / "out")  # a plain LoRA
    assert "\n" not in str(e.value)
    (world.served.folder / SERVED_FILE).rename(tmp_path / "kept.json")
    try:
        with pytest.raises(ExportError, match="no served.json — make the folder with"):
            ServedAdapters.load(world.served.folder)
    finally:
        (tmp_path / "kept.json").rename(world.served.folder / SERVED_FILE)


def test_sleepy_export_command_prints_the_launch_lines(world, tmp_path, capsys):
    from sleepy.cli import main

    adapter = world.bundle.parent
    assert (
        main(["export", str(adapter), "--out", str(tmp_path / "e"), "--served-from", "/srv/x"]) == 0
    )
    out = capsys.readouterr().out
    assert "vllm serve" in out and "sleepy-borrow=/srv/x/tasks/borrow" in out
    assert "ollama create sleepy-mutability -f ollama/sleepy-mutability.Modelfile" in out


# -- stand-ins for the servers, configured from the export's files -------------------------------


class StandIn(ThreadingHTTPServer):
    """A loopback server that records every request: (method, path, body)."""

    def __init__(self, handler, base: str, models: dict[str, Path]):
        super().__init__(("127.0.0.1", 0), handler)
        self.base, self.models = base, models  # served name -> adapter folder
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def chats(self) -> list[dict]:
        return [body for method, path, body in self.requests if method == "POST"]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else {}
        with self.server.lock:
            self.server.requests.append((self.command, self.path, body))
        return body

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class VLLMHandler(Handler):
    """vLLM's OpenAI-compatible server: /v1/models lists the base and each LoRA (its `parent` the
    base), /v1/chat/completions answers a served name and gives 404 in OpenAI's shape else."""

    def do_GET(self):
        self._body()
        if self.path != "/v1/models":
            return self._send(404, {"error": {"message": "Not Found", "code": 404}})
        base = {"id": self.server.base, "object": "model", "owned_by": "vllm", "parent": None}
        loras = [
            {"id": n, "object": "model", "owned_by": "vllm", "root": str(p), "parent": base["id"]}
            for n, p in self.server.models.items()
        ]
        self._send(200, {"object": "list", "data": [base, *loras]})

    def do_POST(self):
        body = self._body()
        if body["model"] != self.server.base and body["model"] not in self.server.models:
            return self._send(
                404,
                {
                    "error": {
                        "message": f"The model `{body['model']}` does not exist.",
                        "type": "NotFoundError",
                        "code": 404,
                    }
                },
            )
        self._send(
            200,
            {
                "id": "chatcmpl-0",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "no idea"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
            },
        )


class OllamaHandler(Handler):
    """Ollama: /api/tags lists its models as name:tag, /api/chat answers one of them (a name
    without a tag means :latest) and gives 404 with an `error` else."""

    def do_GET(self):
        self._body()
        names = [self.server.base, *(f"{n}:latest" for n in self.server.models)]
        details = {"format": "safetensors", "family": "llama", "parameter_size": "3.6M"}
        self._send(
            200,
            {
                "models": [
                    {
                        "name": n,
                        "model": n,
                        "modified_at": "2025-01-01T00:00:00Z",
                        "size": 1,
                        "digest": "0" * 64,
                        "details": details,
                    }
                    for n in names
                ]
            },
        )

    def do_POST(self):
        body = self._body()
        name = body["model"].removesuffix(":latest")
        if self.path != "/api/chat" or (
            name != self.server.base and name not in self.server.models
        ):
            return self._send(404, {"error": f"model '{body['model']}' not found"})
        self._send(
            200,
            {
                "model": body["model"],
                "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": "no idea"},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 7,
                "eval_count": 2,
            },
        )


def vllm_from_script(script: Path, drop: str | None = None) -> StandIn:
    """The stand-in `vllm serve` would be, from the launch line (minus LoRA `drop`)."""
    argv = shlex.split(script.read_text().replace("\\\n", " "), comments=True)
    assert argv[:3] == ["exec", "vllm", "serve"] and "--enable-lora" in argv
    rank = int(argv[argv.index("--max-lora-rank") + 1])
    models = {}
    for item in argv[argv.index("--lora-modules") + 1 :]:
        name, path = item.split("=", 1)
        cfg = json.loads((Path(path) / "adapter_config.json").read_text())
        assert cfg["r"] <= rank and (Path(path) / "adapter_model.safetensors").is_file()
        if name != drop:
            models[name] = Path(path)
    return StandIn(VLLMHandler, argv[3], models)


def ollama_from_script(script: Path, drop: str | None = None) -> StandIn:
    """The models `ollama create` would make from ollama-create.sh and its Modelfiles."""
    models, bases = {}, set()
    for line in script.read_text().splitlines():
        if not line.startswith("ollama create"):
            continue
        _, _, name, flag, modelfile = shlex.split(line)
        assert flag == "-f"
        path = script.parent / modelfile
        spec = dict(ln.split(" ", 1) for ln in path.read_text().splitlines() if ln and ln[0] != "#")
        adapter = (path.parent / spec["ADAPTER"]).resolve()  # relative to the Modelfile
        assert (adapter / "adapter_config.json").is_file()
        bases.add(spec["FROM"])
        if name != drop:
            models[name] = adapter
    [base] = bases
    return StandIn(OllamaHandler, base, models)


SERVERS = {
    "vllm": (vllm_from_script, VLLM_SCRIPT, lambda url: [f"backend.base_url={url}/v1"]),
    "ollama": (ollama_from_script, OLLAMA_SCRIPT, lambda url: [f"backend.host={url}"]),
}


def serve(server: StandIn):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def day_cfg(tmp_path: Path, world, kind: str, url: str):
    overrides = [
        f"paths.outputs={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        "model=tiny",
        f"backend={kind}",
        f"backend.adapters={world.served.folder}",
        "backend.retries=0",
        *SERVERS[kind][2](url),
        f"koans.source={world.koans}",
        "agent.max_attempts=1",
        "agent.max_steps=1",
        "tracking=none",
        f"run_id=routed-{kind}",
    ]
    return compose_config("day", overrides)


@pytest.mark.parametrize("kind", ["vllm", "ollama"])
def test_a_routed_day_names_each_koans_task_adapter_and_the_base_model_otherwise(
    world, tmp_path, kind
):
    make, script, _ = SERVERS[kind]
    server = serve(make(world.served.folder / script))
    try:
        result = run_day(day_cfg(tmp_path, world, kind, server.url))
    finally:
        server.shutdown()
        server.server_close()
    base = str(MODEL_DIR) if kind == "vllm" else OLLAMA_BASE
    with EpisodeStore(result.episodes_db) as store:
        episodes = {e.prompt_hash: e for e in store.episodes(run_id=f"routed-{kind}")}
    assert len(episodes) == 6 and {e.family for e in episodes.values()} == set(FAMILIES)
    # the server was asked what it serves before the first koan
    assert server.requests[0][0] == "GET"
    chats = server.chats()
    assert len(chats) == 6  # one request per koan (max_steps=1)
    for body in chats:
        ep = episodes[messages_hash(body["messages"])]
        task = TASK_OF.get(ep.family)
        assert body["model"] == (world.served.names[task] if task else base), ep.family
    assert {b["model"] for b in chats} == {"sleepy-borrow", "sleepy-mutability", base}
    # each episode records the task adapter that answered (None: the base model)
    assert all(e.trajectory[1]["adapter"] == TASK_OF.get(e.family) for e in episodes.values())
    assert result.metrics["routed_rate"] == pytest.approx(4 / 6)


@pytest.mark.parametrize("kind", ["vllm", "ollama"])
def test_a_server_missing_an_exported_adapter_stops_the_day_before_any_koan(world, tmp_path, kind):
    make, script, _ = SERVERS[kind]
    server = serve(make(world.served.folder / script, drop="sleepy-mutability"))
    try:
        with pytest.raises(DayError) as e:
            run_day(day_cfg(tmp_path, world, kind, server.url))
    finally:
        server.shutdown()
        server.server_close()
    msg = str(e.value)
    assert "'sleepy-mutability'" in msg and script in msg and "\n" not in msg
    assert "sleepy-borrow" not in msg
    assert server.chats() == []
