"""The `openai` backend: any OpenAI-compatible server (vLLM, TGI, `sleepy serve`, ...) through the
`openai` client library; a batch becomes concurrent requests.

With `adapters` (a `sleepy export` folder) it routes: each request names, as its `model`, the task
adapter its error signature routes to (vLLM serves each LoRA under its own name), or the base
model when the router falls back.
"""

from __future__ import annotations

import json
from typing import Any

from sleepy.adapters.served import VLLM_SCRIPT
from sleepy.llm.base import (
    BackendError,
    BackendUnreachable,
    Generation,
    Messages,
    one_line,
)
from sleepy.llm.remote import HTTPBackend

# What to start when the server is not there, by preset name.
START_HINTS = {
    "vllm": "'vllm serve'",
    "tgi": "'text-generation-launcher'",
    "openai": "the server (e.g. 'sleepy serve')",
}


class OpenAIBackend(HTTPBackend):
    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        api_key: str = "EMPTY",
        name: str = "openai",
        tools: bool = False,
        timeout: float = 300.0,
        retries: int = 3,
        concurrency: int = 8,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        route: bool = False,
        adapters: str | None = None,
    ):
        import openai

        self.model_id = model
        self.base_url = base_url.rstrip("/")
        self.name = name
        # Native tool calls only where the server is known to parse them (vLLM needs flags for it).
        self.supports_tools = tools
        # The client retries what is worth retrying (connection errors, timeouts, 408/409/429 and
        # 5xx answers) with its own exponential backoff, honouring Retry-After.
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=retries
        )
        self.concurrency = concurrency
        # `sleepy serve` over a Share adapter routes by error signature: send it with each request
        self.supports_routing = route
        self.set_defaults(max_new_tokens, temperature, top_p, seed)
        if adapters and route:
            raise BackendError(
                "backend.route=true and backend.adapters exclude each other: route sends the "
                "signature to sleepy serve, adapters picks the served LoRA by name; drop one"
            )
        if adapters and name == "tgi":
            raise BackendError(
                "backend.adapters: tgi ignores the request's model name, so it cannot route "
                "by it; serve the export with vLLM (backend=vllm)"
            )
        self.load_served(adapters)

    def _check_served(self) -> None:
        """Before any koan: the server lists the base model and every exported adapter."""
        import openai

        try:
            listed = {m.id for m in self.client.models.list()}
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as e:
            raise self._unreachable(e) from None  # still failing after the client's retries
        missing = self.served.missing(listed, self.model_id)
        if missing:
            raise BackendError(
                f"{self.name} at {self.base_url} does not serve {missing}: start it with "
                f"{self.served.folder / VLLM_SCRIPT}"
            )

    def _unreachable(self, e: BaseException) -> BackendUnreachable:
        hint = START_HINTS.get(self.name, START_HINTS["openai"])
        return BackendUnreachable(
            f"cannot reach {self.name} at {self.base_url} — is {hint} running? ({one_line(e)})"
        )

    def generate_one(self, messages: Messages, **opts: Any) -> Generation:
        import openai

        opts = self.options(opts)
        route = (
            self.router.decide(opts.get("signature"), opts.get("route_text"))
            if self.router
            else None
        )
        task = route.task if route is not None else None
        model = self.served.model_for(task, self.model_id) if self.served else self.model_id
        request: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": opts["max_new_tokens"],
            "temperature": opts["temperature"],
            "top_p": opts["top_p"],
        }
        for key in ("seed", "stop"):
            if opts.get(key) is not None:
                request[key] = opts[key]
        if opts.get("tools") and self.supports_tools:
            request["tools"] = opts["tools"]
        if opts.get("signature") and self.supports_routing and self.served is None:
            request["extra_body"] = {"error_signature": opts["signature"]}
            if opts.get("route_text"):
                request["extra_body"]["error_text"] = opts["route_text"]

        try:
            r = self.client.chat.completions.create(**request)
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as e:
            # still failing after the client's retries (APITimeoutError is a connection error)
            raise self._unreachable(e) from None
        except openai.NotFoundError as e:
            raise BackendError(
                f"{self.name} server at {self.base_url} does not serve "
                f"model {model!r}: {one_line(e)}"
            ) from None
        except openai.APIStatusError as e:
            raise BackendError(
                f"{self.name} server at {self.base_url} refused the request: {one_line(e)}"
            ) from None
        if not r.choices:
            raise BackendError(f"{self.name} server at {self.base_url} returned no choices")
        choice = r.choices[0]
        calls = []
        for c in choice.message.tool_calls or []:
            try:
                args = json.loads(c.function.arguments or "{}")
            except json.JSONDecodeError:
                args = {"_raw": c.function.arguments}  # the agent reports the format error
            calls.append({"name": c.function.name, "arguments": args})
        usage = r.usage
        extra = r.model_extra or {}
        if self.served is not None:  # routed here: the task adapter named in the request
            extra = {"adapter": task, "route_confidence": route.confidence}
        return Generation(
            text=choice.message.content or "",
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            tool_calls=calls,
            routed="adapter" in extra,  # sleepy serve says which task adapter replied
            adapter=extra.get("adapter"),
            route_confidence=extra.get("route_confidence"),
        )
