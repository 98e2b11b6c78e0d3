"""The `hf` backend: a local transformers model (plus an optional PEFT adapter), batched on device.

Greedy decoding (the agent's default) has its own loop: prompts are grouped by length
(`plan_batches`), each prompt is prefilled without padding beyond its few near-equal neighbours,
its keys and values are copied into one preallocated static cache per group, and the group
decodes together; rows that reached EOS are dropped from the batch as it runs. Sampling and stop
strings go through `model.generate` on left-padded batches of similar length.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from pathlib import Path
from typing import Any

from sleepy.adapters.router import Router
from sleepy.llm.base import LLM, BackendError, Generation, Messages, one_line

DTYPES = ("auto", "float32", "bfloat16", "float16")
# Fixed cost of one decode step (a forward of the whole model for one token per row), counted in
# cached tokens read by attention: grouping two length buckets saves steps but makes the short
# rows attend over the long rows' padding. Measured on CPU: ~2 ms per step vs ~0.7 us per token.
STEP_COST_TOKENS = 2048
PREFILL_PAD = 1.1  # prompts prefilled together may differ in length by 10% (padding waste)
# Generation-config fields that add a logits processor to greedy search: when any differs from its
# default, greedy decoding goes through model.generate so it applies them.
_PROCESSOR_FIELDS = (
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "sequence_bias",
    "min_length",
    "min_new_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
    "exponential_decay_length_penalty",
    "renormalize_logits",
    "guidance_scale",
    "watermarking_config",
)


def _looks_like_hub_id(name: str) -> bool:
    return not name.startswith((".", "/", "~")) and name.count("/") == 1


@functools.cache
def _filled_layer_class() -> type:
    from transformers.cache_utils import StaticLayer

    class FilledStaticLayer(StaticLayer):
        """A StaticLayer (preallocated, written in place) whose attention reads only the
        `filled` positions written so far, not the whole buffer."""

        filled = 0

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            keys, values = super().update(key_states, value_states, *args, **kwargs)
            self.filled += key_states.shape[-2]
            return keys[:, :, : self.filled], values[:, :, : self.filled]

        def get_mask_sizes(self, query_length: int, *args: Any) -> tuple[int, int]:
            return self.filled + query_length, 0

    return FilledStaticLayer


def plan_batches(
    lengths: list[int], max_batch: int, max_new_tokens: int, step_cost: int | None = None
) -> list[list[int]]:
    """Indices of prompts to decode together, shortest first, at most `max_batch` per group.

    Every row of a group attends over the group's longest prompt plus what it generates, and
    every group costs its own decode steps; the split minimises
    sum(steps * (step_cost + rows * (longest + steps / 2))) over groups of consecutive lengths.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    steps, step_cost = max_new_tokens, STEP_COST_TOKENS if step_cost is None else step_cost
    best = [0.0] + [float("inf")] * len(order)  # best[j]: cheapest plan for the j shortest
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = lengths[order[j - 1]]
        for i in range(max(0, j - max(1, max_batch)), j):
            cost = best[i] + steps * (step_cost + (j - i) * (longest + steps / 2))
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(order)
    while j:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


# auto: an adapter carrying a Share bundle routes by error signature; off: the averaged adapter;
# arrow: PEFT's Arrow mixes the bundle's task adapters per token (a training-free baseline)
ROUTES = ("auto", "off", "arrow")


class HFBackend(LLM):
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
        if route not in ROUTES:
            raise BackendError(f"route must be one of {ROUTES}, not {route!r}")
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
        self.set_defaults(max_new_tokens, temperature, top_p, seed)
        self.batch_size = batch_size
        base_id = model_id or (path.name if path.exists() else name)
        self.model_id = f"{base_id}+{Path(adapter).name}" if adapter and not model_id else base_id
        self.adapter = str(adapter) if adapter else None
        # Greedy decoding gets its own loop where generate() would do nothing but argmax: no
        # logits processors, and a static cache of full-attention layers only (no sliding window).
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        params = inspect.signature(base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in 5.x
        self._n_layers = self._full_attention_layers(self.model.config)
        self.plain_greedy = (
            self._n_layers > 0
            and {"position_ids", "logits_to_keep"} <= set(params)
            and self._greedy_has_no_processors(self.model.generation_config)
        )
        self.last_plan: list[int] = []  # prompts per batch in the last generate(), in order
        self._lock = threading.Lock()  # generate() is not re-entrant; serve calls it from threads
        self._route_lock = threading.Lock()  # one routed batch at a time: it switches adapters

    @staticmethod
    def _greedy_has_no_processors(config: Any) -> bool:
        from transformers import GenerationConfig

        default = GenerationConfig()
        return all(getattr(config, k, None) == getattr(default, k, None) for k in _PROCESSOR_FIELDS)

    @staticmethod
    def _full_attention_layers(config: Any) -> int:
        """How many layers the model's static cache has, or 0 if any is not plain full attention."""
        from transformers import StaticCache
        from transformers.cache_utils import StaticLayer

        try:
            layers = StaticCache(config=config, max_cache_len=1).layers
        except Exception:  # a model whose config StaticCache does not understand
            return 0
        plain = all(type(x) is StaticLayer and hasattr(x, "cumulative_length") for x in layers)
        return len(layers) if plain else 0

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
            if opts["temperature"] <= 0 and not opts.get("stop") and self.plain_greedy:
                groups = plan_batches([len(x) for x in ids], size, opts["max_new_tokens"])
                self.last_plan = [len(g) for g in groups]
                for group in groups:
                    new = self._greedy_group([ids[i] for i in group], opts["max_new_tokens"])
                    for i, out in zip(group, new, strict=True):
                        results[i] = self._finish(out, len(ids[i]), None)
                return results  # type: ignore[return-value]
            # Similar lengths in one batch, so padding stays small; results go back in input order.
            order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
            chunks = [order[start : start + size] for start in range(0, len(order), size)]
            self.last_plan = [len(c) for c in chunks]
            for chunk in chunks:
                for i, g in zip(
                    chunk, self._generate_batch([prompts[i] for i in chunk], **opts), strict=True
                ):
                    results[i] = g
        return results  # type: ignore[return-value]

    def _greedy_group(self, rows: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """Greedy continuations of token-id prompts (shortest first), decoded as one batch.

        Runs of prompts within PREFILL_PAD of each other in length are prefilled together
        (left-padded); their keys and values go right-aligned into one preallocated cache, so
        every row ends at the same position and decodes one token per step. Each row gets what
        model.generate computes for its prompt alone (argmax of the last logits each step),
        without prefilling the group's padding or stepping rows that already ended.
        """
        import torch
        from transformers import Cache, DynamicCache

        dev, pad = self.device, self.tokenizer.pad_token_id
        config = self.model.config
        lens = [len(r) for r in rows]
        width = max(lens)
        cache = Cache(
            layers=[
                _filled_layer_class()(max_cache_len=width + max_new_tokens)
                for _ in range(self._n_layers)
            ]
        )
        mask = torch.zeros(len(rows), width + max_new_tokens, dtype=torch.long, device=dev)
        nxt = torch.empty(len(rows), dtype=torch.long, device=dev)
        with torch.inference_mode():
            a = 0
            while a < len(rows):
                b = a + 1
                while b < len(rows) and lens[b] <= PREFILL_PAD * lens[a]:
                    b += 1
                w = lens[b - 1]
                ids = torch.full((b - a, w), pad, dtype=torch.long)
                part_mask = torch.zeros((b - a, w), dtype=torch.long)
                for j in range(a, b):
                    ids[j - a, w - lens[j] :] = torch.tensor(rows[j])
                    part_mask[j - a, w - lens[j] :] = 1
                ids, part_mask = ids.to(dev), part_mask.to(dev)
                part = DynamicCache(config=config)
                out = self.model(
                    input_ids=ids,
                    attention_mask=part_mask,
                    position_ids=(part_mask.cumsum(-1) - 1).clamp(min=0),
                    **{self._cache_kw: part},
                    use_cache=True,
                    logits_to_keep=1,
                )
                nxt[a:b] = out.logits[:, -1].argmax(-1)
                if a == 0:
                    k = part.layers[0].keys
                    cache.early_initialization(len(rows), k.shape[1], k.shape[-1], k.dtype, dev)
                for layer, filled in zip(cache.layers, part.layers, strict=True):
                    layer.keys[a:b, :, width - w : width] = filled.keys
                    layer.values[a:b, :, width - w : width] = filled.values
                mask[a:b, width - w : width] = part_mask
                a = b
            for layer in cache.layers:
                layer.cumulative_length.fill_(width)
                layer.filled = width

            eos = torch.tensor(sorted(self.eos_ids), device=dev)
            live = list(range(len(rows)))  # the rows still in the batch, by index into rows
            pos = torch.tensor(lens, device=dev) - 1
            done = torch.zeros(len(rows), dtype=torch.bool, device=dev)
            new: list[list[int]] = [[] for _ in rows]
            for step in range(max_new_tokens):
                for i, t in zip(live, nxt.tolist(), strict=True):
                    new[i].append(t)
                done |= torch.isin(nxt, eos)
                n_done = int(done.sum())
                if n_done == len(live) or step == max_new_tokens - 1:
                    break
                if n_done * 4 >= len(live):  # drop ended rows once they are a quarter
                    keep = (~done).nonzero().squeeze(1)
                    live = [live[i] for i in keep.tolist()]
                    nxt, pos, mask, done = nxt[keep], pos[keep], mask[keep], done[keep]
                    for layer in cache.layers:
                        layer.keys = layer.keys.index_select(0, keep)
                        layer.values = layer.values.index_select(0, keep)
                mask[:, width + step] = 1
                pos = pos + 1
                out = self.model(
                    input_ids=nxt[:, None],
                    attention_mask=mask[:, : width + step + 1],
                    position_ids=pos[:, None],
                    **{self._cache_kw: cache},
                    use_cache=True,
                )
                nxt = out.logits[:, -1].argmax(-1)
        return new

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
        return [self._finish(ids, int(n), stop) for ids, n in zip(new, tokens_in, strict=True)]
