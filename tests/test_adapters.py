"""Adapter folders: the weights' checksum in sleepy_adapter.json and the refusal of non-finite
weights, on real PEFT LoRA adapters of sleepy-tiny."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from support import make_adapter

from sleepy.adapters import (
    META_FILE,
    WEIGHTS_FILE,
    AdapterError,
    load_adapter_info,
    load_peft_model,
    weights_sha256,
)
from sleepy.tiny import MODEL_DIR


@pytest.fixture
def adapter(tmp_path):
    return make_adapter(tmp_path / "adapter")


def test_the_checksum_is_recorded_and_a_good_adapter_loads(adapter):
    meta = json.loads((adapter / META_FILE).read_text())
    assert meta["weights_sha256"] == weights_sha256(adapter)
    assert load_adapter_info(adapter, MODEL_DIR).weights_sha256 == meta["weights_sha256"]


def test_flipped_payload_bytes_with_the_header_intact_are_caught(adapter):
    weights = adapter / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    start = 8 + header_len
    for i in range(start + 16, len(data), 997):
        data[i] ^= 0x40
    weights.write_bytes(bytes(data))
    with safe_open(str(weights), framework="pt") as f:  # still a well-formed file
        assert list(f.keys())
    with pytest.raises(AdapterError, match="does not match the checksum") as e:
        load_adapter_info(adapter, MODEL_DIR)
    assert "\n" not in str(e.value)


def poison(adapter) -> None:
    weights = adapter / WEIGHTS_FILE
    tensors = load_file(str(weights))
    name = sorted(tensors)[0]
    tensors[name][0, 0] = float("nan")
    save_file(tensors, str(weights))


def test_nan_weights_are_refused_even_with_a_matching_checksum(adapter):
    poison(adapter)
    meta = json.loads((adapter / META_FILE).read_text())
    meta["weights_sha256"] = weights_sha256(adapter)  # somebody "fixed" the checksum
    (adapter / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match="NaN or inf"):
        load_adapter_info(adapter, MODEL_DIR)
    with pytest.raises(AdapterError, match="NaN or inf"):
        load_peft_model(MODEL_DIR, adapter)


def test_nan_weights_in_an_adapter_without_a_checksum_are_refused(adapter):
    poison(adapter)
    meta = json.loads((adapter / META_FILE).read_text())
    del meta["weights_sha256"]  # written before checksums were recorded
    (adapter / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match="NaN or inf"):
        load_adapter_info(adapter)


def test_an_adapter_with_nan_weights_is_never_written(tmp_path):
    from sleepy.adapters import AdapterInfo, write_info

    adapter = make_adapter(tmp_path / "adapter")
    poison(adapter)
    inf = load_file(str(adapter / WEIGHTS_FILE))
    assert any(not bool(torch.isfinite(t).all()) for t in inf.values())
    with pytest.raises(AdapterError, match="NaN or inf"):
        write_info(adapter, AdapterInfo(base_model="", base_model_fingerprint=""))
