"""LLM backends: the hf backend on the embedded tiny model (shapes, counts, batching equivalence,
clear load errors), the Hydra presets, and the HTTP backends' retry and unreachable behaviour.

The ollama backend is tested against a loopback HTTP server that answers in Ollama's documented
/api/chat format (https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion),
because Ollama itself cannot be installed here. The openai backend's happy path runs against the
real `sleepy serve` in tests/test_serve.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from sleepy.llm import BackendError, BackendUnreachable, Generation
from sleepy.llm.greedy import plan_batches
from sleepy.llm.hf import HFBackend
from sleepy.llm.ollama import OllamaBackend
from sleepy.llm.openai import OpenAIBackend
from sleepy.tiny import MODEL_DIR

MODEL_KEYS = [
    "+model.name=sleepy-tiny",
    f"+model.path={MODEL_DIR}",
    "+model.dtype=float32",
    "+model.max_new_tokens=16",
]


def prompts(n: int) -> list[list[dict]]:
    """Conversations of different lengths, so a batch needs padding."""
    return [
        [
            {"role": "system", "content": "Fix the Rust program."},
            {"role": "user", "content": f"fn main() {{ let v{i} = vec![{i}]; }}" + " //" * i},
        ]
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny() -> HFBackend:
    return HFBackend(MODEL_DIR, model_id="sleepy-tiny", max_new_tokens=12)


def test_hf_batched_greedy_equals_one_at_a_time(tiny):
    batch = prompts(6)
    together = tiny.generate(batch)
    alone = [tiny.chat(m) for m in batch]
    small_batches = tiny.generate(batch, batch_size=4)
    assert [g.text for g in together] == [g.text for g in alone] == [g.text for g in small_batches]
    assert [g.tokens_out for g in together] == [g.tokens_out for g in alone]


def test_hf_greedy_loop_matches_model_generate(tiny):
    """decoder=custom (grouped prefill, static cache, ended rows dropped) answers exactly what
    decoder=generate (model.generate) answers; a long max_new_tokens lets rows end at different
    steps (with the shipped sleepy-tiny, 80 tokens: two of these rows stop, six run to length)."""
    batch = prompts(7) + [[{"role": "user", "content": "fn main() { }" + " x" * 90}]]
    assert tiny.greedy is not None  # the default decoder, and sleepy-tiny can use it
    custom = tiny.generate(batch, max_new_tokens=80, batch_size=3)
    assert sum(tiny.last_plan) == len(batch) and max(tiny.last_plan) <= 3
    assert {g.finish_reason for g in custom} == {"stop", "length"}
    generate = HFBackend(MODEL_DIR, model_id="sleepy-tiny", decoder="generate")
    assert generate.greedy is None
    by_generate = generate.generate(batch, max_new_tokens=80)
    assert [(g.text, g.tokens_in, g.tokens_out, g.finish_reason) for g in custom] == [
        (g.text, g.tokens_in, g.tokens_out, g.finish_reason) for g in by_generate
    ]
    with pytest.raises(BackendError, match="decoder must be one of"):
        HFBackend(MODEL_DIR, decoder="fast")


def test_plan_batches_splits_lengths_where_padding_costs_more_than_steps():
    lengths = [100, 480, 90, 110, 470, 95, 105, 98]
    assert plan_batches(lengths, 8, 64) == [[2, 5, 7, 0, 6, 3], [4, 1]]
    assert plan_batches(lengths, 8, 64, step_cost=10**6) == [[2, 5, 7, 0, 6, 3, 4, 1]]
    assert plan_batches(lengths, 3, 64, step_cost=10**6) == [[2, 5, 7], [0, 6, 3], [4, 1]]
    assert plan_batches([], 8, 64) == []


def test_hf_token_counts_and_finish_reason(tiny):
    batch = prompts(3)
    gens = tiny.generate(batch, max_new_tokens=7)
    for m, g in zip(batch, gens, strict=True):
        assert isinstance(g, Generation)
        n_prompt = len(tiny.tokenizer(tiny.render(m), add_special_tokens=False)["input_ids"])
        assert g.tokens_in == n_prompt  # padding is not counted
        assert 1 <= g.tokens_out <= 7
        assert g.finish_reason == ("length" if g.tokens_out == 7 else "stop")
    assert gens[0].tokens_in < gens[2].tokens_in


def test_hf_sampling_is_reproducible_with_a_seed(tiny):
    batch = prompts(3)
    a = tiny.generate(batch, temperature=1.0, top_p=0.9, seed=7)
    b = tiny.generate(batch, temperature=1.0, top_p=0.9, seed=7)
    assert [g.text for g in a] == [g.text for g in b]
    with pytest.raises(BackendError, match="unknown generation options"):
        tiny.generate(batch, temprature=1.0)


def test_hf_missing_or_corrupt_model_or_adapter_is_one_line(tmp_path):
    with pytest.raises(BackendError, match="no model at .*not a directory and not a hub id") as e:
        HFBackend(str(tmp_path / "nope"))
    assert "\n" not in str(e.value)
    broken = tmp_path / "broken"
    shutil.copytree(MODEL_DIR, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 64)
    with pytest.raises(BackendError, match="cannot load model from") as e:
        HFBackend(broken)
    assert "\n" not in str(e.value)
    with pytest.raises(BackendError, match="no adapter at .*adapter_config.json"):
        HFBackend(MODEL_DIR, adapter=tmp_path / "no-adapter")


def test_hf_with_a_peft_adapter(tmp_path, tiny):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(MODEL_DIR)
    lora = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    lora.save_pretrained(tmp_path / "cycle-1")
    b = HFBackend(MODEL_DIR, adapter=tmp_path / "cycle-1", max_new_tokens=5)
    assert isinstance(b.model, PeftModel)
    assert b.model_id == "model+cycle-1"
    assert len(b.generate(prompts(2))) == 2


def test_hydra_builds_every_backend_preset():
    with initialize_config_module("sleepy.conf", version_base=None):
        hf = instantiate(compose(overrides=["+backend=hf", *MODEL_KEYS]).backend)
        assert isinstance(hf, HFBackend) and hf.model_id == "sleepy-tiny"
        expect = {
            "openai": "http://localhost:8000/v1",
            "vllm": "http://localhost:8000/v1",
            "tgi": "http://localhost:8080/v1",
        }
        for name, url in expect.items():
            b = instantiate(compose(overrides=[f"+backend={name}", *MODEL_KEYS]).backend)
            assert isinstance(b, OpenAIBackend) and b.base_url == url
        cfg = compose(
            overrides=["+backend=ollama", *MODEL_KEYS, "+model.ollama=qwen2.5-coder:1.5b"]
        )
        ol = instantiate(cfg.backend)
        assert isinstance(ol, OllamaBackend) and ol.model_id == "qwen2.5-coder:1.5b"


class FakeOllama(BaseHTTPRequestHandler):
    """Answers POST /api/chat like Ollama (non-streaming): echoes the last message, counts words."""

    fail_first = 0  # answer this many requests with HTTP 500 first
    seen: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        if self.path != "/api/chat":
            self.send_error(404)
            return
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self._send(500, {"error": "model runner crashed"})
            return
        if body["model"] != "qwen2.5-coder:0.5b":
            self._send(404, {"error": f'model "{body["model"]}" not found, try pulling it first'})
            return
        last = body["messages"][-1]["content"]
        self._send(
            200,
            {
                "model": body["model"],
                "created_at": "2024-07-22T20:33:28.123456Z",
                "message": {"role": "assistant", "content": f"echo: {last}"},
                "done": True,
                "done_reason": "length" if body["options"]["num_predict"] < 3 else "stop",
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": len(last.split()),
                "prompt_eval_duration": 100,
                "eval_count": len(last.split()) + 1,
                "eval_duration": 100,
            },
        )

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(handler, path: str = ""):
    """`handler` on a real HTTP server on 127.0.0.1 (a free port) for one test; yields its URL."""
    handler.fail_first, handler.seen = 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fake_ollama():
    yield from _serve(FakeOllama)


def test_ollama_chat_batch_and_options(fake_ollama):
    b = OllamaBackend("qwen2.5-coder:0.5b", host=fake_ollama, retries=0, max_new_tokens=50)
    batch = [[{"role": "user", "content": " ".join(["w"] * (i + 1))}] for i in range(5)]
    gens = b.generate(batch, temperature=0.5, seed=3)
    assert [g.text for g in gens] == [f"echo: {m[0]['content']}" for m in batch]  # order kept
    assert [(g.tokens_in, g.tokens_out) for g in gens] == [(i + 1, i + 2) for i in range(5)]
    assert all(g.finish_reason == "stop" for g in gens)
    sent = FakeOllama.seen[0]
    assert sent["stream"] is False
    assert sent["options"] == {"num_predict": 50, "temperature": 0.5, "top_p": 1.0, "seed": 3}
    assert b.chat(batch[0], max_new_tokens=2).finish_reason == "length"


def test_ollama_retries_server_errors_then_succeeds(fake_ollama):
    FakeOllama.fail_first = 2
    b = OllamaBackend("qwen2.5-coder:0.5b", host=fake_ollama, retries=2, backoff=0.01)
    assert b.chat([{"role": "user", "content": "hi"}]).text == "echo: hi"
    assert len(FakeOllama.seen) == 3


def test_ollama_missing_model_says_to_pull(fake_ollama):
    b = OllamaBackend("llama9", host=fake_ollama, retries=0)
    with pytest.raises(BackendError, match="run 'ollama pull llama9'"):
        b.chat([{"role": "user", "content": "hi"}])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_backends_fail_with_one_line():
    port = closed_port()
    ol = OllamaBackend("m", host=f"http://127.0.0.1:{port}", timeout=2, retries=1, backoff=0.01)
    with pytest.raises(BackendUnreachable) as e:
        ol.chat([{"role": "user", "content": "hi"}])
    msg = str(e.value)
    assert msg.startswith(
        f"cannot reach ollama at http://127.0.0.1:{port} — is 'ollama serve' running?"
    )
    assert "\n" not in msg
    oa = OpenAIBackend(
        "m", base_url=f"http://127.0.0.1:{port}/v1", name="vllm", timeout=2, retries=1
    )
    with pytest.raises(BackendUnreachable) as e:
        oa.generate([[{"role": "user", "content": "hi"}]] * 3)
    msg = str(e.value)
    assert msg.startswith(
        f"cannot reach vllm at http://127.0.0.1:{port}/v1 — is 'vllm serve' running?"
    )
    assert "\n" not in msg


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers POST /v1/chat/completions like an OpenAI-compatible server; the first `fail_first`
    requests get HTTP 503, as an overloaded server answers."""

    fail_first = 0
    seen: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            data = json.dumps({"error": {"message": "overloaded", "type": "server_error"}})
            self.send_response(503)
            self.send_header("Retry-After", "0")  # the client's backoff, without its waiting
        else:
            data = json.dumps(
                {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "echo"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }
            )
            self.send_response(200)
        data = data.encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_openai():
    yield from _serve(FakeOpenAI, "/v1")


def test_openai_backend_retries_with_the_clients_own_retries(fake_openai):
    FakeOpenAI.fail_first = 2
    b = OpenAIBackend("m", base_url=fake_openai, retries=2)
    g = b.chat([{"role": "user", "content": "hi"}])
    assert (g.text, g.tokens_in, g.tokens_out) == ("echo", 3, 1)
    assert len(FakeOpenAI.seen) == 3  # two 503s retried, then the answer

    FakeOpenAI.fail_first, FakeOpenAI.seen = 5, []
    with pytest.raises(BackendUnreachable, match="cannot reach openai at .* running") as e:
        OpenAIBackend("m", base_url=fake_openai, retries=1).chat([{"role": "user", "content": "x"}])
    assert len(FakeOpenAI.seen) == 2 and "\n" not in str(e.value)
