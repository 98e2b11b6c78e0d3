"""Model backends behind one interface (`LLM.generate`), chosen by the Hydra group `backend`.

Importing this package is cheap; each backend imports its client library (torch, openai, ollama)
only when built.
"""

from sleepy.llm.base import LLM, BackendError, BackendUnreachable, Generation, Messages

__all__ = ["LLM", "BackendError", "BackendUnreachable", "Generation", "Messages"]
