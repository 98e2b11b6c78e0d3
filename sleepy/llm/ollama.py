"""The `ollama` backend: Ollama's native chat API (/api/chat) through the `ollama` client library."""

from __future__ import annotations

from typing import Any

from sleepy.llm.base import (
    BackendError,
    BackendUnreachable,
    Generation,
    HTTPBackend,
    Messages,
    one_line,
    with_retries,
)


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
    ):
        import ollama

        self.model_id = model
        self.host = host.rstrip("/")
        self.client = ollama.Client(host=self.host, timeout=timeout)
        self.retries, self.backoff, self.concurrency = retries, backoff, concurrency
        self.keep_alive = keep_alive
        self.set_defaults(max_new_tokens, temperature, top_p, seed)

    def generate_one(self, messages: Messages, **opts: Any) -> Generation:
        import httpx
        import ollama

        opts = self.options(opts)
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
                    model=self.model_id,
                    messages=messages,
                    options=options,
                    tools=opts.get("tools"),
                    keep_alive=self.keep_alive,
                    stream=False,
                )
            except ollama.ResponseError as e:
                if e.status_code == 404:
                    raise BackendError(
                        f"ollama at {self.host} has no model {self.model_id!r}: "
                        f"run 'ollama pull {self.model_id}'"
                    ) from None
                if e.status_code >= 500 or e.status_code == 429:
                    raise _Transient(e) from None
                raise BackendError(f"ollama at {self.host}: {one_line(e)}") from None

        r = with_retries(
            call,
            (ConnectionError, httpx.TransportError, _Transient),
            self.retries,
            self.backoff,
            lambda e: BackendUnreachable(
                f"cannot reach ollama at {self.host} — is 'ollama serve' running? ({one_line(e)})"
            ),
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
        )


class _Transient(Exception):
    """A server-side failure (5xx, 429) worth retrying."""
