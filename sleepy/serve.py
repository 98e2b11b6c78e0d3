"""`sleepy serve`: an OpenAI-compatible HTTP server over the `hf` backend (optionally with an
adapter, or a Share bundle that routes by `error_signature`), so a trained adapter can be used from
any OpenAI client.

FastAPI and uvicorn serve it; the request is a pydantic model of OpenAI's, so every bad field is a
4xx in OpenAI's error shape. What a careless or hostile client could do is bounded (`Limits`):
body size (413), time to send a request (408 or a closed connection), requests waiting for the
model (429), and max_tokens (the model's context). A prompt that leaves no room in the context
for max_tokens is a 400 (`context_length_exceeded`), never cut to fit; without max_tokens the
reply gets what room is left.

Endpoints: GET /v1/models, POST /v1/chat/completions (with usage; `stream: true` is answered as
server-sent events carrying the whole reply in one chunk), GET /health (with counts of
completed and cancelled generations). Requests that arrive together are generated as one batch;
when a batch fails, its requests are retried one by one, so only the one that fails gets an error.
A client that closes its connection leaves the queue, or its generation stops where it is.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import os
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from sleepy.llm.base import LLM, BackendError, Generation
from sleepy.llm.hf import HFBackend
from sleepy.tiny import MODEL_DIR


class ServeError(RuntimeError):
    """The server cannot start as asked; one line saying what to fix."""


@dataclass(frozen=True)
class Limits:
    """What one client can make the server hold; each bounds one way to exhaust it."""

    max_body_bytes: int = 1_000_000  # a request body (413 past it): memory per request
    read_timeout_s: float = 30.0  # to send the headers or the body: a half-sent request's socket
    max_queue: int = 64  # requests waiting for or in generation (429 past it): memory, latency
    max_stop: int = 4  # stop sequences, as OpenAI allows


# -- the request, as OpenAI defines it (the fields sleepy uses; others are ignored) -------------

NonNeg = Annotated[StrictFloat | StrictInt, Field(ge=0, allow_inf_nan=False)]


def _utf8(text: str) -> str:
    # JSON can carry a lone surrogate ("\ud800") that no tokenizer and no UTF-8 reply can hold
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"not valid Unicode: a lone surrogate (\\u{ord(text[e.start]):04x}) at character "
            f"{e.start}"
        ) from None
    return text


Text = Annotated[StrictStr, AfterValidator(_utf8)]  # every string the model or reply sees


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: Text


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Text
    messages: Annotated[list[Message], Field(min_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[NonNeg, Field(le=2)] | None = None
    top_p: Annotated[NonNeg, Field(le=1)] | None = None
    seed: StrictInt | None = None
    stop: Text | Annotated[list[Text], Field(max_length=Limits.max_stop)] | None = None
    n: Literal[1] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    error_signature: Text | None = None  # sleepy's extension: routes to a task adapter
    error_text: Text | None = None  # and rustc's feedback beside it, which the router also reads

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None:
            opts["max_new_tokens"] = max_tokens
        if self.temperature is not None:
            opts["temperature"] = float(self.temperature)
        if self.top_p is not None:
            opts["top_p"] = float(self.top_p)
        if self.seed is not None:
            opts["seed"] = self.seed
        if self.stop:
            opts["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return opts


class ContextLengthExceeded(Exception):
    """A conversation with its max_tokens does not fit the model's context (a 400)."""


@dataclass
class Job:
    """One conversation in the queue; `future` holds its Generation, or the error it got."""

    messages: list[dict[str, Any]]
    opts: dict[str, Any]
    signature: str | None = None
    text: str | None = None  # rustc's feedback, for the router
    future: Future = field(default_factory=Future)
    abandoned: threading.Event = field(default_factory=threading.Event)

    def abandon(self) -> None:
        """Its client left: skipped if still queued, cut short if generating."""
        self.abandoned.set()
        self.future.cancel()  # only succeeds while queued; the batcher then skips it


class Batcher:
    """One thread owns the model: it takes every request waiting and generates them as a batch
    (grouped by identical options), which is where batched generation pays off."""

    def __init__(self, backend: LLM, max_batch: int = 8):
        self.backend, self.max_batch = backend, max_batch
        self.queue: queue.Queue = queue.Queue()
        # written by the batcher thread only, read by /health
        self.completed = 0  # generations whose client was still there at the end
        self.cancelled = 0  # jobs whose client left first: skipped in the queue or cut short
        self.tokens_out = 0  # tokens generated, cut-short generations included
        self.thread = threading.Thread(target=self._loop, daemon=True, name="sleepy-serve-batcher")
        self.thread.start()

    def submit(
        self,
        messages: list[dict[str, Any]],
        opts: dict[str, Any],
        signature: str | None = None,
        text: str | None = None,
    ) -> Job:
        """Queue one conversation."""
        job = Job(messages, opts, signature, text)
        self.queue.put(job)
        return job

    def stats(self) -> dict[str, int]:
        return {
            "completed": self.completed,
            "cancelled": self.cancelled,
            "tokens_out": self.tokens_out,
        }

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
            groups: dict[str, list[Job]] = {}
            for job in items:
                if self._start(job):
                    groups.setdefault(json.dumps(job.opts, sort_keys=True), []).append(job)
            for group in groups.values():
                self._generate(group)

    def _start(self, job: Job) -> bool:
        """Take a job out of the queue into generation; False if its client has left or it
        cannot run (its future then holds the error)."""
        # a future cancelled by its handler is skipped; once running it cannot be cancelled,
        # so setting its result cannot fail
        if not job.future.set_running_or_notify_cancel():
            self.cancelled += 1
            return False
        try:
            job.opts = self._fit(job)
        except Exception as e:
            job.future.set_exception(e)
            return False
        return True

    def _fit(self, job: Job) -> dict[str, Any]:
        """The job's options, checked against the model's context: a prompt the backend would
        have to truncate is refused; without max_tokens, the reply gets what room is left."""
        context = self.backend.context
        n_in = self.backend.prompt_tokens(job.messages) if context else None
        if context is None or n_in is None:
            return job.opts
        asked = job.opts.get("max_new_tokens")
        if asked is None:
            default = self.backend.options({})["max_new_tokens"]
            if n_in >= context:
                raise ContextLengthExceeded(
                    f"this model's context is {context} tokens and the messages have {n_in}: "
                    "shorten the messages"
                )
            return {**job.opts, "max_new_tokens": min(default, context - n_in)}
        if n_in + asked > context:
            raise ContextLengthExceeded(
                f"this model's context is {context} tokens, and the messages ({n_in}) plus "
                f"max_tokens ({asked}) need {n_in + asked}: shorten the messages or lower "
                "max_tokens"
            )
        return job.opts

    def _generate(self, group: list[Job]) -> None:
        opts = dict(group[0].opts)
        if self.backend.supports_routing:
            opts["signatures"] = [job.signature for job in group]
            opts["route_texts"] = [job.text for job in group]
        if self.backend.supports_abandon:
            opts["abandoned"] = [job.abandoned for job in group]
        try:
            gens = self.backend.generate([job.messages for job in group], **opts)
        except Exception as e:
            if len(group) == 1:
                group[0].future.set_exception(e)
                return
            # one bad conversation must not fail the rest: each alone, so only it gets the error
            for job in group:
                self._generate([job])
            return
        for job, g in zip(group, gens, strict=True):
            self.tokens_out += g.tokens_out
            if job.abandoned.is_set():
                self.cancelled += 1
            else:
                self.completed += 1
            job.future.set_result(g)


def _error(
    status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
    code: str | None = None, headers: dict[str, str] | None = None,
) -> JSONResponse:  # fmt: skip
    """OpenAI's error shape, which its clients parse."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _first_problem(e: ValidationError) -> tuple[str, str]:
    errors = e.errors()
    # in a union (content: text or parts), the branch whose type matched says what is wrong
    err = next((x for x in errors if x["type"] == "value_error"), errors[0])
    where = ".".join(
        str(x)
        for x in err["loc"]
        if "function-" not in str(x) and not str(x).startswith("constrained")
    )
    where = where.replace(".str", "").replace(".list[TextPart]", "").replace(".list[str]", "")
    for suffix in (".int", ".float", ".bool", ".literal['text']"):
        where = where.replace(suffix, "")
    return where, f"'{where}': {err['msg']}"


class _RequestTooLarge(Exception):
    pass


class _RequestTimeout(Exception):
    pass


async def _read_body(request: Request, limits: Limits) -> bytes:
    """The body, refused once it passes the size limit or stalls for longer than the timeout."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _RequestTooLarge
    chunks, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), limits.read_timeout_s)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise _RequestTimeout from None
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise _RequestTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def build_app(server: OpenAIServer) -> FastAPI:
    """The FastAPI app around one server's batcher."""
    app = FastAPI(title="sleepy serve", docs_url=None, redoc_url=None, openapi_url=None)
    limits = server.limits

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, f"no route {request.method} {request.url.path}", kind)

    @app.middleware("http")
    async def api_key(request: Request, call_next):
        if server.api_key is not None:
            given = request.headers.get("authorization", "")
            token = given[len("Bearer ") :] if given.startswith("Bearer ") else ""
            if not hmac.compare_digest(token.encode(), server.api_key.encode()):
                return _error(
                    401, "missing or wrong API key (Authorization: Bearer ...)",
                    "invalid_request_error", code="invalid_api_key",
                )  # fmt: skip
        return await call_next(request)

    @app.get("/v1/models")
    async def models() -> dict:
        data = [{"id": server.model_id, "object": "model", "created": server.created,
                 "owned_by": "sleepy"}]  # fmt: skip
        return {"object": "list", "data": data}

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "model": server.model_id,
            "waiting": server.waiting,
            "generations": server.batcher.stats(),
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        try:
            raw = await _read_body(request, limits)
        except _RequestTooLarge:
            return _error(413, f"the request body is over {limits.max_body_bytes} bytes")
        except _RequestTimeout:
            return _error(
                408, f"the request body did not arrive within {limits.read_timeout_s:g} s"
            )
        try:
            data = json.loads(raw or b"null", parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as e:
            return _error(400, f"the request body is not valid JSON: {e}")
        if not isinstance(data, dict):
            return _error(400, "the request body must be a JSON object")
        try:
            req = ChatRequest.model_validate(data)
        except ValidationError as e:
            param, message = _first_problem(e)
            return _error(400, message, param=param)
        if req.model != server.model_id:
            return _error(
                404, f"model '{req.model}' is not served here (GET /v1/models: {server.model_id})",
                "invalid_request_error", param="model", code="model_not_found",
            )  # fmt: skip
        opts = req.options()
        if server.context and opts.get("max_new_tokens", 0) > server.context:
            key = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
            return _error(
                400, f"'{key}': must be <= {server.context} (the model's context)", param=key
            )
        if not server.try_enter():
            return _error(
                429, f"the server is busy ({limits.max_queue} requests waiting): retry shortly",
                "rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": "1"},
            )  # fmt: skip
        try:
            messages = [{"role": m.role, "content": m.text()} for m in req.messages]
            g = await _unless_gone(
                request,
                server.batcher.submit(messages, opts, req.error_signature, req.error_text),
            )
            if g is None:  # no one to answer: the connection is closed
                return Response(status_code=499)
        except ContextLengthExceeded as e:
            return _error(400, str(e), param="messages", code="context_length_exceeded")
        except BackendError as e:
            return _error(400, str(e).splitlines()[0])
        except Exception as e:  # the model failed: the client gets a 500 it may retry
            return _error(500, f"generation failed: {str(e).splitlines()[0]}", "server_error")
        finally:
            server.leave()
        return _reply(server, req, g)

    return app


async def _unless_gone(request: Request, job: Job) -> Generation | None:
    """The job's generation, or None when the client closes its connection first: then the job
    is abandoned, so no one's reply waits behind work nobody will read."""
    reply = asyncio.wrap_future(job.future)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({reply, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not reply.done():  # the client left (or this handler was cancelled)
            job.abandon()
            reply.cancel()
    return None if reply.cancelled() else reply.result()


async def _disconnected(request: Request) -> None:
    """Returns once the client has closed its connection (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _reply(server: OpenAIServer, req: ChatRequest, g: Generation) -> Response:
    rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    usage = {
        "prompt_tokens": g.tokens_in,
        "completion_tokens": g.tokens_out,
        "total_tokens": g.tokens_in + g.tokens_out,
    }
    base = {"id": rid, "created": created, "model": server.model_id}
    if not req.stream:
        return JSONResponse(
            {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": g.text},
                        "finish_reason": g.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
                **(
                    {"adapter": g.adapter, "route_confidence": g.route_confidence}
                    if g.routed
                    else {}
                ),
            }
        )
    chunk = {**base, "object": "chat.completion.chunk"}
    chunks = [
        {
            **chunk,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": g.text},
                    "finish_reason": None,
                }
            ],
        },  # fmt: skip
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": g.finish_reason}]},
    ]
    if req.stream_options is not None and req.stream_options.include_usage:
        chunks.append({**chunk, "choices": [], "usage": usage})
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return Response(text, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


class _TimedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus a deadline for the request line and headers: uvicorn
    waits for a half-sent request forever, each holding a socket and a buffer."""

    read_timeout_s = Limits.read_timeout_s

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._seen = None
        self._deadline = self.loop.call_later(self.read_timeout_s, self._check)

    def _check(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self._seen is self.cycle:  # no new request began in a whole period
            self.transport.close()
            return
        self._seen = self.cycle
        self._deadline = self.loop.call_later(self.read_timeout_s, self._check)

    def connection_lost(self, exc) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAIServer:
    """The server around one backend. `port=0` picks a free port; `start()` serves in a thread."""

    def __init__(
        self,
        backend: LLM,
        host: str = "127.0.0.1",
        port: int = 8000,
        max_batch: int = 8,
        verbose: bool = False,
        api_key: str | None = None,
        limits: Limits = Limits(),
    ):
        import uvicorn

        if not api_key and not _is_loopback(host):
            raise ServeError(
                f"binding to {host} (not loopback) needs an API key: pass --api-key or set "
                "SLEEPY_API_KEY"
            )
        self.backend, self.verbose, self.limits = backend, verbose, limits
        self.api_key = api_key or None
        self.model_id = backend.model_id
        self.context = backend.context
        self.created = int(time.time())
        self.waiting = 0
        self._waiting_lock = threading.Lock()
        self.batcher = Batcher(backend, max_batch=max_batch)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            self.batcher.stop()
            raise ServeError(f"cannot listen on {host}:{port}: {e.strerror}") from None
        self.sock.listen(2048)  # a burst of clients queues in the kernel, not in resets
        protocol = type("TimedH11", (_TimedH11,), {"read_timeout_s": limits.read_timeout_s})
        config = uvicorn.Config(
            build_app(self),
            http=protocol,
            log_level="info" if verbose else "warning",
            access_log=verbose,
            timeout_keep_alive=5,
            backlog=2048,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    def try_enter(self) -> bool:
        """Take a place in the bounded queue; False when it is full."""
        with self._waiting_lock:
            if self.waiting >= self.limits.max_queue:
                return False
            self.waiting += 1
            return True

    def leave(self) -> None:
        with self._waiting_lock:
            self.waiting -= 1

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True,
            name="sleepy-serve",
        )  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServeError(f"the server at {self.url} did not start")
            time.sleep(0.02)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C, SIGTERM)."""
        try:
            self._server.run(sockets=[self.sock])
        finally:
            self.close()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.close()

    def close(self) -> None:
        self.sock.close()
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
    api_key: str | None = None,
    limits: Limits = Limits(),
) -> None:
    """Load the model (sleepy-tiny by default) and serve it until interrupted."""

    backend = HFBackend(
        model or MODEL_DIR,
        adapter=adapter,
        model_id=model_id or (None if model else "sleepy-tiny"),
        dtype=dtype,
        device=device,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    server = OpenAIServer(
        backend, host=host, port=port, max_batch=batch_size, verbose=verbose, api_key=api_key,
        limits=limits,
    )  # fmt: skip
    print(f"serving {backend.model_id} at {server.url} (Ctrl-C stops)", flush=True)
    server.serve_forever()


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
        api_key=args.api_key or os.environ.get("SLEEPY_API_KEY") or None,
        limits=Limits(
            max_body_bytes=args.max_body_bytes,
            read_timeout_s=args.read_timeout,
            max_queue=args.max_queue,
        ),
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
    p.add_argument(
        "--api-key",
        help="require 'Authorization: Bearer KEY' (default: $SLEEPY_API_KEY; needed off loopback)",
    )
    p.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes, help="413 past it")
    p.add_argument(
        "--read-timeout", type=float, default=Limits.read_timeout_s,
        help="seconds a client may take to send its request",
    )  # fmt: skip
    p.add_argument(
        "--max-queue",
        type=int,
        default=Limits.max_queue,
        help="requests held at once (429 past it)",
    )
    p.set_defaults(func=_run)
