"""The `hf` backend: a local transformers model (plus an optional PEFT adapter), batched on device.

Batches are left-padded so every prompt ends where generation starts; prompts of similar length
are batched together so little compute goes into padding.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from sleepy.consolidate.router import Router
from sleepy.llm.base import LLM, BackendError, Generation, Messages, one_line

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _looks_like_hub_id(name: str) -> bool:
    return not name.startswith((".", "/", "~")) and name.count("/") == 1


class HFBackend(LLM):
    supports_batch = True
    supports_tools = False  # small local models use the text action protocol

    def __init__(
        self,
        model: str | Path,
        adapter: str | Path | None = None,
        model_id: str | None = None,
        dtype: str = "float32",
        device: str = "auto",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int = 8,
        threads: int | None = None,
        route: str = "auto",
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:  # on a shared CPU, fewer threads than cores can be much faster
            torch.set_num_threads(int(threads))
        if dtype not in DTYPES:
            raise BackendError(f"dtype must be one of {DTYPES}, not {dtype!r}")
        name = str(model)
        path = Path(name).expanduser()
        if not path.exists() and not _looks_like_hub_id(name):
            raise BackendError(f"no model at {name}: not a directory and not a hub id (org/name)")
        source = str(path) if path.exists() else name
        if adapter and not (Path(adapter).expanduser() / "adapter_config.json").is_file():
            # checked before the (slow) model load, so a typo fails at once
            raise BackendError(f"no adapter at {adapter}: expected adapter_config.json there")
        self.device = (
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForCausalLM.from_pretrained(
                source, dtype="auto" if dtype == "auto" else getattr(torch, dtype)
            )
        except Exception as e:  # OSError, ValueError, safetensors and JSON errors all mean the same
            raise BackendError(f"cannot load model from {name}: {one_line(e)}") from None
        if route not in ("auto", "off"):
            raise BackendError(f"route must be 'auto' or 'off', not {route!r}")
        self.router = None
        if adapter:
            bundle = Router.find(Path(adapter).expanduser()) if route == "auto" else None
            if bundle is None:
                self.model = self._load_adapter(self.model, Path(adapter).expanduser())
            else:
                self.model, self.router = self._load_routed(self.model, bundle)
                self.supports_routing = True
        self.model.to(self.device).eval()
        if self.tokenizer.chat_template is None:
            raise BackendError(f"model {name} has no chat template in its tokenizer config")
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"  # keep the end of a long prompt: the question
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.context = getattr(self.model.config, "max_position_embeddings", None)
        self.defaults = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
        }
        self.batch_size = batch_size
        base_id = model_id or (path.name if path.exists() else name)
        self.model_id = f"{base_id}+{Path(adapter).name}" if adapter and not model_id else base_id
        self.adapter = str(adapter) if adapter else None
        self._lock = threading.Lock()  # generate() is not re-entrant; serve calls it from threads
        self._route_lock = threading.Lock()  # one routed batch at a time: it switches adapters

    @staticmethod
    def _load_adapter(model: Any, adapter: Path) -> Any:
        from peft import PeftModel

        try:
            return PeftModel.from_pretrained(model, str(adapter))
        except Exception as e:
            raise BackendError(f"cannot load adapter from {adapter}: {one_line(e)}") from None

    @staticmethod
    def _load_routed(model: Any, bundle: Path) -> tuple[Any, Router]:
        """Every task adapter of a Share bundle, each under its task's name, and the router."""
        from peft import PeftModel

        try:
            router = Router(bundle)
            first, *rest = router.tasks
            model = PeftModel.from_pretrained(model, str(router.task_dir(first)), first)
            for name in rest:
                model.load_adapter(str(router.task_dir(name)), adapter_name=name)
        except Exception as e:
            raise BackendError(
                f"cannot load routed adapters from {bundle}: {one_line(e)}"
            ) from None
        return model, router

    @contextlib.contextmanager
    def _active(self, task: str | None):
        if task is None:  # nothing learned matches this error: the base model answers
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(task)
            yield

    def _generate_routed(
        self, messages_batch: list[Messages], signatures: list[str | None], opts: dict
    ) -> list[Generation]:
        """Conversations grouped by the task their error signature routes to, one group at a
        time with that task's adapter active; results come back in input order."""
        if len(signatures) != len(messages_batch):
            raise BackendError(
                f"{len(signatures)} signatures for {len(messages_batch)} conversations"
            )
        groups: dict[str | None, list[int]] = {}
        for i, sig in enumerate(signatures):
            groups.setdefault(self.router.route(sig), []).append(i)
        results: list[Generation | None] = [None] * len(messages_batch)
        with self._route_lock:
            for task, idx in groups.items():
                with self._active(task):
                    gens = self._generate([messages_batch[i] for i in idx], **opts)
                for i, g in zip(idx, gens, strict=True):
                    g.routed, g.adapter = True, task
                    results[i] = g
        return results  # type: ignore[return-value]

    def render(self, messages: Messages) -> str:
        """The prompt text the model sees for a conversation (chat template + generation prompt)."""
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def generate(self, messages_batch: list[Messages], **opts: Any) -> list[Generation]:
        signatures = opts.pop("signatures", None)
        if self.router is None:
            return self._generate(messages_batch, **opts)
        # a conversation without a signature (serve, scripts) gets the base model
        return self._generate_routed(
            messages_batch, signatures or [None] * len(messages_batch), opts
        )

    def _generate(self, messages_batch: list[Messages], **opts: Any) -> list[Generation]:
        bad = set(opts) - {*self.defaults, "stop", "tools", "batch_size"}
        if bad:
            raise BackendError(f"unknown generation options {sorted(bad)}")
        opts = {**self.defaults, **{k: v for k, v in opts.items() if v is not None}}
        prompts = [self.render(m) for m in messages_batch]
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        # Similar lengths in one batch, so padding stays small; results go back in input order.
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        size = opts.pop("batch_size", None) or self.batch_size
        results: list[Generation | None] = [None] * len(prompts)
        with self._lock:
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                for i, g in zip(
                    chunk, self._generate_batch([prompts[i] for i in chunk], **opts), strict=True
                ):
                    results[i] = g
        return results  # type: ignore[return-value]

    def _generate_batch(
        self,
        prompts: list[str],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        stop: list[str] | None = None,
        tools: Any = None,
    ) -> list[Generation]:
        import torch

        limit = self.context - max_new_tokens if self.context else None
        enc = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
            truncation=limit is not None,
            max_length=limit,
        ).to(self.device)
        sample = temperature > 0
        if seed is not None:
            torch.manual_seed(seed)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": sample,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        else:  # the model's generation_config may carry sampling defaults; greedy ignores them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        tokens_in = enc["attention_mask"].sum(dim=1).tolist()
        gens = []
        for ids, n_in in zip(new, tokens_in, strict=True):
            end = next((j + 1 for j, t in enumerate(ids) if t in self.eos_ids), None)
            finish = "stop" if end is not None else "length"
            ids = ids[:end] if end is not None else ids
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            for s in stop or ():
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            gens.append(
                Generation(
                    text=text, tokens_in=int(n_in), tokens_out=len(ids), finish_reason=finish
                )
            )
        return gens
