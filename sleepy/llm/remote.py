"""A backend behind a server (Ollama, an OpenAI-compatible server): a batch becomes concurrent
requests, and a `sleepy export` folder names the model each request is routed to."""

from __future__ import annotations

from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sleepy.adapters.router import Router
from sleepy.adapters.served import ExportError, ServedAdapters
from sleepy.llm.base import LLM, BackendError, Generation, Messages


class HTTPBackend(LLM):
    """A backend behind a server: a batch becomes concurrent requests, each with its own retries."""

    concurrency: int = 8
    served: ServedAdapters | None = None  # the export folder's adapters, when it routes by name
    router: Router | None = None

    def load_served(self, adapters: str | None) -> None:
        """Route by an export folder (`adapters`, from `sleepy export`): each request names the
        served model of the task adapter its signature routes to. Checked against the server
        before any koan, so a missing model fails here with the command that makes it."""
        self.served, self.router = None, None
        if not adapters:
            return
        try:
            self.served = ServedAdapters.load(adapters)
            self.router = self.served.router()
        except ExportError as e:
            raise BackendError(f"backend.adapters: {e}") from None
        self.supports_routing = True
        self._check_served()

    @abstractmethod
    def _check_served(self) -> None:
        """A BackendError unless the server has the base model and every exported adapter."""

    def generate(self, messages_batch: list[Messages], **opts: Any) -> list[Generation]:
        # a routing server gets each conversation's error signature and feedback with its request
        sigs = opts.pop("signatures", None) or [None] * len(messages_batch)
        texts = opts.pop("route_texts", None) or [None] * len(messages_batch)

        def one(item: tuple[Messages, str | None, str | None]) -> Generation:
            messages, sig, text = item
            routing = {"signature": sig, "route_text": text} if sig else {}
            return self.generate_one(messages, **opts, **routing)

        pairs = list(zip(messages_batch, sigs, texts, strict=True))
        if len(pairs) <= 1:
            return [one(p) for p in pairs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(pairs))) as pool:
            return list(pool.map(one, pairs))

    @abstractmethod
    def generate_one(self, messages: Messages, **opts: Any) -> Generation:
        """One conversation's reply."""
