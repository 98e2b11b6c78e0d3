"""The `hf` backend: a local transformers model (plus an optional PEFT adapter), batched on device.

Greedy decoding (the agent's default) goes through sleepy's own loop (`backend.decoder=custom`,
sleepy.llm.greedy) or through model.generate (`backend.decoder=generate`); sampling and stop
strings always go through model.generate, on left-padded batches of similar length.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from sleepy.adapters.router import Router
from sleepy.config import ranged
from sleepy.llm.base import LLM, BackendError, Generation, Messages, one_line
from sleepy.llm.greedy import GreedyDecoder, plan_batches

DTYPES = ("auto", "float32", "bfloat16", "float16")
# auto: an adapter carrying a Share bundle routes by error signature; off: the averaged adapter;
# arrow: PEFT's Arrow mixes the bundle's task adapters per token (a training-free baseline)
ROUTES = ("auto", "off", "arrow")
DECODERS = ("custom", "generate")


def _looks_like_hub_id(name: str) -> bool:
    return not name.startswith((".", "/", "~")) and name.count("/") == 1


@dataclass
class HFConfig:
    """The `backend=hf` config group (a structured config): every option of the hf backend and
    its default, in one place; sleepy/conf/backend/hf.yaml fills in the model's own settings."""

    _target_: str = "sleepy.llm.hf.HFBackend"
    model: str = MISSING  # local directory or hub id
    adapter: str | None = None  # PEFT adapter directory
    route: str = "auto"  # auto | off | arrow (ROUTES)
    model_id: str | None = None
    dtype: str = "float32"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # cuda when there is one, else cpu
    max_new_tokens: int = ranged(256, ge=1)
    temperature: float = ranged(0.0, ge=0, le=2)  # 0 = greedy
    top_p: float = ranged(1.0, gt=0, le=1)
    seed: int | None = None
    # most prompts decoded together; greedy decoding plans its own groups by prompt length under
    # this cap (32 beat 8 on CPU too)
    batch_size: int = ranged(32, ge=1)
    threads: int | None = ranged(
        None, ge=1
    )  # torch CPU threads; None: torch's default (one per core)
    # greedy decoding: custom (sleepy.llm.greedy, see the README's bench) or generate
    # (transformers' model.generate)
    decoder: str = "custom"


class HFBackend(LLM):
    supports_tools = False  # small local models use the text action protocol
    supports_abandon = True
    loads_adapter = True  # backend.adapter: a PEFT adapter folder (or a Share bundle's)

    def __init__(self, model: str | Path, **options: Any):
        """`model` and any HFConfig option (its defaults for the rest)."""
        o = HFConfig(model=str(model), **options)
        adapter, model_id, dtype, device, route = o.adapter, o.model_id, o.dtype, o.device, o.route
        threads = o.threads
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
        if route not in ROUTES:
            raise BackendError(f"route must be one of {ROUTES}, not {route!r}")
        if o.decoder not in DECODERS:
            raise BackendError(f"decoder must be one of {DECODERS}, not {o.decoder!r}")
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
        self.router = None
        if adapter:
            bundle = Router.find(Path(adapter).expanduser()) if route != "off" else None
            if route == "arrow":
                self.model = self._load_arrow(self.model, bundle or Path(adapter))
            elif bundle is None:
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
        self.set_defaults(o.max_new_tokens, o.temperature, o.top_p, o.seed)
        self.batch_size = o.batch_size
        base_id = model_id or (path.name if path.exists() else name)
        self.model_id = f"{base_id}+{Path(adapter).name}" if adapter and not model_id else base_id
        self.adapter = str(adapter) if adapter else None
        # decoder=custom: greedy decoding gets sleepy's loop where model.generate would do
        # nothing but argmax (None: this model needs model.generate; see GreedyDecoder.for_model)
        self.greedy = (
            GreedyDecoder.for_model(
                self.model, self.eos_ids, self.tokenizer.pad_token_id, self.device
            )
            if o.decoder == "custom"
            else None
        )
        self.last_plan: list[int] = []  # prompts per batch in the last generate(), in order
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

    @staticmethod
    def _load_arrow(model: Any, bundle: Path) -> Any:
        """PEFT's training-free Arrow router over the bundle's task adapters: per token and layer,
        the top-k task LoRAs whose main direction best matches the hidden state are mixed."""
        from peft.tuners.lora import ArrowConfig, create_arrow_model

        tasks = sorted(p.parent for p in (bundle / "tasks").glob("*/adapter_config.json"))
        if not tasks:
            raise BackendError(f"route=arrow: {bundle} has no task adapters (tasks/<name>/)")
        try:
            return create_arrow_model(
                model, [str(t) for t in tasks], ArrowConfig(top_k=min(3, len(tasks)), rng_seed=0)
            )
        except Exception as e:
            raise BackendError(f"cannot build Arrow over {bundle}: {one_line(e)}") from None

    @contextlib.contextmanager
    def _active(self, task: str | None):
        if task is None:  # nothing learned matches this error: the base model answers
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(task)
            yield

    def _generate_routed(
        self,
        messages_batch: list[Messages],
        signatures: list[str | None],
        texts: list[str | None],
        abandoned: Sequence[threading.Event] | None,
        opts: dict,
    ) -> list[Generation]:
        """Conversations grouped by the task their error signature and feedback route to, one
        group at a time with that task's adapter active; results come back in input order."""
        if not len(signatures) == len(texts) == len(messages_batch):
            raise BackendError(
                f"{len(signatures)} signatures and {len(texts)} texts for "
                f"{len(messages_batch)} conversations"
            )
        routes = [self.router.decide(s, t) for s, t in zip(signatures, texts, strict=True)]
        groups: dict[str | None, list[int]] = {}
        for i, route in enumerate(routes):
            groups.setdefault(route.task, []).append(i)
        results: list[Generation | None] = [None] * len(messages_batch)
        with self._route_lock:
            for task, idx in groups.items():
                gone = [abandoned[i] for i in idx] if abandoned is not None else None
                with self._active(task):
                    gens = self._generate([messages_batch[i] for i in idx], gone, **opts)
                for i, g in zip(idx, gens, strict=True):
                    g.routed, g.adapter = True, task
                    g.route_confidence = routes[i].confidence
                    results[i] = g
        return results  # type: ignore[return-value]

    def render(self, messages: Messages) -> str:
        """The prompt text the model sees for a conversation (chat template + generation prompt)."""
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def prompt_tokens(self, messages: Messages) -> int:
        """The prompt's length in tokens, untruncated (generate cuts a prompt that leaves no
        room for max_new_tokens; `sleepy serve` refuses it instead)."""
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def generate(self, messages_batch: list[Messages], **opts: Any) -> list[Generation]:
        signatures = opts.pop("signatures", None)
        texts = opts.pop("route_texts", None)
        abandoned = opts.pop("abandoned", None)
        if abandoned is not None and len(abandoned) != len(messages_batch):
            raise BackendError(f"{len(abandoned)} events for {len(messages_batch)} conversations")
        if self.router is None:
            return self._generate(messages_batch, abandoned, **opts)
        # a conversation without a signature (serve, scripts) gets the base model; one without
        # feedback text is routed on its signature alone
        none = [None] * len(messages_batch)
        return self._generate_routed(
            messages_batch, signatures or none, texts or none, abandoned, opts
        )

    def _generate(
        self,
        messages_batch: list[Messages],
        abandoned: Sequence[threading.Event] | None = None,
        **opts: Any,
    ) -> list[Generation]:
        bad = set(opts) - {*self.defaults, "stop", "tools", "batch_size"}
        if bad:
            raise BackendError(f"unknown generation options {sorted(bad)}")
        opts = self.options(opts)
        size = opts.pop("batch_size", None) or self.batch_size
        prompts = [self.render(m) for m in messages_batch]
        limit = self.context - opts["max_new_tokens"] if self.context else None
        ids = [
            self.tokenizer(
                p, add_special_tokens=False, truncation=limit is not None, max_length=limit
            )["input_ids"]
            for p in prompts
        ]
        results: list[Generation | None] = [None] * len(prompts)
        with self._lock:
            if opts["temperature"] <= 0 and not opts.get("stop") and self.greedy is not None:
                groups = plan_batches([len(x) for x in ids], size, opts["max_new_tokens"])
                self.last_plan = [len(g) for g in groups]
                for group in groups:
                    gone = [abandoned[i] for i in group] if abandoned is not None else None
                    new = self.greedy.decode([ids[i] for i in group], opts["max_new_tokens"], gone)
                    for i, out in zip(group, new, strict=True):
                        results[i] = self._finish(out, len(ids[i]), None)
                return results  # type: ignore[return-value]
            # Similar lengths in one batch, so padding stays small; results go back in input order.
            order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
            chunks = [order[start : start + size] for start in range(0, len(order), size)]
            self.last_plan = [len(c) for c in chunks]
            for chunk in chunks:
                gone = [abandoned[i] for i in chunk] if abandoned is not None else None
                gens = self._generate_batch([prompts[i] for i in chunk], gone, **opts)
                for i, g in zip(chunk, gens, strict=True):
                    results[i] = g
        return results  # type: ignore[return-value]

    def _finish(self, ids: list[int], n_in: int, stop: list[str] | None) -> Generation:
        """The reply for generated ids: cut after the first EOS, decoded, cut at a stop string."""
        end = next((j + 1 for j, t in enumerate(ids) if t in self.eos_ids), None)
        finish = "stop" if end is not None else "length"
        ids = ids[:end] if end is not None else ids
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for s in stop or ():
            if s in text:
                text, finish = text[: text.index(s)], "stop"
        return Generation(text=text, tokens_in=n_in, tokens_out=len(ids), finish_reason=finish)

    def _generate_batch(
        self,
        prompts: list[str],
        abandoned: Sequence[threading.Event] | None,
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
        cut = _Abandoned(abandoned, enc["input_ids"].shape[1]) if abandoned else None
        if cut is not None:
            from transformers import StoppingCriteriaList

            kwargs.update(stopping_criteria=StoppingCriteriaList([cut]))
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        if cut is not None:  # an abandoned row is padded after its cut: those are not its tokens
            new = [ids[: cut.at.get(i, len(ids))] for i, ids in enumerate(new)]
        tokens_in = enc["attention_mask"].sum(dim=1).tolist()
        return [self._finish(ids, int(n), stop) for ids, n in zip(new, tokens_in, strict=True)]


class _Abandoned:
    """A stopping criterion for model.generate: a row ends once its client has left (its event is
    set); `at` records how many new tokens each such row had then."""

    def __init__(self, events: Sequence[threading.Event], prompt_width: int):
        self.events, self.width = events, prompt_width
        self.at: dict[int, int] = {}

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        for i, e in enumerate(self.events):
            if i not in self.at and e.is_set():
                self.at[i] = input_ids.shape[1] - self.width
        gone = [i in self.at for i in range(len(self.events))]
        return torch.tensor(gone, dtype=torch.bool, device=input_ids.device)
