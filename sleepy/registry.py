"""The MLflow model registry for adapters: register a version, resolve aliases, load a version.

A version is a pyfunc model whose artifact is the PEFT adapter folder; the base model is named in its
config (a hub id, or `sleepy-tiny` for the shipped model), so loading works offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel

DEFAULT_NAME = "sleepy-fixer"


def portable_base(base_model: str | Path) -> str:
    """`sleepy-tiny` for the shipped model (its path differs per checkout), else the id/path as given."""
    from sleepy.tiny import MODEL_DIR

    try:
        if Path(base_model).resolve() == MODEL_DIR.resolve():
            return "sleepy-tiny"
    except OSError:
        pass
    return str(base_model)


def resolve_base(name: str) -> str:
    from sleepy.tiny import MODEL_DIR

    return str(MODEL_DIR) if name == "sleepy-tiny" else name


class AdapterModel(PythonModel):
    """Generates replies for chat message lists with the base model + this adapter."""

    def load_context(self, context):
        from transformers import AutoTokenizer

        from sleepy.adapters import load_peft_model

        self.base = resolve_base(context.model_config["base_model"])
        self.adapter_dir = context.artifacts["adapter"]
        self.tokenizer = AutoTokenizer.from_pretrained(self.base)
        self.model = load_peft_model(self.base, self.adapter_dir)

    def predict(self, context, model_input, params=None):
        import torch

        params = params or {}
        batch = model_input
        if hasattr(batch, "to_dict"):  # a DataFrame with a "messages" column
            batch = list(batch["messages"])
        if isinstance(batch, dict):
            batch = [batch["messages"]]
        outs = []
        for messages in batch:
            if isinstance(messages, str):
                messages = json.loads(messages)
            ids = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
            with torch.no_grad():
                gen = self.model.generate(**ids, max_new_tokens=int(params.get("max_new_tokens", 128)),
                                          do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
            outs.append(self.tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
        return outs


def register_adapter(adapter_dir: str | Path, base_model: str | Path, name: str = DEFAULT_NAME,
                     tags: dict | None = None) -> str:
    """Log the adapter as a model in the active run and register it; returns the version number."""
    from sleepy.adapters import load_adapter_info

    load_adapter_info(adapter_dir, base_model)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    info = mlflow.pyfunc.log_model(
        name="adapter",
        python_model=AdapterModel(),
        artifacts={"adapter": str(adapter_dir)},
        model_config={"base_model": portable_base(base_model)},
        registered_model_name=name,
        pip_requirements=["sleepy"],
        await_registration_for=60,
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for k, v in (tags or {}).items():
        client.set_model_version_tag(name, version, k, str(v))
    return version


def model_uri(name: str, version_or_alias: str) -> str:
    return f"models:/{name}@{version_or_alias}" if not str(version_or_alias).isdigit() else f"models:/{name}/{version_or_alias}"


def download_adapter(uri: str, dst: str | Path | None = None) -> Path:
    """A registry URI (`models:/sleepy-fixer/3`, `models:/sleepy-fixer@champion`) -> local adapter folder."""
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst) if dst else None)
    except MlflowException as e:
        raise ValueError(f"cannot load {uri}: {str(e).splitlines()[0]}") from None
    path = Path(local) / "artifacts" / "adapter"
    if not path.is_dir():
        raise ValueError(f"{uri} holds no adapter folder (artifacts/adapter): not a sleepy adapter model")
    return path
