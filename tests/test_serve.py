"""`sleepy serve` on 127.0.0.1: the real server over the tiny model, driven by the openai backend
(built from conf/backend/openai.yaml), by the raw openai client and by plain HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from sleepy.cli import build_parser
from sleepy.llm.base import LLM, Generation, Messages
from sleepy.llm.hf import HFBackend
from sleepy.serve import OpenAIServer
from sleepy.tiny import MODEL_DIR


def prompts(n: int) -> list[list[dict]]:
    return [
        [{"role": "user", "content": f"fn main() {{ let x{i} = {i}; }}" + " //" * i}]
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny() -> HFBackend:
    return HFBackend(MODEL_DIR, model_id="sleepy-tiny", max_new_tokens=10)


@pytest.fixture(scope="module")
def server(tiny):
    with OpenAIServer(tiny, host="127.0.0.1", port=0, max_batch=8) as s:
        yield s


def test_openai_backend_against_sleepy_serve(server, tiny):
    with initialize_config_module("sleepy.conf", version_base=None):
        cfg = compose(
            overrides=[
                "+backend=openai",
                f"backend.base_url={server.url}",
                "backend.retries=0",
                "+model.name=sleepy-tiny",
                f"+model.path={MODEL_DIR}",
                "+model.max_new_tokens=10",
            ]
        )
    backend = instantiate(cfg.backend)
    batch = prompts(5)
    over_http = backend.generate(batch)  # five requests in flight, batched by the server
    direct = tiny.generate(batch)
    assert [g.text for g in over_http] == [g.text for g in direct]
    assert [(g.tokens_in, g.tokens_out) for g in over_http] == [
        (g.tokens_in, g.tokens_out) for g in direct
    ]
    assert [g.finish_reason for g in over_http] == [g.finish_reason for g in direct]


def test_models_usage_and_streaming_with_the_openai_client(server, tiny):
    client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    assert [m.id for m in client.models.list()] == ["sleepy-tiny"]
    msgs = prompts(1)[0]
    r = client.chat.completions.create(
        model="sleepy-tiny", messages=msgs, max_tokens=4, temperature=0
    )
    assert r.usage.completion_tokens <= 4
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(
        model="sleepy-tiny",
        messages=msgs,
        max_tokens=4,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_bad_requests_get_a_400_with_the_reason(server):
    url = server.url
    r = httpx.post(f"{url}/chat/completions", json={"model": "sleepy-tiny"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(f"{url}/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(
        f"{url}/chat/completions",
        json={"model": "sleepy-tiny", "messages": prompts(1)[0], "max_tokens": -1},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    r = httpx.get(f"{url}/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_sleepy_serve_command(tmp_path):
    """The real CLI process: starts, prints its URL, answers /v1/models."""
    args = build_parser(["serve"]).parse_args(["serve", "--port", "0", "--quiet"])
    assert args.func is not None and args.port == 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sleepy.cli",
            "serve",
            "--port",
            "0",
            "--quiet",
            "--max-new-tokens",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving sleepy-tiny at http://127.0.0.1:"), proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        assert httpx.get(f"{url}/models", timeout=30).json()["data"][0]["id"] == "sleepy-tiny"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sleepy_serve_bad_adapter_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sleepy.cli", "serve", "--adapter", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("sleepy serve: error: no adapter at")


def test_an_api_key_is_required_when_set_and_off_loopback(tiny):
    from sleepy.serve import ServeError

    with pytest.raises(ServeError, match="needs an API key"):
        OpenAIServer(tiny, host="0.0.0.0", port=0)  # refused before it binds anything
    body = {"model": "sleepy-tiny", "messages": prompts(1)[0], "max_tokens": 2}
    with OpenAIServer(tiny, host="127.0.0.1", port=0, api_key="s3cret") as server:
        url = f"{server.url}/chat/completions"
        r = httpx.post(url, json=body, timeout=60)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=60)
        assert r.status_code == 401
        r = httpx.post(url, json=body, headers={"Authorization": "Bearer s3cret"}, timeout=60)
        assert r.status_code == 200
        client = openai.OpenAI(base_url=server.url, api_key="s3cret", max_retries=0)
        assert client.models.list().data[0].id == "sleepy-tiny"


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {limit_s:g} s for {what}"
        time.sleep(0.02)


def prompt_of(tiny: HFBackend, n: int) -> list[dict]:
    """A conversation whose prompt is exactly n tokens, counted by the model's own tokenizer."""

    def count(msgs: list[dict]) -> int:
        return len(tiny.tokenizer(tiny.render(msgs), add_special_tokens=False)["input_ids"])

    words = 1
    while count([{"role": "user", "content": "x " * words}]) < n:
        words += 1
    msgs = [{"role": "user", "content": "x " * words}]
    assert count(msgs) == n, "the prompt cannot be made exactly n tokens long"
    return msgs


def test_a_prompt_that_leaves_no_room_for_max_tokens_is_a_400_not_truncated(server, tiny):
    """The prompt used to be cut from the left to fit, and the reply answered another prompt."""
    client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    context = tiny.context
    long = prompt_of(tiny, context - 100)
    with pytest.raises(openai.BadRequestError) as got:
        client.chat.completions.create(model="sleepy-tiny", messages=long, max_tokens=200)
    err = got.value.body
    assert got.value.status_code == 400 and err["code"] == "context_length_exceeded"
    assert err["type"] == "invalid_request_error" and str(context) in err["message"]
    too_long = prompt_of(tiny, context + 10)  # over the context with no max_tokens at all
    r = httpx.post(
        f"{server.url}/chat/completions",
        json={"model": "sleepy-tiny", "messages": too_long},
        timeout=120,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    # without max_tokens, a prompt that fits gets what room the context leaves, and all of it is
    # read (the default max_new_tokens, 10, would not fit beside it)
    nearly = prompt_of(tiny, context - 4)
    r = client.chat.completions.create(model="sleepy-tiny", messages=nearly, temperature=0)
    assert r.usage.prompt_tokens == context - 4
    assert r.usage.completion_tokens <= 4


class FailsOnBoom(LLM):
    """sleepy-tiny, except that a batch holding a message with BOOM in it raises, the way a model
    can fail on one input; the first batch waits for `go`, so the test can queue a whole batch
    behind it."""

    def __init__(self, model: HFBackend):
        self.model, self.model_id, self.context = model, model.model_id, model.context
        self.batches: list[int] = []  # conversations per generate() call
        self.go = threading.Event()

    def generate(self, messages_batch: list[Messages], **opts: Any) -> list[Generation]:
        self.batches.append(len(messages_batch))
        if len(self.batches) == 1:
            self.go.wait(120)
        if any("BOOM" in m[-1]["content"] for m in messages_batch):
            raise RuntimeError("the model failed on BOOM")
        return self.model.generate(messages_batch, **opts)


def test_one_failing_request_does_not_fail_the_rest_of_its_batch(tiny):
    """A batch that raised used to give every request in it the one request's 500."""
    model = FailsOnBoom(tiny)
    good = prompts(3)
    bad = [{"role": "user", "content": "fn main() { BOOM }"}]
    with OpenAIServer(model, host="127.0.0.1", port=0, max_batch=8) as server:
        url = f"{server.url}/chat/completions"

        def ask(messages: list[dict]) -> httpx.Response:
            body = {"model": "sleepy-tiny", "messages": messages, "max_tokens": 6}
            return httpx.post(url, json=body, timeout=120)

        with ThreadPoolExecutor(5) as pool:
            first = pool.submit(ask, good[0])  # holds the model until the batch is queued
            wait_until(lambda: model.batches, "the first request to reach the model")
            batch = [pool.submit(ask, m) for m in [good[1], bad, good[2], good[0]]]
            wait_until(lambda: server.waiting == 5, "the four requests to queue")
            model.go.set()
            replies = [f.result() for f in batch]
        assert first.result().status_code == 200
    assert 4 in model.batches  # the four were generated together first, and that raised
    direct = tiny.generate([good[1], good[2], good[0]], max_new_tokens=6)
    ok = [replies[0], replies[2], replies[3]]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.json()["choices"][0]["message"]["content"] for r in ok] == [g.text for g in direct]
    assert replies[1].status_code == 500
    assert "the model failed on BOOM" in replies[1].json()["error"]["message"]


def generations(server: OpenAIServer) -> dict[str, int]:
    return httpx.get(f"{server.url.removesuffix('/v1')}/health", timeout=30).json()["generations"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
def test_a_client_that_disconnects_stops_its_generation(tiny, stream):
    """A closed connection's request used to stay in the queue and generate all its max_tokens
    for no one, while later requests waited behind it."""
    with OpenAIServer(tiny, host="127.0.0.1", port=0, max_batch=8) as server:
        before = generations(server)
        max_tokens = tiny.context - 64  # greedy replies to "hello" do not end sooner
        body = json.dumps(
            {
                "model": "sleepy-tiny",
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": max_tokens,
                "temperature": 0,
                "stream": stream,
            }
        ).encode()
        host, port = server.sock.getsockname()[:2]
        with socket.create_connection((host, port), timeout=60) as s:
            s.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            wait_until(lambda: server.waiting == 1, "the request to be taken in")

        def accounted() -> bool:  # once the batcher is done with it, one way or the other
            now = generations(server)
            return now["cancelled"] + now["completed"] > before["cancelled"] + before["completed"]

        wait_until(accounted, "the batcher to be done with the request")
        after = generations(server)
        assert after["cancelled"] - before["cancelled"] == 1, (
            f"{after} vs {before}: generated for a client that had left (or ended first)"
        )
        assert after["completed"] == before["completed"]
        assert after["tokens_out"] - before["tokens_out"] < max_tokens  # it was cut short
        r = httpx.post(
            f"{server.url}/chat/completions",
            json={"model": "sleepy-tiny", "messages": prompts(1)[0], "max_tokens": 4},
            timeout=120,
        )
        assert r.status_code == 200
        assert generations(server)["completed"] == after["completed"] + 1
