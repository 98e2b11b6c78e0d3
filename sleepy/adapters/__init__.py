"""Adapters as files: adapter folders (PEFT LoRA + sleepy's metadata), LoRA factor I/O, the Share
bundle's router and coefficient layers. Training, consolidation and the backends all read and
write adapters through here."""

from sleepy.adapters.folder import (
    META_FILE,
    WEIGHTS_FILE,
    AdapterError,
    AdapterInfo,
    fingerprint,
    load_adapter_info,
    load_peft_model,
    weights_sha256,
    write_info,
)

__all__ = [
    "META_FILE",
    "WEIGHTS_FILE",
    "AdapterError",
    "AdapterInfo",
    "fingerprint",
    "load_adapter_info",
    "load_peft_model",
    "weights_sha256",
    "write_info",
]
