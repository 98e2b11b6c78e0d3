"""The custom greedy decoder of the `hf` backend (`backend.decoder=custom`): what model.generate
computes for each prompt alone, for a whole group of prompts at once, on transformers' cache
internals.

Prompts are grouped by length (`plan_batches`); runs of near-equal lengths are prefilled together,
their keys and values copied right-aligned into one preallocated static cache per group, and the
group decodes one token per step; rows that reached EOS leave the batch as it runs. It serves
plain greedy decoding only: a model with a logits processor in its generation config, or a cache
layer that is not plain full attention (sliding windows), goes through model.generate
(`GreedyDecoder.for_model` says None). It leans on transformers 5's Cache/StaticLayer classes,
the part of sleepy most likely to break with a new transformers; `backend.decoder=generate` is
the way around it.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Sequence
from typing import Any

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


def _no_logits_processors(config: Any) -> bool:
    from transformers import GenerationConfig

    default = GenerationConfig()
    return all(getattr(config, k, None) == getattr(default, k, None) for k in _PROCESSOR_FIELDS)


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


class GreedyDecoder:
    """Greedy continuations of token-id prompts with one model, a group at a time."""

    def __init__(self, model: Any, n_layers: int, eos_ids: set[int], pad_id: int, device: str):
        self.model, self.n_layers, self.eos_ids, self.pad_id = model, n_layers, eos_ids, pad_id
        self.device = device
        self.config = model.config
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in 5.x

    @classmethod
    def for_model(
        cls, model: Any, eos_ids: set[int], pad_id: int, device: str
    ) -> GreedyDecoder | None:
        """A decoder for this model, or None when model.generate must do it: a logits
        processor to apply, a cache layer that is not plain full attention, or a forward
        without position_ids / logits_to_keep."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        n_layers = _full_attention_layers(model.config)
        usable = (
            n_layers > 0
            and {"position_ids", "logits_to_keep"} <= set(params)
            and _no_logits_processors(model.generation_config)
        )
        return cls(model, n_layers, eos_ids, pad_id, device) if usable else None

    def decode(
        self,
        rows: list[list[int]],
        max_new_tokens: int,
        abandoned: Sequence[threading.Event] | None = None,
    ) -> list[list[int]]:
        """Greedy continuations of token-id prompts (shortest first), decoded as one batch.
        A row whose `abandoned` event is set stops where it is, as if it had ended.

        Runs of prompts within PREFILL_PAD of each other in length are prefilled together
        (left-padded); their keys and values go right-aligned into one preallocated cache, so
        every row ends at the same position and decodes one token per step. Each row gets what
        model.generate computes for its prompt alone (argmax of the last logits each step),
        without prefilling the group's padding or stepping rows that already ended.
        """
        import torch
        from transformers import Cache, DynamicCache

        dev, pad = self.device, self.pad_id
        config = self.config
        lens = [len(r) for r in rows]
        width = max(lens)
        cache = Cache(
            layers=[
                _filled_layer_class()(max_cache_len=width + max_new_tokens)
                for _ in range(self.n_layers)
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
                    **{self.cache_kw: part},
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
            cut: set[int] = set()  # abandoned rows: they get no more tokens
            for step in range(max_new_tokens):
                for i, t in zip(live, nxt.tolist(), strict=True):
                    if i not in cut:
                        new[i].append(t)
                done |= torch.isin(nxt, eos)
                if abandoned is not None:  # its client left: no one reads the rest
                    gone = [abandoned[i].is_set() for i in live]
                    cut.update(i for i, g in zip(live, gone, strict=True) if g)
                    done |= torch.tensor(gone, dtype=torch.bool, device=dev)
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
                    **{self.cache_kw: cache},
                    use_cache=True,
                )
                nxt = out.logits[:, -1].argmax(-1)
        return new
