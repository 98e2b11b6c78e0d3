"""The registered model's pyfunc: an adapter version served through MLflow (`mlflow models
serve`, `mlflow.pyfunc.load_model`) generates with the hf backend, the base model named in the
version's config plus the adapter folder it carries."""

from __future__ import annotations

import json

from mlflow.pyfunc import PythonModel

from sleepy.adapters import load_adapter_info
from sleepy.llm.hf import HFBackend
from sleepy.registry.versions import resolve_base


class AdapterModel(PythonModel):
    """Generates replies for chat message lists with the base model + this adapter."""

    def load_context(self, context):
        base = resolve_base(context.model_config["base_model"])
        adapter_dir = context.artifacts["adapter"]
        load_adapter_info(adapter_dir, base)  # corrupt or foreign adapters fail before loading
        # the averaged adapter, as any PEFT user loads it; routing needs each request's error
        # signature, which the agent (hf backend) and `sleepy serve` (error_signature) pass
        self.llm = HFBackend(base, adapter=adapter_dir, route="off")

    def predict(self, context, model_input, params=None):
        params = params or {}
        batch = model_input
        if hasattr(batch, "to_dict"):  # a DataFrame with a "messages" column
            batch = list(batch["messages"])
        if isinstance(batch, dict):
            batch = [batch["messages"]]
        batch = [json.loads(m) if isinstance(m, str) else list(m) for m in batch]
        gens = self.llm.generate(batch, max_new_tokens=int(params.get("max_new_tokens", 128)))
        return [g.text for g in gens]
