"""`sleepy serve`: an OpenAI-compatible HTTP server over the `hf` backend (optionally with an
adapter), so a trained adapter can be used from any OpenAI client.

Endpoints: GET /v1/models, POST /v1/chat/completions (with usage; `stream: true` is answered as
server-sent events carrying the whole reply in one chunk). Requests that arrive together are
generated as one batch.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sleepy.llm.base import LLM, BackendError, Generation


class RequestError(Exception):
    """A malformed request: answered with HTTP 400 and this message."""


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RequestError("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m:
            raise RequestError(f"messages[{i}] must be an object with 'role' and 'content'")
        content = m.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise RequestError(f"messages[{i}].content must be a string or a list of text parts")
        out.append({"role": m["role"], "content": content})
    return out


def _options(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("n", 1) != 1:
        raise RequestError("only n=1 is supported")
    opts: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError("'max_tokens' must be a positive integer")
        opts["max_new_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            if not isinstance(body[key], int | float) or body[key] < 0:
                raise RequestError(f"'{key}' must be a non-negative number")
            opts[key] = float(body[key])
    if body.get("seed") is not None:
        opts["seed"] = int(body["seed"])
    stop = body.get("stop")
    if stop:
        opts["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return opts


class Batcher:
    """One thread owns the model: it takes every request waiting and generates them as a batch
    (grouped by identical options), which is where batched generation pays off."""

    def __init__(self, backend: LLM, max_batch: int = 8):
        self.backend, self.max_batch = backend, max_batch
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="sleepy-serve-batcher")
        self.thread.start()

    def submit(
        self, messages: list[dict[str, Any]], opts: dict[str, Any], signature: str | None = None
    ) -> Generation:
        fut: Future = Future()
        self.queue.put((messages, opts, fut, signature))
        return fut.result()

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            items = [item]
            while len(items) < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)  # finish this batch, then stop
                    break
                items.append(nxt)
            groups: dict[str, list] = {}
            for it in items:
                groups.setdefault(json.dumps(it[1], sort_keys=True), []).append(it)
            for group in groups.values():
                opts = dict(group[0][1])
                if getattr(self.backend, "supports_routing", False):
                    opts["signatures"] = [sig for *_, sig in group]
                try:
                    gens = self.backend.generate([m for m, *_ in group], **opts)
                except Exception as e:
                    for _, _, fut, _ in group:
                        fut.set_exception(e)
                    continue
                for (_, _, fut, _), g in zip(group, gens, strict=True):
                    fut.set_result(g)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            super().log_message(format, *args)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:
        app = self.server.app
        if self.path.rstrip("/") == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": app.model_id,
                            "object": "model",
                            "created": app.created,
                            "owned_by": "sleepy",
                        }
                    ],
                },
            )
        elif self.path.rstrip("/") in ("/health", ""):
            self._json(200, {"status": "ok", "model": app.model_id})
        else:
            self._error(404, f"no route GET {self.path}", "not_found_error")

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route POST {self.path}", "not_found_error")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
            messages, opts = _messages(body), _options(body)
            signature = body.get("error_signature")  # sleepy's extension: routes to a task
            if signature is not None and not isinstance(signature, str):
                raise RequestError("'error_signature' must be a string")
        except (json.JSONDecodeError, ValueError) as e:
            self._error(400, f"the request body is not valid JSON: {e}")
            return
        except RequestError as e:
            self._error(400, str(e))
            return
        app = self.server.app
        try:
            g = app.batcher.submit(messages, opts, signature)
        except BackendError as e:
            self._error(400, str(e))
            return
        except Exception as e:  # the model failed: the client gets a 500 it may retry
            self._error(500, f"generation failed: {e}", "server_error")
            return
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        usage = {
            "prompt_tokens": g.tokens_in,
            "completion_tokens": g.tokens_out,
            "total_tokens": g.tokens_in + g.tokens_out,
        }
        if body.get("stream"):
            self._stream(rid, created, g, usage, (body.get("stream_options") or {}))
            return
        self._json(
            200,
            {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": app.model_id,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": g.text},
                        "finish_reason": g.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
                **({"adapter": g.adapter} if g.routed else {}),
            },
        )

    def _stream(
        self, rid: str, created: int, g: Generation, usage: dict, stream_options: dict
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.server.app.model_id,
        }
        chunks = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": g.text},
                        "finish_reason": None,
                    }
                ],
            },
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": g.finish_reason}]},
        ]
        if stream_options.get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})
        for c in chunks:
            self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: OpenAIServer


class OpenAIServer:
    """The server around one backend. `port=0` picks a free port; `start()` serves in a thread."""

    def __init__(
        self,
        backend: LLM,
        host: str = "127.0.0.1",
        port: int = 8000,
        max_batch: int = 8,
        verbose: bool = False,
    ):
        self.backend, self.verbose = backend, verbose
        self.model_id = backend.model_id
        self.created = int(time.time())
        self.httpd = _HTTPServer((host, port), _Handler)
        self.httpd.app = self
        self.batcher = Batcher(backend, max_batch=max_batch)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, daemon=True, name="sleepy-serve"
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.batcher.stop()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    model: str | None = None,
    adapter: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_id: str | None = None,
    dtype: str = "float32",
    device: str = "auto",
    max_new_tokens: int = 256,
    batch_size: int = 8,
    verbose: bool = True,
) -> None:
    """Load the model (sleepy-tiny by default) and serve it until interrupted."""
    from sleepy.llm.hf import HFBackend
    from sleepy.tiny import MODEL_DIR

    backend = HFBackend(
        model or MODEL_DIR,
        adapter=adapter,
        model_id=model_id or (None if model else "sleepy-tiny"),
        dtype=dtype,
        device=device,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    server = OpenAIServer(backend, host=host, port=port, max_batch=batch_size, verbose=verbose)
    print(f"serving {backend.model_id} at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.httpd.server_close()


def _run(args: argparse.Namespace) -> int:
    serve(
        model=args.model,
        adapter=args.adapter,
        host=args.host,
        port=args.port,
        model_id=args.model_id,
        dtype=args.dtype,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        verbose=not args.quiet,
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="OpenAI-compatible server over a local model (+ adapter)",
        description="Serve a local model (default: sleepy-tiny) at /v1/chat/completions.",
    )
    p.add_argument("--model", help="model directory or hub id (default: the embedded sleepy-tiny)")
    p.add_argument("--adapter", help="PEFT adapter directory to apply")
    p.add_argument("--model-id", help="name reported in /v1/models (default: from the path)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument("--max-new-tokens", type=int, default=256, help="default reply length limit")
    p.add_argument("--batch-size", type=int, default=8, help="most requests generated together")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    p.set_defaults(func=_run)
