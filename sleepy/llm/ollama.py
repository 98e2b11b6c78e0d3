"""The `ollama` backend: Ollama's native chat API (/api/chat) through the `ollama` client library.

With `adapters` (a `sleepy export` folder, its models made with its ollama-create.sh) it routes:
each request names the Ollama model of the task adapter its error signature routes to, or the
base model when the router falls back.
"""

from __future__ import annotations

from typing import Any

from sleepy.adapters.served import OLLAMA_SCRIPT
from sleepy.llm.base import (
    BackendError,
    BackendUnreachable,
    Generation,
    Messages,
    one_line,
    with_retries,
)
from sleepy.llm.remote import HTTPBackend


class OllamaBackend(HTTPBackend):
    supports_tools = True

    def __init__(
        self,
        model: str,
        host: str = "http://localhost:11434",
        timeout: float = 300.0,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        keep_alive: str | None = None,
        adapters: str | None = None,
    ):
        import ollama

        self.model_id = model
        self.host = host.rstrip("/")
        self.client = ollama.Client(host=self.host, timeout=timeout)
        self.retries, self.backoff, self.concurrency = retries, backoff, concurrency
        self.keep_alive = keep_alive
        self.set_defaults(max_new_tokens, temperature, top_p, seed)
        self.load_served(adapters)

    def _unreachable(self, e: BaseException) -> BackendUnreachable:
        return BackendUnreachable(
            f"cannot reach ollama at {self.host} — is 'ollama serve' running? ({one_line(e)})"
        )

    def _check_served(self) -> None:
        """Before any koan: Ollama has the base model and a model for every exported adapter."""
        import httpx

        listed = with_retries(
            lambda: {m.model for m in self.client.list().models if m.model},
            (ConnectionError, httpx.TransportError),
            self.retries,
            self.backoff,
            self._unreachable,
        )
        missing = self.served.missing(listed, self.model_id, ollama=True)
        if missing:
            raise BackendError(
                f"ollama at {self.host} has no model {missing}: create them with "
                f"{self.served.folder / OLLAMA_SCRIPT} (and 'ollama pull' the base)"
            )

    def generate_one(self, messages: Messages, **opts: Any) -> Generation:
        import httpx
        import ollama

        opts = self.options(opts)
        route = (
            self.router.decide(opts.get("signature"), opts.get("route_text"))
            if self.router
            else None
        )
        task = route.task if route is not None else None
        model = self.served.model_for(task, self.model_id) if self.served else self.model_id
        options = {
            "num_predict": opts["max_new_tokens"],
            "temperature": opts["temperature"],
            "top_p": opts["top_p"],
        }
        if opts.get("seed") is not None:
            options["seed"] = opts["seed"]
        if opts.get("stop"):
            options["stop"] = list(opts["stop"])

        def call():
            try:
                return self.client.chat(
                    model=model,
                    messages=messages,
                    options=options,
                    tools=opts.get("tools"),
                    keep_alive=self.keep_alive,
                    stream=False,
                )
            except ollama.ResponseError as e:
                if e.status_code == 404:
                    fix = (
                        f"run {self.served.folder / OLLAMA_SCRIPT}"
                        if task is not None
                        else f"run 'ollama pull {model}'"
                    )
                    raise BackendError(
                        f"ollama at {self.host} has no model {model!r}: {fix}"
                    ) from None
                if e.status_code >= 500 or e.status_code == 429:
                    raise _Transient(e) from None
                raise BackendError(f"ollama at {self.host}: {one_line(e)}") from None

        r = with_retries(
            call,
            (ConnectionError, httpx.TransportError, _Transient),
            self.retries,
            self.backoff,
            self._unreachable,
        )
        calls = [
            {"name": c.function.name, "arguments": dict(c.function.arguments or {})}
            for c in (r.message.tool_calls or [])
        ]
        return Generation(
            text=r.message.content or "",
            tokens_in=r.prompt_eval_count or 0,
            tokens_out=r.eval_count or 0,
            finish_reason="length" if r.done_reason == "length" else "stop",
            tool_calls=calls,
            routed=self.served is not None,
            adapter=task,
            route_confidence=route.confidence if route is not None else None,
        )


class _Transient(Exception):
    """A server-side failure (5xx, 429) worth retrying."""
