"""The one interface every model backend implements: chat messages in, text and token counts out."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

Messages = list[dict[str, Any]]  # [{"role": "system"|"user"|"assistant"|"tool", "content": str}]
T = TypeVar("T")


@dataclass
class Generation:
    """One reply. `finish_reason` is "stop" (the model ended it) or "length" (max_new_tokens)."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "arguments"}]
    routed: bool = False  # True when a router chose the adapter: `adapter` (None = base model)
    adapter: str | None = None
    route_confidence: float | None = None  # how sure the router was (None: it does not say)


class BackendError(Exception):
    """A backend failed in a way retrying will not fix; the message is one line saying what to do."""


class BackendUnreachable(BackendError):
    """The server did not answer (refused, timed out) after every retry."""


class LLM(ABC):
    """A chat model: the seam between the agent (or `sleepy serve`) and a backend. `generate`
    takes a batch of conversations and returns one reply for each.

    Options every backend understands: max_new_tokens, temperature (0 = greedy), top_p, seed,
    stop (list of strings), tools (OpenAI-style tool schemas, where `supports_tools`).
    A base class rather than a Protocol: every backend extends it for the methods below
    (`set_defaults`, `options`, `chat`) and writes only `generate`.
    """

    model_id: str = "unknown"
    supports_tools: bool = False  # True: native tool calls come back in Generation.tool_calls
    # True: generate() takes `signatures` (one error signature or None per conversation) and
    # `route_texts` (rustc's feedback the agent was shown, or None) and routes each conversation
    # to the task adapter that learned it (hf with a Share bundle)
    supports_routing: bool = False
    context: int | None = None  # most tokens in + out one conversation may have; None: unknown
    # True: generate() takes `abandoned` (one threading.Event per conversation) and stops a
    # conversation's generation once its event is set (its client left); its reply is cut short
    supports_abandon: bool = False
    # True: it loads an adapter folder itself (`backend.adapter`), so a cycle's day can start
    # from the champion; a served backend gets its adapters from the server instead
    loads_adapter: bool = False

    @abstractmethod
    def generate(self, messages_batch: list[Messages], **opts: Any) -> list[Generation]: ...

    def set_defaults(
        self, max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> None:
        """The generation options a call gets when it does not give them."""
        self.defaults = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
        }

    def options(self, opts: dict[str, Any]) -> dict[str, Any]:
        """A call's options over the defaults (an option given as None keeps its default)."""
        return {**self.defaults, **{k: v for k, v in opts.items() if v is not None}}

    def prompt_tokens(self, messages: Messages) -> int | None:
        """How many tokens the model reads for this conversation; None where it cannot say."""
        return None

    def chat(self, messages: Messages, **opts: Any) -> Generation:
        return self.generate([messages], **opts)[0]


def with_retries(
    call: Callable[[], T],
    transient: tuple[type[BaseException], ...],
    retries: int,
    backoff: float,
    on_give_up: Callable[[BaseException], BaseException],
) -> T:
    """Run `call`, retrying transient failures with exponential backoff (backoff, 2*backoff, ...)."""
    for attempt in range(retries + 1):
        try:
            return call()
        except transient as e:
            if attempt == retries:
                raise on_give_up(e) from None
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def one_line(e: BaseException) -> str:
    """The first line of an exception's message, for errors that must fit on one line."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
